import Metrics
import Synchronization

/// Counters of one layer, written on the loop thread (and by consumers decoding) and read anywhere.
///
/// Per-message counts are plain atomics, readable through `RedisPubSubChannelLayer.statistics` and
/// reported to swift-metrics once a second (`LayerMetrics`). Drops and undecodable messages go to
/// their swift-metrics counters as they happen; reconnects and liveness failures also go to the
/// shard's own counters (`ShardMetrics`, with a `shard` dimension).
final class LayerStatistics: Sendable {
    let published = Atomic<Int>(0)
    let received = Atomic<Int>(0)
    /// Messages the subscriber parsed itself instead of through hiredis's reader
    /// (`chr_io_deliver_messages`), the layer's own liveness probes included: tests check that the
    /// fast path is the one taken.
    let receivedDirectly = Atomic<Int>(0)
    let delivered = Atomic<Int>(0)
    let dropped = Atomic<Int>(0)
    let undecodable = Atomic<Int>(0)
    let unroutable = Atomic<Int>(0)
    let reconnects = Atomic<Int>(0)
    let livenessFailures = Atomic<Int>(0)
    /// Times a shard on a Sentinel endpoint left a node that was no longer the master.
    let failovers = Atomic<Int>(0)
    /// Local channels holding messages that no consumer took for `unconsumedChannelThreshold`, as
    /// of the last sweep.
    let unconsumedChannels = Atomic<Int>(0)
    /// Redis Cluster's counters (Cluster/ClusterStatistics.swift).
    let cluster = ClusterStatistics()

    private let droppedCounter: Counter
    private let undecodableCounter: Counter
    private let unconsumedChannelsGauge: Gauge

    /// Rate-limits the warning about undecodable messages (consumers decode on their own threads).
    let undecodableWarning = RateLimit(interval: .seconds(1))

    init(metricsFactory: any MetricsFactory) {
        droppedCounter = Counter(label: "channels_redis_dropped_messages_total", factory: metricsFactory)
        undecodableCounter = Counter(label: "channels_redis_undecodable_messages_total", factory: metricsFactory)
        unconsumedChannelsGauge = Gauge(label: "channels_redis_unconsumed_channels", factory: metricsFactory)
    }

    /// A consumer's buffer was full and its oldest `count` messages were dropped.
    func recordDropped(_ count: Int) {
        dropped.add(count)
        droppedCounter.increment(by: Int64(count))
    }

    /// A received message could not be decrypted or decoded and was skipped.
    func recordUndecodable() {
        undecodable.add(1)
        undecodableCounter.increment()
    }

    /// A shard is healthy again after a disconnect (its `ShardMetrics` counts it too).
    func recordReconnect() {
        reconnects.add(1)
    }

    /// The unconsumed-channel sweep counted `count` such channels.
    func setUnconsumedChannels(_ count: Int) {
        if unconsumedChannels.exchange(count, ordering: .relaxed) != count { unconsumedChannelsGauge.record(count) }
    }

    /// A liveness probe did not come back and a connection was replaced (its `ShardMetrics` counts it too).
    func recordLivenessFailure() {
        livenessFailures.add(1)
    }
}

extension Atomic where Value == Int {
    @inline(__always)
    func add(_ amount: Int) {
        _ = wrappingAdd(amount, ordering: .relaxed)
    }
}

/// "At most once per `interval`", from any thread.
final class RateLimit: Sendable {
    private let interval: Duration
    private let last = Mutex<ContinuousClock.Instant?>(nil)

    init(interval: Duration) { self.interval = interval }

    /// Whether the caller may go ahead now; if so, the next one may only after `interval`.
    func shouldWarn() -> Bool {
        let now = ContinuousClock.now
        return last.withLock { last in
            if let previous = last, previous.duration(to: now) < interval { return false }
            last = now
            return true
        }
    }
}
