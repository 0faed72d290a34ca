public import Logging
import Synchronization

/// A channel layer inside one process, with no Redis: the Swift form of Django Channels'
/// `channels.layers.InMemoryChannelLayer`, for unit tests and single-process development.
///
/// It implements ``ChannelLayer`` with the semantics of ``RedisPubSubChannelLayer``: the same name
/// rules and errors, the same channel buffers (FIFO, several consumers sharing one, drop-oldest at
/// ``Configuration/capacity``) and the same channel lifetime: a channel lives until
/// ``discard(channel:)``, the end of a ``ChannelLayer/withChannel(prefix:_:)`` or
/// ``ChannelLayer/withMessages(from:_:)`` scope, ``flush()`` or ``close()``; cancelling a `receive`
/// or leaving a `messages` loop ends only that wait. Code written against `any ChannelLayer` can be
/// tested with this layer and run with the Redis one.
///
/// Where it differs:
/// - One layer, one process: two `InMemoryChannelLayer`s do not see each other's channels.
/// - Messages are not serialized: the ``ChannelMessage`` value itself is handed over, so there is no
///   serializer, no encryption and no `maximumMessageSize`, and a message the Redis layer could not
///   encode (binary data under `.json`, say) goes through.
/// - ``send(_:to:)`` returns 1 when the channel exists here and 0 otherwise, and
///   ``groupSend(_:to:)`` the number of member channels; the Redis layer counts subscriber
///   connections (processes) instead.
/// - Every change is immediate: when ``send(_:to:)`` returns, the message is in the channel's buffer
///   (or with a waiting consumer), and a discarded channel or a group it left gets nothing more. The
///   Redis layer delivers after Redis confirmed the `PUBLISH`, and unsubscribes in the background.
///
/// ```swift
/// let layer = InMemoryChannelLayer()
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
public final class InMemoryChannelLayer: ChannelLayer, Sendable {
    /// The configuration the layer was made with.
    public let configuration: Configuration
    private let state = Mutex(State())
    private let published = Atomic<Int>(0)
    private let delivered = Atomic<Int>(0)
    private let dropped = Atomic<Int>(0)
    /// What `run()` (the `Service` conformance) needs: whether it ran, and when the layer closed.
    let runState = ServiceRunState()
    private let logger: Logger

    /// Creates a layer with the default configuration: prefix `"asgi"`, capacity 10,000.
    ///
    /// ```swift
    /// let layer = InMemoryChannelLayer()
    /// ```
    ///
    /// - Parameter logger: Where the layer logs; by default nowhere.
    public init(logger: Logger = Logger(label: "channels-redis", factory: { _ in SwiftLogNoOpLogHandler() })) {
        self.configuration = Configuration()
        self.logger = logger
    }

    /// Creates a layer from a configuration.
    ///
    /// ```swift
    /// let layer = try InMemoryChannelLayer(configuration: .init(prefix: "test", capacity: 100))
    /// ```
    ///
    /// - Throws: ``ChannelLayerError`` with code `invalidConfiguration` for a capacity that is not
    ///   positive or a prefix that is not printable ASCII without spaces.
    public init(
        configuration: Configuration,
        logger: Logger = Logger(label: "channels-redis", factory: { _ in SwiftLogNoOpLogHandler() })
    ) throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
    }

    deinit {
        // A consumer still waiting on a channel of a layer dropped without `close()` must not wait
        // forever: it ends with `layerClosed`, as with the Redis layer.
        for mailbox in state.withLock({ $0.close() }) { mailbox.finish(.closed) }
    }

    // MARK: Channels

    /// Creates a channel owned by this layer: `"<prefix><channel prefix><32 hex digits>"`.
    ///
    /// The channel exists on return, so a message sent right after is buffered for it.
    ///
    /// ```swift
    /// let me = try await layer.newChannel()                   // "asgispecific.3f2a…"
    /// let chat = try await layer.newChannel(prefix: "chat.")  // "asgichat.9b1c…"
    /// ```
    ///
    /// - Parameter prefix: Put between the layer prefix and the random part.
    /// - Throws: ``ChannelLayerError``: `invalidName`, `layerClosed`.
    public nonisolated(nonsending) func newChannel(prefix: String = "specific.") async throws -> String {
        let name = "\(configuration.prefix)\(prefix)\(UUIDHex.random())"
        try NameValidation.validateChannel(name)
        _ = try mailbox(for: name)
        return name
    }

    /// Sends a message to a channel of this layer.
    ///
    /// The message is handed over as it is, not serialized. When the channel exists (made by
    /// ``newChannel(prefix:)`` or being received from, and not discarded) it is in the channel's
    /// buffer or with a waiting consumer on return; otherwise it is dropped, as Redis drops a
    /// `PUBLISH` nobody subscribed to. (Python's `InMemoryChannelLayer` keeps messages for channels
    /// nobody has received from yet, for `expiry` seconds; this layer does as the Redis one does.)
    ///
    /// ```swift
    /// let receivers = try await layer.send(["type": "test.message", "text": "Ahoy-hoy!"], to: channel)
    /// if receivers == 0 { logger.info("nobody is listening on \(channel)") }
    /// ```
    ///
    /// - Returns: 1 when the channel exists in this layer, 0 when it does not (the message is gone).
    ///   ``RedisPubSubChannelLayer/send(_:to:)`` returns the number of subscriber connections instead,
    ///   one per process receiving the channel.
    /// - Throws: ``ChannelLayerError``: `invalidName`, `layerClosed`.
    @discardableResult
    public nonisolated(nonsending) func send(_ message: ChannelMessage, to channel: String) async throws -> Int {
        try NameValidation.validateChannel(channel)
        return try deliver(CollectionOfOne(.message(ChannelMailbox.Shared(message))), to: channel)
    }

    /// Sends several messages to a channel, in order, in one step.
    ///
    /// ```swift
    /// try await layer.send(contentsOf: events.map { ["type": "tick", "n": .int($0)] }, to: channel)
    /// ```
    ///
    /// - Returns: The **sum** over the messages of the receivers each reached, as
    ///   ``RedisPubSubChannelLayer/send(contentsOf:to:)`` counts: the number of messages when the
    ///   channel exists, 0 when it does not.
    /// - Throws: ``ChannelLayerError``: `invalidName`, `layerClosed`.
    @discardableResult
    public nonisolated(nonsending) func send(contentsOf messages: some Sequence<ChannelMessage>, to channel: String) async throws -> Int {
        try NameValidation.validateChannel(channel)
        return try deliver(messages.map { .message(ChannelMailbox.Shared($0)) }, to: channel)
    }

    /// Receives the next message of a channel.
    ///
    /// A channel this layer did not create is made on demand (a "general" channel) and lives until
    /// ``discard(channel:)``. Several concurrent receivers of one channel each get a message, in FIFO
    /// order. Cancelling the calling task ends this wait only: the channel, its groups and any
    /// message that arrives afterwards stay for the next consumer.
    ///
    /// ```swift
    /// let message = try await layer.receive(from: me)
    /// ```
    ///
    /// - Throws: ``ChannelLayerError`` (`invalidName`, `channelClosed` when the channel was discarded
    ///   or flushed, `layerClosed`) or `CancellationError`.
    public nonisolated(nonsending) func receive(from channel: String) async throws -> ChannelMessage {
        try NameValidation.validateChannel(channel)
        return try await mailbox(for: channel).receive()
    }

    /// Receives the next message of a channel, or `nil` when none arrived within `timeout`.
    ///
    /// Nothing else changes when it times out: the channel stays, in its groups, and a message that
    /// arrives afterwards waits for the next consumer.
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

    /// The messages of a channel as an `AsyncSequence`; the channel exists on return.
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
    /// - Throws: ``ChannelLayerError``: `invalidName`, `layerClosed`.
    public nonisolated(nonsending) func messages(from channel: String) async throws -> ChannelMessageSequence {
        try NameValidation.validateChannel(channel)
        return ChannelMessageSequence(channel: channel, mailbox: try mailbox(for: channel))
    }

    /// Ends a channel: removes it from every group it joined, drops its buffered messages and ends
    /// its consumers with `channelClosed`. The counterpart of channels_redis's `clean_channel`.
    ///
    /// Idempotent: discarding a channel that does not exist (never made, or discarded already) does
    /// nothing. Later sends to the name return 0; a later `receive` from it makes a new channel.
    ///
    /// ```swift
    /// let me = try await layer.newChannel()
    /// defer { Task { try await layer.discard(channel: me) } }
    /// ```
    ///
    /// - Throws: ``ChannelLayerError``: `invalidName`, `layerClosed`.
    public nonisolated(nonsending) func discard(channel: String) async throws {
        try NameValidation.validateChannel(channel)
        let removed = try state.withLock { (state) throws(ChannelLayerError) in try state.removeChannel(channel) }
        guard let removed else { return }
        removed.finish(.discarded)
        logger.debug("local channel removed", metadata: [LogKey.channel: "\(channel)"])
    }

    // MARK: Groups

    /// Adds a channel of this layer to a group. Adding a member again does nothing.
    ///
    /// ```swift
    /// try await layer.groupAdd("room", channel: me)
    /// ```
    ///
    /// - Throws: ``ChannelLayerError``: `invalidName`, `notAMember` (the channel is not one this
    ///   layer created or receives from, as with the Redis layer; Python's `InMemoryChannelLayer`
    ///   accepts any name), `layerClosed`.
    public nonisolated(nonsending) func groupAdd(_ group: String, channel: String) async throws {
        try NameValidation.validateGroup(group)
        try NameValidation.validateChannel(channel)
        try state.withLock { (state) throws(ChannelLayerError) in try state.add(channel, to: group) }
    }

    /// Removes a channel from a group; a no-op if it is not a member.
    ///
    /// ```swift
    /// try await layer.groupDiscard("room", channel: me)
    /// ```
    ///
    /// - Throws: ``ChannelLayerError``: `invalidName`, `layerClosed`.
    public nonisolated(nonsending) func groupDiscard(_ group: String, channel: String) async throws {
        try NameValidation.validateGroup(group)
        try NameValidation.validateChannel(channel)
        try state.withLock { (state) throws(ChannelLayerError) in
            guard !state.closed else { throw ChannelLayerError.closed() }
            state.remove(channel, from: group)
        }
    }

    /// Sends a message to every member of a group.
    ///
    /// ```swift
    /// try await layer.groupSend(["type": "chat.message", "message": "hi"], to: "room")
    /// ```
    ///
    /// - Returns: How many member channels got it; 0 for an empty group.
    ///   ``RedisPubSubChannelLayer/groupSend(_:to:)`` returns the number of subscriber connections
    ///   instead: one per process with a member, however many members each has.
    /// - Throws: ``ChannelLayerError``: `invalidName`, `layerClosed`.
    @discardableResult
    public nonisolated(nonsending) func groupSend(_ message: ChannelMessage, to group: String) async throws -> Int {
        try NameValidation.validateGroup(group)
        return try deliver(CollectionOfOne(.message(ChannelMailbox.Shared(message))), toGroup: group)
    }

    /// Sends several messages to a group, in order, in one step.
    ///
    /// ```swift
    /// try await layer.groupSend(contentsOf: [["type": "a"], ["type": "b"]], to: "room")
    /// ```
    ///
    /// - Returns: The sum over the messages of the member channels each reached.
    /// - Throws: ``ChannelLayerError``: `invalidName`, `layerClosed`.
    @discardableResult
    public nonisolated(nonsending) func groupSend(contentsOf messages: some Sequence<ChannelMessage>, to group: String) async throws -> Int {
        try NameValidation.validateGroup(group)
        return try deliver(messages.map { .message(ChannelMailbox.Shared($0)) }, toGroup: group)
    }

    // MARK: Lifecycle

    /// Drops every channel and group, as if the layer were new.
    ///
    /// Consumers of the dropped channels end with `channelClosed`.
    ///
    /// ```swift
    /// try await layer.flush()  // between two tests sharing a layer
    /// ```
    ///
    /// - Throws: ``ChannelLayerError``: `layerClosed`.
    public nonisolated(nonsending) func flush() async throws {
        let all = try state.withLock { (state) throws(ChannelLayerError) in
            guard !state.closed else { throw ChannelLayerError.closed() }
            return state.removeAll()
        }
        for mailbox in all { mailbox.finish(.flushed) }
        logger.debug("layer flushed")
    }

    /// Closes the layer: every channel ends, its consumers with `layerClosed`, and later calls throw
    /// `layerClosed`.
    ///
    /// Idempotent, and safe to call while other calls are in flight.
    ///
    /// ```swift
    /// let layer = InMemoryChannelLayer()
    /// defer { Task { await layer.close() } }
    /// ```
    public func close() async {
        let all = state.withLock { $0.close() }
        for mailbox in all { mailbox.finish(.closed) }
        runState.closed.signal()
        logger.debug("layer closed")
    }

    // MARK: Observing

    /// Counters since the layer was created.
    ///
    /// ```swift
    /// #expect(layer.statistics.droppedMessages == 0)
    /// ```
    public var statistics: Statistics {
        Statistics(
            published: published.load(ordering: .relaxed),
            delivered: delivered.load(ordering: .relaxed),
            droppedMessages: dropped.load(ordering: .relaxed)
        )
    }

    /// A snapshot of a layer's counters: the ones of ``RedisPubSubChannelLayer/Statistics`` that
    /// mean something without Redis.
    public struct Statistics: Sendable, Hashable {
        /// Messages sent, to a channel or a group, whether or not anybody got them.
        public var published: Int
        /// Messages put into channel buffers or handed to waiting consumers (a group message counts
        /// once per member).
        public var delivered: Int
        /// Messages dropped because a channel's buffer was full (the oldest goes).
        public var droppedMessages: Int
    }

    // MARK: Internals

    /// The mailbox of a channel, made on demand.
    private func mailbox(for channel: String) throws(ChannelLayerError) -> ChannelMailbox {
        let capacity = configuration.capacity
        return try state.withLock { (state) throws(ChannelLayerError) in
            guard !state.closed else { throw ChannelLayerError.closed() }
            return state.mailbox(for: channel, capacity: capacity)
        }
    }

    private func deliver(_ entries: some Collection<ChannelMailbox.Entry>, to channel: String) throws(ChannelLayerError) -> Int {
        let mailbox = try state.withLock { (state) throws(ChannelLayerError) in
            guard !state.closed else { throw ChannelLayerError.closed() }
            return state.channels[channel]?.mailbox
        }
        published.add(entries.count)
        guard let mailbox else { return 0 }
        var handoffs: [ChannelMailbox.Handoff] = []
        let stored = store(entries, in: mailbox, named: channel, handoffs: &handoffs)
        // Resumed after delivering, outside the mailbox's lock, as the Redis layer's engine does.
        for handoff in handoffs { handoff.resume() }
        return stored
    }

    private func deliver(_ entries: some Collection<ChannelMailbox.Entry>, toGroup group: String) throws(ChannelLayerError) -> Int {
        let members = try state.withLock { (state) throws(ChannelLayerError) in
            guard !state.closed else { throw ChannelLayerError.closed() }
            return state.members(of: group)
        }
        published.add(entries.count)
        var handoffs: [ChannelMailbox.Handoff] = []
        var stored = 0
        for (name, mailbox) in members { stored += store(entries, in: mailbox, named: name, handoffs: &handoffs) }
        for handoff in handoffs { handoff.resume() }
        return stored
    }

    /// Puts `entries` into `mailbox`; returns how many were stored (0: it was finished meanwhile).
    private func store(
        _ entries: some Collection<ChannelMailbox.Entry>,
        in mailbox: ChannelMailbox,
        named channel: String,
        handoffs: inout [ChannelMailbox.Handoff]
    ) -> Int {
        switch mailbox.deliver(entries, handoffs: &handoffs) {
        case .stored(let count):
            delivered.add(entries.count)
            if count > 0 { noteDropped(count, channel: channel) }
            return entries.count
        case .finished:
            return 0
        }
    }

    private func noteDropped(_ count: Int, channel: String) {
        dropped.add(count)
        // At most one warning a second: a stuck consumer must not flood the log.
        let now = ContinuousClock.now
        let warn = state.withLock { state in
            if let last = state.lastDropWarning, last.duration(to: now) < .seconds(1) { return false }
            state.lastDropWarning = now
            return true
        }
        guard warn else { return }
        logger.warning(
            "a consumer is too slow: its channel buffer is full, the oldest message was dropped",
            metadata: [LogKey.channel: "\(channel)", LogKey.dropped: "\(dropped.load(ordering: .relaxed))"]
        )
    }
}
