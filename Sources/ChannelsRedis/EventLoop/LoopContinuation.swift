/// A continuation that the loop thread resumes for a caller on another thread.
///
/// In debug builds every resume first passes through the hand-off lock, a pthread mutex, and the
/// caller passes through it after its await returns (see `onLoop`): an unlock/lock pair that lets
/// ThreadSanitizer see the caller read what the loop made (a new channel's mailbox, say). Why it
/// is needed: see `LockedValue`. Release builds skip it: one mutex for every call of every layer
/// was contended at 64 concurrent senders, and skipping it raised that row's throughput by a median
/// 18 % (Benchmarks.md).
///
/// Checked in debug builds, unsafe in release builds. A checked continuation catches a second
/// resume or a lost one, and ThreadSanitizer (the tests, which are debug builds) reads an unsafe
/// one resumed before its task suspended as a race (see `LockedValue`). In release builds the check
/// costs each awaited send an allocation (its canary) and, as `CheckedContinuation` is not
/// `@frozen`, a copy through value witnesses and a generic metadata look-up wherever this value is
/// copied (see Benchmarks.md, "System calls, counted"). Every resume goes through this type, so
/// the tests exercise the same resumes the release build makes.
struct LoopContinuation<Value: Sendable>: Sendable {
    #if DEBUG
        private typealias Base = CheckedContinuation<Value, any Error>
    #else
        private typealias Base = UnsafeContinuation<Value, any Error>
    #endif

    /// Passes through the hand-off lock (shared by all layers; held for an empty critical section;
    /// debug builds only).
    static func passHandoff() { loopHandoff.pass() }

    private let base: Base

    private init(_ base: Base) {
        self.base = base
    }

    /// Suspends the calling task until `body`'s continuation is resumed (`body` runs at once, on
    /// the caller's thread). Like `withCheckedThrowingContinuation`, it runs in the caller's
    /// isolation, so a `nonisolated(nonsending)` caller makes no hop.
    static func withContinuation(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (LoopContinuation<Value>) -> Void
    ) async throws -> Value {
        #if DEBUG
            try await withCheckedThrowingContinuation(isolation: isolation) { body(LoopContinuation($0)) }
        #else
            try await withUnsafeThrowingContinuation(isolation: isolation) { body(LoopContinuation($0)) }
        #endif
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

    /// Locks and unlocks the mutex in debug builds, which are what ThreadSanitizer runs; in release
    /// builds nothing: the runtime orders a resume before the resumed task anyway, and the lock is
    /// only there to make that order visible to the sanitizer.
    @inline(__always)
    func pass() {
        #if DEBUG
            pthread_mutex_lock(mutex)
            pthread_mutex_unlock(mutex)
        #endif
    }
}
