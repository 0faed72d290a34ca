internal import CHiredis

// MARK: - Connection callbacks

extension RedisShard: HiredisConnectionDelegate {
    func connection(_ connection: HiredisConnection, didReceiveReply reply: UnsafePointer<redisReply>?) {
        if connection === publisher {
            publisherReply(reply)
        } else {
            // The subscriber's only normal command is AUTH.
            if let reply, reply.pointee.type == REDIS_REPLY_ERROR {
                let text = RedisReply.text(reply) ?? "error"
                let error = ChannelLayerError(.connectionFailed, "AUTH to \(endpoint) failed: \(text)")
                health.lastError = error
                loop.execute(with: self) { shard in shard.subscriber.fail(error) }
            }
        }
    }

    private func publisherReply(_ reply: UnsafePointer<redisReply>?) {
        guard let front = pipeline.takeReply() else { return }
        switch front.kind {
        case .publish:
            // Always taken, so that the next run starts from zero.
            let rejected = reply == nil ? (count: 0, text: "", receivers: 0) : publisher.takeRejectedPublishes()
            guard let waiter = front.waiter, waiter.isPending else { return }  // failed already (timeout, error)
            guard let reply else {
                waiter.fail(
                    closed
                        ? (closeError ?? ChannelLayerError.closed())
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
                if sharded, let redirect = ClusterRedirect(text) {
                    clusterDelegate?.shard(self, wasRedirected: redirect)
                    if waiter.followRedirect(redirect, refused: refused) { return }
                }
                let what = front.count == 1 ? "" : " (\(refused) of \(front.count) in one batch)"
                waiter.fail(ChannelLayerError(.commandRefused, "Redis refused PUBLISH\(what): \(text)"))
            }
        case .handshake:
            guard let reply else { return }
            if reply.pointee.type == REDIS_REPLY_ERROR {
                let text = RedisReply.text(reply) ?? "error"
                let error = ChannelLayerError(.connectionFailed, "handshake with \(endpoint) failed: \(text)")
                health.lastError = error
                // Not inside the callback: hiredis is still iterating this context's replies.
                loop.execute(with: self) { shard in shard.publisher.fail(error) }
            } else if pipeline.isHandshakeFinished {
                publisherBecameReady()
            }
        case .probe:
            if reply != nil { probe.publisherReplied() }
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
