/// Whether a shard is healthy (both connections ready and every wanted channel subscribed), what a
/// change of that means (the start or the end of an outage), and the ``ShardStatus`` it shows.
///
/// A pure value: no I/O, no logging. The shard tells it the health it sees after every connection
/// event and carries out the actions.
struct ShardHealth: Sendable {
    enum Action: Equatable, Sendable {
        /// Healthy for the first time (since the shard was made or flushed): start the liveness probes.
        case startProbing
        /// Healthy again after an outage: start the probes, count the reconnect, log the outage's
        /// end (`info`, once) and tell the delegate.
        case endOutage
        /// No longer healthy: stop the probes (one in flight says nothing once a connection is
        /// gone), log the outage's one warning and tell the delegate.
        case startOutage
        case doNothing
    }

    private(set) var isHealthy = false
    /// Whether the shard was ever healthy (since it was made or flushed): after that, being
    /// unhealthy is an outage (`.reconnecting`), not a first connect.
    private(set) var everHealthy = false
    /// A first connect failed (a wrong port or password): `.connecting`, not `.idle`, until healthy.
    private(set) var firstConnectFailed = false
    /// The last connection error, for the outage's warning and for timeout messages.
    var lastError: ChannelLayerError?

    init() {}

    /// The health the shard sees now.
    mutating func update(healthy: Bool) -> Action {
        guard healthy != isHealthy else { return .doNothing }
        isHealthy = healthy
        guard healthy else {
            // Only a healthy shard becomes unhealthy, so it was healthy before: an outage.
            return .startOutage
        }
        firstConnectFailed = false
        defer { everHealthy = true }
        return everHealthy ? .endOutage : .startProbing
    }

    /// The first connect of one of the connections failed.
    mutating func connectFailed() {
        firstConnectFailed = true
    }

    /// The subscriber was dropped (`flush()`) or the shard closed: unhealthy, with no outage to report.
    mutating func reset() {
        isHealthy = false
        everHealthy = false
    }

    /// The status to publish. `connecting`: whether either connection is being made.
    func status(closed: Bool, connecting: Bool) -> ShardStatus {
        if closed { return .closed }
        if isHealthy { return .ready }
        if everHealthy { return .reconnecting }
        if firstConnectFailed || connecting { return .connecting }
        return .idle
    }
}
