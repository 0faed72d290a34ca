import Testing

@testable import ChannelsRedis

/// glibc's, from <malloc.h>, which the Glibc module does not export.
@_silgen_name("malloc_usable_size")
private func mallocUsableSize(_ pointer: UnsafeMutableRawPointer) -> Int

@Suite("Router")
struct RouterTests {
    private final class Owner: ChannelMailboxOwner {
        func decode(_ bytes: [UInt8], forChannel channel: String) -> ChannelMessage? { nil }
    }

    private static let owner = Owner()
    private var nextID: UInt64 = 0

    private mutating func channel(_ name: String) -> LocalChannel {
        nextID += 1
        return LocalChannel(name: name, id: nextID, capacity: 4, owner: Self.owner)
    }

    @Test mutating func anIdleLocalChannelIsOneSmallAllocation() {
        // A server holds one channel per connection, most of them idle: the object (with its
        // mailbox) must stay within malloc's 144-byte size class (136 usable bytes).
        let idle = channel("asgispecific.idle")
        let usable = mallocUsableSize(Unmanaged.passUnretained(idle).toOpaque())
        #expect(usable <= 136, "a LocalChannel takes \(usable) usable bytes")
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
        let v1 = router.join("room", c)
        #expect(v1)  // new group: subscribe
        let v2 = router.join("room", a)
        #expect(!v2)  // known group
        let v3 = router.join("room", b)
        #expect(!v3)
        let v4 = route(&router, "asgispecific.b")
        #expect(v4.direct === b)
        let v5 = route(&router, "asgispecific.b")
        #expect(v5.members.isEmpty)
        let v6 = route(&router, "asgi__group__room")
        #expect(v6.members.map(\.name) == ["asgispecific.c", "asgispecific.a", "asgispecific.b"])
        let v7 = route(&router, "asgi__group__room")
        #expect(v7.direct == nil)
        let v8 = route(&router, "asgi__group__other")
        #expect(v8.isEmpty)
        let v9 = route(&router, "asgispecific.unknown")
        #expect(v9.isEmpty)
        let v10 = route(&router, "asgi__group__")
        #expect(v10.isEmpty)  // the bare prefix names no group
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
        let v11 = route(&router, "asgi__group__room")
        #expect(v11.members.map(\.name) == ["asgispecific.a"])
        router.join("room", b)
        let v12 = route(&router, "asgi__group__room")
        #expect(v12.members.map(\.name) == ["asgispecific.a", "asgispecific.b"])
        let v13 = router.leave("room", a)
        #expect(!v13)  // b is still in it
        let v14 = route(&router, "asgi__group__room")
        #expect(v14.members.map(\.name) == ["asgispecific.b"])
        let v15 = router.leave("room", b)
        #expect(v15)  // emptied: unsubscribe
        let v16 = route(&router, "asgi__group__room")
        #expect(v16.isEmpty)
        let v17 = router.leave("room", b)
        #expect(!v17)  // leaving twice is a no-op
        let v18 = route(&router, "asgispecific.a")
        #expect(v18.direct === a)
        _ = router.remove("asgispecific.a")
        let v19 = route(&router, "asgispecific.a")
        #expect(v19.isEmpty)
    }

    @Test mutating func removingAChannelTakesItOutOfItsGroupsAndReportsTheEmptiedOnes() {
        var router = Router(groupPrefix: "asgi__group__")
        let a = channel("asgispecific.a")
        let b = channel("asgispecific.b")
        _ = router.add(a)
        _ = router.add(b)
        for group in ["lobby", "kitchen"] { router.join(group, a) }
        router.join("kitchen", b)
        let v20 = router.remove("asgispecific.a", id: a.id + 100)
        #expect(v20 == nil)  // another incarnation's id
        let removed = router.remove("asgispecific.a", id: a.id)
        #expect(removed?.channel === a)
        #expect(removed?.emptiedGroups == ["lobby"])
        #expect(a.groups.isEmpty)
        let v21 = route(&router, "asgi__group__kitchen")
        #expect(v21.members.map(\.name) == ["asgispecific.b"])
        let v22 = route(&router, "asgi__group__lobby")
        #expect(v22.isEmpty)
        let v23 = router.remove("asgispecific.a")
        #expect(v23 == nil)
    }

    @Test mutating func aNewChannelOfTheSameNameReplacesTheOldOne() {
        var router = Router(groupPrefix: "asgi__group__")
        let old = channel("asgispecific.a")
        let new = channel("asgispecific.a")
        _ = router.add(old)
        _ = route(&router, "asgispecific.a")  // cached
        let v24 = router.add(new)
        #expect(v24 === old)
        let v25 = route(&router, "asgispecific.a")
        #expect(v25.direct === new)
    }

    @Test mutating func removeAllEmptiesEverything() {
        var router = Router(groupPrefix: "asgi__group__")
        let a = channel("asgispecific.a")
        _ = router.add(a)
        router.join("room", a)
        _ = route(&router, "asgi__group__room")
        let v26 = router.removeAll()
        #expect(v26.map(\.name) == ["asgispecific.a"])
        #expect(router.channels.isEmpty && router.groups.isEmpty)
        let v27 = route(&router, "asgi__group__room")
        #expect(v27.isEmpty)
    }
}
