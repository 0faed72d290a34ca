import ServiceLifecycle
import Synchronization

/// Something that happens once (a layer closed): `wait()` returns once `signal()` was called,
/// before or after. Waits are not cancellable; callers race them against what else may end them.
final class OneShotSignal: Sendable {
    private let state = Mutex<(signalled: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func signal() {
        let waiters = state.withLock { state in
            state.signalled = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state in
                if state.signalled { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}

/// What a layer's `Service.run()` needs: whether it ran already, and when the layer closed (its
/// `close()` signals `closed`).
final class ServiceRunState: Sendable {
    let running = Atomic<Bool>(false)
    let closed = OneShotSignal()

    /// The body of both layers' `run()`: waits for graceful shutdown, cancellation or `closed`,
    /// then closes the layer (and waits for its teardown when someone else started it).
    func run(layer name: String, close: @escaping @Sendable () async -> Void) async {
        precondition(!running.exchange(true, ordering: .relaxed), "\(name).run() was called twice; a layer runs at most once")
        await withTaskCancellationOrGracefulShutdownHandler {
            await closed.wait()
        } onCancelOrGracefulShutdown: {
            Task { await close() }
        }
        await close()
    }
}
