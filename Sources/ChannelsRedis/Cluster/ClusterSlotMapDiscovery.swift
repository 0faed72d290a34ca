internal import CHiredis

/// Asks a Redis Cluster for its slot map: each candidate node in turn, on a short-lived connection of its own, until
/// one answers `CLUSTER SHARDS` (or, where that is refused or unknown, `CLUSTER SLOTS`). Loop-confined.
///
/// The candidates are the configured seeds at start, and later the nodes of the current map followed by the seeds (a
/// map can name only nodes that have all gone). A candidate that cannot be reached, times out (the connect timeout
/// covers the whole exchange), refuses AUTH or answers with something that is not a slot map costs only a move to the
/// next one; when none is left, the completion gets the last error. A node that has cluster support disabled is
/// reported at once as `invalidConfiguration`: the URL names a plain server.
///
/// ```swift
/// // on the loop thread
/// ClusterSlotMapDiscovery(candidates: cluster.seeds, cluster: cluster, loop: loop, timeout: .seconds(5)).start { result in … }
/// ```
final class ClusterSlotMapDiscovery {
    // Not Sendable: loop-confined, like the HiredisConnection it owns (every entry point is a job, a timer or a
    // hiredis callback on the loop thread).
    typealias Completion = (Result<Discovered, ChannelLayerError>) -> Void

    /// A map and the node that gave it.
    struct Discovered: Sendable {
        var map: ClusterSlotMap
        var source: RedisEndpoint.Address
        /// Whether it came from `CLUSTER SLOTS` because `CLUSTER SHARDS` was refused.
        var usedClusterSlots: Bool
    }

    private let candidates: [RedisEndpoint.Address]
    private let cluster: RedisClusterEndpoint
    private let loop: LibeventLoop
    private let timeout: Duration
    private var completion: Completion?
    private var next = 0
    private var connection: HiredisConnection?
    private var address: RedisEndpoint.Address?
    /// The replies still to come on the current connection, in order.
    private var expected: [Expected] = []
    private var lastError: ChannelLayerError?
    /// Holds the discovery alive while it runs: its connection's delegate reference is unowned.
    private var running: ClusterSlotMapDiscovery?

    private enum Expected {
        case auth, shards, slots
    }

    init(candidates: [RedisEndpoint.Address], cluster: RedisClusterEndpoint, loop: LibeventLoop, timeout: Duration) {
        var unique: [RedisEndpoint.Address] = []
        for candidate in candidates where !unique.contains(candidate) { unique.append(candidate) }
        self.candidates = unique
        self.cluster = cluster
        self.loop = loop
        self.timeout = timeout
    }

    /// Starts asking; `completion` runs once, on the loop thread, never inside this call.
    func start(_ completion: @escaping Completion) {
        loop.preconditionInLoop()
        precondition(self.completion == nil, "a discovery runs once")
        self.completion = completion
        running = self
        loop.execute(with: self) { discovery in discovery.tryNext() }
    }

    /// Stops without calling the completion (the layer is closing). Idempotent.
    func cancel() {
        loop.preconditionInLoop()
        completion = nil
        closeConnection()
        running = nil
    }

    private func tryNext() {
        guard completion != nil else { return }
        guard next < candidates.count else {
            let reason = lastError?.message ?? "no node to ask"
            return finish(
                .failure(
                    ChannelLayerError(
                        .connectionFailed,
                        "no node of the Redis Cluster \(cluster) gave its slot map (asked \(candidates.count)); last: \(reason)",
                        underlying: lastError
                    )
                )
            )
        }
        let address = candidates[next]
        next += 1
        self.address = address
        let connection = HiredisConnection(endpoint: cluster.endpoint(for: address), loop: loop)
        connection.delegate = self
        self.connection = connection
        expected = []
        connection.connect(timeout: timeout)
        guard connection.state == .connecting else { return }  // the failure comes through the delegate
        if let password = cluster.password {
            if let username = cluster.username { connection.command(["AUTH", username, password]) } else { connection.command(["AUTH", password]) }
            expected.append(.auth)
        }
        connection.command(["CLUSTER", "SHARDS"])
        expected.append(.shards)
    }

    private func reply(_ value: RedisValue) {
        guard completion != nil, let address, !expected.isEmpty else { return }
        let what = expected.removeFirst()
        switch what {
        case .auth:
            if let message = value.errorMessage {
                lastError = ChannelLayerError(.connectionFailed, "AUTH to \(address) failed: \(message)")
                expected = []
                abandonLater()
            }
        case .shards, .slots:
            if let message = value.errorMessage {
                if message.contains("cluster support disabled") {
                    return finish(
                        .failure(
                            ChannelLayerError(
                                .invalidConfiguration,
                                "\(address) is not a Redis Cluster node (\(message)); use a redis:// URL for a single server"
                            )
                        )
                    )
                }
                if what == .shards {
                    // Older than 7.0 (unknown subcommand), or an ACL that allows only CLUSTER SLOTS.
                    connection?.command(["CLUSTER", "SLOTS"])
                    expected.append(.slots)
                    return
                }
                lastError = ChannelLayerError(.commandRefused, "\(address) refused CLUSTER SHARDS and CLUSTER SLOTS: \(message)")
                return abandonLater()
            }
            do {
                let map =
                    what == .shards
                    ? try ClusterSlotMap(shardsReply: value, askedNode: address)
                    : try ClusterSlotMap(slotsReply: value, askedNode: address)
                finish(.success(Discovered(map: map, source: address, usedClusterSlots: what == .slots)))
            } catch {
                lastError = ChannelLayerError(.commandRefused, "the slot map from \(address) could not be read: \(error.reason)")
                abandonLater()
            }
        }
    }

    /// On to the next candidate, from a job: never free a context inside its own reply callback.
    private func abandonLater() {
        loop.execute(with: self) { discovery in
            discovery.closeConnection()
            discovery.tryNext()
        }
    }

    private func finish(_ result: Result<Discovered, ChannelLayerError>) {
        guard let completion else { return }
        self.completion = nil
        loop.execute(with: self) { discovery in
            discovery.closeConnection()
            discovery.running = nil
            completion(result)
        }
    }

    private func closeConnection() {
        connection?.close()
        connection = nil
        expected = []
    }
}

extension ClusterSlotMapDiscovery: HiredisConnectionDelegate {
    func connection(_ connection: HiredisConnection, didReceiveReply reply: UnsafePointer<redisReply>?) {
        guard connection === self.connection, let reply else { return }  // nil: the context is being freed
        self.reply(RedisValue(reply))
    }

    func connection(_ connection: HiredisConnection, didConfirm subscribed: Bool, channel: UnsafeRawBufferPointer) {}

    func connection(_ connection: HiredisConnection, didReceiveMessage payload: UnsafeRawBufferPointer, on channel: UnsafeRawBufferPointer) {}

    func connection(_ connection: HiredisConnection, didCloseWithError error: ChannelLayerError) {
        guard connection === self.connection else { return }
        lastError = error
        self.connection = nil
        expected = []
        tryNext()
    }
}
