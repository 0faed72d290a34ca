import Testing

@testable import ChannelsRedis

/// The slot map parsers on replies as redis-server 7.0.15 gave them (a 3-primary, 3-replica cluster made by
/// `redis-cli --cluster create`), and on the shapes a cluster in trouble gives. The integration suite parses live
/// replies too (ClusterFixtureTests).
@Suite struct ClusterSlotMapTests {
    static let asked = RedisEndpoint.Address.hostname("127.0.0.1", port: 21101)

    static func node(
        _ id: String,
        _ port: Int,
        _ role: String,
        _ health: String = "online",
        ip: String = "127.0.0.1",
        endpoint: String = "127.0.0.1"
    ) -> RedisValue {
        .array([
            bulk("id"), bulk(id), bulk("port"), .integer(port), bulk("ip"), bulk(ip), bulk("endpoint"), bulk(endpoint),
            bulk("role"), bulk(role), bulk("replication-offset"), .integer(168), bulk("health"), bulk(health),
        ])
    }

    static func shard(_ slots: [Int], _ nodes: [RedisValue]) -> RedisValue {
        .array([bulk("slots"), .array(slots.map { .integer($0) }), bulk("nodes"), .array(nodes)])
    }

    static func bulk(_ text: String) -> RedisValue { .bulk(Array(text.utf8)) }

    /// CLUSTER SHARDS as the server sent it (ids shortened), shards in its order (not by slot).
    static let shardsReply: RedisValue = .array([
        shard([5461, 10922], [node("7c3d", 21102, "master"), node("5e09", 21105, "replica")]),
        shard([0, 5460], [node("0164", 21101, "master"), node("c9ef", 21104, "replica")]),
        shard([10923, 16383], [node("c251", 21103, "master"), node("a1b2", 21106, "replica", "loading"), node("dead", 21107, "replica", "fail")]),
    ])

    @Test func readsClusterShards() throws {
        let map = try ClusterSlotMap(shardsReply: Self.shardsReply, askedNode: Self.asked)
        #expect(map.primaries.map(\.port) == [21101, 21102, 21103])
        #expect(map.shards.map(\.slots) == [[0...5460], [5461...10922], [10923...16383]])
        #expect(map.shards[0].replicas.map(\.port) == [21104])
        #expect(map.shards[2].replicas.map(\.port) == [21106], "a failed replica is left out, a loading one (offset 0) is not")
        #expect(map.coveredSlots == ClusterKeySlot.count)
        #expect(map.primary(forSlot: 0)?.id == "0164")
        #expect(map.primary(forSlot: 5461)?.port == 21102)
        #expect(map.primary(forSlot: 16383)?.port == 21103)
        #expect(map.primary(forSlot: 16384) == nil)
        #expect(map.primary(forSlot: ClusterKeySlot.slot(for: "foo"))?.port == 21103)  // 12182
    }

    @Test func readsClusterSlots() throws {
        func range(_ low: Int, _ high: Int, _ ports: [Int]) -> RedisValue {
            .array([.integer(low), .integer(high)] + ports.map { .array([Self.bulk("127.0.0.1"), .integer($0), Self.bulk("id\($0)"), .array([])]) })
        }
        // Primary 21101 serves two ranges, as after a reshard.
        let reply: RedisValue = .array([
            range(0, 100, [21101, 21104]), range(101, 5460, [21102]), range(5461, 16383, [21103, 21106]), range(16000, 16000, [21101]),
        ])
        let map = try ClusterSlotMap(slotsReply: reply, askedNode: Self.asked)
        #expect(map.primaries.map(\.port) == [21101, 21102, 21103])
        #expect(map.shards[0].slots == [0...100, 16000...16000])
        #expect([21101, 21103].contains(map.primary(forSlot: 16000)?.port), "a slot claimed twice goes to one of its claimants")
        #expect(map.primary(forSlot: 15999)?.port == 21103)
        #expect(map.shards[0].replicas.map(\.port) == [21104])
    }

    @Test func afterAFailoverTheOnlinePrimaryOwnsTheShard() throws {
        // The old primary is listed, failed, next to its promoted replica until it is forgotten or comes back.
        let reply: RedisValue = .array([
            Self.shard([0, 16383], [Self.node("old", 21101, "master", "fail"), Self.node("new", 21104, "master")])
        ])
        let map = try ClusterSlotMap(shardsReply: reply, askedNode: Self.asked)
        #expect(map.primary(forSlot: 0)?.id == "new")
    }

    @Test func emptyShardsUnknownEndpointsAndEmptyEndpoints() throws {
        let reply: RedisValue = .array([
            Self.shard([], [Self.node("spare", 21107, "master")]),  // a node without slots
            Self.shard([0, 99], [Self.node("unknown", 21101, "master", ip: "?", endpoint: "?")]),  // not reachable yet
            Self.shard([100, 199], [Self.node("by-ip", 21102, "master", ip: "10.0.0.2", endpoint: "?")]),
            Self.shard([200, 16383], [Self.node("here", 21103, "master", ip: "", endpoint: "")]),  // "where you reached me"
        ])
        let map = try ClusterSlotMap(shardsReply: reply, askedNode: .hostname("10.1.2.3", port: 7000))
        #expect(map.shards.count == 2)
        #expect(map.primary(forSlot: 0) == nil)
        #expect(map.coveredSlots == 16384 - 100)
        #expect(map.primary(forSlot: 100)?.host == "10.0.0.2", "an unknown endpoint: the IP")
        #expect(map.primary(forSlot: 200)?.host == "10.1.2.3", "an empty endpoint and IP: the asked node's host")
    }

    @Test(arguments: [
        RedisValue.error("ERR This instance has cluster support disabled"),
        .array([.integer(1)]),
        .array([.array([Self.bulk("slots"), .array([.integer(0)]), Self.bulk("nodes"), .array([])])]),
        .array([.array([Self.bulk("slots"), .array([.integer(5), .integer(16384)]), Self.bulk("nodes"), .array([])])]),
        .array([.array([Self.bulk("slots"), .array([.integer(9), .integer(3)]), Self.bulk("nodes"), .array([])])]),
        .array([Self.shard([0, 1], [.array([Self.bulk("id"), Self.bulk("x"), Self.bulk("ip"), Self.bulk("h")])])]),
        .array([Self.shard([0, 1], [.array([Self.bulk("port"), .integer(0), Self.bulk("ip"), Self.bulk("h")])])]),
    ])
    func malformedShardsRepliesAreErrorsNotCrashes(_ reply: RedisValue) {
        #expect(throws: ClusterSlotMap.ParseError.self) { try ClusterSlotMap(shardsReply: reply, askedNode: Self.asked) }
    }

    @Test(arguments: [
        RedisValue.bulk(nil),
        .array([.array([.integer(0), .integer(1)])]),
        .array([.array([.integer(0), .integer(1), .array([Self.bulk("h")])])]),
        .array([.array([.integer(-1), .integer(1), .array([Self.bulk("h"), .integer(1)])])]),
    ])
    func malformedSlotsRepliesAreErrorsNotCrashes(_ reply: RedisValue) {
        #expect(throws: ClusterSlotMap.ParseError.self) { try ClusterSlotMap(slotsReply: reply, askedNode: Self.asked) }
    }
}
