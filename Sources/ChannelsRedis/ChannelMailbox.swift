import DequeModule

#if canImport(Glibc)
    import Glibc
#endif

/// Who a mailbox reports to: decoding its `.encoded` entries, and a cancelled consumer.
///
/// One shared object rather than closures per mailbox: a WebSocket server holds one channel per
/// connection, and two closure contexts per channel were a seventh of an idle channel's memory.
protocol ChannelMailboxOwner: AnyObject, Sendable {
    /// Decodes bytes taken from `channel`'s mailbox; `nil` (logged and counted) when they do not decode.
    func decode(_ bytes: [UInt8], forChannel channel: String) -> ChannelMessage?
    /// A consumer of the channel was cancelled while waiting: clean the channel up (as a cancelled
    /// `receive` unsubscribes in Python).
    func consumerCancelled(channel: String, id: UInt64)
}

/// The buffer of one local channel: the loop thread delivers, any number of consumer tasks take, in
/// FIFO order, each message going to exactly one of them.
///
/// Not an `AsyncStream`: the standard library's stream is not specialised for its element, so every
/// yield and next pays runtime generic-metadata lookups (about 1 µs a delivery in the profile, a third
/// of the loop thread's time in group fanout), and its throwing form traps when two tasks await
/// `next()` at once. This is a lock, a deque and a queue of waiting continuations.
///
/// Bounded: past `capacity` buffered messages the oldest is dropped and the caller told, so a stuck
/// consumer cannot grow memory without bound.
final class ChannelMailbox: @unchecked Sendable {
    // @unchecked Sendable: every stored var is read and written only while `mutex` is held.
    // (A pthread mutex rather than `Synchronization.Mutex`, for ThreadSanitizer: see `LockedValue`.)
    //
    // The stored vars are `@exclusivity(unchecked)`: each access is a short, straight-line read or
    // mutation under the mutex that calls out to nothing that could touch the mailbox again, so no
    // two accesses can overlap; the runtime's dynamic check (per thread, so blind to other threads
    // anyway) cost ~20 ns per access, several per delivery: 6 % of group fan-out's CPU.
    enum Delivery {
        /// Buffered or handed over. `dropped`: how many of the oldest messages were dropped to make
        /// room (the buffer was full).
        case stored(dropped: Int)
        /// The mailbox is finished; the message was discarded.
        case finished
    }

    /// A message taken by a consumer that was waiting for it, to be resumed with it outside the
    /// mailbox's lock (the engine does so once per pass of the loop, for every mailbox at once).
    struct Handoff {
        fileprivate let continuation: UnsafeContinuation<Entry?, Never>
        fileprivate let entry: Entry

        /// Wakes the consumer (a thread wake-up, a futex call, when its executor is idle).
        func resume() { continuation.resume(returning: entry) }
    }

    /// What the buffer holds: a decoded message (group messages, decoded once for all members), or
    /// the bytes of a message only this channel gets, decoded by the consumer that takes it, on
    /// its own core instead of the loop thread (still once per Redis message).
    enum Entry: Sendable {
        case message(Shared)
        case encoded([UInt8])
    }

    /// A decoded message behind one reference: handing it to every member of a group is one retain
    /// per mailbox, not one for each storage buffer inside the message (a map is two or three), all
    /// on the loop thread while the consumers release the same counters on other cores.
    final class Shared: Sendable {
        let message: ChannelMessage
        init(_ message: ChannelMessage) { self.message = message }
    }

    /// Unsafe rather than checked: a checked continuation allocates a canary object per wait and
    /// resumes through it. Each waiter is resumed exactly once: whoever removes it from `waiters`
    /// under the mutex (`deliver`, through its hand-off; `finish`; `cancel`) resumes it; a
    /// registration that finds a message, the end, or its own cancellation resumes at once and
    /// never enters `waiters`.
    private typealias Waiter = (id: UInt64, continuation: UnsafeContinuation<Entry?, Never>)

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let capacity: Int
    @exclusivity(unchecked) private var buffer: Deque<Entry> = []
    private let channel: String
    private let channelID: UInt64
    /// Strong, not weak: a weak reference would give the engine a side table and slow every retain
    /// of it on the message path. The engine drops its mailboxes when their channels go and when it
    /// closes, which ends the cycle.
    private let owner: any ChannelMailboxOwner
    @exclusivity(unchecked) private var waiters: Deque<Waiter> = []
    @exclusivity(unchecked) private var cancelledWaiters: Set<UInt64> = []
    @exclusivity(unchecked) private var nextWaiterID: UInt64 = 0
    @exclusivity(unchecked) private var finished = false

    init(capacity: Int, channel: String, id: UInt64, owner: any ChannelMailboxOwner) {
        self.capacity = capacity
        self.channel = channel
        self.channelID = id
        self.owner = owner
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inline(__always)
    private func locked<Result>(_ body: () throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    // MARK: Producer (the loop thread)

    /// Puts messages into the buffer, in order, under one lock: the engine hands over everything a
    /// channel got in one pass of the loop at once. (Locking per message, the loop and a consumer
    /// taking messages as fast as they came collided on the mutex: 30 futex calls per 1,000 messages.)
    ///
    /// A consumer already waiting takes its message here, under the same lock (one lock per
    /// delivery instead of a second one to wake it), but is not resumed here: resuming wakes a
    /// thread, and when a consumer keeps up that would be one wake per message. Its hand-off goes
    /// to `handoffs`, which the engine resumes once per pass; meanwhile the consumer is no longer
    /// in `waiters`, so later messages of the pass wait in the buffer and the woken consumer takes
    /// them without suspending again. (Invariant: `waiters` is empty whenever `buffer` is not.)
    func deliver(_ messages: some Collection<Entry>, handoffs: inout [Handoff]) -> Delivery {
        pthread_mutex_lock(mutex)
        if finished {
            pthread_mutex_unlock(mutex)
            return .finished
        }
        var dropped = 0
        for message in messages {
            if let waiter = waiters.popFirst() {
                handoffs.append(Handoff(continuation: waiter.continuation, entry: message))
                continue
            }
            if buffer.count >= capacity {
                buffer.removeFirst()
                dropped += 1
            }
            buffer.append(message)
        }
        pthread_mutex_unlock(mutex)
        return .stored(dropped: dropped)
    }

    /// Ends the mailbox: waiting and later consumers get `nil` at once. Buffered messages are
    /// dropped, as Python drops a channel's queue when the channel goes.
    func finish() {
        let waiting = locked { () -> Deque<Waiter> in
            finished = true
            buffer.removeAll()
            cancelledWaiters.removeAll()
            defer { waiters.removeAll() }
            return waiters
        }
        for waiter in waiting { waiter.continuation.resume(returning: nil) }
    }

    // MARK: Consumers (any task)

    /// The next message, or `nil` once the mailbox is finished. When the calling task is cancelled
    /// while waiting, returns `nil` and finishes the mailbox (the channel is cleaned up). Bytes that
    /// do not decode are skipped (logged and counted by `decode`).
    nonisolated(nonsending) func next() async -> ChannelMessage? {
        while let entry = await nextEntry() {
            switch entry {
            case .message(let shared): return shared.message
            case .encoded(let bytes):
                if let message = owner.decode(bytes, forChannel: channel) { return message }
            }
        }
        return nil
    }

    private nonisolated(nonsending) func nextEntry() async -> Entry? {
        // Fast path: no suspension, no continuation, when something is buffered.
        pthread_mutex_lock(mutex)
        if let message = buffer.popFirst() {
            pthread_mutex_unlock(mutex)
            return message
        }
        if finished {
            pthread_mutex_unlock(mutex)
            return nil
        }
        nextWaiterID &+= 1
        let id = nextWaiterID
        pthread_mutex_unlock(mutex)

        let entry = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Entry?, Never>) in
                pthread_mutex_lock(mutex)
                if let message = buffer.popFirst() {
                    pthread_mutex_unlock(mutex)
                    continuation.resume(returning: message)
                } else if finished || cancelledWaiters.remove(id) != nil {
                    pthread_mutex_unlock(mutex)
                    continuation.resume(returning: nil)
                } else {
                    waiters.append((id, continuation))
                    pthread_mutex_unlock(mutex)
                }
            }
        } onCancel: {
            cancel(waiter: id)
        }
        // The entry was handed over by `deliver` on the loop thread, which resumed us after it
        // released the mutex; taking it once here makes that hand-off visible to ThreadSanitizer
        // too (the runtime's own synchronisation of the resume is not always seen by it). A
        // cancellation that came after the hand-off but before the resume left our id behind.
        pthread_mutex_lock(mutex)
        if !cancelledWaiters.isEmpty { cancelledWaiters.remove(id) }
        pthread_mutex_unlock(mutex)
        return entry
    }

    private func cancel(waiter id: UInt64) {
        pthread_mutex_lock(mutex)
        var cancelled: Waiter?
        if let index = waiters.firstIndex(where: { $0.id == id }) {
            cancelled = waiters.remove(at: index)
        } else if !finished {
            // Cancelled before it registered: the registration will see this and not wait.
            cancelledWaiters.insert(id)
        }
        let wasFinished = finished
        pthread_mutex_unlock(mutex)
        cancelled?.continuation.resume(returning: nil)
        if !wasFinished { owner.consumerCancelled(channel: channel, id: channelID) }
    }
}
