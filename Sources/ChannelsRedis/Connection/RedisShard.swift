import Logging
import Metrics

/// What a shard tells the engine. Loop thread only.
protocol RedisShardDelegate: AnyObject {
    /// A message arrived on a subscribed Redis channel. Both buffers are valid only during the call.
    func shard(_ shard: RedisShard, didReceiveMessage payload: UnsafeRawBufferPointer, on channel: UnsafeRawBufferPointer)
    /// The shard stopped being healthy (either connection lost).
    func shard(_ shard: RedisShard, didDisconnectWithError error: ChannelLayerError)
    /// The shard is healthy again after a disconnect: both connections up, everything resubscribed.
    func shardDidReconnect(_ shard: RedisShard)
}

/// The two hiredis connections to one Redis host ("shard"): a publisher that never subscribes and
/// a subscriber that only (un)subscribes. Loop-confined.
///
/// A coordinator: the decisions are made by the values it owns, each tested without a server. A
/// ``ConnectionStateMachine`` per connection (connect, backoff, the first-connect rule), the
/// ``PublishPipeline`` (waiting and in-flight publishes, the send-timeout sweep's bookkeeping), the
/// ``SubscriptionStateMachine`` and ``SubscribeWaiters`` (what is subscribed, who waits for it), the
/// ``LivenessProbe`` and ``ShardHealth`` (outages and status). The shard carries out their actions:
/// hiredis calls, timers, logging, metrics, statistics and delegate calls. Its extensions:
/// `RedisShard+Connecting.swift` (connections, health, probes, timeouts) and
/// `RedisShard+HiredisConnectionDelegate.swift` (replies, pushes, messages, losses). Members are
/// internal rather than private only so that those files can reach them.
final class RedisShard {
    // Not Sendable: loop-confined. Every entry point runs on the loop thread (jobs, timers, hiredis
    // callbacks); a job handed to the loop carries it in a `LoopBound`.
    /// Checked, not unsafe: it traps on a double resume, and is what ThreadSanitizer needs here (see
    /// `LockedValue`), for one small allocation per call.
    typealias Continuation = LoopContinuation<Void>
    /// A publish's continuation: resumed with how many subscriber connections Redis delivered to.
    typealias PublishContinuation = LoopContinuation<Int>

    /// Which of the two connections.
    enum Role: CustomStringConvertible {
        case publisher, subscriber

        var description: String {
            switch self {
            case .publisher: "publisher"
            case .subscriber: "subscriber"
            }
        }
    }

    /// One value for each connection.
    struct PerRole<Value> {
        var publisher: Value
        var subscriber: Value

        subscript(role: Role) -> Value {
            get {
                switch role {
                case .publisher: publisher
                case .subscriber: subscriber
                }
            }
            set {
                switch role {
                case .publisher: publisher = newValue
                case .subscriber: subscriber = newValue
                }
            }
        }
    }

    let index: Int
    let endpoint: RedisEndpoint
    let loop: LibeventLoop
    let configuration: RedisPubSubChannelLayer.Configuration
    let logger: Logger
    /// Unowned: the engine owns its shards for as long as they exist, so no weak load is needed per
    /// message.
    unowned(unsafe) var delegate: (any RedisShardDelegate)?
    let statistics: LayerStatistics
    /// This shard's status for `isHealthy` and `shardStatuses`, and its per-shard metrics.
    let statusCell: ShardStatusCell
    let metrics: ShardMetrics

    let publisher: HiredisConnection
    let subscriber: HiredisConnection
    /// For a Sentinel endpoint: asks where the master is before each connect, and watches for
    /// failovers (`RedisShard+Sentinel.swift`).
    let sentinel: SentinelClient?
    /// A Redis Cluster primary's shard: SPUBLISH and SSUBSCRIBE instead of PUBLISH and SUBSCRIBE
    /// (RedisShard+Cluster.swift). The internal channel stays a plain SUBSCRIBE, which keeps hiredis's
    /// subscriber mode and the liveness probe (a plain PUBLISH) as they are.
    let sharded: Bool
    /// The SSUBSCRIBEs and SUNSUBSCRIBEs sent and not fully answered, in order (sharded shards only).
    var shardedCommands = ShardedCommandQueue()

    /// The subscriber's permanent subscription. hiredis 0.14.1 aborts on an assert when a normal
    /// command follows the UNSUBSCRIBE of the last channel before its reply, so the subscriber is
    /// never left without a channel; liveness probes are published here too.
    let internalChannel: String
    let internalChannelBytes: [UInt8]

    init(
        index: Int,
        endpoint: RedisEndpoint,
        tls: OpenSSLContext?,
        loop: LibeventLoop,
        configuration: RedisPubSubChannelLayer.Configuration,
        statistics: LayerStatistics,
        statusCell: ShardStatusCell,
        metricsFactory: any MetricsFactory,
        logger: Logger,
        sharded: Bool = false
    ) {
        self.sharded = sharded
        self.statusCell = statusCell
        self.index = index
        self.endpoint = endpoint
        self.loop = loop
        self.configuration = configuration
        self.statistics = statistics
        self.metrics = ShardMetrics(shard: index, factory: metricsFactory)
        var logger = logger
        logger[metadataKey: LogKey.shard] = "\(index)"
        logger[metadataKey: LogKey.host] = "\(endpoint)"
        self.logger = logger
        self.internalChannel = "\(configuration.prefix)__channels_redis_swift__.\(UUIDHex.random())"
        self.internalChannelBytes = Array(internalChannel.utf8)
        self.publisher = HiredisConnection(endpoint: endpoint, tls: tls, loop: loop, sharded: sharded)
        self.subscriber = HiredisConnection(endpoint: endpoint, tls: tls, loop: loop, directMessages: true, sharded: sharded)
        let lifecycle = ConnectionStateMachine(retry: configuration.retry)
        self.lifecycles = PerRole(publisher: lifecycle, subscriber: lifecycle)
        self.probe = LivenessProbe(interval: configuration.livenessInterval, timeout: configuration.livenessTimeout)
        self.sentinel = endpoint.address.sentinel.map { settings in
            SentinelClient(settings: settings, tls: tls, loop: loop, configuration: configuration, logger: logger)
        }
        publisher.delegate = self
        subscriber.delegate = self
        sentinel?.delegate = self
    }

    // MARK: State

    var closed = false
    /// What `close(failingWith:)` fails pending work with.
    var closeError: ChannelLayerError?
    /// Connect, backoff and the first-connect rule, for each connection.
    var lifecycles: PerRole<ConnectionStateMachine>
    var health = ShardHealth()
    var pipeline = PublishPipeline()
    var subscriptions = SubscriptionStateMachine()
    var subscribeWaiters = SubscribeWaiters()
    /// The replies a new subscriber connection waits for before it is ready: the SUBSCRIBE
    /// confirmations of its internal channel and of every channel wanted when it connected, and
    /// on a Sentinel endpoint the `ROLE` that says it reached the master.
    var initialConfirmationsPending = 0
    /// Bumped for each connect and each stop of a connection, so that the answer of a Sentinel
    /// query made for an attempt that was stopped meanwhile is ignored.
    var connectAttempts = PerRole(publisher: 0, subscriber: 0)
    /// Whether a handshake reply of the publisher's current connection refused it (an error, or a
    /// ROLE that is not master): the replies after it must not make the connection ready before
    /// its failure, a job later, closes it.
    var publisherHandshakeFailed = false
    var probe: LivenessProbe

    // Timers. Their closures hold the shard strongly, not weakly: a weak reference gives an object
    // a side table, after which every retain and release of it, on the message path too, takes the
    // slow path. No cycle outlives them: a timer drops its closure when it fires or is cancelled,
    // `close()` cancels them all, and the loop cancels any left.
    /// Each connection's pending reconnect (its lifecycle is `.backingOff`).
    var reconnectTimers = PerRole<LoopTimer?>(publisher: nil, subscriber: nil)
    var sweepTimer: LoopTimer?
    var sweepDeadline: ContinuousClock.Instant?
    /// The probe's one timer: the wait before the next probe, or the probe's timeout.
    var probeTimer: LoopTimer?

    // MARK: Publishing

    /// Publishes `payload` on `channel`; `continuation` is resumed when Redis answered, or with an
    /// error (timeout, connection lost, closed). Never reports success for an unpublished message.
    func publish(channel: String, payload: [UInt8], continuation: PublishContinuation) {
        loop.preconditionInLoop()
        guard !closed else {
            continuation.resume(throwing: ChannelLayerError.closed())
            return
        }
        enqueue(
            channel: channel,
            payloads: .one(payload[...]),
            waiter: PublishWaiter(count: 1, continuation: continuation),
            deadline: ContinuousClock.now.advanced(by: configuration.sendTimeout)
        )
    }

    /// Publishes every payload on `channel`, pipelined, in order; `continuation` is resumed once
    /// Redis confirmed them all, or with an error (saying how many Redis refused, if it did).
    func publish(channel: String, payloads: PayloadBatch, continuation: PublishContinuation) {
        loop.preconditionInLoop()
        guard !closed else {
            continuation.resume(throwing: ChannelLayerError.closed())
            return
        }
        guard !payloads.isEmpty else {
            continuation.resume(returning: 0)
            return
        }
        enqueue(
            channel: channel,
            payloads: .batch(payloads),
            waiter: PublishWaiter(count: payloads.count, continuation: continuation),
            deadline: ContinuousClock.now.advanced(by: configuration.sendTimeout)
        )
    }

    /// What one `publish` call sends: one payload (no batch buffer around it), or a batch.
    enum Payloads {
        case one(ArraySlice<UInt8>)
        case batch(PayloadBatch)
    }

    /// - Parameter asking: cluster mode, following `-ASK`: each SPUBLISH goes after an ASKING.
    func enqueue(channel: String, payloads: Payloads, waiter: PublishWaiter, deadline: ContinuousClock.Instant, asking: Bool = false) {
        var sent = 0
        if publisher.isReady, !pipeline.hasWaiting {
            switch payloads {
            case .one(let payload):
                sent = publisher.publish(channel: channel, payload: payload, asking: asking)
                recordSent(sent, of: 1, waiter: waiter, deadline: deadline)
            case .batch(let batch):
                sent = publisher.publish(channel: channel, batch: batch, asking: asking)
                recordSent(sent, of: batch.count, waiter: waiter, deadline: deadline)
            }
        }
        if sent == 0 {
            // Not connected yet (or hiredis refused): in order, after everything already waiting.
            switch payloads {
            case .one(let payload):
                pipeline.wait(channel: channel, payload: payload, waiter: waiter, deadline: deadline)
            case .batch(let batch):
                for payload in batch {
                    pipeline.wait(channel: channel, payload: payload, waiter: waiter, deadline: deadline)
                }
            }
            activate()
        }
        armSweep(for: deadline)
    }

    /// Records a run that `publisher.publish` queued `count` of `total` commands of.
    func recordSent(_ count: Int, of total: Int, waiter: PublishWaiter, deadline: ContinuousClock.Instant) {
        if count > 0 { loop.notePublishActivity() }
        switch pipeline.sent(count, of: total, waiter: waiter, deadline: deadline) {
        case .doNothing:
            break
        case .replaceConnection:
            // All or none, says chr_io_publish; a partial run has no reply callback of its own, so
            // the replies after it would be misattributed: the connection starts over instead.
            let error = ChannelLayerError(.connectionLost, "hiredis queued \(count) of \(total) PUBLISHes to \(endpoint)")
            waiter.fail(error)
            loop.execute(with: self) { shard in shard.publisher.fail(error) }
        }
    }

    // MARK: Subscriptions

    /// Somebody local needs `channel`. `completion` (if any) runs once Redis confirmed the
    /// subscription, or with an error on timeout, failed first connect, or close.
    func want(_ channel: String, completion: SubscribeWaiters.Completion?) {
        loop.preconditionInLoop()
        guard !closed else {
            completion?(ChannelLayerError.closed())
            return
        }
        if let completion {
            let deadline = ContinuousClock.now.advanced(by: configuration.sendTimeout)
            subscribeWaiters.add(completion, for: channel, deadline: deadline)
            armSweep(for: deadline)
        }
        perform(subscriptions.want(channel))
        activate()
    }

    /// Nobody local needs `channel` any more.
    func unwant(_ channel: String) {
        loop.preconditionInLoop()
        guard !closed else { return }
        perform(subscriptions.unwant(channel))
    }

    func perform(_ action: SubscriptionStateMachine.Action) {
        switch action {
        case .subscribe(let channels):
            sendSubscriptionCommands(channels)
        case .unsubscribe(let channels):
            sendSubscriptionCommands(channels, unsubscribe: true)
        case .confirmed(let channel):
            // Removed before they run: a completion may call back into the shard.
            for completion in subscribeWaiters.remove(for: channel) { completion(nil) }
        case .doNothing:
            break
        }
    }

    /// Many names per command: resubscribing 100,000 channels is 100 commands, not 100,000.
    func sendSubscriptionCommands(_ channels: [String], unsubscribe: Bool = false) {
        if sharded, channels != [internalChannel] { return sendShardedSubscriptionCommand(unsubscribe ? "UNSUBSCRIBE" : "SUBSCRIBE", channels) }
        let batchSize = 1_000
        var start = 0
        while start < channels.count {
            let end = min(start + batchSize, channels.count)
            subscriber.subscribe(channels[start..<end], unsubscribe: unsubscribe)
            start = end
        }
    }

    func failAllSubscribeWaiters(_ error: ChannelLayerError) {
        for completion in subscribeWaiters.removeAll() { completion(error) }
    }

    // MARK: Teardown

    /// Drops every subscription and the subscriber connection (`flush`). Waiters fail with `error`.
    func dropSubscriptions(_ error: ChannelLayerError) {
        loop.preconditionInLoop()
        stopProbing()
        perform(lifecycles.subscriber.reset(), for: .subscriber)
        subscriptions.reset()
        initialConfirmationsPending = 0
        health.reset()
        publishStatus()
        failAllSubscribeWaiters(error)
    }

    /// Closes both connections and fails everything pending with `error` (`layerClosed` unless a cluster primary's
    /// shard is retired while the layer stays open). Idempotent.
    func close(failingWith error: ChannelLayerError = ChannelLayerError.closed()) {
        loop.preconditionInLoop()
        guard !closed else { return }
        closed = true
        closeError = error
        sweepTimer?.cancel()
        sweepTimer = nil
        stopProbing()
        sentinel?.close()
        perform(lifecycles.publisher.close(), for: .publisher)  // in-flight entries are answered with NULL during this call
        perform(lifecycles.subscriber.close(), for: .subscriber)
        pipeline.failWaiting(error)
        pipeline.failInFlight(error)
        failAllSubscribeWaiters(error)
        health.reset()
        publishStatus()
    }

    /// Ends a connection's reconnect timer, or the connection itself.
    func perform(_ action: ConnectionStateMachine.StopAction, for role: Role) {
        connectAttempts[role] &+= 1
        switch action {
        case .cancelReconnect:
            reconnectTimers[role]?.cancel()
            reconnectTimers[role] = nil
        case .closeConnection:
            connection(role).close()
        case .doNothing:
            break
        }
    }

    func connection(_ role: Role) -> HiredisConnection {
        switch role {
        case .publisher: publisher
        case .subscriber: subscriber
        }
    }
}
