import ChannelsRedisTestSupport
import Testing

@testable import ChannelsRedis

/// The layer on a Redis Cluster of the test's own (3 primaries, 1 replica each): every channel and group channel on
/// the primary that owns its key slot, over SSUBSCRIBE and SPUBLISH. Serialized: each test forms its own 6-node cluster.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ClusterLayerTests {
    @Test func channelsAndGroupsSpreadOverEveryPrimarySendReceiveAndGroupSend() async throws {
        try await withClusterLayer { layer, cluster in
            var channels: [String] = []
            for _ in 0..<24 { channels.append(try await layer.newChannel()) }
            let primaries = try await cluster.primaryPorts()
            let channelOwners = try await Self.owners(of: channels, in: cluster)
            #expect(Set(channelOwners.values) == Set(primaries), "the channels landed on every primary")
            for channel in channels {
                let owner = try #require(cluster.node(port: channelOwners[channel]!))
                #expect(
                    try await owner.command(["PUBSUB", "SHARDNUMSUB", channel]).array?.last?.integer == 1,
                    "\(channel) is SSUBSCRIBEd on its owner"
                )
                #expect(try await owner.command(["PUBSUB", "NUMSUB", channel]).array?.last?.integer == 0, "and not plainly SUBSCRIBEd")
            }
            for (index, channel) in channels.enumerated() {
                #expect(try await layer.send(["type": "test.message", "n": .int(Int64(index))], to: channel) == 1)
            }
            for (index, channel) in channels.enumerated() {
                #expect(try await layer.receive(from: channel, timeout: .seconds(10))?["n"]?.intValue == index)
            }

            // Groups: each group's channel on its own slot's primary; two members each.
            let groups = (0..<12).map { "room_\($0)" }
            let groupOwners = try await Self.owners(of: groups.map { "asgi__group__\($0)" }, in: cluster)
            #expect(Set(groupOwners.values) == Set(primaries), "the group channels landed on every primary")
            for (index, group) in groups.enumerated() {
                try await layer.groupAdd(group, channel: channels[index])
                try await layer.groupAdd(group, channel: channels[index + 12])
            }
            for (index, group) in groups.enumerated() {
                #expect(try await layer.groupSend(["type": "chat.message", "g": .int(Int64(index))], to: group) == 1)
            }
            for (index, _) in groups.enumerated() {
                for member in [channels[index], channels[index + 12]] {
                    #expect(try await layer.receive(from: member, timeout: .seconds(10))?["g"]?.intValue == index)
                }
            }
            #expect(layer.statistics.clusterSlotMapRefreshes >= 1)
            #expect(layer.shardStatuses.count == 3)
            #expect(layer.isHealthy)
        }
    }

    @Test func batchesEncryptionAndOnDemandChannelsWorkAsOnOneServer() async throws {
        try await withClusterLayer(configure: { $0.symmetricEncryptionKeys = ["cluster-secret"] }) { layer, cluster in
            // Channels received from on demand, a dozen in one slot and some in others: one SSUBSCRIBE per slot. (Channel
            // names cannot have hash tags, the Channels spec allows no braces: these share a slot by chance, found here.)
            let target = ClusterKeySlot.slot(for: "asgi.same.0")
            var sameSlot: [String] = []
            var candidate = 0
            while sameSlot.count < 12 {
                let name = "asgi.same.\(candidate)"
                if ClusterKeySlot.slot(for: name) == target { sameSlot.append(name) }
                candidate += 1
            }
            let names = sameSlot + (0..<20).map { "asgi.other.\($0)" }
            let receivers = names.map { name in Task { try await layer.receive(from: name, timeout: .seconds(20)) } }
            try await eventually("every on-demand channel is SSUBSCRIBEd") {
                for name in names {
                    let owner = try #require(cluster.node(port: try await cluster.ownerPort(ofSlot: try await cluster.keySlot(name))))
                    guard try await owner.command(["PUBSUB", "SHARDNUMSUB", name]).array?.last?.integer == 1 else { return false }
                }
                return true
            }
            for (index, name) in names.enumerated() {
                #expect(try await layer.send(["i": .int(Int64(index))], to: name) == 1)
            }
            for (index, receiver) in receivers.enumerated() {
                #expect(try await receiver.value?["i"]?.intValue == index)
            }
            // A batch, pipelined to one primary.
            let channel = try await layer.newChannel()
            #expect(try await layer.send(contentsOf: (0..<50).map { ["b": .int(Int64($0))] }, to: channel) == 50)
            for index in 0..<50 {
                #expect(try await layer.receive(from: channel, timeout: .seconds(10))?["b"]?.intValue == index)
            }
            #expect(layer.statistics.undecodableMessages == 0)
            // flush() drops every subscription on every primary; the layer goes on as new.
            try await layer.flush()
            try await eventually("no shard channel is left subscribed") {
                for port in try await cluster.primaryPorts() {
                    let reply = try await cluster.command(["PUBSUB", "SHARDCHANNELS", "asgi*"], port: port)
                    guard reply.array?.isEmpty == true else { return false }
                }
                return true
            }
            let fresh = try await layer.newChannel()
            #expect(try await layer.send(["after": "flush"], to: fresh) == 1)
            #expect(try await layer.receive(from: fresh, timeout: .seconds(10))?["after"]?.stringValue == "flush")
        }
    }

    @Test func resubscribesEverySlotsChannelsAfterTheSubscribersAreKilled() async throws {
        try await withClusterLayer(configure: { $0.retry.initialBackoff = .milliseconds(20) }) { layer, cluster in
            var channels: [String] = []
            for _ in 0..<30 { channels.append(try await layer.newChannel()) }
            // And a dozen in one slot, received from on demand (as in the test above), so that one resubscription
            // carries many channels.
            let target = ClusterKeySlot.slot(for: "asgi.same.0")
            var candidate = 0
            var sameSlot: [String] = []
            while sameSlot.count < 12 {
                if ClusterKeySlot.slot(for: "asgi.same.\(candidate)") == target { sameSlot.append("asgi.same.\(candidate)") }
                candidate += 1
            }
            for name in sameSlot { _ = try await layer.receive(from: name, timeout: .milliseconds(1)) }
            channels += sameSlot
            let owners = try await Self.owners(of: channels, in: cluster)
            let before = layer.statistics.reconnects
            for port in try await cluster.primaryPorts() {
                _ = try await cluster.command(["CONFIG", "RESETSTAT"], port: port)
                _ = try await cluster.command(["CLIENT", "KILL", "TYPE", "pubsub"], port: port)
            }
            try await eventually(timeout: .seconds(20), "every primary's subscriber reconnected and resubscribed") {
                layer.statistics.reconnects >= before + 3 && layer.isHealthy
            }
            // One SSUBSCRIBE per slot on each primary: the dozen of one slot went in one command.
            for port in try await cluster.primaryPorts() {
                let slots = Set(channels.filter { owners[$0] == port }.map(ClusterKeySlot.slot(for:)))
                let stats = RedisCluster.fields(try await cluster.command(["INFO", "commandstats"], port: port).string ?? "")
                let calls = stats["cmdstat_ssubscribe"]?.split(separator: ",").first { $0.hasPrefix("calls=") }.map { Int($0.dropFirst(6)) }
                #expect(calls == slots.count, "SSUBSCRIBE calls on \(port) for \(slots.count) slots: \(stats["cmdstat_ssubscribe"] ?? "none")")
            }
            for channel in channels { #expect(try await layer.send(["x": true], to: channel) == 1) }
            for channel in channels { #expect(try await layer.receive(from: channel, timeout: .seconds(10))?["x"] == true) }
        }
    }

    /// What the README says about Python: a layer on a cluster node with a plain `redis://` URL (what channels_redis
    /// does) and a layer in cluster mode do not see each other's messages on the same channel.
    @Test func plainAndShardedPubSubDoNotSeeEachOther() async throws {
        try await withClusterLayer(replicasPerPrimary: 0) { sharded, cluster in
            let channel = try await sharded.newChannel()
            let owner = try await cluster.ownerPort(ofSlot: ClusterKeySlot.slot(for: channel))
            let plain = try RedisPubSubChannelLayer(configuration: .init(hosts: ["redis://127.0.0.1:\(owner)"]))
            try await closing(plain) { (plain: RedisPubSubChannelLayer) async throws in
                #expect(try await plain.receive(from: channel, timeout: .milliseconds(1)) == nil)  // subscribes it
                #expect(try await sharded.send(["from": "sharded"], to: channel) == 1, "one shard subscriber: the sharded layer")
                #expect(try await plain.send(["from": "plain"], to: channel) == 1, "one plain subscriber: the plain layer")
                #expect(try await sharded.receive(from: channel, timeout: .seconds(5))?["from"]?.stringValue == "sharded")
                #expect(try await plain.receive(from: channel, timeout: .seconds(5))?["from"]?.stringValue == "plain")
                #expect(try await sharded.receive(from: channel, timeout: .seconds(1)) == nil, "no plain message in cluster mode")
                #expect(try await plain.receive(from: channel, timeout: .seconds(1)) == nil, "no sharded message on plain pub/sub")
            }
        }
    }

    /// While every primary is healthy the map is fetched every `clusterSlotMapRefreshInterval`.
    @Test func theSlotMapIsFetchedEveryConfiguredInterval() async throws {
        try await withClusterLayer(replicasPerPrimary: 0, configure: { $0.clusterSlotMapRefreshInterval = .milliseconds(200) }) { layer, _ in
            _ = try await layer.newChannel()
            try await eventually("every primary's shard is ready") { layer.isHealthy }
            let before = layer.statistics.clusterSlotMapRefreshes
            // Five fetches take a second at 200 ms; at the default 10 s this would time out.
            try await eventually(timeout: .seconds(5), "five more fetches") { layer.statistics.clusterSlotMapRefreshes >= before + 5 }
        }
    }

    /// The port of the primary serving each name's slot.
    static func owners(of names: [String], in cluster: RedisCluster) async throws -> [String: Int] {
        var owners: [String: Int] = [:]
        for name in names { owners[name] = try await cluster.ownerPort(ofSlot: ClusterKeySlot.slot(for: name)) }
        return owners
    }
}

/// A layer on a cluster of the test's own, closed and stopped afterwards.
func withClusterLayer<Result>(
    primaries: Int = 3,
    replicasPerPrimary: Int = 1,
    configure: (inout RedisPubSubChannelLayer.Configuration) -> Void = { _ in },
    _ body: (RedisPubSubChannelLayer, RedisCluster) async throws -> Result
) async throws -> Result {
    let cluster = try await RedisCluster.start(primaries: primaries, replicasPerPrimary: replicasPerPrimary)
    defer { cluster.stop() }
    var configuration = RedisPubSubChannelLayer.Configuration(hosts: [cluster.url])
    configure(&configuration)
    let layer = try RedisPubSubChannelLayer(configuration: configuration)
    return try await closing(layer) { try await body($0, cluster) }
}

/// A second layer on `cluster` whose slot map goes stale: nothing subscribed through it tells it that a slot moved, and
/// its periodic refresh is an hour away, so its next send to a moved slot meets the redirect.
///
/// Returned once every primary's shard is healthy and then half a second more (times `TestTime.scale`): until then the
/// map is also fetched every 500 ms (a primary whose connections are still being made counts as unhealthy), and such a
/// fetch after the test moved a slot would read the new map first (seen under AddressSanitizer).
func staleMapLayer(_ cluster: RedisCluster, sendTimeout: Duration? = nil) async throws -> RedisPubSubChannelLayer {
    var configuration = RedisPubSubChannelLayer.Configuration(hosts: [cluster.url])
    configuration.clusterSlotMapRefreshInterval = .seconds(3600)
    if let sendTimeout { configuration.sendTimeout = sendTimeout }
    let layer = try RedisPubSubChannelLayer(configuration: configuration)
    do {
        // Not healthy before the first map either (no shards yet).
        try await eventually("every primary's shard of the stale-map layer is ready") { layer.isHealthy }
        try await Task.sleep(for: .milliseconds(600) * TestTime.scale)  // the last 500 ms fetch, scheduled before
    } catch {
        await layer.close()
        throw error
    }
    return layer
}

/// A cluster nobody answers for: operations fail with a typed error within bounds, none hangs.
@Suite(.timeLimit(.minutes(1)))
struct ClusterUnreachableTests {
    @Test func aClusterWithNoReachableSeedFailsOperationsWithConnectionFailed() async throws {
        let dead = try LoopbackSocket.freeServerPort()
        var configuration = RedisPubSubChannelLayer.Configuration(hosts: ["redis-cluster://127.0.0.1:\(dead)"])
        configuration.connectTimeout = .milliseconds(500)
        let layer = try RedisPubSubChannelLayer(configuration: configuration)
        try await closing(layer) { layer in
            await #expect {
                _ = try await layer.newChannel()
            } throws: { error in
                guard let error = error as? ChannelLayerError else { return false }
                return error.code == .connectionFailed && error.message.contains("slot map")
            }
            await #expect(throws: ChannelLayerError.self) { try await layer.send(["x": 1], to: "asgi.somewhere") }
            #expect(!layer.isHealthy)
            #expect(layer.shardStatuses.isEmpty)
        }
    }
}
