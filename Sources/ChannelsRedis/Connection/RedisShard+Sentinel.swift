internal import CHiredis
import Logging
import Metrics

// MARK: - Sentinel

/// A shard on a Sentinel endpoint connects to whichever node the sentinels name the master, and
/// leaves a node that stopped being the master in three ways, so that a single missed signal is
/// not enough to keep it publishing to a demoted master (which still accepts PUBLISH and delivers
/// to its own subscribers only):
///
/// - `+switch-master` from the watched sentinel, or the master it names when the watch connects;
/// - `ROLE` in the handshake of both connections (a connection that lands on a replica fails and
///   retries, asking the sentinels again);
/// - `ROLE` beside every liveness probe on the publisher.
extension RedisShard: SentinelClientDelegate {
    func sentinelClient(_ client: SentinelClient, reportedMaster master: RedisEndpoint.Address, failover: Bool) {
        guard !closed else { return }
        leave(
            unless: master,
            because: { old in
                failover
                    ? "Sentinel failover: the master of '\(client.settings.masterName)' moved from \(old) to \(master)"
                    : "the sentinels name \(master) the master of '\(client.settings.masterName)', not \(old)"
            }
        )
    }

    /// The publisher's `ROLE` beside a liveness probe came back.
    func roleChecked(_ reply: UnsafePointer<redisReply>) {
        guard let role = Self.role(reply), role != "master" else { return }
        leave(unless: nil, because: { old in "\(old) is a \(role) now, no longer the master (a failover)" })
    }

    /// Fails each connection that is connected, or connecting, to a node other than `master`
    /// (every node when `master` is nil), so that it reconnects through the sentinels.
    private func leave(unless master: RedisEndpoint.Address?, because reason: (RedisEndpoint.Address) -> String) {
        var left = false
        for role in [Role.publisher, .subscriber] {
            let connection = connection(role)
            let node = connection.endpoint.address
            guard connection.state != .idle, node != master else { continue }
            let error = ChannelLayerError(.connectionLost, reason(node))
            if !left {
                left = true
                health.lastError = error
                statistics.failovers.add(1)
                metrics.failovers.increment()
                logger.info("leaving a node that is not the master", metadata: [LogKey.error: "\(error.message)"])
            }
            // Not inside the hiredis callback that brought the news.
            let generation = connection.generation
            loop.execute(with: connection) { connection in
                guard connection.generation == generation else { return }
                connection.fail(error)
            }
        }
    }

    /// The role a `ROLE` reply names (`master`, `slave`, `sentinel`), or `nil` for another reply.
    static func role(_ reply: UnsafePointer<redisReply>) -> String? {
        guard reply.pointee.type == REDIS_REPLY_ARRAY, reply.pointee.elements >= 1, let first = reply.pointee.element?[0],
            first.pointee.type == REDIS_REPLY_STRING
        else { return nil }
        return RedisReply.text(UnsafePointer(first))
    }

    /// A handshake `ROLE` did not say `master`: the next resolution asks another sentinel first, and
    /// this is the connection's error.
    func refuseNonMaster(_ role: String, on connection: HiredisConnection) -> ChannelLayerError {
        sentinel?.answerWasStale()
        let name = sentinel?.settings.masterName ?? ""
        return ChannelLayerError(
            .connectionFailed,
            "\(connection.endpoint.address) is a \(role), not the master of '\(name)' (the sentinels are behind a failover); asking them again"
        )
    }
}
