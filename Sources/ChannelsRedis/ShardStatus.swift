import Synchronization

/// The connection state of one shard (one Redis host of the layer), for readiness probes and
/// dashboards.
///
/// A struct with static members rather than a public enum, so that states can be added (Sentinel
/// and Cluster will) without breaking a `switch` in user code.
///
/// ```swift
/// for (index, status) in layer.shardStatuses.enumerated() where status != .ready {
///     logger.info("shard \(index) is \(status)")
/// }
/// ```
public struct ShardStatus: Hashable, Sendable, CustomStringConvertible {
    enum Base: UInt8 {
        case idle, connecting, ready, reconnecting, closed, retired
    }

    let base: Base

    /// Nothing has needed the shard yet (connections are made on first use), or it has nothing to
    /// subscribe to after `flush()`. Counts as healthy.
    public static let idle = ShardStatus(base: .idle)
    /// The first connection is being made, or it failed (a wrong port or password): not healthy.
    public static let connecting = ShardStatus(base: .connecting)
    /// Both connections are up and every wanted channel and group is subscribed.
    public static let ready = ShardStatus(base: .ready)
    /// A connection was lost after the shard was ready; the layer is reconnecting or resubscribing.
    /// Messages published to this shard meanwhile are lost (pub/sub is at most once).
    public static let reconnecting = ShardStatus(base: .reconnecting)
    /// The layer was closed.
    public static let closed = ShardStatus(base: .closed)
    /// Redis Cluster only: the node is no longer a primary (it failed over to its replica, or lost its slots), and
    /// its connections are closed. Its entry stays in ``RedisPubSubChannelLayer/shardStatuses`` so that the other
    /// shards keep their indices (the `shard:` of ``ConnectionEvent``); nothing is routed to it. Counts as healthy.
    public static let retired = ShardStatus(base: .retired)

    /// Whether a readiness probe should pass: `.idle`, `.ready` or `.retired`.
    public var isHealthy: Bool { base == .idle || base == .ready || base == .retired }

    public var description: String {
        switch base {
        case .idle: "idle"
        case .connecting: "connecting"
        case .ready: "ready"
        case .reconnecting: "reconnecting"
        case .closed: "closed"
        case .retired: "retired"
        }
    }
}

/// Where a shard publishes its status for any thread to read (the shard itself is loop-confined).
final class ShardStatusCell: Sendable {
    private let value = Atomic<UInt8>(ShardStatus.Base.idle.rawValue)

    var status: ShardStatus { ShardStatus(base: ShardStatus.Base(rawValue: value.load(ordering: .relaxed)) ?? .idle) }

    /// Stores `status`; returns whether it changed.
    func store(_ status: ShardStatus) -> Bool {
        value.exchange(status.base.rawValue, ordering: .relaxed) != status.base.rawValue
    }
}
