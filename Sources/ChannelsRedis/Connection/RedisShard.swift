internal import CHiredis
import DequeModule
import Logging
import Metrics

#if canImport(Glibc)
    import Glibc
#endif

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
final class RedisShard: @unchecked Sendable {
    // @unchecked Sendable: loop-confined. Every entry point runs on the loop thread (jobs, timers,
    // hiredis callbacks); the reference crosses threads only inside jobs handed to the loop.
    /// Checked, not unsafe: resuming an `UnsafeContinuation` from the loop thread before the awaiting
    /// task has suspended is synchronised inside the (uninstrumented) concurrency runtime, which
    /// ThreadSanitizer reports as a race; the checked variant is clean under TSan and also traps on
    /// a double resume, for one small allocation per call.
    typealias Continuation = LoopContinuation<Void>
    /// A publish's continuation: resumed with how many subscriber connections Redis delivered to.
    typealias PublishContinuation = LoopContinuation<Int>

    let index: Int
    let endpoint: RedisEndpoint
    private let loop: LibeventLoop
    private let configuration: RedisPubSubChannelLayer.Configuration
    private var logger: Logger
    /// Unowned: the engine owns its shards for as long as they exist (a weak load per message shows
    /// in profiles).
    unowned(unsafe) var delegate: (any RedisShardDelegate)?
    private let statistics: LayerStatistics
    /// This shard's status for `isHealthy` and `shardStatuses`, and its per-shard metrics.
    private let statusCell: ShardStatusCell
    private let metrics: ShardMetrics

    private let publisher: HiredisConnection
    private let subscriber: HiredisConnection

    /// The subscriber's permanent subscription. hiredis 0.14.1 aborts on an assert when a normal
    /// command follows the UNSUBSCRIBE of the last channel before its reply, so the subscriber is
    /// never left without a channel; liveness probes are published here too.
    let internalChannel: String
    private let internalChannelBytes: [UInt8]

    init(
        index: Int,
        endpoint: RedisEndpoint,
        loop: LibeventLoop,
        configuration: RedisPubSubChannelLayer.Configuration,
        statistics: LayerStatistics,
        statusCell: ShardStatusCell,
        metricsFactory: any MetricsFactory,
        logger: Logger
    ) {
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
        self.publisher = HiredisConnection(endpoint: endpoint, loop: loop)
        self.subscriber = HiredisConnection(endpoint: endpoint, loop: loop, directMessages: true)
        publisher.delegate = self
        subscriber.delegate = self
    }

    // MARK: State

    private var closed = false
    /// Whether both connections were ever ready: after that, losses are retried forever; before,
    /// a failed connect fails the operations waiting for it (a misconfiguration should be loud).
    private var publisherEverReady = false
    private var subscriberEverReady = false
    private var publisherBackoff: LoopTimer?
    private var subscriberBackoff: LoopTimer?
    private var publisherAttempts = 0
    private var subscriberAttempts = 0
    private var healthy = false
    private var everHealthy = false
    private var lastError: ChannelLayerError?
    /// The first connect of a connection failed (wrong port or password): `.connecting`, not
    /// `.idle`, until the shard is ready.
    private var firstConnectFailed = false

    // Publisher
    /// Commands handed to hiredis that end with one reply callback. A batch of PUBLISHes is one
    /// run of `count` commands whose last reply is the run's (`HiredisConnection.publish(channel:batch:)`):
    /// the queue does no work per message (a per-message enum entry with its payload cost ~5 % of
    /// the loop thread in the throughput benchmark, a Swift callback per reply ~10 %).
    private struct InFlightRun {
        enum Kind {
            /// AUTH or PING of the handshake.
            case handshake
            case publish
            case probe
        }
        var kind: Kind
        var count: Int
        /// `.publish` only. A late reply to a waiter the timeout sweep already failed is ignored.
        var waiter: PublishWaiter?
        var deadline: ContinuousClock.Instant?

        static var handshake: InFlightRun { InFlightRun(kind: .handshake, count: 1) }
        static var probe: InFlightRun { InFlightRun(kind: .probe, count: 1) }
    }
    private struct WaitingPublish {
        var channel: String
        /// A slice of its batch's buffer (which it keeps alive).
        var payload: ArraySlice<UInt8>
        var waiter: PublishWaiter
        var deadline: ContinuousClock.Instant
    }
    /// Commands handed to hiredis, in order; replies come back in the same order.
    private var inFlight: Deque<InFlightRun> = []
    /// How many runs at the front of `inFlight` the timeout sweep has already looked at.
    private var sweptPrefix = 0
    /// Publishes waiting for the publisher to become ready.
    private var waiting: Deque<WaitingPublish> = []

    // Subscriber
    private var subscriptions = SubscriptionStateMachine()
    private var initialConfirmationsPending = 0
    private struct SubscribeWaiter {
        var id: UInt64
        var complete: (ChannelLayerError?) -> Void
    }
    private var subscribeWaiters: [String: [SubscribeWaiter]] = [:]
    private var subscribeDeadlines: Deque<(deadline: ContinuousClock.Instant, channel: String, id: UInt64)> = []
    private var nextWaiterID: UInt64 = 0

    // Timers. Their closures hold the shard strongly, not weakly: a weak reference gives an object
    // a side table, after which every retain and release of it takes the slow path (4-6 % of the
    // loop thread in the throughput benchmark). No cycle outlives them: a timer drops its closure
    // when it fires or is cancelled, `close()` cancels them all, and the loop cancels any left.
    private var sweepTimer: LoopTimer?
    private var sweepDeadline: ContinuousClock.Instant?
    private var probeTimer: LoopTimer?
    private var probe: (id: String, replied: Bool, received: Bool)?

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
    private enum Payloads {
        case one(ArraySlice<UInt8>)
        case batch(PayloadBatch)
    }

    private func enqueue(channel: String, payloads: Payloads, waiter: PublishWaiter, deadline: ContinuousClock.Instant) {
        var sent = 0
        if publisher.isReady, waiting.isEmpty {
            switch payloads {
            case .one(let payload):
                sent = publisher.publish(channel: channel, payload: payload)
                appendInFlight(count: sent, of: 1, waiter: waiter, deadline: deadline)
            case .batch(let batch):
                sent = publisher.publish(channel: channel, batch: batch)
                appendInFlight(count: sent, of: batch.count, waiter: waiter, deadline: deadline)
            }
        }
        if sent == 0 {
            // Not connected yet (or hiredis refused): in order, after everything already waiting.
            switch payloads {
            case .one(let payload):
                waiting.append(WaitingPublish(channel: channel, payload: payload, waiter: waiter, deadline: deadline))
            case .batch(let batch):
                for payload in batch {
                    waiting.append(WaitingPublish(channel: channel, payload: payload, waiter: waiter, deadline: deadline))
                }
            }
            activate()
        }
        armSweep(for: deadline)
    }

    /// Records a run that `publisher.publish` queued `count` of `total` commands of.
    private func appendInFlight(count: Int, of total: Int, waiter: PublishWaiter, deadline: ContinuousClock.Instant) {
        guard count > 0 else { return }
        inFlight.append(InFlightRun(kind: .publish, count: count, waiter: waiter, deadline: deadline))
        if count < total {
            // All or none, says chr_io_publish; a partial run has no reply callback of its own, so
            // the replies after it would be misattributed: the connection starts over instead.
            let error = ChannelLayerError(.connectionLost, "hiredis queued \(count) of \(total) PUBLISHes to \(endpoint)")
            waiter.fail(error)
            loop.execute { [self] in self.publisher.fail(error) }
        }
    }

    // MARK: Subscriptions

    /// Somebody local needs `channel`. `completion` (if any) runs once Redis confirmed the
    /// subscription, or with an error on timeout, failed first connect, or close.
    func want(_ channel: String, completion: ((ChannelLayerError?) -> Void)?) {
        loop.preconditionInLoop()
        guard !closed else {
            completion?(ChannelLayerError.closed())
            return
        }
        if let completion {
            nextWaiterID &+= 1
            let id = nextWaiterID
            subscribeWaiters[channel, default: []].append(SubscribeWaiter(id: id, complete: completion))
            let deadline = ContinuousClock.now.advanced(by: configuration.sendTimeout)
            subscribeDeadlines.append((deadline, channel, id))
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

    private func perform(_ action: SubscriptionStateMachine.Action) {
        switch action {
        case .subscribe(let channels):
            sendSubscriptionCommand("SUBSCRIBE", channels)
        case .unsubscribe(let channels):
            sendSubscriptionCommand("UNSUBSCRIBE", channels)
        case .confirmed(let channel):
            completeWaiters(for: channel, error: nil)
        case .doNothing:
            break
        }
    }

    /// Many names per command: resubscribing 100,000 channels is 100 commands, not 100,000.
    private func sendSubscriptionCommand(_ verb: String, _ channels: [String]) {
        let batchSize = 1_000
        var start = 0
        while start < channels.count {
            let end = min(start + batchSize, channels.count)
            var arguments = [verb]
            arguments.append(contentsOf: channels[start..<end])
            subscriber.subscriptionCommand(arguments)
            start = end
        }
    }

    private func completeWaiters(for channel: String, error: ChannelLayerError?) {
        guard let waiters = subscribeWaiters.removeValue(forKey: channel) else { return }
        for waiter in waiters { waiter.complete(error) }
    }

    private func failAllSubscribeWaiters(_ error: ChannelLayerError) {
        let all = subscribeWaiters
        subscribeWaiters = [:]
        subscribeDeadlines.removeAll()
        for (_, waiters) in all {
            for waiter in waiters { waiter.complete(error) }
        }
    }

    // MARK: Connecting

    /// Makes sure both connections exist or are being (re)established.
    func activate() {
        guard !closed else { return }
        if publisher.state == .idle, publisherBackoff == nil { connectPublisher() }
        if subscriber.state == .idle, subscriberBackoff == nil { connectSubscriber() }
        publishStatus()
    }

    /// Publishes the shard's state to `statusCell` and the `channels_redis_shard_up` gauge.
    private func publishStatus() {
        let status: ShardStatus
        if closed {
            status = .closed
        } else if healthy {
            status = .ready
        } else if everHealthy {
            status = .reconnecting
        } else if firstConnectFailed || publisher.state == .connecting || subscriber.state == .connecting {
            status = .connecting
        } else {
            status = .idle
        }
        if statusCell.store(status) { metrics.up.record(status == .ready ? 1 : 0) }
    }

    private func connectPublisher() {
        logger.debug("connecting publisher")
        precondition(inFlight.isEmpty)
        sweptPrefix = 0
        publisher.connect(timeout: configuration.connectTimeout)
        guard publisher.state == .connecting else { return }  // failure is reported later
        if let auth = authArguments() {
            publisher.command(auth)
            inFlight.append(.handshake)
        }
        // A reply to PING proves the server answers, not only that TCP connected.
        publisher.command(["PING"])
        inFlight.append(.handshake)
    }

    private func connectSubscriber() {
        logger.debug("connecting subscriber")
        subscriber.connect(timeout: configuration.connectTimeout)
        guard subscriber.state == .connecting else { return }
        if let auth = authArguments() {
            subscriber.command(auth)
        }
        sendSubscriptionCommand("SUBSCRIBE", [internalChannel])
        initialConfirmationsPending = 1
        if case .subscribe(let channels) = subscriptions.connected() {
            initialConfirmationsPending += channels.count
            sendSubscriptionCommand("SUBSCRIBE", channels)
        }
    }

    private func authArguments() -> [String]? {
        guard let password = endpoint.password else { return nil }
        if let username = endpoint.username, !username.isEmpty {
            return ["AUTH", username, password]
        }
        return ["AUTH", password]
    }

    private func publisherBecameReady() {
        publisher.markReady()
        publisherEverReady = true
        publisherAttempts = 0
        logger.debug("publisher ready", metadata: [LogKey.waiting: "\(waiting.count)"])
        // Everything that waited goes out now, pipelined, in order.
        while let entry = waiting.popFirst() {
            if publisher.publish(channel: entry.channel, payload: entry.payload) == 1 {
                appendInFlight(count: 1, of: 1, waiter: entry.waiter, deadline: entry.deadline)
            } else {
                entry.waiter.fail(ChannelLayerError(.connectionLost, "the publisher to \(endpoint) went away"))
            }
        }
        updateHealth()
    }

    private func subscriberBecameReady() {
        subscriber.markReady()
        subscriberEverReady = true
        subscriberAttempts = 0
        logger.debug("subscriber ready", metadata: [LogKey.channels: "\(subscriptions.wanted.count)"])
        updateHealth()
    }

    private func updateHealth() {
        defer { publishStatus() }
        let nowHealthy = publisher.isReady && subscriber.isReady && initialConfirmationsPending == 0
        guard nowHealthy != healthy else { return }
        healthy = nowHealthy
        if nowHealthy {
            firstConnectFailed = false
            scheduleProbe()
            if everHealthy {
                statistics.recordReconnect()
                metrics.reconnects.increment()
                // The end of an outage: `info`, once (its start was the one warning).
                logger.info("reconnected to Redis and resubscribed", metadata: [LogKey.channels: "\(subscriptions.wanted.count)"])
                delegate!.shardDidReconnect(self)
            }
            everHealthy = true
        } else {
            // A probe in flight says nothing once a connection is gone; a new one starts when healthy.
            probeTimer?.cancel()
            probeTimer = nil
            probe = nil
        }
        if !nowHealthy, everHealthy {
            let error = lastError ?? ChannelLayerError(.connectionLost, "lost connection to \(endpoint)")
            // The one warning of an outage; its attempts are logged at `debug`, its end at `info`.
            logger.warning("lost connection to Redis; reconnecting", metadata: [LogKey.error: "\(error.message)"])
            delegate!.shard(self, didDisconnectWithError: error)
        }
    }

    private func backoff(attempt: Int) -> Duration {
        configuration.retry.delay(forAttempt: attempt)
    }

    // MARK: Timeouts

    private func armSweep(for deadline: ContinuousClock.Instant) {
        if let current = sweepDeadline, current <= deadline, sweepTimer?.isActive == true { return }
        sweepTimer?.cancel()
        sweepDeadline = deadline
        let delay = max(.zero, ContinuousClock.now.duration(to: deadline)) + .milliseconds(1)
        sweepTimer = loop.scheduleTimer(after: delay) { [self] in sweep() }
    }

    /// Fails everything whose deadline passed. Deadlines grow with submission order, so each queue
    /// is scanned from its front only as far as the first live entry.
    private func sweep() {
        sweepTimer = nil
        sweepDeadline = nil
        let now = ContinuousClock.now
        var next: ContinuousClock.Instant?
        func consider(_ deadline: ContinuousClock.Instant) {
            if next == nil || deadline < next! { next = deadline }
        }

        while let first = waiting.first {
            if first.deadline > now {
                consider(first.deadline)
                break
            }
            waiting.removeFirst()
            if first.waiter.isPending { first.waiter.fail(sendTimeoutError()) }
        }

        var index = sweptPrefix
        while index < inFlight.count {
            let run = inFlight[index]
            if run.kind == .publish, let deadline = run.deadline {
                if deadline > now {
                    consider(deadline)
                    break
                }
                if let waiter = run.waiter, waiter.isPending { waiter.fail(sendTimeoutError()) }
            }
            index += 1
        }
        sweptPrefix = index

        while let first = subscribeDeadlines.first {
            if first.deadline > now {
                consider(first.deadline)
                break
            }
            subscribeDeadlines.removeFirst()
            guard var waiters = subscribeWaiters[first.channel], let at = waiters.firstIndex(where: { $0.id == first.id }) else { continue }
            let waiter = waiters.remove(at: at)
            subscribeWaiters[first.channel] = waiters.isEmpty ? nil : waiters
            waiter.complete(
                ChannelLayerError(
                    .timeout,
                    "Redis did not confirm the subscription to '\(first.channel)' within \(configuration.sendTimeout)\(lastErrorSuffix)"
                )
            )
        }
        if let next { armSweep(for: next) }
    }

    private func sendTimeoutError() -> ChannelLayerError {
        ChannelLayerError(.timeout, "the message was not published to \(endpoint) within \(configuration.sendTimeout)\(lastErrorSuffix)")
    }

    /// Why a timeout happened, when the shard is not healthy: the last connection error, or that
    /// the first connection is still being made (the connect timeout may fire a moment later).
    private var lastErrorSuffix: String {
        guard !healthy else { return "" }
        if let lastError { return " (last error: \(lastError.message))" }
        return " (still connecting to \(endpoint))"
    }

    // MARK: Liveness

    /// hiredis 0.14.1 never answers PING on a subscribed context (the reply is misrouted), so the
    /// publisher publishes a probe to the subscriber's internal channel and expects it back.
    private func scheduleProbe() {
        probeTimer?.cancel()
        probe = nil
        guard configuration.livenessInterval > .zero else { return }
        probeTimer = loop.scheduleTimer(after: configuration.livenessInterval) { [self] in sendProbe() }
    }

    private func sendProbe() {
        probeTimer = nil
        guard healthy else { return }
        let id = UUIDHex.random()
        guard publisher.publish(channel: internalChannel, payload: Array(id.utf8)[...]) == 1 else { return }
        inFlight.append(.probe)
        probe = (id, false, false)
        probeTimer = loop.scheduleTimer(after: configuration.livenessTimeout) { [self] in checkProbe() }
    }

    private func checkProbe() {
        probeTimer = nil
        guard let probe else { return }
        self.probe = nil
        let timeout = configuration.livenessTimeout
        if !probe.replied {
            statistics.recordLivenessFailure()
            metrics.livenessFailures.increment()
            publisher.fail(ChannelLayerError(.timeout, "publisher to \(endpoint) did not answer a liveness probe within \(timeout)"))
        }
        if !probe.received {
            if probe.replied {
                statistics.recordLivenessFailure()
                metrics.livenessFailures.increment()
            }
            subscriber.fail(ChannelLayerError(.timeout, "subscriber to \(endpoint) did not receive a liveness probe within \(timeout)"))
        }
        if probe.replied && probe.received { scheduleProbe() }
    }

    // MARK: Teardown

    /// Drops every subscription and the subscriber connection (`flush`). Waiters fail with `error`.
    func dropSubscriptions(_ error: ChannelLayerError) {
        loop.preconditionInLoop()
        subscriberBackoff?.cancel()
        subscriberBackoff = nil
        probeTimer?.cancel()
        probeTimer = nil
        probe = nil
        subscriber.close()
        subscriptions.reset()
        initialConfirmationsPending = 0
        subscriberEverReady = false
        healthy = false
        everHealthy = false
        publishStatus()
        failAllSubscribeWaiters(error)
    }

    /// Closes both connections and fails everything pending with `layerClosed`. Idempotent.
    func close() {
        loop.preconditionInLoop()
        guard !closed else { return }
        closed = true
        for timer in [sweepTimer, probeTimer, publisherBackoff, subscriberBackoff] { timer?.cancel() }
        sweepTimer = nil
        probeTimer = nil
        publisherBackoff = nil
        subscriberBackoff = nil
        publisher.close()  // in-flight entries are answered with NULL during this call
        subscriber.close()
        let error = ChannelLayerError.closed()
        while let entry = waiting.popFirst() { entry.waiter.fail(error) }
        failInFlight(error)
        failAllSubscribeWaiters(error)
        healthy = false
        publishStatus()
    }

    private func failInFlight(_ error: ChannelLayerError) {
        while let run = inFlight.popFirst() { run.waiter?.fail(error) }
        sweptPrefix = 0
    }
}

// MARK: - Connection callbacks

extension RedisShard: HiredisConnectionDelegate {
    func connection(_ connection: HiredisConnection, didReceiveReply reply: UnsafePointer<redisReply>?) {
        if connection === publisher {
            publisherReply(reply)
        } else {
            // The subscriber's only normal command is AUTH.
            if let reply, reply.pointee.type == REDIS_REPLY_ERROR {
                let text = RedisReply.text(reply) ?? "error"
                lastError = ChannelLayerError(.connectionFailed, "AUTH to \(endpoint) failed: \(text)")
                let error = lastError!
                loop.execute { [self] in self.subscriber.fail(error) }
            }
        }
    }

    private func publisherReply(_ reply: UnsafePointer<redisReply>?) {
        guard let front = inFlight.popFirst() else { return }
        if sweptPrefix > 0 { sweptPrefix -= 1 }
        switch front.kind {
        case .publish:
            // Always taken, so that the next run starts from zero.
            let rejected = reply == nil ? (count: 0, text: "", receivers: 0) : publisher.takeRejectedPublishes()
            guard let waiter = front.waiter, waiter.isPending else { return }  // failed already (timeout, error)
            guard let reply else {
                waiter.fail(
                    closed
                        ? ChannelLayerError.closed()
                        : ChannelLayerError(
                            .connectionLost,
                            "the connection to \(endpoint) was lost before Redis confirmed the message; it may or may not have been published"
                        )
                )
                return
            }
            let lastRefused = reply.pointee.type == REDIS_REPLY_ERROR
            let refused = rejected.count + (lastRefused ? 1 : 0)
            statistics.published.add(front.count - refused)
            if refused == 0 {
                let last = reply.pointee.type == REDIS_REPLY_INTEGER ? Int(reply.pointee.integer) : 0
                waiter.succeeded(count: front.count, receivers: rejected.receivers + last)
            } else {
                let text = lastRefused ? (RedisReply.text(reply) ?? "error") : rejected.text
                let what = front.count == 1 ? "" : " (\(refused) of \(front.count) in one batch)"
                waiter.fail(ChannelLayerError(.commandRefused, "Redis refused PUBLISH\(what): \(text)"))
            }
        case .handshake:
            guard let reply else { return }
            if reply.pointee.type == REDIS_REPLY_ERROR {
                let text = RedisReply.text(reply) ?? "error"
                let error = ChannelLayerError(.connectionFailed, "handshake with \(endpoint) failed: \(text)")
                lastError = error
                // Not inside the callback: hiredis is still iterating this context's replies.
                loop.execute { [self] in self.publisher.fail(error) }
            } else if inFlight.first?.kind != .handshake {
                publisherBecameReady()
            }
        case .probe:
            if reply != nil { probe?.replied = true }
        }
    }

    func connection(_ connection: HiredisConnection, didReceivePush reply: UnsafePointer<redisReply>?) {
        guard connection === subscriber, let reply else { return }
        // hiredis 0.14.1 can hand a push to the wrong subscription callback when several replies are
        // parsed at once, so every push is identified by its own kind and channel, never by privdata.
        guard reply.pointee.type == REDIS_REPLY_ARRAY, reply.pointee.elements >= 3, let elements = reply.pointee.element,
            let kindReply = elements[0], let channelReply = elements[1], let thirdReply = elements[2],
            kindReply.pointee.type == REDIS_REPLY_STRING, channelReply.pointee.type == REDIS_REPLY_STRING
        else { return }
        let kind = RedisReply.bytes(kindReply)
        let channel = RedisReply.bytes(channelReply)
        switch PushKind(kind) {
        case .message:
            received(RedisReply.bytes(thirdReply), on: channel)
        case .subscribe:
            let name = String(decoding: channel, as: UTF8.self)
            if name != internalChannel { perform(subscriptions.subscribeConfirmed(name)) }
            if initialConfirmationsPending > 0 {
                initialConfirmationsPending -= 1
                if initialConfirmationsPending == 0 { subscriberBecameReady() }
            }
        case .unsubscribe:
            let name = String(decoding: channel, as: UTF8.self)
            perform(subscriptions.unsubscribeConfirmed(name))
        case .other:
            break
        }
    }

    func connection(_ connection: HiredisConnection, didReceiveMessage payload: UnsafeRawBufferPointer, on channel: UnsafeRawBufferPointer) {
        guard connection === subscriber else { return }
        statistics.receivedDirectly.add(1)
        received(payload, on: channel)
    }

    /// A message on the subscriber: a liveness probe coming back, or one for the engine.
    private func received(_ payload: UnsafeRawBufferPointer, on channel: UnsafeRawBufferPointer) {
        if internalChannelBytes.withUnsafeBytes({ RedisReply.equals(channel, $0) }) {
            if let probe, RedisReply.equals(payload, probe.id) { self.probe?.received = true }
            return
        }
        statistics.received.add(1)
        delegate!.shard(self, didReceiveMessage: payload, on: channel)
    }

    func connection(_ connection: HiredisConnection, didCloseWithError error: ChannelLayerError) {
        guard !closed else { return }
        lastError = error
        if connection === publisher {
            failInFlight(ChannelLayerError(.connectionLost, "\(error.message); the message may or may not have been published"))
            if publisherEverReady {
                publisherAttempts += 1
                let delay = backoff(attempt: publisherAttempts)
                logger.debug("publisher connection lost, reconnecting", metadata: [LogKey.error: "\(error.message)", LogKey.delay: "\(delay)"])
                publisherBackoff = loop.scheduleTimer(after: delay) { [self] in
                    self.publisherBackoff = nil
                    if self.publisher.state == .idle { self.connectPublisher() }
                }
            } else {
                firstConnectFailed = true
                logger.debug("publisher connect failed", metadata: [LogKey.error: "\(error.message)"])
                while let entry = waiting.popFirst() { entry.waiter.fail(error) }
            }
        } else {
            subscriptions.disconnected()
            initialConfirmationsPending = 0
            probe = nil
            if subscriberEverReady {
                subscriberAttempts += 1
                let delay = backoff(attempt: subscriberAttempts)
                logger.debug("subscriber connection lost, reconnecting", metadata: [LogKey.error: "\(error.message)", LogKey.delay: "\(delay)"])
                subscriberBackoff = loop.scheduleTimer(after: delay) { [self] in
                    self.subscriberBackoff = nil
                    if self.subscriber.state == .idle { self.connectSubscriber() }
                }
            } else {
                firstConnectFailed = true
                logger.debug("subscriber connect failed", metadata: [LogKey.error: "\(error.message)"])
                failAllSubscribeWaiters(error)
            }
        }
        updateHealth()
    }
}

/// Who waits for PUBLISHes: one `send` (count 1) or one `send(contentsOf:)`. Resumed once Redis
/// confirmed them all, or at the first failure; later replies are ignored. Loop-confined.
private final class PublishWaiter {
    private var remaining: Int
    /// The receiver counts of the replies so far, summed.
    private var receivers = 0
    /// Not an optional cleared on resume: an `Optional` of the generic `LoopContinuation` is copied
    /// and tested through unspecialised value witnesses (generic metadata lookups), 6 % of the loop
    /// thread in the throughput benchmark.
    private let continuation: RedisShard.PublishContinuation
    /// Not yet resumed.
    private(set) var isPending = true

    init(count: Int, continuation: RedisShard.PublishContinuation) {
        self.remaining = count
        self.continuation = continuation
    }

    /// `count` more PUBLISHes were confirmed, reaching `receivers` subscriber connections in all.
    func succeeded(count: Int, receivers: Int) {
        remaining -= count
        self.receivers += receivers
        if remaining == 0, isPending {
            isPending = false
            continuation.resume(returning: self.receivers)
        }
    }

    func fail(_ error: ChannelLayerError) {
        guard isPending else { return }
        isPending = false
        continuation.resume(throwing: error)
    }
}

private enum PushKind {
    case message, subscribe, unsubscribe, other

    init(_ bytes: UnsafeRawBufferPointer) {
        if RedisReply.equals(bytes, "message" as StaticString) {
            self = .message
        } else if RedisReply.equals(bytes, "subscribe" as StaticString) {
            self = .subscribe
        } else if RedisReply.equals(bytes, "unsubscribe" as StaticString) {
            self = .unsubscribe
        } else {
            self = .other
        }
    }
}

/// Reading hiredis replies. They live only during the callback: copy what you keep.
enum RedisReply {
    static func bytes(_ reply: UnsafePointer<redisReply>) -> UnsafeRawBufferPointer {
        guard let start = reply.pointee.str else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        // `len`, not strlen: payloads are binary.
        return UnsafeRawBufferPointer(start: start, count: reply.pointee.len)
    }

    static func text(_ reply: UnsafePointer<redisReply>) -> String? {
        guard reply.pointee.str != nil else { return nil }
        return String(decoding: bytes(reply), as: UTF8.self)
    }

    static func equals(_ bytes: UnsafeRawBufferPointer, _ string: String) -> Bool {
        var string = string
        return string.withUTF8 { utf8 in equals(bytes, UnsafeRawBufferPointer(utf8)) }
    }

    /// Per-message comparisons use these: no `String` is touched.
    static func equals(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        equals(bytes, UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    static func equals(_ bytes: UnsafeRawBufferPointer, _ other: UnsafeRawBufferPointer) -> Bool {
        bytes.count == other.count && (bytes.isEmpty || memcmp(bytes.baseAddress!, other.baseAddress!, bytes.count) == 0)
    }
}
