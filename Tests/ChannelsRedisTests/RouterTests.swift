import Testing

@testable import ChannelsRedis

@Suite("Router")
struct RouterTests {
    private final class Owner: ChannelMailboxOwner {
        func decode(_ bytes: [UInt8], forChannel channel: String) -> ChannelMessage? { nil }
    }

    private static let owner = Owner()
    private var nextID: UInt64 = 0

    private mutating func channel(_ name: String) -> LocalChannel {
        nextID += 1
        return LocalChannel(name: name, id: nextID, mailbox: ChannelMailbox(capacity: 4, channel: name, id: nextID, owner: Self.owner))
    }

    private func route(_ router: inout Router, _ name: String) -> Router.Route {
        Array(name.utf8).withUnsafeBytes { router.route($0) }
    }

    @Test mutating func routesADirectChannelAndAGroupsMembersInJoinOrder() {
        var router = Router(groupPrefix: "asgi__group__")
        let a = channel("asgispecific.a")
        let b = channel("asgispecific.b")
        let c = channel("asgispecific.c")
        for local in [a, b, c] { #expect(router.add(local) == nil) }
        #expect(router.join("room", c))  // new group: subscribe
        #expect(!router.join("room", a))  // known group
        #expect(!router.join("room", b))
        #expect(route(&router, "asgispecific.b").direct === b)
        #expect(route(&router, "asgispecific.b").members.isEmpty)
        #expect(route(&router, "asgi__group__room").members.map(\.name) == ["asgispecific.c", "asgispecific.a", "asgispecific.b"])
        #expect(route(&router, "asgi__group__room").direct == nil)
        #expect(route(&router, "asgi__group__other").isEmpty)
        #expect(route(&router, "asgispecific.unknown").isEmpty)
        #expect(route(&router, "asgi__group__").isEmpty)  // the bare prefix names no group
    }

    @Test mutating func consecutiveMessagesOfOneChannelShareTheCachedRoute() {
        var router = Router(groupPrefix: "asgi__group__")
        let a = channel("asgispecific.a")
        _ = router.add(a)
        router.join("room", a)
        let first = route(&router, "asgi__group__room").members
        let second = route(&router, "asgi__group__room").members
        // The same array storage: the engine batches a pass's deliveries of one group by it.
        #expect(first.withUnsafeBufferPointer { $0.baseAddress } == second.withUnsafeBufferPointer { $0.baseAddress })
    }

    @Test mutating func everyMembershipChangeIsSeenByTheNextRoute() {
        var router = Router(groupPrefix: "asgi__group__")
        let a = channel("asgispecific.a")
        let b = channel("asgispecific.b")
        _ = router.add(a)
        _ = router.add(b)
        router.join("room", a)
        #expect(route(&router, "asgi__group__room").members.map(\.name) == ["asgispecific.a"])
        router.join("room", b)
        #expect(route(&router, "asgi__group__room").members.map(\.name) == ["asgispecific.a", "asgispecific.b"])
        #expect(!router.leave("room", a))  // b is still in it
        #expect(route(&router, "asgi__group__room").members.map(\.name) == ["asgispecific.b"])
        #expect(router.leave("room", b))  // emptied: unsubscribe
        #expect(route(&router, "asgi__group__room").isEmpty)
        #expect(!router.leave("room", b))  // leaving twice is a no-op
        #expect(route(&router, "asgispecific.a").direct === a)
        _ = router.remove("asgispecific.a")
        #expect(route(&router, "asgispecific.a").isEmpty)
    }

    @Test mutating func removingAChannelTakesItOutOfItsGroupsAndReportsTheEmptiedOnes() {
        var router = Router(groupPrefix: "asgi__group__")
        let a = channel("asgispecific.a")
        let b = channel("asgispecific.b")
        _ = router.add(a)
        _ = router.add(b)
        for group in ["lobby", "kitchen"] { router.join(group, a) }
        router.join("kitchen", b)
        #expect(router.remove("asgispecific.a", id: a.id + 100) == nil)  // another incarnation's id
        let removed = router.remove("asgispecific.a", id: a.id)
        #expect(removed?.channel === a)
        #expect(removed?.emptiedGroups == ["lobby"])
        #expect(a.groups.isEmpty)
        #expect(route(&router, "asgi__group__kitchen").members.map(\.name) == ["asgispecific.b"])
        #expect(route(&router, "asgi__group__lobby").isEmpty)
        #expect(router.remove("asgispecific.a") == nil)
    }

    @Test mutating func aNewChannelOfTheSameNameReplacesTheOldOne() {
        var router = Router(groupPrefix: "asgi__group__")
        let old = channel("asgispecific.a")
        let new = channel("asgispecific.a")
        _ = router.add(old)
        _ = route(&router, "asgispecific.a")  // cached
        #expect(router.add(new) === old)
        #expect(route(&router, "asgispecific.a").direct === new)
    }

    @Test mutating func removeAllEmptiesEverything() {
        var router = Router(groupPrefix: "asgi__group__")
        let a = channel("asgispecific.a")
        _ = router.add(a)
        router.join("room", a)
        _ = route(&router, "asgi__group__room")
        #expect(router.removeAll().map(\.name) == ["asgispecific.a"])
        #expect(router.channels.isEmpty && router.groups.isEmpty)
        #expect(route(&router, "asgi__group__room").isEmpty)
    }
}
