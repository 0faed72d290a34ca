import Metrics
import Synchronization

/// The layer's swift-metrics, created once when the layer is made (never per message), with
/// snake_case labels and dimensions so they survive Prometheus's renaming.
///
/// Per-message counts (published, received, delivered) are not sent per message: the hot path
/// only bumps the atomics of `LayerStatistics`, and ``report(_:channels:groups:)``, run by the
/// engine once a second on the loop, hands the deltas to the counters. The rare events (drops,
/// undecodable messages, reconnects, liveness failures) are counted as they happen.
final class LayerMetrics {
    // Loop-confined (the engine calls `report` on its loop), like the engine.
    private let published: Counter
    private let received: Counter
    private let delivered: Counter
    private let subscribedChannels: Gauge
    private let subscribedGroups: Gauge
    private var last = (published: 0, received: 0, delivered: 0)
    private var lastGauges = (channels: -1, groups: -1)

    init(factory: any MetricsFactory) {
        published = Counter(label: "channels_redis_published_messages_total", factory: factory)
        received = Counter(label: "channels_redis_received_messages_total", factory: factory)
        delivered = Counter(label: "channels_redis_delivered_messages_total", factory: factory)
        subscribedChannels = Gauge(label: "channels_redis_subscribed_channels", factory: factory)
        subscribedGroups = Gauge(label: "channels_redis_subscribed_groups", factory: factory)
    }

    /// Hands what the counters gained since the last call to swift-metrics, and the local channel
    /// and group counts to their gauges (only when they changed).
    func report(_ statistics: LayerStatistics, channels: Int, groups: Int) {
        let now = (
            published: statistics.published.load(ordering: .relaxed),
            received: statistics.received.load(ordering: .relaxed),
            delivered: statistics.delivered.load(ordering: .relaxed)
        )
        if now.published > last.published { published.increment(by: Int64(now.published - last.published)) }
        if now.received > last.received { received.increment(by: Int64(now.received - last.received)) }
        if now.delivered > last.delivered { delivered.increment(by: Int64(now.delivered - last.delivered)) }
        last = now
        if (channels, groups) != lastGauges {
            lastGauges = (channels, groups)
            subscribedChannels.record(channels)
            subscribedGroups.record(groups)
        }
    }
}

/// One shard's metrics, with a `shard` dimension (its index in `hosts`).
struct ShardMetrics {
    /// 1 while the shard is ready, 0 otherwise.
    let up: Gauge
    let reconnects: Counter
    let livenessFailures: Counter
    let failovers: Counter

    init(shard: Int, factory: any MetricsFactory) {
        let dimensions = [("shard", "\(shard)")]
        up = Gauge(label: "channels_redis_shard_up", dimensions: dimensions, factory: factory)
        reconnects = Counter(label: "channels_redis_reconnects_total", dimensions: dimensions, factory: factory)
        livenessFailures = Counter(label: "channels_redis_liveness_failures_total", dimensions: dimensions, factory: factory)
        failovers = Counter(label: "channels_redis_failovers_total", dimensions: dimensions, factory: factory)
    }
}
