/// Which Redis channels one subscriber connection should have, and which it has.
///
/// A pure value: no I/O, no logging. The engine feeds it events and carries out the actions.
///
/// It encodes the hiredis 0.14.1 rules the subscriber must respect:
/// - only UNSUBSCRIBE a channel whose SUBSCRIBE was confirmed (unsubscribing an unknown channel can
///   abort hiredis 0.14.1);
/// - never SUBSCRIBE a channel again before its UNSUBSCRIBE was confirmed: hiredis keys its
///   callbacks by channel name, and the late UNSUBSCRIBE reply would delete the new callback;
/// - after a disconnect nothing is subscribed, and everything wanted is subscribed again.
struct SubscriptionStateMachine: Sendable {
    enum Status: Equatable, Sendable {
        /// SUBSCRIBE sent, not confirmed yet.
        case subscribing
        /// SUBSCRIBE confirmed.
        case subscribed
        /// UNSUBSCRIBE sent, not confirmed yet.
        case unsubscribing
    }

    enum Action: Equatable, Sendable {
        case subscribe([String])
        case unsubscribe([String])
        /// The channel is subscribed already: whoever waits for it can go on.
        case confirmed(String)
        case doNothing
    }

    /// Channels somebody local needs.
    private(set) var wanted: Set<String> = []
    /// What the current connection has, by channel; empty while disconnected.
    private(set) var status: [String: Status] = [:]
    /// Whether commands can be sent now.
    private(set) var isConnected = false

    init() {}

    func isSubscribed(_ channel: String) -> Bool { status[channel] == .subscribed }

    /// Somebody needs `channel`.
    mutating func want(_ channel: String) -> Action {
        wanted.insert(channel)
        guard isConnected else { return .doNothing }
        switch status[channel] {
        case nil:
            status[channel] = .subscribing
            return .subscribe([channel])
        case .subscribed:
            return .confirmed(channel)
        case .subscribing, .unsubscribing:
            // Confirmation, or the re-subscribe after the unsubscribe confirmation, comes later.
            return .doNothing
        }
    }

    /// Nobody needs `channel` any more.
    mutating func unwant(_ channel: String) -> Action {
        guard wanted.remove(channel) != nil else { return .doNothing }
        guard isConnected else { return .doNothing }
        switch status[channel] {
        case .subscribed:
            status[channel] = .unsubscribing
            return .unsubscribe([channel])
        case nil, .subscribing, .unsubscribing:
            // A pending SUBSCRIBE is undone when it is confirmed.
            return .doNothing
        }
    }

    /// Redis confirmed a SUBSCRIBE of `channel`.
    mutating func subscribeConfirmed(_ channel: String) -> Action {
        guard status[channel] == .subscribing else { return .doNothing }
        if wanted.contains(channel) {
            status[channel] = .subscribed
            return .confirmed(channel)
        }
        status[channel] = .unsubscribing
        return .unsubscribe([channel])
    }

    /// Redis confirmed an UNSUBSCRIBE of `channel`.
    mutating func unsubscribeConfirmed(_ channel: String) -> Action {
        guard status[channel] == .unsubscribing else { return .doNothing }
        if wanted.contains(channel) {
            status[channel] = .subscribing
            return .subscribe([channel])
        }
        status[channel] = nil
        return .doNothing
    }

    /// A new connection is ready for commands: subscribe everything wanted.
    /// Redis refused a SUBSCRIBE of `channel` (a cluster primary's `-MOVED` to SSUBSCRIBE): it is not subscribed,
    /// whether or not it is still wanted; the owner decides where it goes next.
    mutating func subscribeRefused(_ channel: String) {
        guard status[channel] == .subscribing else { return }
        status[channel] = nil
    }

    /// Redis ended the subscription of `channel` by itself (a cluster primary's `sunsubscribe` push when the
    /// channel's slot moved away): it is not subscribed here any more. Returns whether it is still wanted.
    mutating func unsubscribedByServer(_ channel: String) -> Bool {
        status[channel] = nil
        return wanted.contains(channel)
    }

    /// Forgets `channel` entirely, wanted or not (it now belongs to another shard). Returns whether it was subscribed
    /// (the owner then unsubscribes it here).
    mutating func handOver(_ channel: String) -> Bool {
        wanted.remove(channel)
        let wasSubscribed = status[channel] == .subscribed
        status[channel] = wasSubscribed ? .unsubscribing : nil
        return wasSubscribed
    }

    mutating func connected() -> Action {
        isConnected = true
        status.removeAll(keepingCapacity: true)
        guard !wanted.isEmpty else { return .doNothing }
        for channel in wanted { status[channel] = .subscribing }
        return .subscribe(Array(wanted))
    }

    /// The connection is gone: nothing is subscribed any more; `wanted` is kept.
    mutating func disconnected() {
        isConnected = false
        status.removeAll(keepingCapacity: true)
    }

    /// Forget everything (flush).
    mutating func reset() {
        wanted.removeAll()
        disconnected()
    }
}
