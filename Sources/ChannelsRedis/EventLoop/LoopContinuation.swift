/// A continuation that the loop thread resumes for a caller on another thread.
///
/// Every resume first passes through the hand-off lock, a pthread mutex, and the caller passes
/// through it after its await returns (see `onLoop`): an unlock/lock pair that lets
/// ThreadSanitizer see the caller read what the loop made (a new channel's mailbox, say), for one
/// uncontended lock per call. Why it is needed: see `LockedValue`.
struct LoopContinuation<Value: Sendable>: Sendable {
    /// Passes through the hand-off lock (shared by all layers; held for an empty critical section).
    static func passHandoff() { loopHandoff.pass() }

    private let base: CheckedContinuation<Value, any Error>

    init(_ base: CheckedContinuation<Value, any Error>) {
        self.base = base
    }

    func resume(returning value: sending Value) {
        loopHandoff.pass()
        base.resume(returning: value)
    }

    func resume(throwing error: any Error) {
        loopHandoff.pass()
        base.resume(throwing: error)
    }
}

extension LoopContinuation where Value == Void {
    func resume() { resume(returning: ()) }
}

private let loopHandoff = HandoffLock()

#if canImport(Glibc)
    import Glibc
#endif

/// A bare pthread mutex, locked and unlocked at once: a synchronisation point ThreadSanitizer sees
/// (see `LockedValue`). Not `LockedValue<Void>`: TSan's Swift access checks on a zero-sized value
/// misfire.
private final class HandoffLock: @unchecked Sendable {
    // @unchecked Sendable: the mutex is the only state and is only used through pthread calls.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    func pass() {
        pthread_mutex_lock(mutex)
        pthread_mutex_unlock(mutex)
    }
}
