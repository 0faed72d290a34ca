import OrderedCollections

#if canImport(Glibc)
    import Glibc
#endif

/// A channel of this process: its mailbox, and the groups it joined.
///
/// The mailbox itself (a subclass), not an object that holds one: a server with one channel per
/// connection holds many idle channels, and a second object per channel was 64 bytes of each.
/// A reference (not a value) so that a group's member list and a cached route point at the same
/// object the channel table holds: fanning a message out is a walk over references, with no name
/// hashing per member.
final class LocalChannel: ChannelMailbox, @unchecked Sendable {
    // @unchecked Sendable: the mailbox's invariant, and `groups` is the engine's, read and written
    // on the loop thread only.
    var groups: Set<String> = []

    var name: String { channel }
    var id: UInt64 { channelID }

    init(name: String, id: UInt64, capacity: Int, owner: any ChannelMailboxOwner) {
        super.init(capacity: capacity, channel: name, id: id, owner: owner)
    }
}

/// Which local channels a Redis channel's messages go to: the local channels by name, the groups
/// with their members in the order they joined, and a one-entry route cache.
///
/// A value type with no I/O: the engine owns one (on its loop) and turns its results into
/// `SUBSCRIBE`/`UNSUBSCRIBE`s. Every mutation clears the cache itself, so no caller can forget to.
struct Router {
    /// The Redis channel name of group `group` is `groupPrefix + group` (`"asgi__group__"`).
    let groupPrefix: String
    private let groupPrefixBytes: [UInt8]
    private(set) var channels: [String: LocalChannel] = [:]
    /// Group name → its local members, in the order they joined (so fan-out order is defined).
    private(set) var groups: [String: OrderedDictionary<ObjectIdentifier, LocalChannel>] = [:]
    /// The receivers of the Redis channel seen last. Under load consecutive messages mostly share
    /// a channel; they then skip building a `String` of its name and two hash lookups.
    private var cached: Route?

    init(groupPrefix: String) {
        self.groupPrefix = groupPrefix
        self.groupPrefixBytes = Array(groupPrefix.utf8)
    }

    /// The local receivers of one Redis channel: a channel of that name, and a group's members.
    struct Route {
        fileprivate var channelBytes: [UInt8]
        var direct: LocalChannel?
        /// The group's members (the same array for every message of the group while membership is
        /// unchanged: the engine batches a loop pass's deliveries by it).
        var members: [LocalChannel]

        var isEmpty: Bool { direct == nil && members.isEmpty }

        fileprivate func matches(_ bytes: UnsafeRawBufferPointer) -> Bool {
            channelBytes.count == bytes.count
                && channelBytes.withUnsafeBytes { mine in bytes.isEmpty || memcmp(mine.baseAddress!, bytes.baseAddress!, bytes.count) == 0 }
        }
    }

    // MARK: Channels

    /// Adds `channel`; returns the local channel of that name it replaced, if any.
    mutating func add(_ channel: LocalChannel) -> LocalChannel? {
        cached = nil
        return channels.updateValue(channel, forKey: channel.name)
    }

    /// Removes the channel `name` if it is the one with `id` (any, without an id) and takes it out
    /// of its groups; returns it and the groups it left empty (to unsubscribe).
    mutating func remove(_ name: String, id: UInt64? = nil) -> (channel: LocalChannel, emptiedGroups: [String])? {
        guard let channel = channels[name], id == nil || channel.id == id else { return nil }
        cached = nil
        channels[name] = nil
        var emptied: [String] = []
        for group in channel.groups where leave(group, channel) { emptied.append(group) }
        return (channel, emptied)
    }

    /// Removes everything; returns the channels that were there.
    mutating func removeAll() -> [LocalChannel] {
        cached = nil
        defer {
            channels = [:]
            groups = [:]
        }
        return Array(channels.values)
    }

    // MARK: Groups

    /// Adds `channel` to `group`; returns whether the group is new here (to subscribe).
    @discardableResult
    mutating func join(_ group: String, _ channel: LocalChannel) -> Bool {
        cached = nil
        channel.groups.insert(group)
        let isNew = groups[group] == nil
        groups[group, default: [:]][ObjectIdentifier(channel)] = channel
        return isNew
    }

    /// Takes `channel` out of `group`; returns whether that left the group empty (to unsubscribe).
    mutating func leave(_ group: String, _ channel: LocalChannel) -> Bool {
        cached = nil
        channel.groups.remove(group)
        guard groups[group]?.removeValue(forKey: ObjectIdentifier(channel)) != nil else { return false }
        guard groups[group]!.isEmpty else { return false }
        groups[group] = nil
        return true
    }

    func redisChannel(ofGroup group: String) -> String { groupPrefix + group }

    // MARK: Routing

    /// The receivers of the Redis channel `channelBytes`, from the cache when it was the last one.
    mutating func route(_ channelBytes: UnsafeRawBufferPointer) -> Route {
        if let cached, cached.matches(channelBytes) { return cached }
        let name = String(decoding: channelBytes, as: UTF8.self)
        var members: [LocalChannel] = []
        if isGroupChannel(channelBytes), let group = groups[String(name.utf8.dropFirst(groupPrefixBytes.count))!] {
            members = group.values.elements
        }
        let route = Route(channelBytes: Array(channelBytes), direct: channels[name], members: members)
        cached = route
        return route
    }

    private func isGroupChannel(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count > groupPrefixBytes.count else { return false }
        return groupPrefixBytes.withUnsafeBytes { prefix in
            memcmp(prefix.baseAddress!, bytes.baseAddress!, prefix.count) == 0
        }
    }
}
