import DequeModule

#if canImport(Glibc)
    import Glibc
#endif

/// Who decodes a mailbox's `.encoded` entries.
///
/// One shared object rather than a closure per mailbox: a WebSocket server holds one channel per
/// connection, and a closure context per channel would add to every idle channel's memory.
protocol ChannelMailboxOwner: AnyObject, Sendable {
    /// Decodes bytes taken from `channel`'s mailbox; `nil` (logged and counted) when they do not decode.
    func decode(_ bytes: [UInt8], forChannel channel: String) -> ChannelMessage?

    /// A consumer that was cancelled gave a message back to the mailbox of `channel` (`id`), on the
    /// consumer's thread: the one way a mailbox comes to hold messages other than `deliver`, which
    /// the owner sees itself. The engine's unconsumed-channel sweep looks only at mailboxes that got
    /// messages, so it must hear of this one too.
    func mailboxHoldsMessagesAgain(channel: String, id: UInt64)
}

extension ChannelMailboxOwner {
    func mailboxHoldsMessagesAgain(channel: String, id: UInt64) {}
}

/// The buffer of one local channel: the loop thread delivers, any number of consumer tasks take, in
/// FIFO order, each message going to exactly one of them.
///
/// Not an `AsyncStream`: the standard library's stream is not specialised for its element, so every
/// yield and next pays runtime generic-metadata lookups, and its throwing form traps when two tasks
/// await `next()` at once. This is a lock, a deque and a queue of waiting continuations.
///
/// Bounded: past `capacity` buffered messages the oldest is dropped and the caller told, so a stuck
/// consumer cannot grow memory without bound.
///
/// A consumer that stops waiting (cancelled, timed out) ends only its own wait: the mailbox and its
/// buffer stay, and a message handed to a consumer that was cancelled before it resumed is put
/// back at the front for the next one. Only ``finish(_:)`` ends the mailbox.
///
/// Not final: the Redis layer's ``LocalChannel`` is a mailbox with the groups it joined, one object
/// per channel.
class ChannelMailbox: @unchecked Sendable {
    // @unchecked Sendable: every stored var is read and written only while `mutex` is held, except
    // `isSweepCandidate`, which only the loop thread reads and writes.
    // `mutex` is one of `MailboxLockPool`'s, shared with other mailboxes (why: there). So no code
    // may take another mailbox's lock while holding this one: nothing under the mutex resumes a
    // continuation or calls out.
    //
    // The stored vars are `@exclusivity(unchecked)`: each access is a short, straight-line read or
    // mutation under the mutex that calls out to nothing that could touch the mailbox again, so no
    // two accesses can overlap; the runtime's dynamic check (per thread, so blind to other threads
    // anyway) would cost a measurable share of the message path, with several accesses per delivery.
    enum Delivery {
        /// Buffered or handed over. `dropped`: how many of the oldest messages were dropped to make
        /// room (the buffer was full).
        case stored(dropped: Int)
        /// The mailbox is finished; the message was discarded.
        case finished
    }

    /// Why a mailbox was finished: what its consumers are told.
    enum FinishReason: UInt8 {
        /// `discard(channel:)` or the end of a scope.
        case discarded
        /// `flush()`.
        case flushed
        /// The layer closed.
        case closed
        /// Another local channel of the same name replaced this one.
        case replaced

        /// The error a consumer of a finished mailbox throws.
        func error(channel: String) -> ChannelLayerError {
            switch self {
            case .discarded: ChannelLayerError(.channelClosed, "channel '\(channel)' was discarded")
            case .flushed: ChannelLayerError(.channelClosed, "channel '\(channel)' was closed by flush()")
            case .replaced: ChannelLayerError(.channelClosed, "channel '\(channel)' was replaced by a new local channel of that name")
            case .closed: ChannelLayerError.closed()
            }
        }
    }

    /// How a wait for the next message ended.
    enum Wait {
        case message(ChannelMessage)
        /// The mailbox was finished, for this reason.
        case finished(FinishReason)
        /// The waiting task was cancelled; the mailbox is untouched.
        case cancelled
        /// Nothing arrived within the timeout; the mailbox is untouched.
        case timedOut
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

    // Stored in this order, and the counters and the capacity 32-bit, so that the small fields
    // fill the end of the optional instant and the object with a `LocalChannel`'s field stays within
    // 136 bytes (malloc's 144-byte size): every idle channel holds one.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @exclusivity(unchecked) private var buffer: Deque<Entry> = []
    /// The channel's name.
    let channel: String
    /// Tells this mailbox's channel from a later local channel of the same name.
    let channelID: UInt64
    /// Strong, not weak: a weak reference would give the engine a side table and slow every retain
    /// of it on the message path. The engine drops its mailboxes when their channels go and when it
    /// closes, which ends the cycle.
    private let owner: any ChannelMailboxOwner
    @exclusivity(unchecked) private var waiters: Deque<Waiter> = []
    @exclusivity(unchecked) private var cancelledWaiters: Set<UInt64> = []
    @exclusivity(unchecked) private var nextWaiterID: UInt64 = 0
    @exclusivity(unchecked) private var unconsumedSince: ContinuousClock.Instant?
    @exclusivity(unchecked) private var finished: FinishReason?
    /// Whether the engine's unconsumed-channel sweep has this mailbox in its list. The engine's,
    /// on the loop thread only, not under the mutex.
    @exclusivity(unchecked) var isSweepCandidate = false
    private let capacity: Int32
    /// Entries consumers took (from the buffer or by hand-off); with the one below, what
    /// ``unconsumedSince(now:)`` reads to tell a channel nobody consumes from one that is busy.
    /// Wrapping: only a difference matters, and 2³² takes between two sweeps cannot happen.
    @exclusivity(unchecked) private var taken: UInt32 = 0
    @exclusivity(unchecked) private var takenAtLastCheck: UInt32 = 0

    init(capacity: Int, channel: String, id: UInt64, owner: any ChannelMailboxOwner) {
        self.capacity = Int32(clamping: capacity)
        self.channel = channel
        self.channelID = id
        self.owner = owner
        mutex = MailboxLockPool.lock(for: id)
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
    /// taking messages as fast as they come would keep colliding on the mutex.)
    ///
    /// A consumer already waiting takes its message here, under the same lock (one lock per
    /// delivery instead of a second one to wake it), but is not resumed here: resuming wakes a
    /// thread, and when a consumer keeps up that would be one wake per message. Its hand-off goes
    /// to `handoffs`, which the engine resumes once per pass; meanwhile the consumer is no longer
    /// in `waiters`, so later messages of the pass wait in the buffer and the woken consumer takes
    /// them without suspending again. (Invariant: `waiters` is empty whenever `buffer` is not.)
    func deliver(_ messages: some Collection<Entry>, handoffs: inout [Handoff]) -> Delivery {
        pthread_mutex_lock(mutex)
        if finished != nil {
            pthread_mutex_unlock(mutex)
            return .finished
        }
        var dropped = 0
        for message in messages {
            if let waiter = waiters.popFirst() {
                handoffs.append(Handoff(continuation: waiter.continuation, entry: message))
                taken &+= 1
                continue
            }
            if buffer.count >= Int(capacity) {
                buffer.removeFirst()
                dropped += 1
            }
            buffer.append(message)
        }
        pthread_mutex_unlock(mutex)
        return .stored(dropped: dropped)
    }

    /// Ends the mailbox: waiting and later consumers are told `reason` at once. Buffered messages
    /// are dropped, as Python drops a channel's queue when the channel goes. Idempotent: the first
    /// reason stays.
    func finish(_ reason: FinishReason) {
        let waiting = locked { () -> Deque<Waiter> in
            if finished == nil { finished = reason }
            buffer.removeAll()
            cancelledWaiters.removeAll()
            defer { waiters.removeAll() }
            return waiters
        }
        for waiter in waiting { waiter.continuation.resume(returning: nil) }
    }

    /// Since when the mailbox has held messages with no consumer waiting or taking any, as of the
    /// previous call; `nil` while it is empty, has a waiting consumer, or is finished (and the time
    /// of this call when a consumer took something since the previous one). The engine calls it
    /// from a periodic sweep, so a forgotten `discard(channel:)` shows up instead of quietly holding
    /// up to `capacity` messages. After a `nil` the engine stops calling until the mailbox gets
    /// messages again (`deliver`, or a give-back reported to the owner); `nil` also reset the state,
    /// so the next call starts counting afresh, as if it had been called all along.
    func unconsumedSince(now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        locked {
            defer { takenAtLastCheck = taken }
            if buffer.isEmpty || !waiters.isEmpty || finished != nil {
                unconsumedSince = nil
            } else if unconsumedSince == nil || taken != takenAtLastCheck {
                unconsumedSince = now
            }
            return unconsumedSince
        }
    }

    /// Consumers waiting right now, and withdrawn waits not yet settled (tests check both).
    var waitingCounts: (waiters: Int, withdrawn: Int) { locked { (waiters.count, cancelledWaiters.count) } }

    // MARK: Consumers (any task)

    /// The next message, or why there is none: finished, or the task was cancelled. Bytes that do
    /// not decode are skipped (logged and counted by `decode`).
    ///
    /// Separate from ``next(timeout:)``, not one function with an optional timeout: the untimed wait
    /// is every consumer's path (each member of a group, each message), and the shared form cost
    /// group fan-out a measurable share of its deliveries (see Benchmarks.md, Findings).
    nonisolated(nonsending) func next() async -> Wait {
        while true {
            guard let entry = await nextEntry() else { return endOfWait(timedOut: false) }
            if let message = message(of: entry) { return .message(message) }
        }
    }

    /// The next message, or why there is none: finished, the task was cancelled, or `timeout`
    /// passed. The timeout covers the whole call: bytes skipped because they do not decode do not
    /// restart it.
    nonisolated(nonsending) func next(timeout: Duration) async -> Wait {
        let deadline = ContinuousClock.now + timeout
        while true {
            let left = max(ContinuousClock.now.duration(to: deadline), .zero)
            guard let entry = await nextEntry(timeout: left) else { return endOfWait(timedOut: true) }
            if let message = message(of: entry) { return .message(message) }
        }
    }

    /// The message an entry holds; `nil` for bytes that do not decode (logged and counted).
    @inline(__always)
    private func message(of entry: Entry) -> ChannelMessage? {
        switch entry {
        case .message(let shared): shared.message
        case .encoded(let bytes): owner.decode(bytes, forChannel: channel)
        }
    }

    /// `receive(from:)` of both layers: the next message, or the error its wait ended with.
    ///
    /// - Throws: `channelClosed` or `layerClosed` once the mailbox is finished, `CancellationError`
    ///   when the task was cancelled.
    nonisolated(nonsending) func receive() async throws -> ChannelMessage {
        switch await next() {
        case .message(let message): return message
        case .finished(let reason): throw reason.error(channel: channel)
        case .cancelled, .timedOut: throw CancellationError()
        }
    }

    /// `receive(from:timeout:)` of both layers: as ``receive()``, or `nil` once `timeout` passed.
    nonisolated(nonsending) func receive(timeout: Duration) async throws -> ChannelMessage? {
        switch await next(timeout: timeout) {
        case .message(let message): return message
        case .finished(let reason): throw reason.error(channel: channel)
        case .timedOut: return nil
        case .cancelled: throw CancellationError()
        }
    }

    /// Why a wait that got nothing ended.
    private func endOfWait(timedOut: Bool) -> Wait {
        if let reason = locked({ finished }) { return .finished(reason) }
        if Task.isCancelled { return .cancelled }
        return timedOut ? .timedOut : .cancelled
    }

    /// The next entry; `nil` when the mailbox is finished or the wait was cancelled.
    private nonisolated(nonsending) func nextEntry() async -> Entry? {
        switch takeOrRegister() {
        case .took(let entry): return entry
        case .finished: return nil
        case .wait(let id): return settle(id, await wait(id))
        }
    }

    /// The next entry; `nil` when the mailbox is finished, the wait was cancelled or `timeout` passed.
    private nonisolated(nonsending) func nextEntry(timeout: Duration) async -> Entry? {
        let id: UInt64
        switch takeOrRegister() {
        case .took(let entry): return entry
        case .finished: return nil
        case .wait(let waiter): id = waiter
        }
        // The timer is a child task that withdraws the waiter once `timeout` passed. The scope ends
        // only when the child has finished, so whatever it left in `cancelledWaiters` is cleared by
        // `settle` after it.
        let entry = await withTaskGroup(of: Void.self, returning: Entry?.self) { group in
            group.addTask {
                guard (try? await Task.sleep(for: timeout)) != nil else { return }
                self.withdraw(waiter: id)
            }
            let entry = await wait(id)
            group.cancelAll()
            return entry
        }
        return settle(id, entry)
    }

    private enum Take {
        case took(Entry)
        case finished
        case wait(id: UInt64)
    }

    /// The fast path: the front of the buffer with no suspension and no continuation, or the end;
    /// otherwise a new waiter id.
    private func takeOrRegister() -> Take {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if let message = buffer.popFirst() {
            taken &+= 1
            return .took(message)
        }
        if finished != nil { return .finished }
        nextWaiterID &+= 1
        return .wait(id: nextWaiterID)
    }

    private nonisolated(nonsending) func wait(_ id: UInt64) async -> Entry? {
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Entry?, Never>) in
                pthread_mutex_lock(mutex)
                if let message = buffer.popFirst() {
                    taken &+= 1
                    pthread_mutex_unlock(mutex)
                    continuation.resume(returning: message)
                } else if finished != nil || (!cancelledWaiters.isEmpty && cancelledWaiters.remove(id) != nil) {
                    pthread_mutex_unlock(mutex)
                    continuation.resume(returning: nil)
                } else {
                    waiters.append((id, continuation))
                    pthread_mutex_unlock(mutex)
                }
            }
        } onCancel: {
            withdraw(waiter: id)
        }
    }

    /// After a wait: clears what a withdrawal left behind, and gives back an entry that a
    /// cancelled consumer was handed, so the next consumer gets it (nothing Redis delivered is lost
    /// because a wait was cancelled).
    private func settle(_ id: UInt64, _ entry: Entry?) -> Entry? {
        // Taking the mutex here also makes a hand-off by `deliver` (which resumed us after it
        // released the mutex) visible to ThreadSanitizer: see `LockedValue`.
        let cancelled = entry != nil && Task.isCancelled
        var next: Waiter?
        pthread_mutex_lock(mutex)
        if !cancelledWaiters.isEmpty { cancelledWaiters.remove(id) }
        if cancelled, let entry, finished == nil {
            taken &-= 1
            if let waiter = waiters.popFirst() {
                taken &+= 1
                next = waiter
                pthread_mutex_unlock(mutex)
                next!.continuation.resume(returning: entry)
                return nil
            }
            buffer.prepend(entry)
            pthread_mutex_unlock(mutex)
            owner.mailboxHoldsMessagesAgain(channel: channel, id: channelID)
            return nil
        }
        pthread_mutex_unlock(mutex)
        return cancelled ? nil : entry
    }

    /// Ends one waiter's wait (its task was cancelled, or its timeout passed); the mailbox stays.
    private func withdraw(waiter id: UInt64) {
        pthread_mutex_lock(mutex)
        var withdrawn: Waiter?
        if let index = waiters.firstIndex(where: { $0.id == id }) {
            withdrawn = waiters.remove(at: index)
        } else if finished == nil {
            // Not registered yet (or handed a message already: `settle` clears this then).
            cancelledWaiters.insert(id)
        }
        pthread_mutex_unlock(mutex)
        withdrawn?.continuation.resume(returning: nil)
    }
}
