import Logging

/// Cluster mode's routing state, owned by the engine (loop-confined like it): the slot map, one ``RedisShard`` per
/// primary, where each wanted channel is subscribed now, and the operations waiting for the first map.
final class ClusterRouting {
    // Not Sendable: loop-confined, a stored property of the engine.
    let endpoint: RedisClusterEndpoint
    var map: ClusterSlotMap?
    var shardsByPrimary: [RedisEndpoint.Address: RedisShard] = [:]
    /// The shard each wanted channel was handed to: an unwant goes there even after the map moved its slot.
    var homes: [String: RedisShard] = [:]
    /// Channels that lost their home (a redirect, a moved slot) and wait for a newer map, with their waiters.
    var displaced: [String: [SubscribeWaiters.Completion]] = [:]
    /// Operations that came before the first map; run in order once it comes, or failed.
    var parked: [(ChannelLayerError?) -> Void] = []
    /// Redirected publishes waiting for the next fetch of the map (successful or not).
    var afterRefresh: [() -> Void] = []
    var discovery: ClusterSlotMapDiscovery?
    /// A refresh was asked for while one ran: the running one may have read the old map.
    var refreshAgain = false
    var refreshTimer: LoopTimer?
    /// When `refreshTimer` fires.
    var refreshDue: ContinuousClock.Instant?
    var failedRounds = 0
    var closed = false

    /// How often the map is fetched while any primary is unhealthy (a failover is due); while every one is healthy,
    /// ``RedisPubSubChannelLayer/Configuration/clusterSlotMapRefreshInterval``.
    static let unhealthyRefreshInterval: Duration = .milliseconds(500)
    /// The shortest pause between two fetches asked for by redirects and losses.
    static let minimumRefreshPause: Duration = .milliseconds(100)

    init(endpoint: RedisClusterEndpoint) {
        self.endpoint = endpoint
    }

    /// `flush()`: nothing is wanted any more; channels waiting for a home fail with `error`.
    func dropSubscriptions(_ error: ChannelLayerError) {
        homes = [:]
        let waiting = displaced
        displaced = [:]
        for (_, waiters) in waiting { for waiter in waiters { waiter(error) } }
    }

    func close() {
        closed = true
        discovery?.cancel()
        discovery = nil
        refreshTimer?.cancel()
        refreshTimer = nil
        let error = ChannelLayerError.closed()
        for operation in parked { operation(error) }
        parked = []
        for (_, waiters) in displaced { for waiter in waiters { waiter(error) } }
        displaced = [:]
        let redirected = afterRefresh
        afterRefresh = []
        for publish in redirected { publish() }  // each fails with layerClosed
    }
}

extension PubSubEngine {
    enum ClusterPayloads {
        case one([UInt8])
        case batch(PayloadBatch)
    }

    func startCluster() {
        refreshClusterMap()
    }

    // MARK: Operations

    /// How many redirects one publish follows before it fails: a slot moves once, a failover is one more.
    static let maximumPublishRedirects = 5

    /// Publishes on the shard of the slot's primary (or of `target`). The SPUBLISHes Redis redirects are sent again,
    /// exactly those, each at most ``maximumPublishRedirects`` times: after `-MOVED` to the node named (the map is
    /// refreshed too), after `-ASK` to the node named with ASKING before each (one-shot: the map keeps the owner), or,
    /// if the layer has no shard for that node yet, once the next map came. It succeeds once every payload was
    /// confirmed, with the receivers of all of them.
    ///
    /// Redis 7.0 (7.0.15 checked) never sends `-ASK` for SPUBLISH or SSUBSCRIBE: a channel is not a key, so while its
    /// slot is MIGRATING the source serves both (even when the slot's keys have moved), and once the slot is assigned
    /// (`CLUSTER SETSLOT … NODE`) it answers `-MOVED` and ends the subscriptions with `sunsubscribe` pushes. `-ASK` is
    /// followed anyway, for servers that send it.
    func clusterPublish(
        to redisChannel: String,
        payloads: ClusterPayloads,
        continuation: RedisShard.PublishContinuation,
        target: RedisEndpoint.Address? = nil,
        asking: Bool = false,
        redirects: Int = 0,
        receivers: Int = 0
    ) {
        withClusterMap(orFail: { continuation.resume(throwing: $0) }) { [self] in
            guard let cluster else { return continuation.resume(throwing: ChannelLayerError.closed()) }
            let targetShard = target.flatMap { cluster.shardsByPrimary[$0] }
            guard let shard = targetShard ?? clusterOwner(of: redisChannel) else {
                return continuation.resume(throwing: noOwnerError(redisChannel))
            }
            let retry: ClusterPublishWaiter.Retry = { [self] redirect, redirected, receivers, continuation in
                guard let cluster = self.cluster, !cluster.closed else { return continuation.resume(throwing: ChannelLayerError.closed()) }
                guard redirects < Self.maximumPublishRedirects else {
                    return continuation.resume(
                        throwing: ChannelLayerError(
                            .commandRefused,
                            "Redis redirected SPUBLISH to '\(redisChannel)' \(redirects + 1) times (last: to \(redirect.address)); the cluster is reconfiguring"
                        )
                    )
                }
                statistics.cluster.redirectedPublishes.add(1)
                let again = { [self] in
                    clusterPublish(
                        to: redisChannel,
                        payloads: redirected,
                        continuation: continuation,
                        target: redirect.address,
                        asking: !redirect.isMoved,
                        redirects: redirects + 1,
                        receivers: receivers
                    )
                }
                if cluster.shardsByPrimary[redirect.address] != nil {
                    again()
                } else {
                    // A node the layer has no connections to yet: again once the next map came (then to that node if
                    // the map names it a primary, else to the slot's owner).
                    cluster.afterRefresh.append(again)
                    requestClusterRefresh()
                }
            }
            let waiter = ClusterPublishWaiter(
                payloads: payloads,
                asking: asking && targetShard != nil,
                receivers: receivers,
                continuation: continuation,
                retry: retry
            )
            shard.publish(channel: redisChannel, clusterWaiter: waiter)
        }
    }

    func clusterWant(_ redisChannel: String, completion: @escaping SubscribeWaiters.Completion) {
        withClusterMap(orFail: completion) { [self] in
            guard let cluster else { return completion(ChannelLayerError.closed()) }
            if cluster.displaced[redisChannel] != nil {
                cluster.displaced[redisChannel]!.append(completion)
                return
            }
            guard let shard = cluster.homes[redisChannel] ?? clusterOwner(of: redisChannel) else {
                return completion(noOwnerError(redisChannel))
            }
            cluster.homes[redisChannel] = shard
            shard.want(redisChannel, completion: completion)
        }
    }

    func clusterUnwant(_ redisChannel: String) {
        withClusterMap(orFail: { _ in }) { [self] in
            guard let cluster else { return }
            if let waiters = cluster.displaced.removeValue(forKey: redisChannel) {
                let error = ChannelLayerError(.channelClosed, "'\(redisChannel)' is no longer needed")
                for waiter in waiters { waiter(error) }
            }
            cluster.homes.removeValue(forKey: redisChannel)?.unwant(redisChannel)
        }
    }

    /// Runs `body` now if the first map has come, else once it comes (`fail` if fetching it failed or the layer closed).
    private func withClusterMap(orFail fail: @escaping (ChannelLayerError) -> Void, _ body: @escaping () -> Void) {
        guard let cluster, !cluster.closed else { return fail(ChannelLayerError.closed()) }
        if cluster.map != nil { return body() }
        cluster.parked.append { error in
            if let error { fail(error) } else { body() }
        }
    }

    /// The shard of the primary that the current map says serves `redisChannel`'s slot.
    func clusterOwner(of redisChannel: String) -> RedisShard? {
        guard let cluster, let primary = cluster.map?.primary(forSlot: ClusterKeySlot.slot(for: redisChannel)) else { return nil }
        return cluster.shardsByPrimary[primary.address]
    }

    private func noOwnerError(_ redisChannel: String) -> ChannelLayerError {
        ChannelLayerError(
            .connectionFailed,
            "no primary of the Redis Cluster serves slot \(ClusterKeySlot.slot(for: redisChannel)) of '\(redisChannel)' (the cluster is failing over or missing slots)"
        )
    }

    // MARK: The slot map

    /// Fetches the map now, or as soon as the running fetch ends.
    func refreshClusterMap() {
        guard let cluster, !cluster.closed else { return }
        if cluster.discovery != nil {
            cluster.refreshAgain = true
            return
        }
        cluster.refreshTimer?.cancel()
        cluster.refreshTimer = nil
        cluster.refreshDue = nil
        var candidates: [RedisEndpoint.Address] = []
        if let map = cluster.map {
            for shard in map.shards {
                candidates.append(shard.primary.address)
                candidates.append(contentsOf: shard.replicas.map(\.address))
            }
        }
        candidates.append(contentsOf: cluster.endpoint.seeds)
        let discovery = ClusterSlotMapDiscovery(candidates: candidates, cluster: cluster.endpoint, loop: loop, timeout: configuration.connectTimeout)
        cluster.discovery = discovery
        discovery.start { [self] result in
            guard let cluster = self.cluster, !cluster.closed else { return }
            cluster.discovery = nil
            switch result {
            case .success(let found):
                cluster.failedRounds = 0
                apply(found.map)
            case .failure(let error):
                cluster.failedRounds += 1
                logger.warning("could not fetch the Redis Cluster's slot map", metadata: [LogKey.error: "\(error.message)"])
                if cluster.map == nil {
                    let parked = cluster.parked
                    cluster.parked = []
                    for operation in parked { operation(error) }
                }
            }
            let redirected = cluster.afterRefresh
            cluster.afterRefresh = []
            for publish in redirected { publish() }
            scheduleClusterRefresh()
        }
    }

    /// The next fetch: soon after a request that came during the last one, soon while a primary is unhealthy or
    /// channels wait for a home, with backoff after failures, else at the periodic interval.
    private func scheduleClusterRefresh() {
        guard let cluster, !cluster.closed else { return }
        let delay: Duration
        if cluster.failedRounds > 0 {
            delay = configuration.retry.delay(forAttempt: cluster.failedRounds)
        } else if cluster.refreshAgain || !cluster.displaced.isEmpty {
            delay = ClusterRouting.minimumRefreshPause
        } else if cluster.shardsByPrimary.values.contains(where: { !$0.health.isHealthy }) {
            delay = ClusterRouting.unhealthyRefreshInterval
        } else {
            delay = configuration.clusterSlotMapRefreshInterval
        }
        cluster.refreshAgain = false
        scheduleClusterRefresh(after: delay)
    }

    /// Asks for a fetch soon (a redirect, a lost connection), at most one per ``ClusterRouting/minimumRefreshPause``.
    func requestClusterRefresh() {
        guard let cluster, !cluster.closed else { return }
        if cluster.discovery != nil {
            cluster.refreshAgain = true
            return
        }
        // Not postponed by the next request: under traffic every publish to a moved slot asks for one.
        if cluster.refreshTimer != nil, let due = cluster.refreshDue, due <= ContinuousClock.now + ClusterRouting.minimumRefreshPause { return }
        scheduleClusterRefresh(after: ClusterRouting.minimumRefreshPause)
    }

    private func scheduleClusterRefresh(after delay: Duration) {
        guard let cluster else { return }
        cluster.refreshTimer?.cancel()
        cluster.refreshDue = ContinuousClock.now + delay
        cluster.refreshTimer = loop.scheduleTimer(after: delay) { [self] in
            self.cluster?.refreshTimer = nil
            self.cluster?.refreshDue = nil
            refreshClusterMap()
        }
    }

    /// Takes a newly fetched map: a shard for each new primary, channels moved to their slot's new owner, operations
    /// waiting for the first map run, shards of nodes that are no longer primaries closed.
    private func apply(_ map: ClusterSlotMap) {
        guard let cluster else { return }
        let changed = cluster.map != map
        cluster.map = map
        statistics.cluster.slotMapRefreshes.add(1)
        for primary in map.primaries where cluster.shardsByPrimary[primary.address] == nil {
            cluster.shardsByPrimary[primary.address] = makeClusterShard(primary)
        }
        if changed {
            logger.debug("Redis Cluster slot map", metadata: [LogKey.cluster: "\(map)"])
        }
        // Channels whose slot another primary serves now.
        for (name, shard) in cluster.homes {
            guard let owner = clusterOwner(of: name), owner !== shard else { continue }
            let waiters = shard.handOver(name)
            rehome(name, to: owner, waiters: waiters)
        }
        // Channels waiting for a home since a redirect or a moved slot.
        let displaced = cluster.displaced
        cluster.displaced = [:]
        for (name, waiters) in displaced {
            if let owner = clusterOwner(of: name) {
                rehome(name, to: owner, waiters: waiters)
            } else {
                cluster.displaced[name] = waiters  // no owner yet: the next map
            }
        }
        let parked = cluster.parked
        cluster.parked = []
        for operation in parked { operation(nil) }
        retireStaleClusterShards()
    }

    private func rehome(_ name: String, to owner: RedisShard, waiters: [SubscribeWaiters.Completion]) {
        guard let cluster else { return }
        cluster.homes[name] = owner
        statistics.cluster.rehomedChannels.add(1)
        logger.debug("channel moved to another primary", metadata: [LogKey.channel: "\(name)", LogKey.host: "\(owner.endpoint)"])
        if waiters.isEmpty {
            owner.want(name, completion: nil)
        } else {
            for waiter in waiters { owner.want(name, completion: waiter) }
        }
    }

    private func makeClusterShard(_ primary: ClusterSlotMap.Node) -> RedisShard {
        let (cell, index) = statusCells.append()
        let shard = RedisShard(
            index: index,
            endpoint: cluster!.endpoint.endpoint(for: primary.address),
            tls: nil,
            loop: loop,
            configuration: configuration,
            statistics: statistics,
            statusCell: cell,
            metricsFactory: metricsFactory,
            logger: logger,
            sharded: true
        )
        shard.delegate = self
        shards.append(shard)
        shard.activate()
        return shard
    }

    /// Closes the shards of nodes the map no longer names as primaries once nothing is subscribed through them; their
    /// status cells stay, as ``ShardStatus/retired``.
    private func retireStaleClusterShards() {
        guard let cluster, let map = cluster.map else { return }
        let primaries = Set(map.primaries.map(\.address))
        for (address, shard) in cluster.shardsByPrimary where !primaries.contains(address) {
            guard !cluster.homes.values.contains(where: { $0 === shard }) else { continue }
            cluster.shardsByPrimary[address] = nil
            shards.removeAll { $0 === shard }
            shard.close(
                failingWith: ChannelLayerError(
                    .connectionLost,
                    "\(shard.endpoint) is no longer a primary of the Redis Cluster; the message may or may not have been published"
                )
            )
            // Kept, as retired: the other shards' indices (their ConnectionEvents' `shard:`) stay their positions.
            _ = shard.statusCell.store(.retired)
            logger.debug("closed the connections to a node that is no longer a primary", metadata: [LogKey.host: "\(shard.endpoint)"])
        }
    }
}

extension PubSubEngine: ClusterShardDelegate {
    func shard(_ shard: RedisShard, lostChannel channel: String, redirect: ClusterRedirect?, waiters: [SubscribeWaiters.Completion]) {
        guard let cluster, !cluster.closed else { return }
        _ = shard.handOver(channel)
        if cluster.homes[channel] === shard { cluster.homes[channel] = nil }
        cluster.displaced[channel, default: []].append(contentsOf: waiters)
        requestClusterRefresh()
    }

    func shard(_ shard: RedisShard, wasRedirected redirect: ClusterRedirect) {
        requestClusterRefresh()
    }
}
