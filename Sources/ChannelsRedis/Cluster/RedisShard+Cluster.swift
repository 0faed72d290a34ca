internal import CHiredis
import DequeModule
import Logging

/// A redirect in a cluster node's error reply: `MOVED <slot> <host>:<port>` (the slot lives there now) or
/// `ASK <slot> <host>:<port>` (it is migrating there; ask that node once).
struct ClusterRedirect: Equatable, Sendable {
    var isMoved: Bool
    var slot: Int
    var address: RedisEndpoint.Address

    /// Parses an error text without its `-`; `nil` for any other error.
    init?(_ text: String) {
        let parts = text.split(separator: " ")
        guard parts.count == 3, parts[0] == "MOVED" || parts[0] == "ASK", let slot = Int(parts[1]), (0..<ClusterKeySlot.count).contains(slot),
            let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...]), (1...65535).contains(port)
        else { return nil }
        var host = String(parts[2][..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.isMoved = parts[0] == "MOVED"
        self.slot = slot
        self.address = .hostname(host.lowercased(), port: port)
    }
}

/// The SSUBSCRIBEs and SUNSUBSCRIBEs a sharded subscriber sent whose replies have not all come, in order: Redis
/// answers a command of n channels with n pushes, or with one error, and the error names no channel. So an error is
/// the front command's, and a `sunsubscribe` that answers no command is the server's own (the slot moved).
///
/// A value of its shard, for one connection at a time: a new connection (generation) starts it empty.
struct ShardedCommandQueue {
    struct Command: Equatable {
        var subscribe: Bool
        /// In the order sent; removed as they are confirmed.
        var pending: [String]
    }

    private(set) var commands: Deque<Command> = []
    private var generation = -1

    init() {}

    mutating func sent(subscribe: Bool, channels: [String], generation: Int) {
        reset(ifNot: generation)
        commands.append(Command(subscribe: subscribe, pending: channels))
    }

    /// A confirmation of `channel`: whether it answered the front command (else it is the server's own push).
    mutating func confirmed(_ channel: String, subscribe: Bool, generation: Int) -> Bool {
        reset(ifNot: generation)
        guard var front = commands.first, front.subscribe == subscribe, let index = front.pending.firstIndex(of: channel) else { return false }
        front.pending.remove(at: index)
        if front.pending.isEmpty { commands.removeFirst() } else { commands[commands.startIndex] = front }
        return true
    }

    /// An error reply: the front command, which it refused; `nil` if no command waits (the error is not ours).
    mutating func refused(generation: Int) -> Command? {
        reset(ifNot: generation)
        return commands.popFirst()
    }

    private mutating func reset(ifNot generation: Int) {
        guard generation != self.generation else { return }
        commands.removeAll()
        self.generation = generation
    }
}

/// What a cluster primary's shard tells the engine besides ``RedisShardDelegate``'s calls.
protocol ClusterShardDelegate: RedisShardDelegate {
    /// Redis says `channel`, still wanted, is not served by this shard's node: it refused its SSUBSCRIBE with
    /// `redirect`, or (`redirect` nil) ended its subscription because its slot moved. `waiters` are the completions
    /// still waiting for its subscription: the engine routes the channel again and hands them on.
    func shard(_ shard: RedisShard, lostChannel channel: String, redirect: ClusterRedirect?, waiters: [SubscribeWaiters.Completion])
    /// A publish to this shard's node was refused with `-MOVED`: the map is stale. (`-ASK` says nothing about the map.)
    func shard(_ shard: RedisShard, wasRedirected redirect: ClusterRedirect)
}

// MARK: - Sharded publishes

extension RedisShard {
    /// SPUBLISHes `waiter`'s payloads on `channel` (after ASKING each, if the waiter follows `-ASK`).
    func publish(channel: String, clusterWaiter waiter: ClusterPublishWaiter) {
        loop.preconditionInLoop()
        precondition(sharded, "a cluster publish needs a cluster primary's shard")
        guard !closed else { return waiter.fail(ChannelLayerError.closed()) }
        let payloads: Payloads
        switch waiter.payloads {
        case .one(let payload): payloads = .one(payload[...])
        case .batch(let batch): payloads = .batch(batch)
        }
        enqueue(
            channel: channel,
            payloads: payloads,
            waiter: waiter,
            deadline: ContinuousClock.now.advanced(by: configuration.sendTimeout),
            asking: waiter.asking
        )
    }

    /// The reply to the last SPUBLISH of one of `waiter`'s runs (`rejected` as the glue counted the others): the
    /// redirected SPUBLISHes (`-MOVED`, `-ASK`) go back to the waiter for another try, the others are confirmed; a
    /// refusal that is not a redirect fails the whole publish.
    func clusterPublishReply(
        _ reply: UnsafePointer<redisReply>?,
        run: PublishPipeline.InFlightRun,
        waiter: ClusterPublishWaiter,
        rejected: (count: Int, text: String, receivers: Int)
    ) {
        // Always taken, so that the next run starts from zero.
        let earlier = publisher.takeRefusedPositions(count: rejected.count)
        guard waiter.isPending else { return }  // failed already (timeout, error)
        guard let reply else { return waiter.fail(publishLostError) }
        let lastRefused = reply.pointee.type == REDIS_REPLY_ERROR
        let refused = rejected.count + (lastRefused ? 1 : 0)
        statistics.published.add(run.count - refused)
        let last = reply.pointee.type == REDIS_REPLY_INTEGER ? Int(reply.pointee.integer) : 0
        guard refused > 0 else {
            return waiter.answered(count: run.count, receivers: rejected.receivers + last, redirectedPositions: [], redirect: nil)
        }
        let text = lastRefused ? (RedisReply.text(reply) ?? "error") : rejected.text
        var positions = earlier.positions
        if lastRefused { positions.append(run.count - 1) }
        // Every refusal must be a redirect with a known position, else the run fails as a whole (as on one server).
        if earlier.other == 0, positions.count == refused, let redirect = ClusterRedirect(text) {
            if redirect.isMoved { clusterDelegate?.shard(self, wasRedirected: redirect) }
            if refused < run.count { statistics.cluster.partiallyRedirectedRuns.add(1) }
            return waiter.answered(count: run.count, receivers: rejected.receivers + last, redirectedPositions: positions, redirect: redirect)
        }
        let what = run.count == 1 ? "" : " (\(refused) of \(run.count) in one batch)"
        waiter.fail(ChannelLayerError(.commandRefused, "Redis refused SPUBLISH\(what): \(text)"))
    }
}

// MARK: - Sharded subscriptions

extension RedisShard {
    /// SSUBSCRIBE or SUNSUBSCRIBE (for `verb` SUBSCRIBE or UNSUBSCRIBE) of `channels`, one command per slot (Redis
    /// refuses a command whose channels span slots with `-CROSSSLOT`) and at most 1,000 channels each.
    func sendShardedSubscriptionCommand(_ verb: String, _ channels: [String]) {
        let subscribe = verb == "SUBSCRIBE"
        var bySlot: [Int: [String]] = [:]
        var order: [Int] = []
        for channel in channels {
            let slot = ClusterKeySlot.slot(for: channel)
            if bySlot[slot] == nil { order.append(slot) }
            bySlot[slot, default: []].append(channel)
        }
        let batchSize = 1_000
        for slot in order {
            let names = bySlot[slot]!
            var start = 0
            while start < names.count {
                let end = min(start + batchSize, names.count)
                let batch = Array(names[start..<end])
                if subscriber.shardedSubscriptionCommand([subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE"] + batch) {
                    shardedCommands.sent(subscribe: subscribe, channels: batch, generation: subscriber.generation)
                }
                start = end
            }
        }
    }

    /// One of the confirmations a new subscriber waits for arrived (or was refused).
    private func initialConfirmationAnswered() {
        guard initialConfirmationsPending > 0 else { return }
        initialConfirmationsPending -= 1
        if initialConfirmationsPending == 0 { subscriberBecameReady() }
    }

    var clusterDelegate: (any ClusterShardDelegate)? { delegate as? any ClusterShardDelegate }
}

extension RedisShard: HiredisShardPushDelegate {
    func connection(_ connection: HiredisConnection, didReceiveShardPush push: ShardPush) {
        guard connection === subscriber, !closed else { return }
        let generation = subscriber.generation
        switch push {
        case .subscribed(let bytes):
            let name = String(decoding: bytes, as: UTF8.self)
            _ = shardedCommands.confirmed(name, subscribe: true, generation: generation)
            perform(subscriptions.subscribeConfirmed(name))
            initialConfirmationAnswered()
        case .unsubscribed(let bytes):
            let name = String(decoding: bytes, as: UTF8.self)
            if shardedCommands.confirmed(name, subscribe: false, generation: generation) {
                perform(subscriptions.unsubscribeConfirmed(name))
            } else if subscriptions.unsubscribedByServer(name) {
                // The server's own: the channel's slot moved to another node (or was deleted).
                statistics.cluster.unsubscribedByServer.add(1)
                logger.debug("the server ended a sharded subscription (its slot moved)", metadata: [LogKey.channel: "\(name)"])
                clusterDelegate?.shard(self, lostChannel: name, redirect: nil, waiters: subscribeWaiters.remove(for: name))
            }
        case .refused(let bytes):
            let text = String(decoding: bytes, as: UTF8.self)
            guard let command = shardedCommands.refused(generation: generation) else {
                // No SSUBSCRIBE or SUNSUBSCRIBE waits: an error hiredis would have taken for a spontaneous one (the
                // refusal of the internal SUBSCRIBE, say). Do what it does: drop the connection.
                let error = ChannelLayerError(.commandRefused, "\(endpoint) sent an unexpected error to the subscriber: \(text)")
                health.lastError = error
                loop.execute(with: self) { shard in shard.subscriber.fail(error) }
                return
            }
            refused(command, text: text)
        }
    }

    /// An SSUBSCRIBE refused with a redirect hands its channels to the engine, which subscribes them where the next map
    /// says. That holds for `-ASK` too: Redis 7.0 (7.0.15 checked) never answers SSUBSCRIBE with `-ASK` (a channel is not
    /// a key, so a MIGRATING slot's source keeps serving it until the slot is assigned, then ends it with a
    /// `sunsubscribe` push), and a subscription taken on the importing node with ASKING before then would miss what the
    /// source still publishes.
    private func refused(_ command: ShardedCommandQueue.Command, text: String) {
        let redirect = ClusterRedirect(text)
        for name in command.pending {
            guard command.subscribe else {
                // A refused SUNSUBSCRIBE: the node no longer has the channel (its slot moved), which is what was wanted.
                _ = subscriptions.unsubscribedByServer(name)
                continue
            }
            subscriptions.subscribeRefused(name)
            initialConfirmationAnswered()
            guard subscriptions.wanted.contains(name) else { continue }
            if let redirect, let clusterDelegate {
                clusterDelegate.shard(self, lostChannel: name, redirect: redirect, waiters: subscribeWaiters.remove(for: name))
            } else {
                let error = ChannelLayerError(.commandRefused, "\(endpoint) refused SSUBSCRIBE of '\(name)': \(text)")
                logger.warning("a sharded subscription was refused", metadata: [LogKey.channel: "\(name)", LogKey.error: "\(text)"])
                for completion in subscribeWaiters.remove(for: name) { completion(error) }
            }
        }
    }

    /// Hands `channel` over to another shard: it is no longer wanted here, and unsubscribed here if it was
    /// subscribed. Its waiting completions are returned for the new shard.
    func handOver(_ channel: String) -> [SubscribeWaiters.Completion] {
        loop.preconditionInLoop()
        if subscriptions.handOver(channel) { sendSubscriptionCommands([channel], unsubscribe: true) }
        return subscribeWaiters.remove(for: channel)
    }
}
