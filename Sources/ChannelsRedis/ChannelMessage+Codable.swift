import OrderedCollections

#if canImport(FoundationEssentials)
    import FoundationEssentials
#elseif canImport(Foundation)
    import Foundation
#endif

// MARK: - Public API

/// Encodes `Encodable` values as ``ChannelMessage``s, the way Python code would build the same message by hand.
///
/// A struct or class becomes a ``ChannelMessage/map(_:)`` keyed by its coding keys (property names) in the order
/// it encodes them, arrays become ``ChannelMessage/array(_:)``, `[UInt8]` and `Data` become
/// ``ChannelMessage/binary(_:)`` (Python `bytes`), integers ``ChannelMessage/int(_:)`` (or ``ChannelMessage/uint(_:)``
/// above `Int64.max`), `Float`/`Double` ``ChannelMessage/double(_:)``, and `Date` an ISO 8601 string in UTC as
/// Django's `DjangoJSONEncoder` writes it (`"2026-12-01T19:33:57.123Z"`, which Python reads with
/// `datetime.fromisoformat`). Optionals that are `nil` are left out (synthesized `Codable` uses `encodeIfPresent`,
/// as with `JSONEncoder`); an explicit `encodeNil` writes ``ChannelMessage/nil``. A ``ChannelMessage`` inside an
/// `Encodable` value is taken as it is. ``dateEncodingStrategy`` and ``dataEncodingStrategy`` choose other forms.
///
/// ```swift
/// struct ChatMessage: Codable {
///     var type = "chat.message"
///     var text: String
///     var sent: Date
/// }
/// let message = try ChannelMessageEncoder().encode(ChatMessage(text: "hi", sent: .now))
/// // {'type': 'chat.message', 'text': 'hi', 'sent': '2026-12-01T19:33:57.123Z'}
/// ```
public struct ChannelMessageEncoder: Sendable {
    /// How `Date` values are written. The default, ``DateEncodingStrategy/iso8601``, is what Django writes.
    public var dateEncodingStrategy: DateEncodingStrategy

    /// How `Data` values are written. The default, ``DataEncodingStrategy/binary``, arrives in Python as `bytes`.
    /// `[UInt8]` is always ``ChannelMessage/binary(_:)``.
    public var dataEncodingStrategy: DataEncodingStrategy

    /// Creates an encoder.
    ///
    /// ```swift
    /// let encoder = ChannelMessageEncoder(dateEncodingStrategy: .secondsSince1970)
    /// let message = try encoder.encode(["at": Date(timeIntervalSince1970: 1.5)])  // {'at': 1.5}
    /// ```
    ///
    /// - Parameters:
    ///   - dateEncodingStrategy: How `Date` values are written.
    ///   - dataEncodingStrategy: How `Data` values are written.
    public init(dateEncodingStrategy: DateEncodingStrategy = .iso8601, dataEncodingStrategy: DataEncodingStrategy = .binary) {
        self.dateEncodingStrategy = dateEncodingStrategy
        self.dataEncodingStrategy = dataEncodingStrategy
    }

    /// Encodes `value` as a message.
    ///
    /// - Parameter value: The value to encode.
    /// - Returns: The message.
    /// - Throws: ``ChannelLayerError`` with code ``ChannelLayerError/Code/encodingFailed``, naming the coding path
    ///   that failed, with the `EncodingError` (or the value's own error) as `underlying`.
    public func encode(_ value: some Encodable) throws(ChannelLayerError) -> ChannelMessage {
        let node = EncodingNode()
        do {
            try node.encode(value, codingPath: [], options: EncodingOptions(date: dateEncodingStrategy, data: dataEncodingStrategy))
        } catch let error as EncodingError {
            throw ChannelLayerError(.encodingFailed, CodingErrorText.describe(error), underlying: error)
        } catch {
            throw ChannelLayerError(.encodingFailed, "encoding \(type(of: value)) failed: \(error)", underlying: error)
        }
        guard let message = node.materialize() else {
            let error = EncodingError.invalidValue(
                value,
                EncodingError.Context(codingPath: [], debugDescription: "\(type(of: value)) did not encode any values")
            )
            throw ChannelLayerError(.encodingFailed, CodingErrorText.describe(error), underlying: error)
        }
        return message
    }
}

/// Decodes `Decodable` values from ``ChannelMessage``s.
///
/// The mirror of ``ChannelMessageEncoder``, lenient where Python senders differ from Swift types: a missing key or
/// ``ChannelMessage/nil`` both decode as `nil` for an Optional, an integer decodes as `Double`/`Float`, a double
/// with an exact integer value decodes as an integer type, `[UInt8]`/`Data` accept ``ChannelMessage/binary(_:)``
/// as well as an array of small integers, and `Date` accepts an ISO 8601 string with a UTC offset (what
/// `datetime.isoformat()` and Django write) or a number of seconds since 1970 (what `time.time()` returns).
/// ``dateDecodingStrategy`` and ``dataDecodingStrategy`` choose other forms.
///
/// ```swift
/// struct ChatMessage: Codable {
///     var type: String
///     var text: String
///     var sent: Date
/// }
/// // From Python: {"type": "chat.message", "text": "hi", "sent": datetime.now(timezone.utc).isoformat()}
/// let chat = try ChannelMessageDecoder().decode(ChatMessage.self, from: message)
/// ```
public struct ChannelMessageDecoder: Sendable {
    /// How `Date` values are read. The default, ``DateDecodingStrategy/iso8601OrSecondsSince1970``, takes both
    /// forms a Python peer is likely to send.
    public var dateDecodingStrategy: DateDecodingStrategy

    /// How `Data` values are read. The default, ``DataDecodingStrategy/binary``, takes Python `bytes`.
    /// `[UInt8]` always reads ``ChannelMessage/binary(_:)``.
    public var dataDecodingStrategy: DataDecodingStrategy

    /// Creates a decoder.
    ///
    /// ```swift
    /// let decoder = ChannelMessageDecoder(dateDecodingStrategy: .millisecondsSince1970)
    /// let date = try decoder.decode(Date.self, from: 1_796_153_637_123)  // 2026-12-01T19:33:57.123Z
    /// ```
    ///
    /// - Parameters:
    ///   - dateDecodingStrategy: How `Date` values are read.
    ///   - dataDecodingStrategy: How `Data` values are read.
    public init(
        dateDecodingStrategy: DateDecodingStrategy = .iso8601OrSecondsSince1970,
        dataDecodingStrategy: DataDecodingStrategy = .binary
    ) {
        self.dateDecodingStrategy = dateDecodingStrategy
        self.dataDecodingStrategy = dataDecodingStrategy
    }

    /// Decodes a value of `type` from `message`.
    ///
    /// - Parameters:
    ///   - type: The type to decode.
    ///   - message: The message to read.
    /// - Returns: The decoded value.
    /// - Throws: ``ChannelLayerError`` with code ``ChannelLayerError/Code/decodingFailed`` whose message names the
    ///   key that did not fit, e.g. `type mismatch at 'user.age': expected Int, found string`, with the
    ///   `DecodingError` as `underlying`.
    public func decode<T: Decodable>(_ type: T.Type, from message: ChannelMessage) throws(ChannelLayerError) -> T {
        do {
            let options = DecodingOptions(date: dateDecodingStrategy, data: dataDecodingStrategy)
            return try MessageDecoder.unbox(message, as: T.self, codingPath: [], options: options)
        } catch let error as DecodingError {
            throw ChannelLayerError(.decodingFailed, CodingErrorText.describe(error), underlying: error)
        } catch {
            throw ChannelLayerError(.decodingFailed, "decoding \(T.self) failed: \(error)", underlying: error)
        }
    }
}

extension ChannelMessage {
    /// Creates a message by encoding `value` with ``ChannelMessageEncoder``.
    ///
    /// ```swift
    /// try await layer.send(ChannelMessage(encoding: ChatMessage(text: "hi")), to: channel)
    /// ```
    ///
    /// - Throws: ``ChannelLayerError/Code/encodingFailed`` naming the coding path that failed.
    public init(encoding value: some Encodable) throws(ChannelLayerError) {
        self = try ChannelMessageEncoder().encode(value)
    }

    /// Decodes this message as `type` with ``ChannelMessageDecoder``.
    ///
    /// ```swift
    /// let chat = try message.decode(as: ChatMessage.self)
    /// ```
    ///
    /// - Throws: ``ChannelLayerError/Code/decodingFailed`` naming the key that did not fit.
    public func decode<T: Decodable>(as type: T.Type = T.self) throws(ChannelLayerError) -> T {
        try ChannelMessageDecoder().decode(type, from: self)
    }
}

struct EncodingOptions {
    var date: ChannelMessageEncoder.DateEncodingStrategy
    var data: ChannelMessageEncoder.DataEncodingStrategy
}

/// The strategies every container of one ``ChannelMessageDecoder/decode(_:from:)`` call carries.
struct DecodingOptions {
    var date: ChannelMessageDecoder.DateDecodingStrategy
    var data: ChannelMessageDecoder.DataDecodingStrategy
}

/// A ``ChannelMessage`` can be a property of a `Codable` type: ``ChannelMessageEncoder`` and
/// ``ChannelMessageDecoder`` take it as it is, and other coders (`JSONEncoder`…) see its natural shape, with
/// ``ChannelMessage/binary(_:)`` as an array of byte values.
extension ChannelMessage: Codable {
    /// Encodes the message's natural shape.
    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .nil:
            var container = encoder.singleValueContainer()
            try container.encodeNil()
        case .bool(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .int(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .uint(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .double(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .string(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .binary(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .array(let elements):
            var container = encoder.unkeyedContainer()
            for element in elements {
                try container.encode(element)
            }
        case .map(let map):
            var container = encoder.container(keyedBy: StringKey.self)
            for (key, value) in map {
                try container.encode(value, forKey: StringKey(key))
            }
        }
    }

    /// Decodes whatever shape the decoder holds.
    public init(from decoder: any Decoder) throws {
        if let decoder = decoder as? MessageDecoder {
            self = decoder.message
            return
        }
        if let container = try? decoder.container(keyedBy: StringKey.self) {
            var map = OrderedDictionary<String, ChannelMessage>(minimumCapacity: container.allKeys.count)
            for key in container.allKeys {
                map[key.stringValue] = try container.decode(ChannelMessage.self, forKey: key)
            }
            self = .map(map)
        } else if var container = try? decoder.unkeyedContainer() {
            var elements: [ChannelMessage] = []
            while !container.isAtEnd {
                elements.append(try container.decode(ChannelMessage.self))
            }
            self = .array(elements)
        } else {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() {
                self = .nil
            } else if let value = try? container.decode(Bool.self) {
                self = .bool(value)
            } else if let value = try? container.decode(Int64.self) {
                self = .int(value)
            } else if let value = try? container.decode(UInt64.self) {
                self = ChannelMessage(value)
            } else if let value = try? container.decode(Double.self) {
                self = .double(value)
            } else if let value = try? container.decode(String.self) {
                self = .string(value)
            } else {
                throw DecodingError.dataCorrupted(
                    DecodingError.Context(codingPath: decoder.codingPath, debugDescription: "no ChannelMessage fits this value")
                )
            }
        }
    }
}

// MARK: - Keys and error text

/// A coding key for map entries.
struct StringKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }

    init(_ string: String) { self.stringValue = string }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { self.stringValue = String(intValue) }
}

/// The coding key of an array element; shown as `[n]` in paths.
struct IndexKey: CodingKey {
    var index: Int
    var stringValue: String { "Index \(index)" }
    var intValue: Int? { index }

    init(_ index: Int) { self.index = index }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.index = intValue }
}

enum CodingErrorText {
    /// `user.friends[2].age`, or `<root>`.
    static func path(_ codingPath: [any CodingKey]) -> String {
        var text = ""
        for key in codingPath {
            if let index = key as? IndexKey {
                text += "[\(index.index)]"
            } else {
                if !text.isEmpty { text += "." }
                text += key.stringValue
            }
        }
        return text.isEmpty ? "<root>" : text
    }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(_, let context):
            "type mismatch at '\(path(context.codingPath))': \(context.debugDescription)"
        case .valueNotFound(_, let context):
            "missing value at '\(path(context.codingPath))': \(context.debugDescription)"
        case .keyNotFound(let key, let context):
            "missing key at '\(path(context.codingPath + [key]))': \(context.debugDescription)"
        case .dataCorrupted(let context):
            "invalid value at '\(path(context.codingPath))': \(context.debugDescription)"
        @unknown default:
            "\(error)"
        }
    }

    static func describe(_ error: EncodingError) -> String {
        switch error {
        case .invalidValue(_, let context):
            "invalid value at '\(path(context.codingPath))': \(context.debugDescription)"
        @unknown default:
            "\(error)"
        }
    }

    /// The kind of a message, for "expected X, found Y".
    static func kind(_ message: ChannelMessage) -> String {
        switch message {
        case .nil: "nil"
        case .bool: "bool"
        case .int, .uint: "int"
        case .double: "double"
        case .string: "string"
        case .binary: "binary"
        case .array: "array"
        case .map: "map"
        }
    }
}
