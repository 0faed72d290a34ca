import ChannelsRedis
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

// What the fault tests (and the layer tests that reconnect) start from.

/// Configuration tuned for fast fault detection in tests.
func faultConfiguration(_ url: String) -> RedisPubSubChannelLayer.Configuration {
    var configuration = RedisPubSubChannelLayer.Configuration(hosts: [url])
    configuration.connectTimeout = .seconds(1)
    configuration.sendTimeout = .seconds(1)
    configuration.livenessInterval = .milliseconds(200)
    configuration.livenessTimeout = .milliseconds(400)
    configuration.retry = .init(initialBackoff: .milliseconds(20), maximumBackoff: .milliseconds(300))
    return configuration
}

/// Sends markers until one arrives at `collector` (messages sent before the resubscription
/// finished are lost by design: pub/sub is at most once).
func expectDelivery(_ layer: RedisPubSubChannelLayer, to collector: MessageCollector, channel: String, group: String?) async throws {
    let marker = "marker-\(UUID().uuidString.prefix(8))"
    try await eventually(timeout: .seconds(15), pollingEvery: .milliseconds(100)) {
        if let group {
            _ = try? await layer.groupSend(["type": "marker", "id": .string(marker)], to: group)
        } else {
            _ = try? await layer.send(["type": "marker", "id": .string(marker)], to: channel)
        }
        return collector.received.contains { $0["id"]?.stringValue == marker }
    }
}

/// A layer with one channel that is in group "room" (unless `group` is nil), a collector consuming
/// it and a recorder of its connection events: what every fault test starts from.
struct SubscribedLayer {
    let layer: RedisPubSubChannelLayer
    let events: EventRecorder
    let channel: String
    let collector: MessageCollector

    init(_ configuration: RedisPubSubChannelLayer.Configuration, group: String? = "room") async throws {
        layer = try RedisPubSubChannelLayer(configuration: configuration)
        events = EventRecorder(layer)
        channel = try await layer.newChannel()
        if let group { try await layer.groupAdd(group, channel: channel) }
        collector = try await MessageCollector(layer, channel: channel)
        // Both connections ready, so that a fault injected next is an outage (a `.disconnected` event): the
        // subscription's confirmation does not wait for the publisher, whose TLS handshake may still be running.
        let layer = layer
        try await eventually("the layer is healthy (both connections ready)") { layer.isHealthy }
    }
}

/// Sockets of this process connected to 127.0.0.1:`port`: every descriptor in /proc/self/fd whose
/// peer (`getpeername`) is that port. Exact even while other tests run in parallel, because the
/// port belongs to this test's own server. (/proc/net/tcp would be simpler, but some sandboxes list
/// only listening sockets there.)
func socketsConnected(toPort port: Int) throws -> Int {
    var count = 0
    for entry in try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
        guard let fd = Int32(entry),
            let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(entry)"),
            target.hasPrefix("socket:[")
        else { continue }
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let status = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard status == 0, address.sin_family == sa_family_t(AF_INET) else { continue }
        if Int(UInt16(bigEndian: address.sin_port)) == port { count += 1 }
    }
    return count
}
