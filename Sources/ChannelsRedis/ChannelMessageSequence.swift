/// The messages of one channel, as an `AsyncSequence`.
///
/// Made by ``RedisPubSubChannelLayer/messages(from:)`` and ``ChannelLayer/withChannel(prefix:_:)``.
/// Several consumers of one channel share its buffer: each message goes to one of them, in FIFO
/// order.
///
/// Ending an iteration (`break`, the task cancelled, the sequence dropped) ends that one consumer
/// only: the channel, its subscription, its groups and its buffered messages stay, for the next
/// consumer. A channel ends by ``ChannelLayer/discard(channel:)``, the end of a `withChannel` or
/// `withMessages` scope, `flush()` or `close()`.
///
/// Iteration returns `nil` when the iterating task is cancelled, and throws a ``ChannelLayerError``
/// when the channel ends: `channelClosed` (discarded, or flushed) or `layerClosed`.
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

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(channel: channel, mailbox: mailbox)
    }

    /// Iterates a ``ChannelMessageSequence``.
    public struct AsyncIterator: AsyncIteratorProtocol {
        public typealias Element = ChannelMessage
        public typealias Failure = ChannelLayerError

        let channel: String
        let mailbox: ChannelMailbox

        /// The next message, or `nil` when the task was cancelled.
        ///
        /// - Throws: ``ChannelLayerError``: `channelClosed` once the channel was discarded or
        ///   flushed, `layerClosed` once the layer is closed.
        public nonisolated(nonsending) mutating func next() async throws(ChannelLayerError) -> ChannelMessage? {
            try Self.element(of: await mailbox.next(), channel: channel)
        }

        /// The next message, or `nil` when the task was cancelled.
        ///
        /// - Throws: ``ChannelLayerError``: `channelClosed` once the channel was discarded or
        ///   flushed, `layerClosed` once the layer is closed.
        public mutating func next(isolation actor: isolated (any Actor)?) async throws(ChannelLayerError) -> ChannelMessage? {
            try Self.element(of: await mailbox.next(), channel: channel)
        }

        private static func element(of wait: ChannelMailbox.Wait, channel: String) throws(ChannelLayerError) -> ChannelMessage? {
            switch wait {
            case .message(let message): return message
            case .finished(let reason): throw reason.error(channel: channel)
            case .cancelled, .timedOut: return nil
            }
        }
    }
}

@available(*, unavailable)
extension ChannelMessageSequence.AsyncIterator: Sendable {}
