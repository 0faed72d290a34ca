import DequeModule

/// The calls waiting for Redis to confirm a SUBSCRIBE, by channel, with their deadlines.
///
/// A value that stores the completions and hands back the ones to run; it never runs them itself:
/// the shard does, after the change, because a completion may call back into the shard (a failed
/// `newChannel` unwants its channel).
struct SubscribeWaiters {
    /// Runs once: `nil` when the subscription was confirmed, else why it failed.
    typealias Completion = (ChannelLayerError?) -> Void

    private struct Waiter {
        var id: UInt64
        var completion: Completion
    }

    private var byChannel: [String: [Waiter]] = [:]
    /// In the order of submission, so deadlines grow from front to back (one timeout for all).
    private var deadlines: Deque<(deadline: ContinuousClock.Instant, channel: String, id: UInt64)> = []
    private var nextID: UInt64 = 0

    init() {}

    /// How many calls wait.
    var count: Int { byChannel.values.reduce(0) { $0 + $1.count } }

    /// `completion` waits for `channel` until `deadline`.
    mutating func add(_ completion: @escaping Completion, for channel: String, deadline: ContinuousClock.Instant) {
        nextID &+= 1
        byChannel[channel, default: []].append(Waiter(id: nextID, completion: completion))
        deadlines.append((deadline, channel, nextID))
    }

    /// Removes the calls waiting for `channel` (it was confirmed), and the deadlines at the front
    /// that no call waits for any more (all of them once nobody waits). Redis confirms in the
    /// order of the SUBSCRIBEs, so the deadlines kept are about those still unconfirmed: a burst of
    /// 100,000 `newChannel` calls does not leave 100,000 entries behind for the timeout to pass,
    /// nor wake the loop again and again a timeout later to find only confirmed channels.
    mutating func remove(for channel: String) -> [Completion] {
        guard let waiters = byChannel.removeValue(forKey: channel) else { return [] }
        if byChannel.isEmpty {
            deadlines.removeAll()
        } else {
            while let first = deadlines.first, !isWaiting(first.channel, id: first.id) { deadlines.removeFirst() }
        }
        return waiters.map(\.completion)
    }

    private func isWaiting(_ channel: String, id: UInt64) -> Bool {
        byChannel[channel]?.contains { $0.id == id } ?? false
    }

    /// Deadlines still kept, for the tests.
    var deadlineCount: Int { deadlines.count }

    /// Removes every call.
    mutating func removeAll() -> [Completion] {
        let all = byChannel
        byChannel = [:]
        deadlines.removeAll()
        return all.values.flatMap { $0.map(\.completion) }
    }

    /// Removes the calls whose deadline is not after `now`, in the order they were added, and
    /// returns them with the earliest deadline still to come.
    mutating func removeExpired(
        at now: ContinuousClock.Instant
    ) -> (expired: [(channel: String, completion: Completion)], next: ContinuousClock.Instant?) {
        var expired: [(channel: String, completion: Completion)] = []
        while let first = deadlines.first {
            if first.deadline > now { return (expired, first.deadline) }
            deadlines.removeFirst()
            // Gone already when its channel was confirmed.
            guard var waiters = byChannel[first.channel], let at = waiters.firstIndex(where: { $0.id == first.id }) else { continue }
            let waiter = waiters.remove(at: at)
            byChannel[first.channel] = waiters.isEmpty ? nil : waiters
            expired.append((first.channel, waiter.completion))
        }
        return (expired, nil)
    }
}
