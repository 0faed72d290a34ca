#if canImport(Glibc)
    import Glibc
#endif

/// A value behind a `pthread_mutex_t`.
///
/// This is also the one place that explains how the module stays readable to ThreadSanitizer
/// (`.ci/test` runs the tests under it); the other places point here.
///
/// - Every lock is a pthread mutex, never `Synchronization.Mutex`: on Linux that is built on raw
///   futex system calls, which ThreadSanitizer cannot see, so every hand-off through it (the loop's
///   job queue above all) would be reported as a data race and hide real ones. A pthread mutex
///   costs the same uncontended and is understood by the sanitizer (SwiftNIO's `NIOLock` makes the
///   same choice). This type, `ChannelMailbox` and `LoopContinuation`'s hand-off lock follow it.
/// - Resuming a continuation is synchronised inside the concurrency runtime, which is not
///   instrumented, so ThreadSanitizer does not always see that the resumed task may read what the
///   resuming thread wrote before the resume. The runtime does order the two; to make that visible,
///   both sides of a hand-off from the loop thread also pass through a pthread mutex:
///   `LoopContinuation` for every call handed to the loop (the resume passes its hand-off lock, the
///   caller passes it again after its await; debug builds only), and `ChannelMailbox.settle`
///   for a message handed to a waiting consumer (the consumer takes the mailbox's mutex after it
///   resumes). Calls handed to the loop use checked continuations in debug builds (the tests, and
///   so every ThreadSanitizer run), as resuming an `UnsafeContinuation` from the loop thread before
///   the awaiting task has suspended is reported as a race; release builds use unsafe ones (see
///   `LoopContinuation`). The mailbox's waiters are unsafe ones (a checked one allocates per
///   wait), registered and taken under the mailbox's mutex. That leaves one instant the sanitizer
///   misreads: a waiter resumed between its registration's unlock and its task's suspension goes
///   on without being enqueued, ordered only by the runtime's continuation status;
///   `.ci/tsan.supp` names that one report (an access inside `UnsafeContinuation.resume` itself)
///   and says why.
final class LockedValue<Value: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: `value` is only read or written while `mutex` is held.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    init(_ value: Value) {
        self.value = value
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let status = pthread_mutex_init(mutex, nil)
        precondition(status == 0, "pthread_mutex_init failed: \(status)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value.
    @inline(__always)
    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
