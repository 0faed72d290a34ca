import ChannelsRedisTestSupport
import Testing

@testable import ChannelsRedis

#if canImport(Glibc)
    import Glibc
#endif

/// The cluster fixture itself, and the pieces of cluster mode that need a real cluster to be checked against: the key
/// slot of many names against `CLUSTER KEYSLOT`. Serialized: each test forms a 6-node cluster of its own on 2 shared cores.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ClusterFixtureTests {
    @Test func formsThreePrimariesWithAReplicaEachAndStopsThemByPid() async throws {
        let cluster = try await RedisCluster.start()
        let nodes = try await cluster.clusterNodes()
        let primaries = nodes.filter(\.isPrimary)
        #expect(nodes.count == 6)
        #expect(primaries.count == 3)
        #expect(primaries.allSatisfy { !$0.slots.isEmpty })
        #expect(primaries.reduce(0) { $0 + $1.slots.reduce(0) { $0 + $1.count } } == ClusterKeySlot.count)
        let replicas = nodes.filter { $0.flags.contains("slave") }
        #expect(Set(replicas.compactMap(\.primaryID)) == Set(primaries.map(\.id)), "each primary has a replica")
        let pids = cluster.nodes.map(\.pid)
        cluster.stop()
        #expect(cluster.nodes.allSatisfy { !$0.isRunning })
        #expect(pids.allSatisfy { Glibc.kill($0, 0) != 0 }, "every node's pid is gone")
    }

    @Test func keySlotsMatchTheServersClusterKeyslot() async throws {
        let cluster = try await RedisCluster.start(primaries: 3, replicasPerPrimary: 0)
        defer { cluster.stop() }
        var names = ["", "{", "}", "{}", "{}{a}", "a{}b{c}", "{{a}}", "a{b}c{d}", "é{ü}", "\u{1F512}", "asgi__group__chat_lobby"]
        for index in 0..<300 {
            names.append("asgi.specific.\(UUIDHex.random())!\(index)")
            names.append("asgi__group__room_\(index)")
            names.append("{tag\(index % 7)}.x\(index)")
        }
        for name in names {
            let expected = try await cluster.keySlot(name)
            #expect(ClusterKeySlot.slot(for: name) == expected, "slot of '\(name)'")
        }
    }
}
