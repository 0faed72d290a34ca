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

    /// Every channel somebody local needs or the connection has (or is getting rid of), with both
    /// facts, in one table: a layer with 100,000 channels holds each name once here, not in a set
    /// of wanted names and a second table of statuses (each a hash table of its own, ~40 bytes a
    /// channel at that size), and a confirmation is one look-up instead of three.
    private var entries: [String: Entry] = [:]

    private struct Entry {
        /// Somebody local needs the channel.
        var wanted = false
        /// What the current connection has; `nil` while disconnected.
        var status: Status?

        var isEmpty: Bool { !wanted && status == nil }
    }

    /// How many channels somebody local needs.
    private(set) var wantedCount = 0
    /// Whether commands can be sent now.
    private(set) var isConnected = false

    init() {}

    /// Channels somebody local needs (tests; a copy).
    var wanted: Set<String> { Set(entries.lazy.filter { $0.value.wanted }.map(\.key)) }

    /// What the current connection has, by channel; empty while disconnected (tests; a copy).
    var status: [String: Status] { entries.compactMapValues(\.status) }

    func isSubscribed(_ channel: String) -> Bool { entries[channel]?.status == .subscribed }

    /// Somebody needs `channel`.
    mutating func want(_ channel: String) -> Action {
        let isConnected = self.isConnected
        return update(channel) { entry in
            entry.wanted = true
            guard isConnected else { return .doNothing }
            switch entry.status {
            case nil:
                entry.status = .subscribing
                return .subscribe([channel])
            case .subscribed:
                return .confirmed(channel)
            case .subscribing, .unsubscribing:
                // Confirmation, or the re-subscribe after the unsubscribe confirmation, comes later.
                return .doNothing
            }
        }
    }

    /// Nobody needs `channel` any more.
    mutating func unwant(_ channel: String) -> Action {
        guard entries[channel]?.wanted == true else { return .doNothing }
        let isConnected = self.isConnected
        return update(channel) { entry in
            entry.wanted = false
            guard isConnected else { return .doNothing }
            switch entry.status {
            case .subscribed:
                entry.status = .unsubscribing
                return .unsubscribe([channel])
            case nil, .subscribing, .unsubscribing:
                // A pending SUBSCRIBE is undone when it is confirmed.
                return .doNothing
            }
        }
    }

    /// Redis confirmed a SUBSCRIBE of `channel`.
    mutating func subscribeConfirmed(_ channel: String) -> Action {
        update(channel) { entry in
            guard entry.status == .subscribing else { return .doNothing }
            if entry.wanted {
                entry.status = .subscribed
                return .confirmed(channel)
            }
            entry.status = .unsubscribing
            return .unsubscribe([channel])
        }
    }

    /// Redis confirmed an UNSUBSCRIBE of `channel`.
    mutating func unsubscribeConfirmed(_ channel: String) -> Action {
        update(channel) { entry in
            guard entry.status == .unsubscribing else { return .doNothing }
            if entry.wanted {
                entry.status = .subscribing
                return .subscribe([channel])
            }
            entry.status = nil
            return .doNothing
        }
    }

    /// Redis refused a SUBSCRIBE of `channel` (a cluster primary's `-MOVED` to SSUBSCRIBE): it is not subscribed,
    /// whether or not it is still wanted; the owner decides where it goes next.
    mutating func subscribeRefused(_ channel: String) {
        guard entries[channel]?.status == .subscribing else { return }
        _ = update(channel) { entry in
            entry.status = nil
            return .doNothing
        }
    }

    /// Redis ended the subscription of `channel` by itself (a cluster primary's `sunsubscribe` push when the
    /// channel's slot moved away): it is not subscribed here any more. Returns whether it is still wanted.
    mutating func unsubscribedByServer(_ channel: String) -> Bool {
        guard let existing = entries[channel] else { return false }
        _ = update(channel) { entry in
            entry.status = nil
            return .doNothing
        }
        return existing.wanted
    }

    /// Forgets `channel` entirely, wanted or not (it now belongs to another shard). Returns whether it was subscribed
    /// (the owner then unsubscribes it here).
    mutating func handOver(_ channel: String) -> Bool {
        guard entries[channel] != nil else { return false }
        var wasSubscribed = false
        _ = update(channel) { entry in
            entry.wanted = false
            wasSubscribed = entry.status == .subscribed
            entry.status = wasSubscribed ? .unsubscribing : nil
            return .doNothing
        }
        return wasSubscribed
    }

    /// A new connection is ready for commands: subscribe everything wanted.
    mutating func connected() -> Action {
        isConnected = true
        forgetStatuses()
        guard wantedCount > 0 else { return .doNothing }
        var channels: [String] = []
        channels.reserveCapacity(wantedCount)
        var index = entries.startIndex
        while index != entries.endIndex {
            entries.values[index].status = .subscribing
            channels.append(entries.keys[index])
            entries.formIndex(after: &index)
        }
        return .subscribe(channels)
    }

    /// The connection is gone: nothing is subscribed any more; what is wanted is kept.
    mutating func disconnected() {
        isConnected = false
        forgetStatuses()
    }

    /// Drops every status, and with them the channels nobody wants.
    private mutating func forgetStatuses() {
        if entries.count != wantedCount { entries = entries.filter { $0.value.wanted } }
        var index = entries.startIndex
        while index != entries.endIndex {
            entries.values[index].status = nil
            entries.formIndex(after: &index)
        }
    }

    /// Runs `body` on the entry of `channel` (a new one if there is none) with one look-up, keeps
    /// `wantedCount` in step, and drops the entry if it ends up empty.
    private mutating func update(_ channel: String, _ body: (inout Entry) -> Action) -> Action {
        let (action, change, isEmpty) = Self.apply(body, to: &entries[channel, default: Entry()])
        wantedCount += change
        if isEmpty { entries[channel] = nil }
        return action
    }

    private static func apply(_ body: (inout Entry) -> Action, to entry: inout Entry) -> (Action, change: Int, isEmpty: Bool) {
        let wasWanted = entry.wanted
        let action = body(&entry)
        return (action, (entry.wanted ? 1 : 0) - (wasWanted ? 1 : 0), entry.isEmpty)
    }

    /// Forget everything (flush).
    mutating func reset() {
        entries.removeAll()
        wantedCount = 0
        isConnected = false
    }
}
