import Logging
import Metrics

// MARK: Connecting

extension RedisShard {
    /// Makes sure both connections exist or are being (re)established.
    func activate() {
        guard !closed else { return }
        if lifecycles.publisher.activate() == .connect { connect(.publisher) }
        if lifecycles.subscriber.activate() == .connect { connect(.subscriber) }
        publishStatus()
    }

    /// Publishes the shard's state to `statusCell` and the `channels_redis_shard_up` gauge.
    func publishStatus() {
        let connecting = lifecycles.publisher.isConnecting || lifecycles.subscriber.isConnecting
        let status = health.status(closed: closed, connecting: connecting)
        if statusCell.store(status) { metrics.up.record(status == .ready ? 1 : 0) }
    }

    private func connect(_ role: Role) {
        logger.debug("connecting \(role)")
        connectAttempts[role] &+= 1
        guard let sentinel else { return connect(role, to: nil) }
        // Ask the sentinels first, every time: after a failover the old address is the wrong one.
        let attempt = connectAttempts[role]
        sentinel.resolve { [self] result in
            guard !closed, connectAttempts[role] == attempt else { return }
            switch result {
            case .success(let master):
                connect(role, to: RedisEndpoint(address: master, username: endpoint.username, password: endpoint.password, database: endpoint.database))
            case .failure(let error):
                connectionLost(role, error: error)
            }
        }
        sentinel.startWatching()
    }

    private func connect(_ role: Role, to node: RedisEndpoint?) {
        switch role {
        case .publisher: connectPublisher(to: node)
        case .subscriber: connectSubscriber(to: node)
        }
    }

    private func connectPublisher(to node: RedisEndpoint?) {
        pipeline.connectionStarted()
        publisherHandshakeFailed = false
        publisher.connect(timeout: configuration.connectTimeout, to: node)
        guard publisher.state == .connecting else { return }  // failure is reported later
        if let auth = authArguments() {
            publisher.command(auth)
            pipeline.handshakeSent()
        }
        if sentinel != nil {
            // The sentinels may be behind a failover; only the node itself knows what it is.
            publisher.command(["ROLE"])
            pipeline.handshakeSent()
        }
        // A reply to PING proves the server answers, not only that TCP connected.
        publisher.command(["PING"])
        pipeline.handshakeSent()
    }

    private func connectSubscriber(to node: RedisEndpoint?) {
        subscriber.connect(timeout: configuration.connectTimeout, to: node)
        guard subscriber.state == .connecting else { return }
        if let auth = authArguments() {
            subscriber.command(auth)
        }
        initialConfirmationsPending = 0
        if sentinel != nil {
            // A normal command before the first SUBSCRIBE: hiredis answers it before any push.
            subscriber.command(["ROLE"])
            initialConfirmationsPending += 1
        }
        sendSubscriptionCommands([internalChannel])
        initialConfirmationsPending += 1
        if case .subscribe(let channels) = subscriptions.connected() {
            initialConfirmationsPending += channels.count
            sendSubscriptionCommands(channels)
        }
    }

    private func authArguments() -> [String]? {
        guard let password = endpoint.password else { return nil }
        if let username = endpoint.username, !username.isEmpty {
            return ["AUTH", username, password]
        }
        return ["AUTH", password]
    }

    func publisherBecameReady() {
        publisher.markReady()
        lifecycles.publisher.ready()
        logger.debug("publisher ready", metadata: [LogKey.waiting: "\(pipeline.waiting.count)"])
        // Everything that waited goes out now, pipelined, in order.
        while let entry = pipeline.takeWaiting() {
            // Cluster mode: a publish following -ASK keeps its ASKING (a waiting batch goes out one payload per run).
            let asking = sharded && (entry.waiter as? ClusterPublishWaiter)?.asking == true
            if publisher.publish(channel: entry.channel, payload: entry.payload, asking: asking) == 1 {
                recordSent(1, of: 1, waiter: entry.waiter, deadline: entry.deadline)
            } else {
                entry.waiter.fail(ChannelLayerError(.connectionLost, "the publisher to \(endpoint) went away"))
            }
        }
        updateHealth()
    }

    func subscriberBecameReady() {
        subscriber.markReady()
        lifecycles.subscriber.ready()
        logger.debug("subscriber ready", metadata: [LogKey.channels: "\(subscriptions.wantedCount)"])
        updateHealth()
    }

    /// A connection failed to connect or was lost (never for our own `close()`).
    func connectionLost(_ role: Role, error: ChannelLayerError) {
        health.lastError = error
        switch role {
        case .publisher:
            pipeline.failInFlight(ChannelLayerError(.connectionLost, "\(error.message); the message may or may not have been published"))
        case .subscriber:
            subscriptions.disconnected()
            initialConfirmationsPending = 0
            probe.stop()
        }
        var generator = SystemRandomNumberGenerator()
        switch lifecycles[role].lost(using: &generator) {
        case .scheduleReconnect(let delay, _):
            logger.debug("\(role) connection lost, reconnecting", metadata: [LogKey.error: "\(error.message)", LogKey.delay: "\(delay)"])
            reconnectTimers[role] = loop.scheduleTimer(after: delay) { [self] in
                self.reconnectTimers[role] = nil
                if self.lifecycles[role].backoffElapsed() == .connect { self.connect(role) }
            }
        case .failWaiting:
            health.connectFailed()
            logger.debug("\(role) connect failed", metadata: [LogKey.error: "\(error.message)"])
            switch role {
            case .publisher: pipeline.failWaiting(error)
            case .subscriber: failAllSubscribeWaiters(error)
            }
        case .doNothing:
            break
        }
        updateHealth()
    }

    /// Healthy: both connections ready and every channel wanted at connect confirmed. Read from the
    /// connections themselves, which stop being ready the moment hiredis reports a disconnect, a
    /// job before their loss reaches ``connectionLost(_:error:)`` and the lifecycles.
    func updateHealth() {
        defer { publishStatus() }
        let nowHealthy = publisher.isReady && subscriber.isReady && initialConfirmationsPending == 0
        switch health.update(healthy: nowHealthy) {
        case .startProbing:
            startProbing()
        case .endOutage:
            startProbing()
            statistics.recordReconnect()
            metrics.reconnects.increment()
            // The end of an outage: `info`, once (its start was the one warning).
            logger.info("reconnected to Redis and resubscribed", metadata: [LogKey.channels: "\(subscriptions.wantedCount)"])
            delegate!.shardDidReconnect(self)
        case .startOutage:
            // A probe in flight says nothing once a connection is gone; a new one starts when healthy.
            stopProbing()
            let error = health.lastError ?? ChannelLayerError(.connectionLost, "lost connection to \(endpoint)")
            // The one warning of an outage; its attempts are logged at `debug`, its end at `info`.
            logger.warning("lost connection to Redis; reconnecting", metadata: [LogKey.error: "\(error.message)"])
            delegate!.shard(self, didDisconnectWithError: error)
        case .doNothing:
            break
        }
    }
}

// MARK: Liveness

extension RedisShard {
    func startProbing() {
        probeTimer?.cancel()
        probeTimer = nil
        perform(probe.start())
    }

    func stopProbing() {
        probeTimer?.cancel()
        probeTimer = nil
        probe.stop()
    }

    private func perform(_ action: LivenessProbe.Action) {
        switch action {
        case .sendProbe(let delay):
            probeTimer = loop.scheduleTimer(after: delay) { [self] in sendProbe() }
        case .checkProbe(let delay):
            probeTimer = loop.scheduleTimer(after: delay) { [self] in
                probeTimer = nil
                perform(probe.deadlinePassed())
            }
        case .replaceConnections(let publisherFailed, let subscriberFailed):
            statistics.recordLivenessFailure()
            metrics.livenessFailures.increment()
            let timeout = configuration.livenessTimeout
            if publisherFailed {
                publisher.fail(ChannelLayerError(.timeout, "publisher to \(endpoint) did not answer a liveness probe within \(timeout)"))
            }
            if subscriberFailed {
                subscriber.fail(ChannelLayerError(.timeout, "subscriber to \(endpoint) did not receive a liveness probe within \(timeout)"))
            }
        case .doNothing:
            break
        }
    }

    /// hiredis 0.14.1 never answers PING on a subscribed context (the reply is misrouted), so the
    /// publisher publishes a probe to the subscriber's internal channel and expects it back.
    private func sendProbe() {
        probeTimer = nil
        guard health.isHealthy else { return probe.stop() }
        let id = UUIDHex.random()
        guard publisher.publish(channel: internalChannel, payload: Array(id.utf8)[...], sharded: false) == 1 else {
            // No probe until the shard is healthy again: the publisher is gone, its loss comes next.
            return probe.stop()
        }
        pipeline.probeSent()
        if sentinel != nil, publisher.command(["ROLE"]) { pipeline.roleCheckSent() }
        perform(probe.sent(id: id))
    }
}

// MARK: Timeouts

extension RedisShard {
    func armSweep(for deadline: ContinuousClock.Instant) {
        if let current = sweepDeadline, current <= deadline, sweepTimer?.isActive == true { return }
        sweepTimer?.cancel()
        sweepDeadline = deadline
        let delay = max(.zero, ContinuousClock.now.duration(to: deadline)) + .milliseconds(1)
        sweepTimer = loop.scheduleTimer(after: delay) { [self] in sweep() }
    }

    /// Fails every publish and subscribe whose deadline passed, and sweeps again at the next.
    private func sweep() {
        sweepTimer = nil
        sweepDeadline = nil
        let now = ContinuousClock.now
        var next = pipeline.expire(at: now) { sendTimeoutError() }
        let (expired, nextSubscribe) = subscribeWaiters.removeExpired(at: now)
        if let nextSubscribe, next.map({ nextSubscribe < $0 }) ?? true { next = nextSubscribe }
        for (channel, completion) in expired {
            completion(
                ChannelLayerError(
                    .timeout,
                    "Redis did not confirm the subscription to '\(channel)' within \(configuration.sendTimeout)\(lastErrorSuffix)",
                    underlying: unhealthyError
                )
            )
        }
        if let next { armSweep(for: next) }
    }

    private func sendTimeoutError() -> ChannelLayerError {
        ChannelLayerError(
            .timeout,
            "the message was not published to \(endpoint) within \(configuration.sendTimeout)\(lastErrorSuffix)",
            underlying: unhealthyError
        )
    }

    /// The last connection error while the shard is not healthy: a timeout's `underlying`, so that a
    /// caller can tell a refused TLS handshake (`connectionFailed`) from a slow server.
    private var unhealthyError: ChannelLayerError? { health.isHealthy ? nil : health.lastError }

    /// Why a timeout happened, when the shard is not healthy: the last connection error, or that
    /// the first connection is still being made (the connect timeout may fire a moment later).
    private var lastErrorSuffix: String {
        guard !health.isHealthy else { return "" }
        if let lastError = health.lastError { return " (last error: \(lastError.message))" }
        return " (still connecting to \(endpoint))"
    }
}
