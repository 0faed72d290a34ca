#if canImport(Glibc)
    import Glibc
#endif

/// The locks of every ``ChannelMailbox`` in the process: a fixed pool of pthread mutexes, each
/// mailbox taking the one its channel id picks.
///
/// Not a mutex per mailbox: a server holds one channel per connection, most of them idle, and a
/// `pthread_mutex_t` of its own was a 48-byte allocation in each idle channel's memory (a mutex
/// cannot live inside the Swift object: a class's stored property has no stable address to hand to
/// C). Sharing is safe because no code holds two mailbox locks at once: every critical section of
/// `ChannelMailbox` is straight-line, and it resumes continuations and calls its owner only after
/// unlocking, so two mailboxes on one lock can make each other wait but never deadlock. With 1,024
/// locks they seldom wait: only when two threads are at two mailboxes of one lock at the same
/// moment. Each lock has a cache line of its own, so neighbours do not share one either.
///
/// pthread mutexes, not `Synchronization.Mutex`, for ThreadSanitizer: see `LockedValue`.
enum MailboxLockPool {
    static let count = 1_024
    /// One cache line per lock.
    private static let stride = 64

    // nonisolated(unsafe): set once by the thread-safe lazy initialisation of a static, never
    // written after; the pointees are mutexes, used only through pthread_mutex_lock/unlock.
    nonisolated(unsafe) private static let base: UnsafeMutableRawPointer = {
        precondition(MemoryLayout<pthread_mutex_t>.size <= stride)
        let base = UnsafeMutableRawPointer.allocate(byteCount: count * stride, alignment: stride)
        for index in 0..<count {
            let mutex = (base + index * stride).bindMemory(to: pthread_mutex_t.self, capacity: 1)
            mutex.initialize(to: pthread_mutex_t())
            let status = pthread_mutex_init(mutex, nil)
            precondition(status == 0, "pthread_mutex_init failed: \(status)")
        }
        // Never freed: mailboxes of any layer may use them for as long as the process lives.
        return base
    }()

    /// The lock of the mailbox of channel `id`: consecutive ids take consecutive locks.
    static func lock(for id: UInt64) -> UnsafeMutablePointer<pthread_mutex_t> {
        (base + Int(id % UInt64(count)) * stride).assumingMemoryBound(to: pthread_mutex_t.self)
    }
}
