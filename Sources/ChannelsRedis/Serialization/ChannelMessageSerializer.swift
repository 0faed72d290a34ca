/// A format that turns messages into bytes and back (plug in your own).
///
/// The layer calls ``serialize(_:)`` on the sending task and ``deserialize(_:)`` once per received Redis message,
/// before routing it to local channels, so keep both fast and free of shared mutable state. Encryption, when
/// configured, wraps whatever the serializer produces (serialize, then encrypt), as channels_redis does.
///
/// Every process on the same Redis prefix must use the same format: the bytes are all a receiver sees.
///
/// ```swift
/// /// msgpack behind a one-byte format version, so that the format can change later.
/// struct VersionedMessagePack: ChannelMessageSerializer {
///     func serialize(_ message: ChannelMessage) throws(ChannelLayerError) -> [UInt8] {
///         try [1] + MessagePackSerializer().serialize(message)
///     }
///     func deserialize(_ bytes: UnsafeRawBufferPointer) throws(ChannelLayerError) -> ChannelMessage {
///         guard bytes.first == 1 else { throw ChannelLayerError(.decodingFailed, "unknown format version") }
///         return try MessagePackSerializer().deserialize(UnsafeRawBufferPointer(rebasing: bytes.dropFirst()))
///     }
/// }
/// configuration.serializer = .custom(VersionedMessagePack())
/// ```
public protocol ChannelMessageSerializer: Sendable {
    /// Turns a message into bytes.
    ///
    /// - Parameter message: The message to send.
    /// - Returns: The payload to publish.
    /// - Throws: ``ChannelLayerError`` with code ``ChannelLayerError/Code/encodingFailed`` when the message has no
    ///   representation in this format.
    func serialize(_ message: ChannelMessage) throws(ChannelLayerError) -> [UInt8]

    /// Turns bytes back into a message.
    ///
    /// `bytes` is valid only during the call.
    ///
    /// - Parameter bytes: One received payload, complete.
    /// - Returns: The message.
    /// - Throws: ``ChannelLayerError`` with code ``ChannelLayerError/Code/decodingFailed`` when the bytes are not
    ///   a valid message.
    func deserialize(_ bytes: UnsafeRawBufferPointer) throws(ChannelLayerError) -> ChannelMessage
}

/// msgpack, byte-compatible with channels_redis's default `msgpack.packb` / `msgpack.unpackb`.
///
/// Carries every ``ChannelMessage`` case, binary included. Strings are msgpack `str`, bytes are `bin`, integers
/// take their smallest form, floats are always float64, maps keep insertion order.
///
/// ```swift
/// let bytes = try MessagePackSerializer().serialize(["a": true, "b": nil, "c": ["d": []]])
/// // 83 a1 61 c3 a1 62 c0 a1 63 81 a1 64 90
/// ```
public struct MessagePackSerializer: ChannelMessageSerializer {
    /// Creates the serializer.
    public init() {}

    /// Encodes `message` as msgpack. Never fails for messages smaller than 4 GiB per string, binary or collection.
    public func serialize(_ message: ChannelMessage) throws(ChannelLayerError) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(128)
        MessagePack.encode(message, into: &buffer)
        return buffer
    }

    /// Decodes one msgpack value that fills `bytes`.
    ///
    /// - Throws: ``ChannelLayerError/Code/decodingFailed`` for malformed input, ext types, non-string map keys,
    ///   invalid UTF-8, trailing bytes or nesting deeper than 512 levels.
    public func deserialize(_ bytes: UnsafeRawBufferPointer) throws(ChannelLayerError) -> ChannelMessage {
        try MessagePack.decode(bytes)
    }
}

/// JSON, byte-compatible with channels_redis's `serializer_format="json"`: `json.dumps(message).encode("utf-8")`.
///
/// Python's defaults apply: `", "` and `": "` separators, non-ASCII escaped as `\uXXXX`, floats as Python's
/// `repr`, `NaN`/`Infinity` for non-finite floats. Binary values cannot be carried.
///
/// ```swift
/// let bytes = try JSONSerializer().serialize(["type": "chat.message", "text": "héllo"])
/// // {"type": "chat.message", "text": "h\u00e9llo"}
/// ```
public struct JSONSerializer: ChannelMessageSerializer {
    /// Creates the serializer.
    public init() {}

    /// Encodes `message` as Python's `json.dumps` would.
    ///
    /// - Throws: ``ChannelLayerError/Code/encodingFailed`` when the message contains ``ChannelMessage/binary(_:)``.
    public func serialize(_ message: ChannelMessage) throws(ChannelLayerError) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(128)
        try JSONFormat.encode(message, into: &buffer)
        return buffer
    }

    /// Decodes JSON as Python's `json.loads` would, including `NaN` and `Infinity`.
    ///
    /// - Throws: ``ChannelLayerError/Code/decodingFailed`` for malformed input.
    public func deserialize(_ bytes: UnsafeRawBufferPointer) throws(ChannelLayerError) -> ChannelMessage {
        try JSONFormat.decode(bytes)
    }
}

/// The message format a layer uses: ``msgpack`` (the default, as in channels_redis), ``json``, or
/// ``custom(_:)``.
///
/// A struct with static members rather than an enum, so that formats can be added without breaking callers.
///
/// ```swift
/// var configuration = RedisPubSubChannelLayer.Configuration()
/// configuration.serializer = .json   // serializer_format="json"
/// ```
public struct MessageSerializer: Sendable {
    /// The serializer that does the work; the layer calls it directly.
    let base: any ChannelMessageSerializer
    /// `"msgpack"`, `"json"` or `"custom"`, for logs and descriptions.
    var name: String

    private init(base: any ChannelMessageSerializer, name: String) {
        self.base = base
        self.name = name
    }

    /// msgpack, channels_redis's default `serializer_format`.
    public static var msgpack: MessageSerializer {
        MessageSerializer(base: MessagePackSerializer(), name: "msgpack")
    }

    /// JSON, channels_redis's `serializer_format="json"`. It cannot carry binary values.
    public static var json: MessageSerializer {
        MessageSerializer(base: JSONSerializer(), name: "json")
    }

    /// A format of your own.
    ///
    /// - Parameter serializer: Turns messages into bytes and back; every process on the prefix must agree on it.
    /// - Returns: A format wrapping `serializer`.
    ///
    /// ```swift
    /// configuration.serializer = .custom(MySerializer())
    /// ```
    public static func custom(_ serializer: some ChannelMessageSerializer) -> MessageSerializer {
        MessageSerializer(base: serializer, name: "custom")
    }
}
