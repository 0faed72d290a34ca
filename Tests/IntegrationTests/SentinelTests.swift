import ChannelsRedisTestSupport
import Foundation
import Testing

@testable import ChannelsRedis

/// How long delivery may take to resume after `SENTINEL FAILOVER` returned (the sentinels already
/// agree on the new master then): the `+switch-master` event, a reconnect and a resubscribe. Seen
/// at about a second on this 2-core machine; the bound leaves room for a loaded CI runner.
private let resumeAfterFailover: Duration = .seconds(20)
/// After `kill -9` of the master: 1 s until the sentinels call it down, an election, the
/// promotion, then the same as above.
private let resumeAfterKill: Duration = .seconds(40)
/// After a master demoted itself behind the sentinels' back: they call a master that reports the
/// replica role down only after `down-after-milliseconds` plus two 10-second INFO periods
/// (sentinel.c), then fail over. Seen at about 30 s here.
private let resumeAfterSilentDemotion: Duration = .seconds(60)

/// Numbered messages on `channel` and on `group`, each sent once, then checked to have all arrived,
/// in order. Returns once they did.
private func expectEveryMessage(
    _ layer: RedisPubSubChannelLayer,
    to collector: MessageCollector,
    channel: String,
    group: String,
    count: Int,
    tag: String
) async throws {
    for index in 0..<count {
        _ = try await layer.send(["type": "numbered", "tag": .string(tag), "n": .int(Int64(index))], to: channel)
        _ = try await layer.groupSend(["type": "numbered", "tag": .string(tag), "n": .int(Int64(index))], to: group)
    }
    var seen: [Int] = []
    try await eventually(timeout: .seconds(15), "\(2 * count) '\(tag)' messages") {
        seen = collector.received.filter { $0["tag"]?.stringValue == tag }.compactMap { $0["n"]?.intValue }
        return seen.count >= 2 * count
    }
    // Each number twice (direct and group), in order per kind.
    #expect(seen.count == 2 * count)
    #expect(Set(seen) == Set(0..<count))
}

/// Sends a marker every 50 ms until one arrives, and returns how long that took.
private func timeUntilDelivery(_ layer: RedisPubSubChannelLayer, to collector: MessageCollector, channel: String, within timeout: Duration) async throws -> Duration {
    let start = ContinuousClock.now
    let marker = "marker-\(UUID().uuidString.prefix(8))"
    try await eventually(timeout: timeout, pollingEvery: .milliseconds(50), "a message delivered through the new master") {
        _ = try? await layer.send(["type": "marker", "id": .string(marker)], to: channel)
        return collector.received.contains { $0["id"]?.stringValue == marker }
    }
    return ContinuousClock.now - start
}

/// The error and its `underlying` (the connection error behind a timeout), as one text to search.
private func fullText(_ error: ChannelLayerError) -> String {
    "\(error) \(error.underlying.map { "\($0)" } ?? "")"
}

@Suite("Sentinel: redis+sentinel:// endpoints", .serialized, .timeLimit(.minutes(8)))
struct SentinelTests {
    /// Both passwords: the data nodes' (before the `@`) and the sentinels' (`sentinel_password`).
    @Test func sendsReceivesAndGroupsThroughTheMasterTheSentinelsName() async throws {
        let deployment = try await SentinelDeployment.start(password: "data-secret", sentinelPassword: "sentinel-secret")
        defer { deployment.stop() }
        let subscribed = try await SubscribedLayer(faultConfiguration(deployment.url))
        let (layer, collector) = (subscribed.layer, subscribed.collector)
        try await expectEveryMessage(layer, to: collector, channel: subscribed.channel, group: "room", count: 50, tag: "first")
        // Both connections are on the master, none on the replica; the sentinel watch holds one
        // connection to a sentinel, and the queries closed theirs.
        let (master, replica) = (deployment.nodes[0], deployment.nodes[1])
        #expect(try socketsConnected(toPort: master.port) == 2)
        #expect(try socketsConnected(toPort: replica.port) == 0)
        try await eventually(timeout: .seconds(5), "one watch connection to the sentinels") {
            try deployment.sentinels.map { try socketsConnected(toPort: $0.port) }.reduce(0, +) == 1
        }
        #expect(layer.statistics.failovers == 0)
        await collector.stop()
        await layer.close()
    }

    @Test func wrongSentinelOrDataPasswordsFailTheFirstSendWithTheReason() async throws {
        let deployment = try await SentinelDeployment.start(password: "data-secret", sentinelPassword: "sentinel-secret")
        defer { deployment.stop() }
        let hosts = deployment.sentinels.map { "127.0.0.1:\($0.port)" }.joined(separator: ",")
        for (url, expected) in [
            ("redis+sentinel://:data-secret@\(hosts)/mymaster?sentinel_password=wrong", "AUTH failed"),
            ("redis+sentinel://:wrong@\(hosts)/mymaster?sentinel_password=sentinel-secret", "WRONGPASS"),
            ("redis+sentinel://:data-secret@\(hosts)/othermaster?sentinel_password=sentinel-secret", "no master named 'othermaster'"),
        ] {
            let layer = try RedisPubSubChannelLayer(configuration: faultConfiguration(url))
            do {
                _ = try await layer.send(["type": "x"], to: "somewhere")
                Issue.record("a send through \(url) succeeded")
            } catch let error as ChannelLayerError {
                let text = fullText(error)
                #expect(text.contains(expected), "\(url): \(text)")
                #expect(!text.contains("data-secret") && !text.contains("sentinel-secret"), "a password in \(text)")
            }
            await layer.close()
        }
    }

    @Test func everySentinelDownIsAConnectionFailureThatNamesThemAll() async throws {
        let ports = try (0..<2).map { _ in try LoopbackSocket.freeServerPort() }
        let url = "redis+sentinel://" + ports.map { "127.0.0.1:\($0)" }.joined(separator: ",") + "/mymaster"
        let layer = try RedisPubSubChannelLayer(configuration: faultConfiguration(url))
        do {
            _ = try await layer.newChannel()
            Issue.record("newChannel succeeded with no sentinel up")
        } catch let error as ChannelLayerError {
            let text = fullText(error)
            for port in ports { #expect(text.contains("\(port)"), "\(text)") }
            #expect(text.contains("no sentinel named a master"), "\(text)")
        }
        await layer.close()
    }

    @Test func followsASentinelFailoverAndAbandonsTheDemotedMaster() async throws {
        let deployment = try await SentinelDeployment.start()
        defer { deployment.stop() }
        let subscribed = try await SubscribedLayer(faultConfiguration(deployment.url))
        let (layer, events, collector) = (subscribed.layer, subscribed.events, subscribed.collector)
        try await expectEveryMessage(layer, to: collector, channel: subscribed.channel, group: "room", count: 100, tag: "before")
        let old = try await deployment.master()

        let started = ContinuousClock.now
        let new = try await deployment.failover()
        #expect(new !== old)
        let resumed = try await timeUntilDelivery(layer, to: collector, channel: subscribed.channel, within: resumeAfterFailover)
        try await eventually(timeout: .seconds(10), "the reconnected event") { events.reconnects >= 1 }
        try await eventually(timeout: .seconds(10), "the disconnected event") { events.disconnects >= 1 }
        #expect(layer.statistics.failovers >= 1)
        // Nothing of the layer stays on the demoted master, though it is up and accepts PUBLISH.
        try await eventually(timeout: .seconds(10), "no connection left to the demoted master") {
            try socketsConnected(toPort: old.port) == 0 && socketsConnected(toPort: new.port) == 2
        }
        // The sentinels turn the old master into a replica of the new one once they see it again.
        try await eventually(timeout: .seconds(20), "the old master demoted to a replica") {
            try await old.command(["ROLE"]).array?.first?.string == "slave"
        }
        try await expectEveryMessage(layer, to: collector, channel: subscribed.channel, group: "room", count: 100, tag: "after")
        print("SENTINEL FAILOVER: delivery resumed \(resumed) after the sentinels agreed, \(ContinuousClock.now - started) in all")
        await collector.stop()
        await layer.close()
    }

    @Test func followsTheReplicaPromotedAfterTheMasterIsKilled() async throws {
        let deployment = try await SentinelDeployment.start()
        defer { deployment.stop() }
        let subscribed = try await SubscribedLayer(faultConfiguration(deployment.url))
        let (layer, events, collector) = (subscribed.layer, subscribed.events, subscribed.collector)
        try await expectEveryMessage(layer, to: collector, channel: subscribed.channel, group: "room", count: 50, tag: "before")
        let old = try await deployment.master()

        old.kill9()
        let resumed = try await timeUntilDelivery(layer, to: collector, channel: subscribed.channel, within: resumeAfterKill)
        let new = try await deployment.master()
        #expect(new !== old)
        try await eventually(timeout: .seconds(10), "the disconnected event") { events.disconnects >= 1 }
        try await eventually(timeout: .seconds(10), "the reconnected event") { events.reconnects >= 1 }
        #expect(try socketsConnected(toPort: new.port) == 2)
        try await expectEveryMessage(layer, to: collector, channel: subscribed.channel, group: "room", count: 50, tag: "after")
        print("kill -9 of the master: delivery resumed \(resumed) after the kill")
        await collector.stop()
        await layer.close()
    }

    /// A master demoted behind the sentinels' back keeps its clients connected and still takes
    /// PUBLISH (delivering to its own subscribers only): the ROLE check beside the liveness probe
    /// leaves it, the ROLE check of each reconnect refuses it while the sentinels still name it,
    /// and the layer lands on the replica they promote (a master that says it is a replica counts
    /// as down for them).
    @Test func leavesAMasterDemotedBehindTheSentinelsBack() async throws {
        let deployment = try await SentinelDeployment.start()
        defer { deployment.stop() }
        let elsewhere = try await RedisServer.start()
        defer { elsewhere.stop() }
        let subscribed = try await SubscribedLayer(faultConfiguration(deployment.url))
        let (layer, events, collector) = (subscribed.layer, subscribed.events, subscribed.collector)
        try await expectEveryMessage(layer, to: collector, channel: subscribed.channel, group: "room", count: 20, tag: "before")
        let old = deployment.nodes[0]
        #expect(try await old.command(["REPLICAOF", "127.0.0.1", String(elsewhere.port)]).string == "OK")

        try await eventually(timeout: .seconds(5), "the layer to leave the demoted master") {
            try socketsConnected(toPort: old.port) == 0
        }
        #expect(layer.statistics.failovers >= 1)
        try await eventually(timeout: .seconds(10), "the disconnected event") { events.disconnects >= 1 }
        // While the sentinels still name it, every reconnect reaches it and its ROLE refuses it.
        try await eventually(timeout: .seconds(5), "a send refused with the ROLE reason") {
            do {
                _ = try await layer.send(["type": "refused"], to: subscribed.channel)
                return false
            } catch let error as ChannelLayerError {
                return fullText(error).contains("is a slave, not the master of 'mymaster'")
            }
        }
        _ = try await timeUntilDelivery(layer, to: collector, channel: subscribed.channel, within: resumeAfterSilentDemotion)
        let new = try await deployment.master()
        #expect(new === deployment.nodes[1])
        #expect(try socketsConnected(toPort: new.port) == 2)
        try await expectEveryMessage(layer, to: collector, channel: subscribed.channel, group: "room", count: 20, tag: "after")
        await collector.stop()
        await layer.close()
    }

    /// `rediss+sentinel://`: the sentinels, the master and, after the failover, the new master are
    /// all reached over TLS, each certificate checked against the address the layer was given (the
    /// test certificate is for 127.0.0.1).
    @Test func followsAFailoverOverTLS() async throws {
        let deployment = try await SentinelDeployment.start(password: "data-secret", tls: try await TLSCertificates.shared())
        defer { deployment.stop() }
        let subscribed = try await SubscribedLayer(faultConfiguration(deployment.url))
        let (layer, events, collector) = (subscribed.layer, subscribed.events, subscribed.collector)
        try await expectEveryMessage(layer, to: collector, channel: subscribed.channel, group: "room", count: 50, tag: "before")
        let old = deployment.nodes[0]
        #expect(try socketsConnected(toPort: deployment.layerPort(of: old)) == 2)
        #expect(try socketsConnected(toPort: old.port) == 0)
        try await eventually(timeout: .seconds(5), "one watch connection, on a sentinel's TLS port") {
            try deployment.sentinelPorts.map { try socketsConnected(toPort: $0) }.reduce(0, +) == 1
                && deployment.sentinels.map { try socketsConnected(toPort: $0.port) }.reduce(0, +) == 0
        }

        let new = try await deployment.failover()
        _ = try await timeUntilDelivery(layer, to: collector, channel: subscribed.channel, within: resumeAfterFailover)
        try await eventually(timeout: .seconds(10), "both connections on the new master's TLS port") {
            try socketsConnected(toPort: deployment.layerPort(of: new)) == 2 && socketsConnected(toPort: deployment.layerPort(of: old)) == 0
        }
        #expect(events.reconnects >= 1)
        try await expectEveryMessage(layer, to: collector, channel: subscribed.channel, group: "room", count: 50, tag: "after")
        await collector.stop()
        await layer.close()
    }

    @Test func aPythonPeerOnTheSameSentinelsSharesTheLayerThroughAFailover() async throws {
        let deployment = try await SentinelDeployment.start(password: "data-secret")
        defer { deployment.stop() }
        let layer = try RedisPubSubChannelLayer(configuration: faultConfiguration(deployment.url))
        let peer = try await InteropPeer.start(hosts: [deployment.url], prefix: "asgi", serializer: "msgpack", keys: [])
        try await closing(peer, and: layer) {
            let python = try await peer.newChannel()
            let swift = try await layer.newChannel()
            try await peer.groupAdd("sentinel_room", channel: python)
            try await layer.groupAdd("sentinel_room", channel: swift)

            func exchange(_ round: String) async throws {
                // Each side retries until its message is through: a peer whose connection the
                // failover closed may lose a send (pub/sub is at most once).
                let collector = try await MessageCollector(layer, channel: swift)
                defer { collector.cancel() }
                try await eventually(timeout: resumeAfterFailover, pollingEvery: .milliseconds(500), "Python to Swift, \(round)") {
                    try? await peer.send(literal: "{'type': 'from.python', 'round': '\(round)'}", to: swift)
                    return collector.received.contains { $0["round"]?.stringValue == round }
                }
                try await eventually(timeout: resumeAfterFailover, pollingEvery: .milliseconds(500), "Swift to Python, \(round)") {
                    _ = try? await layer.send(["type": "from.swift", "round": .string(round)], to: python)
                    guard let received = try? await peer.receive(from: python, timeout: .milliseconds(400)) else { return false }
                    return received.message["round"]?.stringValue == round
                }
                try await eventually(timeout: resumeAfterFailover, pollingEvery: .milliseconds(500), "a group message to both, \(round)") {
                    _ = try? await layer.groupSend(["type": "group", "round": .string("group-" + round)], to: "sentinel_room")
                    guard let received = try? await peer.receive(from: python, timeout: .milliseconds(400)) else { return false }
                    return received.message["round"]?.stringValue == "group-" + round
                        && collector.received.contains { $0["round"]?.stringValue == "group-" + round }
                }
            }
            try await exchange("before")
            let old = try await deployment.master()
            let new = try await deployment.failover()
            #expect(new !== old)
            try await exchange("after")
            // Both layers left the demoted master.
            try await eventually(timeout: .seconds(10), "both layers on the new master") {
                let old = try await subscriberCount(old, "asgi__group__sentinel_room")
                let new = try await subscriberCount(new, "asgi__group__sentinel_room")
                return old == 0 && new == 2
            }
        }
    }
}
