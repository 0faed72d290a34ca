import Metrics
import Synchronization

/// Counters of one layer, written on the loop thread (and by consumers decoding) and read anywhere.
///
/// Per-message counts are plain atomics, readable through `RedisPubSubChannelLayer.statistics`.
/// The rare events a dashboard should see (drops, undecodable messages, reconnects, liveness
/// failures) also go to swift-metrics counters, so they reach whatever backend the application
/// bootstrapped; with none, swift-metrics drops them.
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
    /// Local channels holding messages that no consumer took for `unconsumedChannelThreshold`, as
    /// of the last sweep.
    let unconsumedChannels = Atomic<Int>(0)

    private let droppedCounter = Counter(label: "channels_redis_dropped_messages_total")
    private let undecodableCounter = Counter(label: "channels_redis_undecodable_messages_total")
    private let reconnectsCounter = Counter(label: "channels_redis_reconnects_total")
    private let livenessFailuresCounter = Counter(label: "channels_redis_liveness_failures_total")
    private let unconsumedChannelsGauge = Gauge(label: "channels_redis_unconsumed_channels")

    init() {}

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

    /// A shard is healthy again after a disconnect.
    func recordReconnect() {
        reconnects.add(1)
        reconnectsCounter.increment()
    }

    /// The unconsumed-channel sweep counted `count` such channels.
    func setUnconsumedChannels(_ count: Int) {
        if unconsumedChannels.exchange(count, ordering: .relaxed) != count { unconsumedChannelsGauge.record(count) }
    }

    /// A liveness probe did not come back and a connection was replaced.
    func recordLivenessFailure() {
        livenessFailures.add(1)
        livenessFailuresCounter.increment()
    }
}

extension Atomic where Value == Int {
    @inline(__always)
    func add(_ amount: Int) {
        _ = wrappingAdd(amount, ordering: .relaxed)
    }
}
