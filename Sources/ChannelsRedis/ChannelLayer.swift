/// The operations every channel layer offers: the Swift form of Django Channels' layer API.
///
/// ```swift
/// let layer: any ChannelLayer = try RedisPubSubChannelLayer(hosts: ["redis://127.0.0.1:6379"])
/// let me = try await layer.newChannel()
/// try await layer.send(["type": "hello"], to: me)
/// let message = try await layer.receive(from: me)
/// ```
///
/// The operations are `nonisolated(nonsending)`: they run on the caller's executor (an actor's, or
/// the task's) until they hand over to the layer's loop thread, instead of first hopping to the
/// global executor. Each hop cost a `swift_task_switch` (and a look-up of the task's executor
/// preference under a lock), per message: removing them sped up group fanout by about half.
public protocol ChannelLayer: Sendable {
    /// Creates a channel owned by this layer and returns its name (`new_channel`).
    nonisolated(nonsending) func newChannel(prefix: String) async throws -> String
    /// Sends a message to a channel (`send`).
    nonisolated(nonsending) func send(_ message: ChannelMessage, to channel: String) async throws
    /// Receives the next message of a channel (`receive`).
    nonisolated(nonsending) func receive(from channel: String) async throws -> ChannelMessage
    /// Adds a channel to a group (`group_add`).
    nonisolated(nonsending) func groupAdd(_ group: String, channel: String) async throws
    /// Removes a channel from a group (`group_discard`).
    nonisolated(nonsending) func groupDiscard(_ group: String, channel: String) async throws
    /// Sends a message to every channel of a group (`group_send`).
    nonisolated(nonsending) func groupSend(_ message: ChannelMessage, to group: String) async throws
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
}
