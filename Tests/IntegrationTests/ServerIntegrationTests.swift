import ChannelsRedisTestSupport
import Foundation
import Logging
import Metrics
import MetricsTestKit
import ServiceLifecycle
import Testing
import UnixSignals

@testable import ChannelsRedis

/// How the layer fits a Swift server: a `Service` in a `ServiceGroup`, a health flag for readiness
/// probes, swift-metrics, and an outage that logs one warning and one info.
@Suite("Server integration", .timeLimit(.minutes(3)))
struct ServerIntegrationTests {
    /// A service that runs until graceful shutdown, like an HTTP server would.
    private struct App: Service {
        let started: OneShot
        func run() async throws {
            started.fire()
            try? await gracefulShutdown()
        }
    }

    final class OneShot: Sendable {
        private let fired = Mutex(false)
        func fire() { fired.withLock { $0 = true } }
        var hasFired: Bool { fired.withLock { $0 } }
    }

    @Test func aServiceGroupShutsTheLayerDownGracefullyOnSIGTERM() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let layer = try RedisPubSubChannelLayer(hosts: [server.url])
        let started = OneShot()
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: layer), .init(service: App(started: started))],
                gracefulShutdownSignals: [.sigterm],
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
            )
        )
        let running = Task { try await group.run() }
        try await eventually("the app started") { started.hasFired }
        let channel = try await layer.newChannel()
        let consumer = Task { try await layer.receive(from: channel) }
        try await layer.send(["n": 1], to: channel)
        #expect(try await consumer.value["n"] == 1)
        let waiting = Task { try await layer.receive(from: channel) }
        try await Task.sleep(for: .milliseconds(50))

        kill(getpid(), SIGTERM)  // what an orchestrator sends; the group handles it
        try await running.value
        await #expect { try await waiting.value } throws: { ($0 as? ChannelLayerError)?.code == .layerClosed }
        await #expect { try await layer.newChannel() } throws: { ($0 as? ChannelLayerError)?.code == .layerClosed }
        #expect(layer.shardStatuses == [.closed])
        try await eventually("its connections are gone") {
            (try await server.command(["CLIENT", "LIST"]).string ?? "").split(separator: "\n").count == 1  // ours only
        }
    }

    @Test func cancellingRunClosesTheLayer() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let layer = try RedisPubSubChannelLayer(hosts: [server.url])
        let running = Task { try await layer.run() }
        let channel = try await layer.newChannel()
        running.cancel()
        try await running.value
        await #expect { try await layer.receive(from: channel) } throws: { ($0 as? ChannelLayerError)?.code == .layerClosed }
    }

    @Test func runReturnsWhenTheLayerIsClosedOtherwise() async throws {
        let layer = try RedisPubSubChannelLayer(hosts: ["redis://127.0.0.1:1"])
        let returned = OneShot()
        let running = Task {
            try await layer.run()
            returned.fire()
        }
        try await Task.sleep(for: .milliseconds(50))  // time to return early, if it did
        #expect(!returned.hasFired, "run() returned while the layer was open")
        await layer.close()
        try await running.value
        #expect(returned.hasFired)
    }

    /// The in-memory layer is a `Service` too: in a `ServiceGroup` whose shutdown ends it, and
    /// ended by cancellation or by `close()` elsewhere, always closed.
    @Test func theInMemoryLayerRunsAsAServiceToo() async throws {
        let layer = InMemoryChannelLayer()
        let started = OneShot()
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: layer), .init(service: App(started: started))],
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
            )
        )
        let running = Task { try await group.run() }
        try await eventually("the app started") { started.hasFired }
        let channel = try await layer.newChannel()
        try await layer.send(["n": 1], to: channel)
        #expect(try await layer.receive(from: channel)["n"] == 1)
        let waiting = Task { try await layer.receive(from: channel) }
        await group.triggerGracefulShutdown()
        try await running.value
        await #expect { try await waiting.value } throws: { ($0 as? ChannelLayerError)?.code == .layerClosed }
        await #expect { try await layer.newChannel() } throws: { ($0 as? ChannelLayerError)?.code == .layerClosed }

        let cancelled = InMemoryChannelLayer()
        let cancelledChannel = try await cancelled.newChannel()
        let runningCancelled = Task { try await cancelled.run() }
        runningCancelled.cancel()
        try await runningCancelled.value
        await #expect { try await cancelled.receive(from: cancelledChannel) } throws: { ($0 as? ChannelLayerError)?.code == .layerClosed }

        let closedElsewhere = InMemoryChannelLayer()
        let returned = OneShot()
        let runningClosed = Task {
            try await closedElsewhere.run()
            returned.fire()
        }
        try await Task.sleep(for: .milliseconds(50))  // time to return early, if it did
        #expect(!returned.hasFired, "run() returned while the layer was open")
        await closedElsewhere.close()
        try await runningClosed.value
        #expect(returned.hasFired)
    }

    @Test func isHealthyFollowsAnOutage() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        var configuration = RedisPubSubChannelLayer.Configuration(hosts: [server.url])
        configuration.retry.maximumBackoff = .milliseconds(200)
        let layer = try RedisPubSubChannelLayer(configuration: configuration)
        #expect(layer.isHealthy)  // idle: nothing needed a connection yet
        #expect(layer.shardStatuses == [.idle])
        let channel = try await layer.newChannel()
        try await eventually { layer.shardStatuses == [.ready] }
        #expect(layer.isHealthy)

        server.kill9()
        try await eventually("unhealthy during the outage") { !layer.isHealthy }
        #expect(layer.shardStatuses == [.reconnecting])
        try await server.restart()
        try await eventually(timeout: .seconds(15), "healthy once resubscribed") { layer.isHealthy }
        #expect(try await subscriberCount(server, channel) == 1)
        await layer.close()
        #expect(!layer.isHealthy)
    }

    @Test func aHostThatCannotBeReachedIsNotHealthy() async throws {
        let layer = try RedisPubSubChannelLayer(hosts: ["redis://127.0.0.1:1"])
        await #expect { try await layer.newChannel() } throws: { ($0 as? ChannelLayerError)?.code == .connectionFailed }
        #expect(!layer.isHealthy)
        #expect(layer.shardStatuses == [.connecting])
        await layer.close()
    }

    @Test func metricsGoToTheFactoryWithStableLabels() async throws {
        let metrics = TestMetrics()
        let server = try await RedisServer.start()
        defer { server.stop() }
        var configuration = RedisPubSubChannelLayer.Configuration(hosts: [server.url], capacity: 2)
        configuration.retry.maximumBackoff = .milliseconds(200)
        let layer = try RedisPubSubChannelLayer(configuration: configuration, metricsFactory: metrics)
        let a = try await layer.newChannel()
        let b = try await layer.newChannel()
        try await layer.groupAdd("room", channel: a)
        try await layer.groupAdd("room", channel: b)
        for n in 0..<5 { try await layer.groupSend(["n": .int(Int64(n))], to: "room") }  // 2 of each kept: 3 dropped each
        try await eventually("counters reported") {
            metrics.counterTotal(label: "channels_redis_published_messages_total") == 5
                && metrics.counterTotal(label: "channels_redis_received_messages_total") == 5
                && metrics.counterTotal(label: "channels_redis_delivered_messages_total") == 10
        }
        try await eventually { metrics.counterTotal(label: "channels_redis_dropped_messages_total") == 6 }
        #expect(try metrics.expectGauge("channels_redis_subscribed_channels").lastValue == 2)
        #expect(try metrics.expectGauge("channels_redis_subscribed_groups").lastValue == 1)
        #expect(try metrics.expectGauge("channels_redis_shard_up", [("shard", "0")]).lastValue == 1)

        server.kill9()
        try await eventually { try metrics.expectGauge("channels_redis_shard_up", [("shard", "0")]).lastValue == 0 }
        try await server.restart()
        try await eventually(timeout: .seconds(15)) {
            metrics.counterTotal(label: "channels_redis_reconnects_total", dimensions: [("shard", "0")]) == 1
        }
        #expect(try metrics.expectGauge("channels_redis_shard_up", [("shard", "0")]).lastValue == 1)
        // Every label is snake_case (Prometheus rewrites dots) and none was made per message.
        let labels = Set(metrics.counters.map(\.label) + metrics.recorders.map(\.label))
        #expect(labels.allSatisfy { $0.allSatisfy { $0.isLowercase || $0 == "_" } }, "\(labels)")
        #expect(metrics.counters.count == Set(metrics.counters.map { "\($0.label)\($0.dimensions)" }).count)
        await layer.close()
    }

    @Test func anOutageLogsOneWarningWhenItStartsAndOneInfoWhenItEnds() async throws {
        let (logger, records) = RecordingLogHandler.logger()
        let server = try await RedisServer.start()
        defer { server.stop() }
        var configuration = RedisPubSubChannelLayer.Configuration(hosts: [server.url])
        configuration.retry = .init(initialBackoff: .milliseconds(20), maximumBackoff: .milliseconds(50))
        let layer = try RedisPubSubChannelLayer(configuration: configuration, logger: logger)
        let channel = try await layer.newChannel()
        try await layer.groupAdd("room", channel: channel)
        try await eventually { layer.shardStatuses == [.ready] }
        let before = records.all.count

        server.kill9()
        try await Task.sleep(for: .seconds(1))  // ~20 attempts per connection at 50 ms
        try await server.restart()
        try await eventually(timeout: .seconds(15), "reconnected") { layer.isHealthy }
        let outage = Array(records.all.dropFirst(before))
        let warnings = outage.filter { $0.level >= .warning }
        let infos = outage.filter { $0.level == .info }
        #expect(warnings.count == 1, "warnings: \(warnings.map(\.message))")
        #expect(infos.count == 1, "infos: \(infos.map(\.message))")
        #expect(outage.filter { $0.level == .debug }.count >= 4, "attempts are logged at debug")
        #expect(warnings.first?.metadata["channels_redis.shard"] == "0")
        let host = warnings.first?.metadata["channels_redis.host"].map { "\($0)" } ?? ""
        #expect(host.hasPrefix(server.url), "host: \(host)")
        await layer.close()
    }
}
