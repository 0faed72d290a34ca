public import Logging
public import Metrics
import Synchronization

/// A channel layer over Redis pub/sub, wire-compatible with Python's
/// `channels_redis.pubsub.RedisPubSubChannelLayer` (channels-redis 4.3.0).
///
/// Every consumer owns a channel (``newChannel(prefix:)``), may join groups (``groupAdd(_:channel:)``),
/// and receives what is sent to its channel or its groups (``receive(from:)`` or
/// ``messages(from:)``). A group send is one `PUBLISH`; the layer subscribes once per group and
/// fans out locally.
///
/// A channel lives until ``discard(channel:)``, the end of a ``ChannelLayer/withChannel(prefix:_:)``
/// or ``ChannelLayer/withMessages(from:_:)`` scope, ``flush()`` or ``close()``; cancelling a
/// `receive` or leaving a `messages` loop ends only that wait (see ``ChannelLayer``).
///
/// The layer runs hiredis on a libevent loop on a thread of its own. It reconnects and resubscribes
/// by itself; ``connectionEvents()`` says when. Call ``close()`` when done: it tears everything down
/// and joins the thread. A layer dropped without `close()` shuts down in the background: its
/// streams finish with `layerClosed`, its connections are freed and its thread exits on its own.
///
/// ```swift
/// let layer = try RedisPubSubChannelLayer(hosts: ["redis://127.0.0.1:6379"])
/// try await layer.withChannel { me, messages in
///     try await layer.groupAdd("room", channel: me)
///     try await layer.groupSend(["type": "chat.message", "message": "hi"], to: "room")
///     for try await message in messages {
///         print(message["message"]?.stringValue ?? "")
///         break
///     }
/// }
/// await layer.close()
/// ```
public final class RedisPubSubChannelLayer: ChannelLayer, Sendable {
    /// The configuration the layer was made with.
    public let configuration: Configuration
    let loop: LibeventLoop
    let engine: PubSubEngine
    private let codec: MessageCodec
    let statisticsStorage: LayerStatistics  // (internal: tests read counters `statistics` does not show)
    private let events: ConnectionEventBroadcaster
    private let statusCells: ShardStatusList
    private let closed = Atomic<Bool>(false)
    /// What `run()` (the `Service` conformance) needs: whether it ran, and when the layer closed.
    let runState = ServiceRunState()
    private let logger: Logger

    /// Creates a layer for the given hosts with every other setting at its default.
    ///
    /// No connection is made yet: the first operation on a host connects to it.
    ///
    /// - Parameters:
    ///   - hosts: Redis URLs, `redis://[[user]:password@]host[:port][/db]`, `rediss://…` (TLS, see
    ///     ``RedisEndpoint/TLS``) or `unix:///path`.
    ///   - prefix: The prefix of every channel and group name on Redis.
    ///   - logger: Where the layer logs; by default nowhere.
    /// - Throws: ``ChannelLayerError`` with code `invalidConfiguration` for a malformed or
    ///   unsupported URL, or TLS files (CA, certificate, key) that cannot be loaded.
    public convenience init(
        hosts: [String],
        prefix: String = "asgi",
        logger: Logger = Logger(label: "channels-redis", factory: { _ in SwiftLogNoOpLogHandler() })
    ) throws {
        try self.init(configuration: Configuration(hosts: hosts, prefix: prefix), logger: logger)
    }

    /// Creates a layer from a full configuration.
    ///
    /// ```swift
    /// var config = RedisPubSubChannelLayer.Configuration(hosts: ["redis://127.0.0.1:6379"])
    /// config.capacity = 1_000
    /// let layer = try RedisPubSubChannelLayer(configuration: config, logger: logger)
    /// ```
    ///
    /// - Parameters:
    ///   - configuration: Hosts, names, codec, buffers, timeouts.
    ///   - logger: Where the layer logs (swift-log); by default nowhere. It logs at `debug` and
    ///     below except for rare events: an outage is one `warning` when it starts and one `info`
    ///     when it ends.
    ///   - metricsFactory: Where its swift-metrics go; by default the one the application
    ///     bootstrapped (`MetricsSystem.factory`). Counters: `channels_redis_published_messages_total`,
    ///     `…_received_messages_total`, `…_delivered_messages_total`, `…_dropped_messages_total`,
    ///     `…_undecodable_messages_total`, `channels_redis_reconnects_total` and
    ///     `channels_redis_liveness_failures_total`, `channels_redis_failovers_total` (dimension `shard`). Gauges:
    ///     `channels_redis_subscribed_channels`, `channels_redis_subscribed_groups`,
    ///     `channels_redis_unconsumed_channels`, `channels_redis_shard_up` (`shard`; 1 when ready).
    ///     Per-message counts are handed over once a second.
    /// - Throws: ``ChannelLayerError`` with code `invalidConfiguration`.
    public init(
        configuration: Configuration,
        logger: Logger = Logger(label: "channels-redis", factory: { _ in SwiftLogNoOpLogHandler() }),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) throws {
        let cluster = try configuration.validatedCluster()
        let endpoints = cluster == nil ? try configuration.validated() : []
        // TLS files are loaded now, so that a bad one fails here rather than at every connect.
        let tlsContexts = try endpoints.map { endpoint throws(ChannelLayerError) -> OpenSSLContext? in
            guard let tls = endpoint.address.tls else { return nil }
            return try OpenSSLContext(settings: tls, host: endpoint.address.host, endpoint: endpoint)
        }
        self.configuration = configuration
        self.logger = logger
        self.codec = try MessageCodec(configuration: configuration)
        self.statisticsStorage = LayerStatistics(metricsFactory: metricsFactory)
        self.statusCells = ShardStatusList(endpoints.map { _ in ShardStatusCell() })
        self.events = ConnectionEventBroadcaster()
        self.loop = try LibeventLoop(name: "channels-redis", busyPoll: configuration.busyPoll, replyPoll: configuration.replyPoll)
        let engine = PubSubEngine(
            loop: loop,
            configuration: configuration,
            endpoints: endpoints,
            cluster: cluster,
            tlsContexts: tlsContexts,
            codec: codec,
            statistics: statisticsStorage,
            events: events,
            statusCells: statusCells,
            metricsFactory: metricsFactory,
            logger: logger
        )
        self.engine = engine
        loop.execute { engine.start() }
    }

    deinit {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // Never touch C from deinit: the loop tears down and its thread exits by itself.
        let engine = self.engine
        loop.execute { engine.close() }
        loop.shutdownInBackground()
    }

    // MARK: Channels

    /// Creates a channel owned by this layer: `"<prefix><channel prefix><32 hex digits>"`.
    ///
    /// Returns once Redis confirmed the subscription, so a message sent right after is not missed.
    ///
    /// ```swift
    /// let me = try await layer.newChannel()                   // "asgispecific.3f2a…"
    /// let chat = try await layer.newChannel(prefix: "chat.")  // "asgichat.9b1c…"
    /// ```
    ///
    /// - Parameter prefix: Put between the layer prefix and the random part.
    /// - Throws: ``ChannelLayerError``: `invalidName`, `timeout`, `connectionFailed`, `layerClosed`.
    public nonisolated(nonsending) func newChannel(prefix: String = "specific.") async throws -> String {
        let name = "\(configuration.prefix)\(prefix)\(UUIDHex.random())"
        try NameValidation.validateChannel(name)
        try await onLoop { (continuation: RedisShard.Continuation) in
            { [engine] in
                engine.newChannel(name, continuation: continuation)
            }
        }
        return name
    }

    /// Sends a message to a channel: one `PUBLISH` to exactly `channel`.
    ///
    /// Returns once Redis confirmed the `PUBLISH`, with Redis's count of the subscriber connections
    /// that received it: one per process subscribed to the channel (this one included), so `0`
    /// means nobody was listening and the message is gone. Delivery is at most once: a receiver
    /// that is not subscribed at that moment never gets it.
    ///
    /// ```swift
    /// let receivers = try await layer.send(["type": "test.message", "text": "Ahoy-hoy!"], to: channel)
    /// if receivers == 0 { logger.info("nobody is listening on \(channel)") }
    /// ```
    ///
    /// - Returns: How many subscriber connections Redis delivered the message to.
    /// - Throws: ``ChannelLayerError``: `invalidName`, `encodingFailed`, `messageTooLarge`, `timeout`
    ///   (not confirmed within `sendTimeout`, e.g. while Redis is down), `connectionLost` (the
    ///   connection broke before Redis answered: it may or may not have been published), `layerClosed`.
    @discardableResult
    public nonisolated(nonsending) func send(_ message: ChannelMessage, to channel: String) async throws -> Int {
        try NameValidation.validateChannel(channel)
        return try await publish(message, to: channel)
    }

    /// Sends several messages to a channel: pipelined `PUBLISH`es in order, one hand-off to the
    /// loop and one wait for them all, for bulk producers.
    ///
    /// ```swift
    /// try await layer.send(contentsOf: events.map { ["type": "tick", "n": .int($0)] }, to: channel)
    /// ```
    ///
    /// - Returns: The **sum** over the messages of the subscriber connections each reached (with
    ///   one process listening, the number of messages; `0`: nobody was listening).
    /// - Throws: as ``send(_:to:)``, at the first message that fails; messages before it were
    ///   published, messages after it may or may not have been.
    @inlinable
    @discardableResult
    public nonisolated(nonsending) func send(contentsOf messages: some Sequence<ChannelMessage>, to channel: String) async throws -> Int {
        // Inlinable so the sequence is walked by code specialised in the caller's module: a generic
        // walk here would go through witness tables and metadata look-ups for every message.
        try await send(batch: Array(messages), to: channel)
    }

    @usableFromInline
    nonisolated(nonsending) func send(batch messages: [ChannelMessage], to channel: String) async throws -> Int {
        try NameValidation.validateChannel(channel)
        return try await publish(contentsOf: messages, to: channel)
    }

    /// Receives the next message of a channel.
    ///
    /// A channel this layer did not create is subscribed on demand (a "general" channel) and stays
    /// subscribed until ``discard(channel:)``. Several concurrent receivers of one channel each get
    /// a message, in FIFO order. Cancelling the calling task ends this wait only: the channel, its
    /// groups and any message that arrives afterwards stay for the next consumer.
    ///
    /// ```swift
    /// let message = try await layer.receive(from: me)
    /// ```
    ///
    /// - Throws: ``ChannelLayerError`` (`invalidName`, `timeout` subscribing, `channelClosed` when
    ///   the channel was discarded or flushed, `layerClosed`) or `CancellationError`.
    public nonisolated(nonsending) func receive(from channel: String) async throws -> ChannelMessage {
        try NameValidation.validateChannel(channel)
        return try await mailbox(for: channel).receive()
    }

    /// Receives the next message of a channel, or `nil` when none arrived within `timeout`.
    ///
    /// Nothing else changes when it times out: the channel stays subscribed and in its groups, and a
    /// message that arrives afterwards waits for the next consumer. (Racing ``receive(from:)``
    /// against `Task.sleep` in a task group can lose a message that arrives as the race is
    /// decided; this cannot.)
    ///
    /// ```swift
    /// if let message = try await layer.receive(from: me, timeout: .seconds(5)) {
    ///     handle(message)
    /// }
    /// ```
    ///
    /// - Throws: as ``receive(from:)``.
    public nonisolated(nonsending) func receive(from channel: String, timeout: Duration) async throws -> ChannelMessage? {
        try NameValidation.validateChannel(channel)
        return try await mailbox(for: channel).receive(timeout: timeout)
    }

    /// The messages of a channel as an `AsyncSequence`, subscribed on return.
    ///
    /// Leaving the loop (`break`, cancellation) or dropping the sequence ends that consumer only;
    /// the channel lives until ``discard(channel:)``. Prefer ``ChannelLayer/withChannel(prefix:_:)``
    /// or ``ChannelLayer/withMessages(from:_:)``, which discard it when their scope ends.
    ///
    /// ```swift
    /// for try await message in try await layer.messages(from: me) {
    ///     if message["type"]?.stringValue == "chat.message" { print(message["message"] ?? nil) }
    /// }
    /// ```
    ///
    /// - Throws: ``ChannelLayerError``: `invalidName`, `timeout`, `layerClosed`.
    public nonisolated(nonsending) func messages(from channel: String) async throws -> ChannelMessageSequence {
        try NameValidation.validateChannel(channel)
        return ChannelMessageSequence(channel: channel, mailbox: try await mailbox(for: channel))
    }

    /// Ends a channel: unsubscribes it from Redis (once nothing else local needs the name), removes
    /// it from every group it joined, drops its buffered messages and ends its consumers with
    /// `channelClosed`. The counterpart of channels_redis's `clean_channel`.
    ///
    /// Idempotent: discarding a channel that is not local (never made, or discarded already) does
    /// nothing.
    ///
    /// ```swift
    /// let me = try await layer.newChannel()
    /// defer { Task { try await layer.discard(channel: me) } }
    /// ```
    ///
    /// - Throws: ``ChannelLayerError``: `invalidName`, `layerClosed`.
    public nonisolated(nonsending) func discard(channel: String) async throws {
        try NameValidation.validateChannel(channel)
        try await onLoop { (continuation: RedisShard.Continuation) in
            { [engine] in
                engine.discard(channel: channel)
                continuation.resume()
            }
        }
    }

    // MARK: Groups

    /// Adds a channel of this layer to a group; returns once Redis confirmed the group's subscription.
    ///
    /// ```swift
    /// try await layer.groupAdd("room", channel: me)
    /// ```
    ///
    /// - Throws: ``ChannelLayerError``: `invalidName`, `notAMember` (the channel is not one this
    ///   layer created or receives from, as in Python), `timeout`, `layerClosed`.
    public nonisolated(nonsending) func groupAdd(_ group: String, channel: String) async throws {
        try NameValidation.validateGroup(group)
        try NameValidation.validateChannel(channel)
        try await onLoop { (continuation: RedisShard.Continuation) in
            { [engine] in
                engine.groupAdd(group, channel: channel, continuation: continuation)
            }
        }
    }

    /// Removes a channel from a group; a no-op if it is not a member. The group is unsubscribed when
    /// its last local member leaves.
    ///
    /// ```swift
    /// try await layer.groupDiscard("room", channel: me)
    /// ```
    public nonisolated(nonsending) func groupDiscard(_ group: String, channel: String) async throws {
        try NameValidation.validateGroup(group)
        try NameValidation.validateChannel(channel)
        try await onLoop { (continuation: RedisShard.Continuation) in
            { [engine] in
                engine.groupDiscard(group, channel: channel)
                continuation.resume()
            }
        }
    }

    /// Sends a message to every member of a group, in every process: one `PUBLISH` to
    /// `"<prefix>__group__<group>"`.
    ///
    /// ```swift
    /// try await layer.groupSend(["type": "chat.message", "message": "hi"], to: "room")
    /// ```
    ///
    /// - Returns: How many subscriber connections Redis delivered it to: one per process with a
    ///   member of the group (however many members each has), so `0` means the group is empty.
    /// - Throws: as ``send(_:to:)``.
    @discardableResult
    public nonisolated(nonsending) func groupSend(_ message: ChannelMessage, to group: String) async throws -> Int {
        try NameValidation.validateGroup(group)
        return try await publish(message, to: engine.groupChannel(group))
    }

    /// Sends several messages to a group: pipelined `PUBLISH`es in order, one wait for them all.
    ///
    /// - Returns: The sum over the messages of the subscriber connections each reached.
    /// - Throws: as ``send(contentsOf:to:)``.
    @inlinable
    @discardableResult
    public nonisolated(nonsending) func groupSend(contentsOf messages: some Sequence<ChannelMessage>, to group: String) async throws -> Int {
        try await groupSend(batch: Array(messages), to: group)  // inlinable: see send(contentsOf:to:)
    }

    @usableFromInline
    nonisolated(nonsending) func groupSend(batch messages: [ChannelMessage], to group: String) async throws -> Int {
        try NameValidation.validateGroup(group)
        return try await publish(contentsOf: messages, to: engine.groupChannel(group))
    }

    // MARK: Lifecycle

    /// Drops every local channel, group and subscription, as if the layer were new.
    ///
    /// Consumers of the dropped channels end with `channelClosed`.
    public nonisolated(nonsending) func flush() async throws {
        try await onLoop { (continuation: RedisShard.Continuation) in
            { [engine] in
                engine.flush(continuation: continuation)
            }
        }
    }

    /// Closes the layer: every stream finishes with `layerClosed`, every pending call throws it,
    /// every connection is freed, and the loop thread is joined. Later calls throw `layerClosed`.
    ///
    /// Idempotent, and safe to call while other calls are in flight.
    public func close() async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else {
            await loop.shutdown()  // a second caller still waits for the teardown to finish
            return
        }
        let engine = self.engine
        loop.execute { engine.close() }
        await loop.shutdown()
        runState.closed.signal()
    }

    // MARK: Observing

    /// A stream of connection events: disconnects and completed reconnects, per shard.
    ///
    /// Each call returns a new stream; it finishes when the layer closes.
    public func connectionEvents() -> AsyncStream<ConnectionEvent> {
        events.stream()
    }

    /// The layer's loop thread as a `TaskExecutor`, for latency-sensitive consumers.
    ///
    /// A task that prefers it runs on the thread that does the layer's I/O, as code on a SwiftNIO
    /// event loop does: resuming it when a message arrives needs no thread wake-up, and its calls
    /// into the layer skip the cross-thread queue. In exchange it must not block or run long: while
    /// it runs, the layer does no I/O.
    ///
    /// ```swift
    /// try await withTaskExecutorPreference(layer.taskExecutor) {
    ///     for try await message in try await layer.messages(from: me) {
    ///         try await layer.send(["type": "pong"], to: message["reply_to"]!.stringValue!)
    ///     }
    /// }
    /// ```
    public var taskExecutor: any TaskExecutor { loop }

    /// Whether every shard is ready or idle: `false` while any is making its first connection,
    /// has failed to, is reconnecting or resubscribing after an outage, or once the layer closed
    /// (with a `redis-cluster://` host, also until the first slot map named the primaries).
    /// Cheap (an atomic load per shard), for readiness probes.
    ///
    /// ```swift
    /// router.get("/ready") { _, _ in layer.isHealthy ? HTTPResponse.Status.ok : .serviceUnavailable }
    /// ```
    public var isHealthy: Bool {
        let cells = statusCells.all
        return !cells.isEmpty && cells.allSatisfy { $0.status.isHealthy }
    }

    /// The status of each shard, in the order of `configuration.hosts`; with a `redis-cluster://` host, of each
    /// primary in the order the slot maps first named them (empty until the first map came). A shard's position here
    /// is the `shard:` index of its ``ConnectionEvent``s for the layer's life: a primary that is no longer one (a
    /// failover, a node that gave up its slots) stays, as ``ShardStatus/retired``, so the list grows by one entry per
    /// primary that ever served the layer.
    ///
    /// ```swift
    /// let live = layer.shardStatuses.filter { $0 != .retired }.count  // primaries in use
    /// ```
    public var shardStatuses: [ShardStatus] {
        statusCells.all.map(\.status)
    }

    /// Counters since the layer was created.
    public var statistics: Statistics {
        let storage = statisticsStorage
        return Statistics(
            published: storage.published.load(ordering: .relaxed),
            received: storage.received.load(ordering: .relaxed),
            delivered: storage.delivered.load(ordering: .relaxed),
            droppedMessages: storage.dropped.load(ordering: .relaxed),
            undecodableMessages: storage.undecodable.load(ordering: .relaxed),
            reconnects: storage.reconnects.load(ordering: .relaxed),
            livenessFailures: storage.livenessFailures.load(ordering: .relaxed),
            failovers: storage.failovers.load(ordering: .relaxed),
            unconsumedChannels: storage.unconsumedChannels.load(ordering: .relaxed),
            clusterSlotMapRefreshes: storage.cluster.slotMapRefreshes.load(ordering: .relaxed),
            clusterRehomedChannels: storage.cluster.rehomedChannels.load(ordering: .relaxed)
        )
    }

    /// A snapshot of a layer's counters.
    public struct Statistics: Sendable, Hashable {
        /// Messages Redis confirmed as published.
        public var published: Int
        /// Messages received from Redis on subscribed channels (before decoding).
        public var received: Int
        /// Messages put into local channel buffers (a group message counts once per member).
        public var delivered: Int
        /// Messages dropped because a consumer's buffer was full (the oldest goes).
        public var droppedMessages: Int
        /// Received messages skipped because they could not be decrypted or decoded.
        public var undecodableMessages: Int
        /// Completed reconnects of any shard.
        public var reconnects: Int
        /// Connections replaced because a liveness probe did not come back.
        public var livenessFailures: Int
        /// Times a shard on a Sentinel endpoint (``RedisEndpoint/Sentinel``) left a node because a
        /// sentinel or the node itself said it was no longer the master.
        public var failovers: Int
        /// Local channels that have held messages with no consumer taking any for at least
        /// ``Configuration/unconsumedChannelThreshold``, as of the last check (a gauge, not a count
        /// since creation). Usually a channel somebody forgot to discard.
        public var unconsumedChannels: Int
        /// Redis Cluster only: how many times the slot map was fetched (at start, after redirects and lost
        /// connections, and periodically).
        public var clusterSlotMapRefreshes: Int = 0
        /// Redis Cluster only: how many times a channel was subscribed again on another primary because its slot
        /// moved there (a migration, a failover).
        public var clusterRehomedChannels: Int = 0
    }

    // MARK: Internals

    private nonisolated(nonsending) func publish(_ message: ChannelMessage, to redisChannel: String) async throws -> Int {
        let payload = try codec.encode(message)
        return try await onLoop { (continuation: RedisShard.PublishContinuation) in
            { [engine] in
                engine.publish(to: redisChannel, payload: payload, continuation: continuation)
            }
        }
    }

    private nonisolated(nonsending) func publish(contentsOf messages: [ChannelMessage], to redisChannel: String) async throws -> Int {
        var payloads = PayloadBatch(capacity: messages.count)
        for message in messages { try codec.encode(message, into: &payloads) }
        let batch = payloads
        return try await onLoop { (continuation: RedisShard.PublishContinuation) in
            { [engine] in
                engine.publish(to: redisChannel, payloads: batch, continuation: continuation)
            }
        }
    }

    private nonisolated(nonsending) func mailbox(for channel: String) async throws -> ChannelMailbox {
        try await onLoop { (continuation: LoopContinuation<ChannelMailbox>) in
            { [engine] in
                engine.mailbox(for: channel, continuation: continuation)
            }
        }
    }

    /// Runs on the loop the job that `makeJob` makes for the call's continuation, which the job (or
    /// something it starts) resumes once.
    ///
    /// `makeJob` is not escaping and returns the job, rather than being the job, so that the job's
    /// closure captures the call's arguments and the continuation at once: one closure context per
    /// call instead of the caller's plus a wrapper that applies it to the continuation (about 9 % of
    /// the allocations of an awaited send; see Benchmarks.md).
    private nonisolated(nonsending) func onLoop<Value: Sendable>(
        _ makeJob: (LoopContinuation<Value>) -> @Sendable () -> Void
    ) async throws -> Value {
        guard !closed.load(ordering: .relaxed) else { throw ChannelLayerError.closed() }
        let value = try await LoopContinuation<Value>.withContinuation { continuation in
            let job = makeJob(continuation)
            if loop.inLoop {
                job()  // already on the loop (a task preferring `taskExecutor`)
            } else if !loop.execute(job) {
                continuation.resume(throwing: ChannelLayerError.closed())  // the job was dropped unrun
            }
        }
        LoopContinuation<Value>.passHandoff()  // pairs with the resume's (see LoopContinuation)
        return value
    }
}
