/// The operations every channel layer offers: the Swift form of Django Channels' layer API.
///
/// ```swift
/// let layer: any ChannelLayer = try RedisPubSubChannelLayer(hosts: ["redis://127.0.0.1:6379"])
/// try await layer.withChannel { channel, messages in
///     try await layer.groupAdd("chat_lobby", channel: channel)
///     for try await message in messages { print(message) }
/// }
/// ```
///
/// ## Channel lifetime
///
/// A channel lives until it is ended explicitly: by ``discard(channel:)``, by the end of the
/// ``withChannel(prefix:_:)`` or ``withMessages(from:_:)`` scope that made or read it, by
/// ``flush()`` or by ``close()``. Cancelling a wait stops only that wait: a cancelled or timed-out
/// ``receive(from:)``, or a ``messages(from:)`` loop left with `break`, leaves the channel, its
/// subscription, its group memberships and its buffered messages in place for the next consumer.
/// (Python's layer unsubscribes a channel when a `receive` is cancelled, because Django Channels
/// has no "delete channel" call; this one has.)
///
/// The operations are `nonisolated(nonsending)`: they run on the caller's executor (an actor's, or
/// the task's) until they hand over to the layer's own thread, instead of first hopping to the
/// global executor, which would cost a task switch (and a look-up of the task's executor
/// preference under a lock) per call.
public protocol ChannelLayer: Sendable {
    /// Creates a channel owned by this layer and returns its name (`new_channel`).
    nonisolated(nonsending) func newChannel(prefix: String) async throws -> String

    /// Sends a message to a channel (`send`); returns how many receivers got it.
    ///
    /// For the Redis layer that is the number of subscriber connections Redis delivered the
    /// `PUBLISH` to (one per process that receives the channel), so 0 means nobody was listening.
    @discardableResult
    nonisolated(nonsending) func send(_ message: ChannelMessage, to channel: String) async throws -> Int

    /// Receives the next message of a channel (`receive`).
    ///
    /// Cancelling the calling task ends this wait only (it throws `CancellationError`); the channel
    /// and any message that arrives afterwards stay for the next consumer.
    nonisolated(nonsending) func receive(from channel: String) async throws -> ChannelMessage

    /// Receives the next message of a channel, or `nil` when none arrived within `timeout`; the
    /// channel is left as it was either way.
    nonisolated(nonsending) func receive(from channel: String, timeout: Duration) async throws -> ChannelMessage?

    /// The messages of a channel as an `AsyncSequence` (ending an iteration ends that consumer only).
    nonisolated(nonsending) func messages(from channel: String) async throws -> ChannelMessageSequence

    /// Ends a channel: unsubscribes it, removes it from every group and ends its consumers with
    /// `channelClosed` (channels_redis's `clean_channel`). Idempotent.
    nonisolated(nonsending) func discard(channel: String) async throws

    /// Adds a channel to a group (`group_add`).
    nonisolated(nonsending) func groupAdd(_ group: String, channel: String) async throws

    /// Removes a channel from a group (`group_discard`).
    nonisolated(nonsending) func groupDiscard(_ group: String, channel: String) async throws

    /// Sends a message to every channel of a group (`group_send`); returns how many receivers got it
    /// (as ``send(_:to:)`` counts them).
    @discardableResult
    nonisolated(nonsending) func groupSend(_ message: ChannelMessage, to group: String) async throws -> Int

    /// Drops all local channels, groups and subscriptions (`flush`).
    nonisolated(nonsending) func flush() async throws

    /// Closes the layer; later calls throw.
    func close() async
}

extension ChannelLayer {
    /// Creates a channel named `"<layer prefix>specific.<32 hex digits>"`.
    public nonisolated(nonsending) func newChannel() async throws -> String {
        try await newChannel(prefix: "specific.")
    }

    /// Runs `body` with a new channel and its messages, and discards the channel when `body`
    /// returns or throws, or its task is cancelled: the way to write a consumer that cannot leak a
    /// subscription.
    ///
    /// The channel is subscribed before `body` starts, so a message sent to it from then on is not
    /// missed. Groups it joined inside `body` are left on exit.
    ///
    /// ```swift
    /// try await layer.withChannel { channel, messages in
    ///     try await layer.groupAdd("chat_lobby", channel: channel)
    ///     for try await event in messages { try await handle(event) }
    /// }   // discarded here: unsubscribed, out of "chat_lobby"
    /// ```
    ///
    /// - Parameters:
    ///   - prefix: Put between the layer prefix and the random part, as in ``newChannel(prefix:)``.
    ///   - body: Gets the channel's name and its messages.
    /// - Returns: What `body` returns.
    /// - Throws: What ``newChannel(prefix:)`` or `body` throws.
    public nonisolated(nonsending) func withChannel<Result>(
        prefix: String = "specific.",
        _ body: (_ channel: String, _ messages: ChannelMessageSequence) async throws -> Result
    ) async throws -> Result {
        let channel = try await newChannel(prefix: prefix)
        return try await withDiscarding(channel) {
            try await body(channel, try await messages(from: channel))
        }
    }

    /// Runs `body` with the messages of a channel and discards the channel when `body` returns or
    /// throws, or its task is cancelled, as ``withChannel(prefix:_:)`` does for a channel it made.
    ///
    /// ```swift
    /// try await layer.withMessages(from: "worker.thumbnails") { messages in
    ///     for try await job in messages { try await render(job) }
    /// }
    /// ```
    ///
    /// - Throws: What ``messages(from:)`` or `body` throws.
    public nonisolated(nonsending) func withMessages<Result>(
        from channel: String,
        _ body: (_ messages: ChannelMessageSequence) async throws -> Result
    ) async throws -> Result {
        try await withDiscarding(channel) {
            try await body(try await messages(from: channel))
        }
    }

    private nonisolated(nonsending) func withDiscarding<Result>(
        _ channel: String,
        _ body: () async throws -> Result
    ) async throws -> Result {
        let result: Result
        do {
            result = try await body()
        } catch {
            // The only error discard can throw here is layerClosed: nothing is left to clean up then.
            try? await discard(channel: channel)
            throw error
        }
        try? await discard(channel: channel)
        return result
    }
}
