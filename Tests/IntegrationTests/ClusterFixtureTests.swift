import ChannelsRedisTestSupport
import Testing

@testable import ChannelsRedis

#if canImport(Glibc)
    import Glibc
#endif

/// The cluster fixture itself, and the pieces of cluster mode that need a real cluster to be checked against: the key
/// slot of many names against `CLUSTER KEYSLOT`, the slot map parsers on live `CLUSTER SHARDS` and `CLUSTER SLOTS`
/// replies, and discovery over hiredis. Serialized: each test forms a 6-node cluster of its own on 2 shared cores.
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

    @Test func slotMapsFromLiveRepliesMatchClusterNodesAndMovedRedirects() async throws {
        let cluster = try await RedisCluster.start()
        defer { cluster.stop() }
        let asked = cluster.nodes[0]
        let address = RedisEndpoint.Address.hostname("127.0.0.1", port: asked.port)
        let shards = try ClusterSlotMap(shardsReply: RedisValue(try await asked.command(["CLUSTER", "SHARDS"])), askedNode: address)
        let slots = try ClusterSlotMap(slotsReply: RedisValue(try await asked.command(["CLUSTER", "SLOTS"])), askedNode: address)
        #expect(shards.coveredSlots == ClusterKeySlot.count)
        #expect(shards.shards.map(\.primary) == slots.shards.map(\.primary))
        #expect(shards.shards.map(\.slots) == slots.shards.map(\.slots))
        #expect(shards.shards.allSatisfy { $0.replicas.count == 1 })

        let nodes = try await cluster.clusterNodes()
        for shard in shards.shards {
            let listed = try #require(nodes.first { $0.id == shard.primary.id })
            #expect(listed.isPrimary && listed.port == shard.primary.port && listed.slots == shard.slots)
            #expect(shard.replicas.map(\.id) == nodes.filter { $0.primaryID == shard.primary.id }.map(\.id))
        }
        // An independent check of routing: what a node says with -MOVED for a channel it does not own.
        for index in 0..<30 {
            let channel = "asgi.specific.\(index)"
            let owner = try #require(shards.primary(forSlot: ClusterKeySlot.slot(for: channel)))
            let other = try #require(cluster.nodes.first { $0.port != owner.port && shards.primaries.map(\.port).contains($0.port) })
            let reply = try await other.command(["SPUBLISH", channel, "x"])
            #expect(reply.errorMessage == "MOVED \(ClusterKeySlot.slot(for: channel)) 127.0.0.1:\(owner.port)")
            #expect(try await cluster.node(port: owner.port)!.command(["SPUBLISH", channel, "x"]) == .integer(0))
        }
    }

    @Test func discoveryAsksSeedsInTurnAndFallsBackToClusterSlots() async throws {
        let cluster = try await RedisCluster.start(primaries: 3, replicasPerPrimary: 0, password: "cl-pass")
        defer { cluster.stop() }
        let dead = try LoopbackSocket.freeServerPort()
        let seeds = "127.0.0.1:\(dead)," + cluster.nodes.map { "127.0.0.1:\($0.port)" }.joined(separator: ",")
        let endpoint = try RedisClusterEndpoint(url: "redis-cluster://:cl-pass@\(seeds)")
        let loop = try LibeventLoop(name: "cluster-discovery-test")
        let found = try await Self.discover(endpoint, on: loop)
        #expect(found.source == .hostname("127.0.0.1", port: cluster.nodes[0].port), "the dead seed was skipped")
        #expect(!found.usedClusterSlots)
        #expect(found.map.coveredSlots == ClusterKeySlot.count)
        #expect(Set(found.map.primaries.map(\.port)) == Set(cluster.ports))

        // An ACL that refuses CLUSTER SHARDS (as a pre-7.0 server would not know it): CLUSTER SLOTS gives the same map.
        for node in cluster.nodes {
            #expect(try await node.command(["ACL", "SETUSER", "default", "-cluster|shards"]) == .simple("OK"))
        }
        let fallback = try await Self.discover(endpoint, on: loop)
        #expect(fallback.usedClusterSlots)
        #expect(fallback.map == found.map)

        let wrongPassword = try RedisClusterEndpoint(url: "redis-cluster://:nope@\(seeds)")
        await #expect {
            _ = try await Self.discover(wrongPassword, on: loop)
        } throws: { error in
            guard let error = error as? ChannelLayerError else { return false }
            return error.code == .connectionFailed && error.message.contains("AUTH") && !error.message.contains("nope")
        }
        await loop.shutdown()
    }

    @Test func aPlainServerIsNotACluster() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let loop = try LibeventLoop(name: "cluster-discovery-test")
        await #expect {
            _ = try await Self.discover(try RedisClusterEndpoint(url: "redis-cluster://127.0.0.1:\(server.port)"), on: loop)
        } throws: { error in
            (error as? ChannelLayerError)?.code == .invalidConfiguration && "\(error)".contains("not a Redis Cluster node")
        }
        await loop.shutdown()
    }

    /// Runs a discovery over `cluster`'s seeds on `loop`.
    static func discover(_ cluster: RedisClusterEndpoint, on loop: LibeventLoop) async throws -> ClusterSlotMapDiscovery.Discovered {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ClusterSlotMapDiscovery.Discovered, any Error>) in
            let accepted = loop.execute {
                let discovery = ClusterSlotMapDiscovery(candidates: cluster.seeds, cluster: cluster, loop: loop, timeout: .seconds(5))
                discovery.start { result in continuation.resume(with: result) }
            }
            if !accepted { continuation.resume(throwing: ChannelLayerError.closed()) }
        }
    }
}

extension RedisValue {
    /// The library's copy of a reply, from the fixture client's.
    init(_ value: RESPValue) {
        switch value {
        case .simple(let text): self = .simple(text)
        case .error(let text): self = .error(text)
        case .integer(let number): self = .integer(number)
        case .bulk(let bytes): self = .bulk(bytes)
        case .array(let values): self = .array(values.map { $0.map(RedisValue.init) })
        }
    }
}
