// The in-memory layer's channels and groups, behind its mutex (InMemoryChannelLayer.swift).

extension InMemoryChannelLayer {
    /// One channel: its buffer and the groups it joined.
    struct LocalChannel {
        let mailbox: ChannelMailbox
        var groups: Set<String> = []
    }

    /// The layer's channels and groups, behind its mutex. Mailboxes are finished by the caller,
    /// after the lock is released.
    struct State: ~Copyable {
        var closed = false
        var channels: [String: LocalChannel] = [:]
        /// Group name → its members' names (never empty: a group goes with its last member).
        var groups: [String: Set<String>] = [:]
        var nextChannelID: UInt64 = 0
        var lastDropWarning: ContinuousClock.Instant?

        mutating func mailbox(for channel: String, capacity: Int) -> ChannelMailbox {
            if let existing = channels[channel] { return existing.mailbox }
            nextChannelID &+= 1
            let mailbox = ChannelMailbox(capacity: capacity, channel: channel, id: nextChannelID, owner: NoDecoding.shared)
            channels[channel] = LocalChannel(mailbox: mailbox)
            return mailbox
        }

        /// The members of `group` and their mailboxes.
        func members(of group: String) -> [(String, ChannelMailbox)] {
            guard let names = groups[group] else { return [] }
            return names.compactMap { name in channels[name].map { (name, $0.mailbox) } }
        }

        mutating func add(_ channel: String, to group: String) throws(ChannelLayerError) {
            guard !closed else { throw ChannelLayerError.closed() }
            guard channels[channel] != nil else {
                throw ChannelLayerError(
                    .notAMember,
                    "groupAdd() needs a channel that exists in this layer (made by newChannel() or being received from); '\(channel)' does not"
                )
            }
            channels[channel]!.groups.insert(group)
            groups[group, default: []].insert(channel)
        }

        mutating func remove(_ channel: String, from group: String) {
            channels[channel]?.groups.remove(group)
            guard groups[group]?.remove(channel) != nil else { return }
            if groups[group]!.isEmpty { groups[group] = nil }
        }

        /// Removes a channel and its memberships; returns its mailbox, `nil` if there was none.
        mutating func removeChannel(_ channel: String) throws(ChannelLayerError) -> ChannelMailbox? {
            guard !closed else { throw ChannelLayerError.closed() }
            guard let removed = channels.removeValue(forKey: channel) else { return nil }
            for group in removed.groups {
                groups[group]?.remove(channel)
                if groups[group]?.isEmpty == true { groups[group] = nil }
            }
            return removed.mailbox
        }

        /// Removes every channel and group; returns the channels' mailboxes.
        mutating func removeAll() -> [ChannelMailbox] {
            defer {
                channels = [:]
                groups = [:]
            }
            return channels.values.map(\.mailbox)
        }

        /// Marks the layer closed and empties it; returns the mailboxes to finish (none the second time).
        mutating func close() -> [ChannelMailbox] {
            closed = true
            return removeAll()
        }
    }

    /// The owner of the layer's mailboxes, which only ever hold decoded messages.
    private final class NoDecoding: ChannelMailboxOwner {
        static let shared = NoDecoding()

        func decode(_ bytes: [UInt8], forChannel channel: String) -> ChannelMessage? {
            assertionFailure("the in-memory layer never stores encoded messages")
            return nil
        }
    }
}
