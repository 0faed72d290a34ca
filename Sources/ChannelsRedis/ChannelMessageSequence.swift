import Synchronization

/// The messages of one channel, as an `AsyncSequence`.
///
/// Made by ``RedisPubSubChannelLayer/messages(from:)``. Several consumers of one channel share its
/// buffer: each message goes to one of them, in FIFO order. When the sequence and its iterators are
/// gone, or the iterating task is cancelled, the channel is cleaned up (its Redis subscription is
/// dropped once nothing local needs it), as a cancelled `receive` does.
///
/// Iteration ends (returns `nil`) when the channel is flushed or cleaned up, and throws a
/// ``ChannelLayerError`` with code `layerClosed` when the layer is closed.
///
/// ```swift
/// for try await message in try await layer.messages(from: me) {
///     print(message["type"]?.stringValue ?? "?")
/// }
/// ```
public struct ChannelMessageSequence: AsyncSequence, Sendable {
    public typealias Element = ChannelMessage
    public typealias Failure = ChannelLayerError

    /// The channel this sequence reads.
    public let channel: String
    let mailbox: ChannelMailbox
    let token: ConsumerToken

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(mailbox: mailbox, token: token)
    }

    /// Iterates a ``ChannelMessageSequence``.
    public struct AsyncIterator: AsyncIteratorProtocol {
        public typealias Element = ChannelMessage
        public typealias Failure = ChannelLayerError

        let mailbox: ChannelMailbox
        let token: ConsumerToken

        /// The next message, or `nil` when the channel was cleaned up or the task was cancelled.
        ///
        /// - Throws: ``ChannelLayerError`` with code `layerClosed` once the layer is closed.
        public nonisolated(nonsending) mutating func next() async throws(ChannelLayerError) -> ChannelMessage? {
            if let message = await mailbox.next() { return message }
            return try token.end()
        }

        /// The next message, or `nil` when the channel was cleaned up or the task was cancelled.
        ///
        /// - Throws: ``ChannelLayerError`` with code `layerClosed` once the layer is closed.
        public mutating func next(isolation actor: isolated (any Actor)?) async throws(ChannelLayerError) -> ChannelMessage? {
            if let message = await mailbox.next() { return message }
            return try token.end()
        }
    }
}

@available(*, unavailable)
extension ChannelMessageSequence.AsyncIterator: Sendable {}

/// Cleans a channel up when the last sequence or iterator holding it is gone.
final class ConsumerToken: Sendable {
    let channel: String
    let id: UInt64
    let engine: PubSubEngine

    init(channel: String, id: UInt64, engine: PubSubEngine) {
        self.channel = channel
        self.id = id
        self.engine = engine
    }

    /// How a finished stream ends: `layerClosed` if the layer closed, else the end of the sequence.
    func end() throws(ChannelLayerError) -> ChannelMessage? {
        if engine.isClosed.load(ordering: .acquiring) { throw ChannelLayerError.closed() }
        return nil
    }

    deinit {
        // Never touch C here: hand the cleanup to the loop (a no-op once the loop has stopped).
        let (engine, channel, id) = (self.engine, self.channel, self.id)
        engine.loop.execute { engine.channelTerminated(channel, id: id) }
    }
}
