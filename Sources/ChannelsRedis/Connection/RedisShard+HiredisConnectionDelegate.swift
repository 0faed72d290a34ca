internal import CHiredis

// MARK: - Connection callbacks

extension RedisShard: HiredisConnectionDelegate {
    func connection(_ connection: HiredisConnection, didReceiveReply reply: UnsafePointer<redisReply>?) {
        if connection === publisher {
            publisherReply(reply)
        } else {
            // The subscriber's normal commands are AUTH and, on a Sentinel endpoint, ROLE.
            guard let reply else { return }
            if reply.pointee.type == REDIS_REPLY_ERROR {
                let text = RedisReply.text(reply) ?? "error"
                let error = ChannelLayerError(.connectionFailed, "handshake with \(subscriber.endpoint) failed: \(text)")
                failSubscriberLater(error)
            } else if let role = Self.role(reply) {
                guard role == "master" else { return failSubscriberLater(refuseNonMaster(role, on: subscriber)) }
                initialConfirmationsPending -= 1
                if initialConfirmationsPending == 0 { subscriberBecameReady() }
            }
        }
    }

    /// A publish's error when its connection went before the reply came.
    var publishLostError: ChannelLayerError {
        closed
            ? (closeError ?? ChannelLayerError.closed())
            : ChannelLayerError(
                .connectionLost,
                "the connection to \(endpoint) was lost before Redis confirmed the message; it may or may not have been published"
            )
    }

    private func failSubscriberLater(_ error: ChannelLayerError) {
        health.lastError = error
        // Not inside the callback: hiredis is still iterating this context's replies.
        let generation = subscriber.generation
        loop.execute(with: self) { shard in
            guard shard.subscriber.generation == generation else { return }
            shard.subscriber.fail(error)
        }
    }

    private func publisherReply(_ reply: UnsafePointer<redisReply>?) {
        guard let front = pipeline.takeReply() else { return }
        switch front.kind {
        case .publish:
            loop.notePublishActivity()
            // Always taken, so that the next run starts from zero.
            let rejected = reply == nil ? (count: 0, text: "", receivers: 0) : publisher.takeRejectedPublishes()
            if sharded, let waiter = front.waiter as? ClusterPublishWaiter {
                return clusterPublishReply(reply, run: front, waiter: waiter, rejected: rejected)
            }
            guard let waiter = front.waiter, waiter.isPending else { return }  // failed already (timeout, error)
            guard let reply else { return waiter.fail(publishLostError) }
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
            var failure: ChannelLayerError?
            if reply.pointee.type == REDIS_REPLY_ERROR {
                let text = RedisReply.text(reply) ?? "error"
                failure = ChannelLayerError(.connectionFailed, "handshake with \(publisher.endpoint) failed: \(text)")
            } else if let role = Self.role(reply), role != "master" {
                failure = refuseNonMaster(role, on: publisher)
            }
            if let failure {
                publisherHandshakeFailed = true
                health.lastError = failure
                // Not inside the callback: hiredis is still iterating this context's replies.
                let generation = publisher.generation
                loop.execute(with: self) { shard in
                    guard shard.publisher.generation == generation else { return }
                    shard.publisher.fail(failure)
                }
            } else if pipeline.isHandshakeFinished, !publisherHandshakeFailed {
                publisherBecameReady()
            }
        case .probe:
            if reply != nil { probe.publisherReplied() }
        case .roleCheck:
            if let reply { roleChecked(reply) }
        }
    }

    func connection(_ connection: HiredisConnection, didConfirm subscribed: Bool, channel: UnsafeRawBufferPointer) {
        guard connection === subscriber else { return }
        // Identified by its own kind and channel (hiredis, which could hand a push to the wrong
        // subscription callback, does not see these: HiredisConnection.subscribe).
        if subscribed {
            if !internalChannelBytes.withUnsafeBytes({ RedisReply.equals(channel, $0) }) {
                perform(subscriptions.subscribeConfirmed(String(decoding: channel, as: UTF8.self)))
            }
            if initialConfirmationsPending > 0 {
                initialConfirmationsPending -= 1
                if initialConfirmationsPending == 0 { subscriberBecameReady() }
            }
        } else {
            perform(subscriptions.unsubscribeConfirmed(String(decoding: channel, as: UTF8.self)))
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
            probe.received(payload)
            return
        }
        statistics.received.add(1)
        delegate!.shard(self, didReceiveMessage: payload, on: channel)
    }

    func connection(_ connection: HiredisConnection, didCloseWithError error: ChannelLayerError) {
        guard !closed else { return }
        connectionLost(connection === publisher ? .publisher : .subscriber, error: error)
    }
}
