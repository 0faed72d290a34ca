/// The operations every channel layer offers: the Swift form of Django Channels' layer API.
///
/// ```swift
/// let layer: any ChannelLayer = try RedisPubSubChannelLayer(hosts: ["redis://127.0.0.1:6379"])
/// let me = try await layer.newChannel()
/// try await layer.send(["type": "hello"], to: me)
/// let message = try await layer.receive(from: me)
/// ```
public protocol ChannelLayer: Sendable {
    /// Creates a channel owned by this layer and returns its name (`new_channel`).
    func newChannel(prefix: String) async throws -> String
    /// Sends a message to a channel (`send`).
    func send(_ message: ChannelMessage, to channel: String) async throws
    /// Receives the next message of a channel (`receive`).
    func receive(from channel: String) async throws -> ChannelMessage
    /// Adds a channel to a group (`group_add`).
    func groupAdd(_ group: String, channel: String) async throws
    /// Removes a channel from a group (`group_discard`).
    func groupDiscard(_ group: String, channel: String) async throws
    /// Sends a message to every channel of a group (`group_send`).
    func groupSend(_ message: ChannelMessage, to group: String) async throws
    /// Drops all local channels, groups and subscriptions (`flush`).
    func flush() async throws
    /// Closes the layer; later calls throw.
    func close() async
}

extension ChannelLayer {
    /// Creates a channel named `"<layer prefix>specific.<32 hex digits>"`.
    public func newChannel() async throws -> String {
        try await newChannel(prefix: "specific.")
    }
}
