import ChannelsRedis
import ChannelsRedisTestSupport

/// Collects a layer's connection events in the background.
final class EventRecorder: Sendable {
    private let events = Mutex<[ConnectionEvent]>([])
    private let task: Task<Void, Never>

    init(_ layer: RedisPubSubChannelLayer) {
        let stream = layer.connectionEvents()
        let events = self.events
        task = Task { for await event in stream { events.withLock { $0.append(event) } } }
    }

    var disconnects: Int {
        events.withLock { $0.filter { if case .disconnected = $0 { true } else { false } }.count }
    }

    var reconnects: Int {
        events.withLock { $0.filter { if case .reconnected = $0 { true } else { false } }.count }
    }

    var all: [ConnectionEvent] { events.withLock { $0 } }

    deinit { task.cancel() }
}
