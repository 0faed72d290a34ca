import Logging
import Metrics
import Synchronization

/// The state of one layer: local channels, groups, shards. Loop-confined.
///
/// The public API submits work with `loop.execute` and awaits a continuation; hiredis callbacks
/// route messages here on the loop thread. So the delivery path takes no lock of ours.
final class PubSubEngine: @unchecked Sendable {
    // @unchecked Sendable: every `var` is used only on `loop`'s thread (the public API reaches it
    // through jobs; hiredis callbacks run there). The exceptions run on consumer tasks and touch
    // only immutable or Sendable members: the `ChannelMailboxOwner` side (`decode(_:forChannel:)`:
    // `codec`, `statistics`, `logger`; `mailboxHoldsMessagesAgain`: `loop`, to submit a job) and
    // `isClosed` (an Atomic).
    let loop: LibeventLoop
    let configuration: RedisPubSubChannelLayer.Configuration
    let codec: MessageCodec
    let statistics: LayerStatistics
    let events: ConnectionEventBroadcaster
    /// Also in `router`; this copy is immutable, for `groupChannel(_:)` on callers' threads.
    let groupPrefix: String
    let logger: Logger
    var shards: [RedisShard] = []
    /// Cluster mode's routing (PubSubEngine+Cluster.swift), `nil` for configured hosts.
    var cluster: ClusterRouting?

    private(set) var closed = false
    /// Set (first) when the layer closes; read by consumers on any thread to tell `layerClosed`
    /// apart from a channel that was cleaned up.
    let isClosed = Atomic<Bool>(false)
    /// Local channels, groups and the route cache (`@exclusivity(unchecked)`: see below; routing a
    /// message mutates only the cache).
    @exclusivity(unchecked) private var router: Router
    private var nextChannelID: UInt64 = 0
    // The message path's loop-confined state is `@exclusivity(unchecked)`: every access is a short
    // read or mutation that calls out to nothing re-entering the engine (deliveries are swapped out
    // before mailboxes are touched), so no two can overlap, and the dynamic check would cost a
    // measurable share of the message path.

    /// What the current pass of the loop delivered, in order, handed to the mailboxes at its end by
    /// `deliverPending()` (one lock per run of messages for one channel or one group); spare
    /// arrays so the job allocates nothing.
    @exclusivity(unchecked) private var pendingDeliveries: [PendingDelivery] = []
    @exclusivity(unchecked) private var spareDeliveries: [PendingDelivery] = []
    /// Consumers that took a message in this pass, resumed at its end, each once.
    @exclusivity(unchecked) private var handoffs: [ChannelMailbox.Handoff] = []

    private struct PendingDelivery {
        /// The one local channel the entry is for; `nil`: every channel of `members`.
        let channel: LocalChannel?
        /// A group's local members (the route's array, shared): one pending delivery per Redis
        /// message however many members there are.
        let members: [LocalChannel]
        let entry: ChannelMailbox.Entry
    }
    private var lastDropWarning: ContinuousClock.Instant?
    /// The sweep that finds channels holding messages nobody consumes (`unconsumedChannelThreshold`).
    private var unconsumedSweep: LoopTimer?
    /// The channels that sweep looks at: each one that got messages since the last sweep or still
    /// held some at it (`ChannelMailbox.isSweepCandidate` marks them, so a delivery adds a channel
    /// once), not every channel: a server with many idle consumers would otherwise take every
    /// mailbox's lock each sweep. A channel leaves at the first sweep that finds its mailbox empty
    /// or finished, so a discarded one is held until then.
    @exclusivity(unchecked) private var sweepCandidates: [LocalChannel] = []
    private var lastUnconsumedReport: ContinuousClock.Instant?

    init(
        loop: LibeventLoop,
        configuration: RedisPubSubChannelLayer.Configuration,
        endpoints: [RedisEndpoint],
        cluster: RedisClusterEndpoint? = nil,
        tlsContexts: [OpenSSLContext?],
        codec: MessageCodec,
        statistics: LayerStatistics,
        events: ConnectionEventBroadcaster,
        statusCells: ShardStatusList,
        metricsFactory: any MetricsFactory,
        logger: Logger
    ) {
        self.statusCells = statusCells
        self.metricsFactory = metricsFactory
        self.metrics = LayerMetrics(factory: metricsFactory)
        self.loop = loop
        self.configuration = configuration
        self.codec = codec
        self.statistics = statistics
        self.events = events
        self.logger = logger
        self.groupPrefix = "\(configuration.prefix)__group__"
        self.router = Router(groupPrefix: groupPrefix)
        // Shards are created on the loop thread in `start()`: they own hiredis state.
        self.pendingEndpoints = endpoints
        self.pendingTLSContexts = tlsContexts
        self.cluster = cluster.map { ClusterRouting(endpoint: $0) }
    }

    private var pendingEndpoints: [RedisEndpoint]
    /// Parallel to `pendingEndpoints`: the TLS context of each `rediss://` endpoint.
    private var pendingTLSContexts: [OpenSSLContext?]
    let statusCells: ShardStatusList
    let metricsFactory: any MetricsFactory
    private let metrics: LayerMetrics
    private var metricsTimer: LoopTimer?

    func start() {
        loop.preconditionInLoop()
        shards = pendingEndpoints.enumerated().map { index, endpoint in
            let shard = RedisShard(
                index: index,
                endpoint: endpoint,
                tls: pendingTLSContexts[index],
                loop: loop,
                configuration: configuration,
                statistics: statistics,
                statusCell: statusCells.all[index],
                metricsFactory: metricsFactory,
                logger: logger
            )
            shard.delegate = self
            return shard
        }
        pendingEndpoints = []
        pendingTLSContexts = []
        if cluster != nil { startCluster() }
        scheduleUnconsumedSweep()
        scheduleMetricsReport()
    }

    /// Hands the per-message counters and the channel and group counts to swift-metrics once a
    /// second (and at close), so the message path never calls into a metrics backend.
    private func scheduleMetricsReport() {
        metricsTimer = loop.scheduleTimer(after: .seconds(1)) { [self] in
            metricsTimer = nil
            guard !closed else { return }
            metrics.report(statistics, channels: router.channels.count, groups: router.groups.count)
            scheduleMetricsReport()
        }
    }

    /// The shard of a Redis channel name, with channels_redis's consistent hash.
    private func shard(for redisChannel: String) -> RedisShard {
        if shards.count == 1 { return shards[0] }
        return shards[ConsistentHash.shardIndex(for: redisChannel, shardCount: shards.count)]
    }

    func groupChannel(_ group: String) -> String { groupPrefix + group }

    /// Subscribes `redisChannel` on its shard (in cluster mode, once the slot map says which).
    private func want(_ redisChannel: String, completion: @escaping SubscribeWaiters.Completion) {
        if cluster != nil { return clusterWant(redisChannel, completion: completion) }
        shard(for: redisChannel).want(redisChannel, completion: completion)
    }

    private func unwant(_ redisChannel: String) {
        if cluster != nil { return clusterUnwant(redisChannel) }
        shard(for: redisChannel).unwant(redisChannel)
    }

    // MARK: Operations (each runs as one job on the loop)

    func publish(to redisChannel: String, payload: [UInt8], continuation: RedisShard.PublishContinuation) {
        guard !closed else { return continuation.resume(throwing: ChannelLayerError.closed()) }
        if cluster != nil { return clusterPublish(to: redisChannel, payloads: .one(payload), continuation: continuation) }
        shard(for: redisChannel).publish(channel: redisChannel, payload: payload, continuation: continuation)
    }

    func publish(to redisChannel: String, payloads: PayloadBatch, continuation: RedisShard.PublishContinuation) {
        guard !closed else { return continuation.resume(throwing: ChannelLayerError.closed()) }
        if cluster != nil { return clusterPublish(to: redisChannel, payloads: .batch(payloads), continuation: continuation) }
        shard(for: redisChannel).publish(channel: redisChannel, payloads: payloads, continuation: continuation)
    }

    /// Creates a channel owned by this layer and subscribes it; completes once Redis confirmed.
    func newChannel(_ name: String, continuation: RedisShard.Continuation) {
        guard !closed else { return continuation.resume(throwing: ChannelLayerError.closed()) }
        let channel = makeChannel(name)
        subscribe(channel) { error in
            if let error { continuation.resume(throwing: error) } else { continuation.resume() }
        }
    }

    /// The mailbox of a local channel, creating (and subscribing) a general channel on demand.
    func mailbox(for name: String, continuation: LoopContinuation<ChannelMailbox>) {
        guard !closed else { return continuation.resume(throwing: ChannelLayerError.closed()) }
        if let existing = router.channels[name] {
            // Existing channels are handed out at once, even while a reconnect is resubscribing them.
            return continuation.resume(returning: existing)
        }
        let channel = makeChannel(name)
        let mailbox: ChannelMailbox = channel
        subscribe(channel) { error in
            if let error { continuation.resume(throwing: error) } else { continuation.resume(returning: mailbox) }
        }
    }

    private func makeChannel(_ name: String) -> LocalChannel {
        nextChannelID &+= 1
        let id = nextChannelID
        let channel = LocalChannel(name: name, id: id, capacity: configuration.capacity, owner: self)
        router.add(channel)?.finish(.replaced)
        return channel
    }

    private func subscribe(_ channel: LocalChannel, completion: @escaping (ChannelLayerError?) -> Void) {
        let name = channel.name
        let id = channel.id
        // `self` strongly (see RedisShard's timers: no weak references to the engine or shards);
        // the shard runs every completion once (confirmed, timed out, or failed by close).
        want(name) { [self] error in
            if error != nil { removeChannel(name, id: id) }
            completion(error)
        }
    }

    func groupAdd(_ group: String, channel name: String, continuation: RedisShard.Continuation) {
        guard !closed else { return continuation.resume(throwing: ChannelLayerError.closed()) }
        guard let channel = router.channels[name] else {
            return continuation.resume(
                throwing: ChannelLayerError(
                    .notAMember,
                    "groupAdd() needs a channel that exists in this layer (made by newChannel() or being received from); '\(name)' does not"
                )
            )
        }
        router.join(group, channel)
        let redisChannel = groupChannel(group)
        let id = channel.id
        want(redisChannel) { [self] error in
            if let error {
                if router.channels[name]?.id == id { discard(group, channel: name) }
                continuation.resume(throwing: error)
            } else {
                continuation.resume()
            }
        }
    }

    func groupDiscard(_ group: String, channel name: String) {
        guard !closed else { return }
        discard(group, channel: name)
    }

    /// Ends a local channel: `discard(channel:)` or the end of a scope. A no-op for a channel that
    /// is not (or no longer) local.
    func discard(channel name: String) {
        guard !closed else { return }
        removeChannel(name, id: nil)
    }

    private func discard(_ group: String, channel name: String) {
        guard let channel = router.channels[name], router.leave(group, channel) else { return }
        unwant(groupChannel(group))
    }

    /// Removes the local channel `name` (only if it is the one with `id`, when given), with its
    /// group memberships and subscriptions.
    private func removeChannel(_ name: String, id: UInt64?) {
        guard !closed, let (channel, emptiedGroups) = router.remove(name, id: id) else { return }
        channel.finish(.discarded)
        for group in emptiedGroups {
            unwant(groupChannel(group))
        }
        unwant(name)
        logger.debug("local channel removed", metadata: [LogKey.channel: "\(name)"])
    }

    /// Drops every local channel and group and every subscriber connection, as if new.
    func flush(continuation: RedisShard.Continuation) {
        guard !closed else { return continuation.resume(throwing: ChannelLayerError.closed()) }
        for channel in router.removeAll() { channel.finish(.flushed) }
        sweepCandidates = []
        let error = ChannelLayerError(.channelClosed, "the layer was flushed")
        for shard in shards { shard.dropSubscriptions(error) }
        cluster?.dropSubscriptions(error)
        continuation.resume()
    }

    /// Closes every connection and finishes every stream with `layerClosed`. Idempotent.
    func close() {
        guard !closed else { return }
        isClosed.store(true, ordering: .releasing)
        unconsumedSweep?.cancel()
        unconsumedSweep = nil
        metricsTimer?.cancel()
        metricsTimer = nil
        cluster?.close()
        for shard in shards { shard.close() }
        closed = true
        for channel in router.removeAll() { channel.finish(.closed) }
        sweepCandidates = []
        metrics.report(statistics, channels: 0, groups: 0)
        events.finish()
        logger.debug("layer closed")
    }

    // MARK: Delivery

    /// Queues `message` for `channel`'s mailbox. Everything queued in one pass of the loop (all the
    /// replies hiredis parsed from one readiness) is delivered when the pass's callback returns,
    /// then the consumers waiting for it are woken, each once.
    private func yield(_ message: ChannelMailbox.Entry, to channel: LocalChannel) {
        queue(PendingDelivery(channel: channel, members: [], entry: message))
    }

    /// Queues `message` for every channel of `members`.
    private func yield(_ message: ChannelMailbox.Entry, toAll members: [LocalChannel]) {
        queue(PendingDelivery(channel: nil, members: members, entry: message))
    }

    private func queue(_ delivery: PendingDelivery) {
        if pendingDeliveries.isEmpty {
            loop.execute { [self] in deliverPending() }
        }
        pendingDeliveries.append(delivery)
    }

    private func deliverPending() {
        var pending = spareDeliveries
        spareDeliveries = []  // (so the swapped-in buffer is not shared: no copy on the next append)
        swap(&pending, &pendingDeliveries)  // anything yielded from here on schedules its own job
        var delivered = 0
        var start = 0
        while start < pending.count {
            // A run: consecutive entries for one channel, or for one group's members (the route's
            // array, so the same storage), stored with one lock per mailbox.
            let channel = pending[start].channel
            let members = pending[start].members
            var end = start + 1
            if let channel {
                while end < pending.count, pending[end].channel === channel { end += 1 }
            } else {
                while end < pending.count, pending[end].channel == nil, pending[end].members.sharesStorage(with: members) { end += 1 }
            }
            if end == start + 1 {
                delivered += store(CollectionOfOne(pending[start].entry), in: channel, or: members)
            } else {
                // A closure, not `\.entry`: a key path is projected through the runtime, with a
                // generic-metadata look-up per element.
                delivered += store(pending[start..<end].lazy.map { $0.entry }, in: channel, or: members)
            }
            start = end
        }
        statistics.delivered.add(delivered)
        pending.removeAll(keepingCapacity: true)
        spareDeliveries = pending
        for handoff in handoffs { handoff.resume() }
        handoffs.removeAll(keepingCapacity: true)
    }

    /// Puts `entries` into `channel`'s mailbox or, without one, into each of `members`'; returns
    /// how many deliveries that made.
    @inline(__always)
    private func store(_ entries: some Collection<ChannelMailbox.Entry>, in channel: LocalChannel?, or members: [LocalChannel]) -> Int {
        if let channel { return store(entries, in: channel) }
        var stored = 0
        for member in members { stored += store(entries, in: member) }
        return stored
    }

    /// Puts `entries` into `channel`'s mailbox, noting the consumers that took one for waking at the
    /// end of the pass; returns how many were stored.
    @inline(__always)
    private func store(_ entries: some Collection<ChannelMailbox.Entry>, in channel: LocalChannel) -> Int {
        switch channel.deliver(entries, handoffs: &handoffs) {
        case .stored(let dropped):
            if !channel.isSweepCandidate { addSweepCandidate(channel) }
            if dropped > 0 {
                statistics.recordDropped(dropped)
                warnAboutDrop(channel.name)
            }
            return entries.count
        case .finished:
            return 0
        }
    }

    // MARK: Unconsumed channels

    private func addSweepCandidate(_ channel: LocalChannel) {
        channel.isSweepCandidate = true
        sweepCandidates.append(channel)
    }

    private func scheduleUnconsumedSweep() {
        // A third of the threshold, so a channel is reported at most a third late; at least 10 ms
        // and at most 10 s apart. Each sweep takes the lock of each candidate's mailbox once.
        let interval = min(max(configuration.unconsumedChannelThreshold / 3, .milliseconds(10)), .seconds(10))
        unconsumedSweep = loop.scheduleTimer(after: interval) { [self] in
            unconsumedSweep = nil
            guard !closed else { return }
            sweepUnconsumed()
            scheduleUnconsumedSweep()
        }
    }

    /// Counts the local channels that have held messages with no consumer for at least
    /// `unconsumedChannelThreshold`, and names the oldest in an `info` log at most once a minute.
    private func sweepUnconsumed() {
        let now = ContinuousClock.now
        let threshold = configuration.unconsumedChannelThreshold
        var count = 0
        var oldest: (name: String, since: ContinuousClock.Instant)?
        var kept = 0
        for index in sweepCandidates.indices {
            let channel = sweepCandidates[index]
            guard let since = channel.unconsumedSince(now: now) else {
                channel.isSweepCandidate = false
                continue
            }
            sweepCandidates[kept] = channel
            kept += 1
            guard since.duration(to: now) >= threshold else { continue }
            count += 1
            if oldest == nil || since < oldest!.since { oldest = (channel.name, since) }
        }
        if kept == 0 {
            sweepCandidates = []  // (its storage too: a broadcast to every channel may have grown it)
        } else {
            sweepCandidates.removeLast(sweepCandidates.count - kept)
        }
        statistics.setUnconsumedChannels(count)
        guard let oldest else { return }
        if let last = lastUnconsumedReport, last.duration(to: now) < .seconds(60) { return }
        lastUnconsumedReport = now
        logger.info(
            "local channels hold messages that no consumer takes: receive from them, or discard(channel:) them",
            metadata: [
                LogKey.channel: "\(oldest.name)",
                LogKey.unconsumedChannels: "\(count)",
                LogKey.unconsumedFor: "\(oldest.since.duration(to: now))",
            ]
        )
    }

    private static func skippedUndecodable(_ error: ChannelLayerError, channel: String, statistics: LayerStatistics, logger: Logger) {
        statistics.recordUndecodable()
        // At most one warning a second (a peer with the wrong key must not flood the log); the
        // count says how many were skipped in all.
        guard statistics.undecodableWarning.shouldWarn() else { return }
        logger.warning(
            "skipped a message that could not be decoded",
            metadata: [
                LogKey.channel: "\(channel)", LogKey.error: "\(error.message)",
                LogKey.undecodable: "\(statistics.undecodable.load(ordering: .relaxed))",
            ]
        )
    }

    private func warnAboutDrop(_ name: String) {
        // At most one warning a second: a stuck consumer must not flood the log.
        let now = ContinuousClock.now
        if let last = lastDropWarning, last.duration(to: now) < .seconds(1) { return }
        lastDropWarning = now
        logger.warning(
            "a consumer is too slow: its channel buffer is full, the oldest message was dropped",
            metadata: [LogKey.channel: "\(name)", LogKey.dropped: "\(statistics.dropped.load(ordering: .relaxed))"]
        )
    }
}

#if canImport(Glibc)
    import Glibc
#endif

extension PubSubEngine: ChannelMailboxOwner {
    /// Runs on the consumer's task: decodes a message only this channel got.
    func decode(_ bytes: [UInt8], forChannel channel: String) -> ChannelMessage? {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(ChannelLayerError) in try codec.decode(raw) } }
        switch result {
        case .success(let message):
            return message
        case .failure(let error):
            PubSubEngine.skippedUndecodable(error, channel: channel, statistics: statistics, logger: logger)
            return nil
        }
    }

    /// Runs on the consumer's task; the candidate list is the loop's.
    func mailboxHoldsMessagesAgain(channel name: String, id: UInt64) {
        loop.execute { [self] in
            guard !closed, let channel = router.channels[name], channel.id == id, !channel.isSweepCandidate else { return }
            addSweepCandidate(channel)
        }
    }
}

extension PubSubEngine: RedisShardDelegate {
    func shard(_ shard: RedisShard, didReceiveMessage payload: UnsafeRawBufferPointer, on channelBytes: UnsafeRawBufferPointer) {
        let route = router.route(channelBytes)
        if route.isEmpty {
            // Unsubscribed a moment ago, or subscribed by another consumer that has gone.
            statistics.unroutable.add(1)
            return
        }
        // Decoded once per Redis message. A message only one local channel gets is decoded by the
        // consumer that takes it, on its own core: the loop thread is the layer's bottleneck.
        guard !route.members.isEmpty else {
            yield(.encoded(Array(payload)), to: route.direct!)
            return
        }
        let message: ChannelMessage
        do {
            message = try codec.decode(payload)
        } catch {
            let name = String(decoding: channelBytes, as: UTF8.self)
            PubSubEngine.skippedUndecodable(error, channel: name, statistics: statistics, logger: logger)
            return
        }
        let entry = ChannelMailbox.Entry.message(ChannelMailbox.Shared(message))
        if let direct = route.direct { yield(entry, to: direct) }
        yield(entry, toAll: route.members)
    }

    func shard(_ shard: RedisShard, didDisconnectWithError error: ChannelLayerError) {
        if cluster != nil { requestClusterRefresh() }  // a primary gone may have been failed over
        events.emit(.disconnected(shard: shard.index, error: error))
        if let type = configuration.onDisconnect { broadcast(["type": .string(type)]) }
    }

    func shardDidReconnect(_ shard: RedisShard) {
        events.emit(.reconnected(shard: shard.index))
        if let type = configuration.onReconnect { broadcast(["type": .string(type)]) }
    }

    private func broadcast(_ message: ChannelMessage) {
        let entry = ChannelMailbox.Entry.message(ChannelMailbox.Shared(message))
        for (_, channel) in router.channels { yield(entry, to: channel) }
    }
}

extension ChannelLayerError {
    static func closed(file: String = #fileID, line: Int = #line) -> ChannelLayerError {
        ChannelLayerError(.layerClosed, "the channel layer is closed", file: file, line: line)
    }
}

extension Array where Element: AnyObject {
    /// Whether both arrays are one buffer (copies of one another, neither mutated since): O(1),
    /// where `==` would compare element by element.
    fileprivate func sharesStorage(with other: Self) -> Bool {
        withUnsafeBufferPointer { mine in
            other.withUnsafeBufferPointer { mine.baseAddress == $0.baseAddress && mine.count == $0.count }
        }
    }
}
