/// An error thrown by a channel layer.
///
/// Match on ``code`` to decide what to do; ``message`` is for people and logs.
///
/// ```swift
/// do {
///     try await layer.send(["type": "x"], to: "not a valid name")
/// } catch let error as ChannelLayerError where error.code == .invalidName {
///     // fix the name
/// }
/// ```
public struct ChannelLayerError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as something a caller can act on.
    ///
    /// A struct over a private enum, so that codes can be added without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidName
            case invalidConfiguration
            case connectionFailed
            case connectionLost
            case timeout
            case layerClosed
            case messageTooLarge
            case encodingFailed
            case decodingFailed
            case notAMember
            case channelClosed
            case commandRefused
            case systemFailure
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A channel or group name breaks the Channels naming rules.
        public static let invalidName = Code(.invalidName)
        /// The configuration cannot be used: a malformed host URL, an unsupported scheme, a bad option.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// A connection to Redis could not be established.
        public static let connectionFailed = Code(.connectionFailed)
        /// The connection went away while a command was in flight; it may or may not have been executed.
        public static let connectionLost = Code(.connectionLost)
        /// An operation did not finish within its configured time.
        public static let timeout = Code(.timeout)
        /// The layer was closed; it accepts no more work.
        public static let layerClosed = Code(.layerClosed)
        /// A message is larger than the configured maximum.
        public static let messageTooLarge = Code(.messageTooLarge)
        /// A message could not be serialized (or encrypted).
        public static let encodingFailed = Code(.encodingFailed)
        /// Bytes could not be turned into a message (malformed, or failed to decrypt).
        public static let decodingFailed = Code(.decodingFailed)
        /// The channel is not one this layer created, so it cannot join a group.
        public static let notAMember = Code(.notAMember)
        /// The channel was closed locally (a consumer was cancelled, or the layer was flushed).
        public static let channelClosed = Code(.channelClosed)
        /// Redis answered a command with an error (`-NOAUTH`, `-OOM`, `-READONLY`, …): the
        /// connection works, the command was refused. For a `send`, the message was not published.
        public static let commandRefused = Code(.commandRefused)
        /// The operating system refused a resource the layer needs (a thread, an event base).
        public static let systemFailure = Code(.systemFailure)

        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// A human-readable explanation.
    public var message: String
    /// The error that caused this one, if any.
    public var underlying: (any Error & Sendable)?
    /// Where the error was raised.
    public var file: String
    /// Where the error was raised.
    public var line: Int

    /// Creates an error.
    public init(
        _ code: Code,
        _ message: String,
        underlying: (any Error & Sendable)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    public var description: String {
        var text = "ChannelLayerError(\(code)): \(message)"
        if let underlying { text += " (underlying: \(underlying))" }
        return text
    }
}
