import OrderedCollections

// Public: `Date` and `Data` appear in the strategies' custom closures.
#if canImport(FoundationEssentials)
    public import FoundationEssentials
#elseif canImport(Foundation)
    public import Foundation
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

// MARK: - Strategies

extension ChannelMessageEncoder {
    /// How ``ChannelMessageEncoder`` writes `Date` values.
    ///
    /// Like `JSONEncoder.DateEncodingStrategy`, but a struct with static members, so that strategies can be added
    /// without breaking code that switches over them.
    ///
    /// ```swift
    /// var encoder = ChannelMessageEncoder()
    /// encoder.dateEncodingStrategy = .millisecondsSince1970
    /// try encoder.encode(["at": Date(timeIntervalSince1970: 1.5)])  // {'at': 1500}
    /// ```
    public struct DateEncodingStrategy: Sendable {
        fileprivate enum Base: Sendable {
            case iso8601
            case secondsSince1970
            case millisecondsSince1970
            case deferredToDate
            case custom(@Sendable (Date, any Encoder) throws -> Void)
        }

        fileprivate let base: Base

        private init(_ base: Base) { self.base = base }

        /// An ISO 8601 string in UTC, exactly as Django's `DjangoJSONEncoder` writes an aware `datetime`: the
        /// default.
        ///
        /// Milliseconds are written when the date has a sub-second part (rounded to the microsecond, then cut to
        /// the millisecond, as Django cuts `isoformat()`), and left out otherwise: `2026-12-01T19:33:57.123Z`,
        /// `2026-12-01T19:33:57Z`. Python reads it with `datetime.fromisoformat` (Python 3.11 and later; before,
        /// replace the `Z` with `+00:00`), JavaScript with `new Date(text)`. Dates outside years 1...9999, which
        /// Python's `datetime` cannot hold, fail to encode.
        ///
        /// ```swift
        /// try ChannelMessageEncoder().encode(Date(timeIntervalSince1970: 0.5))  // '1970-01-01T00:00:00.500Z'
        /// ```
        public static let iso8601 = DateEncodingStrategy(.iso8601)

        /// A float of seconds since 1970-01-01T00:00:00Z, like Python's `time.time()`.
        ///
        /// ```swift
        /// let encoder = ChannelMessageEncoder(dateEncodingStrategy: .secondsSince1970)
        /// try encoder.encode(Date(timeIntervalSince1970: 1.5))  // 1.5; Python: datetime.fromtimestamp(t, timezone.utc)
        /// ```
        public static let secondsSince1970 = DateEncodingStrategy(.secondsSince1970)

        /// An integer number of milliseconds since 1970-01-01T00:00:00Z, rounded to the nearest, as JavaScript's
        /// `Date.now()` and Java's `System.currentTimeMillis()` write it.
        ///
        /// ```swift
        /// let encoder = ChannelMessageEncoder(dateEncodingStrategy: .millisecondsSince1970)
        /// try encoder.encode(Date(timeIntervalSince1970: 1.5))  // 1500
        /// ```
        public static let millisecondsSince1970 = DateEncodingStrategy(.millisecondsSince1970)

        /// `Date`'s own `Codable` form: a float of seconds since 2001-01-01, which only Swift understands. It is
        /// what this encoder wrote before it had strategies.
        ///
        /// ```swift
        /// let encoder = ChannelMessageEncoder(dateEncodingStrategy: .deferredToDate)
        /// try encoder.encode(Date(timeIntervalSinceReferenceDate: 1))  // 1.0
        /// ```
        public static let deferredToDate = DateEncodingStrategy(.deferredToDate)

        /// Encodes each date with `body`, which writes to the encoder it is given.
        ///
        /// If `body` writes nothing, the date becomes an empty map, as with `JSONEncoder`.
        ///
        /// ```swift
        /// let encoder = ChannelMessageEncoder(dateEncodingStrategy: .custom { date, encoder in
        ///     var container = encoder.singleValueContainer()
        ///     try container.encode(Int64(date.timeIntervalSince1970.rounded(.down)))  // whole Unix seconds
        /// })
        /// ```
        ///
        /// - Parameter body: Writes `date` to the encoder; errors it throws become ``ChannelLayerError/Code/encodingFailed``.
        public static func custom(_ body: @escaping @Sendable (_ date: Date, _ encoder: any Encoder) throws -> Void) -> DateEncodingStrategy {
            DateEncodingStrategy(.custom(body))
        }
    }

    /// How ``ChannelMessageEncoder`` writes `Data` values (`[UInt8]` is always ``ChannelMessage/binary(_:)``).
    ///
    /// ```swift
    /// let encoder = ChannelMessageEncoder(dataEncodingStrategy: .base64)
    /// try encoder.encode(["key": Data([0xde, 0xad])])  // {'key': '3q0='}
    /// ```
    public struct DataEncodingStrategy: Sendable {
        fileprivate enum Base: Sendable {
            case binary
            case base64
            case custom(@Sendable (Data, any Encoder) throws -> Void)
        }

        fileprivate let base: Base

        private init(_ base: Base) { self.base = base }

        /// ``ChannelMessage/binary(_:)``: msgpack `bin`, which a Python peer receives as `bytes`. The default.
        ///
        /// ```swift
        /// try ChannelMessageEncoder().encode(Data([0xde, 0xad]))  // b'\xde\xad'
        /// ```
        public static let binary = DataEncodingStrategy(.binary)

        /// A standard base64 string (`base64.b64decode` in Python), for messages that must also travel as JSON,
        /// which has no bytes.
        ///
        /// ```swift
        /// let encoder = ChannelMessageEncoder(dataEncodingStrategy: .base64)
        /// try encoder.encode(Data([0xde, 0xad]))  // '3q0='
        /// ```
        public static let base64 = DataEncodingStrategy(.base64)

        /// Encodes each `Data` with `body`, which writes to the encoder it is given.
        ///
        /// ```swift
        /// let encoder = ChannelMessageEncoder(dataEncodingStrategy: .custom { data, encoder in
        ///     var container = encoder.singleValueContainer()
        ///     try container.encode(data.map { String($0, radix: 16) }.joined())
        /// })
        /// ```
        ///
        /// - Parameter body: Writes `data` to the encoder; errors it throws become ``ChannelLayerError/Code/encodingFailed``.
        public static func custom(_ body: @escaping @Sendable (_ data: Data, _ encoder: any Encoder) throws -> Void) -> DataEncodingStrategy {
            DataEncodingStrategy(.custom(body))
        }
    }
}

extension ChannelMessageDecoder {
    /// How ``ChannelMessageDecoder`` reads `Date` values.
    ///
    /// Like `JSONDecoder.DateDecodingStrategy`, but a struct with static members, so that strategies can be added
    /// without breaking code that switches over them. A value of the wrong kind, or a malformed one, throws
    /// ``ChannelLayerError/Code/decodingFailed`` naming its coding path.
    ///
    /// ```swift
    /// var decoder = ChannelMessageDecoder()
    /// decoder.dateDecodingStrategy = .iso8601  // strings only
    /// let date = try decoder.decode(Date.self, from: "2026-12-01T20:33:57.123+01:00")
    /// ```
    public struct DateDecodingStrategy: Sendable {
        fileprivate enum Base: Sendable {
            case iso8601OrSecondsSince1970
            case iso8601
            case secondsSince1970
            case millisecondsSince1970
            case deferredToDate
            case custom(@Sendable (any Decoder) throws -> Date)
        }

        fileprivate let base: Base

        private init(_ base: Base) { self.base = base }

        /// A string as ``iso8601`` reads it, or a number as ``secondsSince1970`` reads it: the default, which
        /// takes both `datetime.isoformat()` (or Django's JSON form) and `time.time()` from a Python peer.
        ///
        /// ```swift
        /// let decoder = ChannelMessageDecoder()
        /// try decoder.decode(Date.self, from: "2026-12-01T19:33:57.123Z")
        /// try decoder.decode(Date.self, from: 1_796_153_637.123)  // the same instant
        /// ```
        public static let iso8601OrSecondsSince1970 = DateDecodingStrategy(.iso8601OrSecondsSince1970)

        /// An ISO 8601 / RFC 3339 string with a UTC offset.
        ///
        /// Takes what `datetime.isoformat()`, `str(datetime)`, Django and JavaScript's `toISOString()` write:
        /// `2026-12-01T19:33:57Z`, `2026-12-01 20:33:57.123456+01:00`, `2026-12-01T11:33:57-0800`. The fraction may
        /// have any number of digits (nanoseconds are kept), the offset is `Z` or `±HH:MM` (also `±HHMM`,
        /// `±HH:MM:SS`). A string without an offset (a naive `datetime`) is rejected, since it names no instant;
        /// so are out-of-range fields such as `2023-02-29` or a leap second `:60`, which Python rejects too.
        ///
        /// ```swift
        /// let decoder = ChannelMessageDecoder(dateDecodingStrategy: .iso8601)
        /// try decoder.decode(Date.self, from: "2026-12-01T19:33:57.123456+00:00")
        /// ```
        public static let iso8601 = DateDecodingStrategy(.iso8601)

        /// A number (integer or float) of seconds since 1970-01-01T00:00:00Z, like Python's `time.time()`.
        ///
        /// ```swift
        /// let decoder = ChannelMessageDecoder(dateDecodingStrategy: .secondsSince1970)
        /// try decoder.decode(Date.self, from: 1.5)
        /// ```
        public static let secondsSince1970 = DateDecodingStrategy(.secondsSince1970)

        /// A number (integer or float) of milliseconds since 1970-01-01T00:00:00Z, like JavaScript's `Date.now()`.
        ///
        /// ```swift
        /// let decoder = ChannelMessageDecoder(dateDecodingStrategy: .millisecondsSince1970)
        /// try decoder.decode(Date.self, from: 1500)  // 1.5 s after 1970
        /// ```
        public static let millisecondsSince1970 = DateDecodingStrategy(.millisecondsSince1970)

        /// `Date`'s own `Codable` form: a number of seconds since 2001-01-01, which is what this library's encoder
        /// wrote before it had strategies.
        ///
        /// ```swift
        /// let decoder = ChannelMessageDecoder(dateDecodingStrategy: .deferredToDate)
        /// try decoder.decode(Date.self, from: 1.0)  // 2001-01-01T00:00:01Z
        /// ```
        public static let deferredToDate = DateDecodingStrategy(.deferredToDate)

        /// Decodes each date with `body`, which reads from the decoder it is given.
        ///
        /// ```swift
        /// let decoder = ChannelMessageDecoder(dateDecodingStrategy: .custom { decoder in
        ///     let days = try decoder.singleValueContainer().decode(Int.self)  // days since 1970
        ///     return Date(timeIntervalSince1970: Double(days) * 86_400)
        /// })
        /// ```
        ///
        /// - Parameter body: Reads a date from the decoder; errors it throws become ``ChannelLayerError/Code/decodingFailed``.
        public static func custom(_ body: @escaping @Sendable (_ decoder: any Decoder) throws -> Date) -> DateDecodingStrategy {
            DateDecodingStrategy(.custom(body))
        }
    }

    /// How ``ChannelMessageDecoder`` reads `Data` values (`[UInt8]` always reads ``ChannelMessage/binary(_:)``).
    ///
    /// ```swift
    /// let decoder = ChannelMessageDecoder(dataDecodingStrategy: .base64)
    /// try decoder.decode(Data.self, from: "3q0=")  // 2 bytes
    /// ```
    public struct DataDecodingStrategy: Sendable {
        fileprivate enum Base: Sendable {
            case binary
            case base64
            case custom(@Sendable (any Decoder) throws -> Data)
        }

        fileprivate let base: Base

        private init(_ base: Base) { self.base = base }

        /// ``ChannelMessage/binary(_:)`` (Python `bytes`), or leniently an array of integers 0...255, the shape
        /// `Data`'s own `Codable` writes. The default.
        ///
        /// ```swift
        /// try ChannelMessageDecoder().decode(Data.self, from: .binary([0xde, 0xad]))
        /// ```
        public static let binary = DataDecodingStrategy(.binary)

        /// A standard base64 string, or leniently ``ChannelMessage/binary(_:)``.
        ///
        /// ```swift
        /// let decoder = ChannelMessageDecoder(dataDecodingStrategy: .base64)
        /// try decoder.decode(Data.self, from: "3q0=")
        /// ```
        public static let base64 = DataDecodingStrategy(.base64)

        /// Decodes each `Data` with `body`, which reads from the decoder it is given.
        ///
        /// ```swift
        /// let decoder = ChannelMessageDecoder(dataDecodingStrategy: .custom { decoder in
        ///     Data(try decoder.singleValueContainer().decode(String.self).utf8)
        /// })
        /// ```
        ///
        /// - Parameter body: Reads a `Data` from the decoder; errors it throws become ``ChannelLayerError/Code/decodingFailed``.
        public static func custom(_ body: @escaping @Sendable (_ decoder: any Decoder) throws -> Data) -> DataDecodingStrategy {
            DataDecodingStrategy(.custom(body))
        }
    }
}

/// The strategies every container of one ``ChannelMessageEncoder/encode(_:)`` call carries.
private struct EncodingOptions {
    var date: ChannelMessageEncoder.DateEncodingStrategy
    var data: ChannelMessageEncoder.DataEncodingStrategy
}

/// The strategies every container of one ``ChannelMessageDecoder/decode(_:from:)`` call carries.
private struct DecodingOptions {
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
private struct StringKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }

    init(_ string: String) { self.stringValue = string }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { self.stringValue = String(intValue) }
}

/// The coding key of an array element; shown as `[n]` in paths.
private struct IndexKey: CodingKey {
    var index: Int
    var stringValue: String { "Index \(index)" }
    var intValue: Int? { index }

    init(_ index: Int) { self.index = index }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.index = intValue }
}

private enum CodingErrorText {
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

// MARK: - Encoding

/// One value under construction. Containers hold a reference to their node so that nested containers can keep
/// writing after they are handed out, as `Encoder` requires; ``materialize()`` builds the message at the end.
private final class EncodingNode {
    enum Kind {
        case empty
        case value
        case keyed
        case unkeyed
    }

    var kind = Kind.empty
    var value = ChannelMessage.nil
    var entries: OrderedDictionary<String, EncodingNode> = [:]
    var elements: [EncodingNode] = []

    init() {}

    init(_ value: ChannelMessage) {
        self.kind = .value
        self.value = value
    }

    func set(_ value: ChannelMessage) {
        kind = .value
        self.value = value
    }

    func becomeKeyed() {
        if kind != .keyed {
            kind = .keyed
            entries = [:]
        }
    }

    func becomeUnkeyed() {
        if kind != .unkeyed {
            kind = .unkeyed
            elements = []
        }
    }

    /// Encodes `value` into this node, short-circuiting the types the message model holds directly and the ones
    /// whose form the strategies in `options` decide.
    ///
    /// Compares types rather than casting: an empty `[String]` would cast to `[UInt8]` and become binary.
    func encode<T: Encodable>(_ value: T, codingPath: [any CodingKey], options: EncodingOptions) throws {
        if T.self == ChannelMessage.self, let message = value as? ChannelMessage {
            set(message)
        } else if T.self == [UInt8].self, let bytes = value as? [UInt8] {
            set(.binary(bytes))
        } else if T.self == Data.self, let data = value as? Data {
            try encode(data: data, codingPath: codingPath, options: options)
        } else if T.self == Date.self, let date = value as? Date {
            try encode(date: date, codingPath: codingPath, options: options)
        } else {
            try value.encode(to: MessageEncoder(node: self, codingPath: codingPath, options: options))
        }
    }

    private func encode(date: Date, codingPath: [any CodingKey], options: EncodingOptions) throws {
        // The errors carry the interval, not the Date: printing a NaN Date traps in FoundationEssentials.
        switch options.date.base {
        case .iso8601:
            guard let text = ISO8601Timestamp.format(date) else {
                throw EncodingError.invalidValue(
                    date.timeIntervalSince1970,
                    EncodingError.Context(
                        codingPath: codingPath,
                        debugDescription: "\(date.timeIntervalSince1970) seconds since 1970 is outside years 1...9999, which Python's datetime holds"
                    )
                )
            }
            set(.string(text))
        case .secondsSince1970:
            set(.double(date.timeIntervalSince1970))
        case .millisecondsSince1970:
            // From the reference date, so that the Double still holds the sub-second part when it is scaled.
            let sinceReference = (date.timeIntervalSinceReferenceDate * 1000).rounded(.toNearestOrAwayFromZero)
            guard let milliseconds = Int64(exactly: sinceReference),
                case (let since1970, false) = milliseconds.addingReportingOverflow(ISO8601Timestamp.unixToReference * 1000)
            else {
                throw EncodingError.invalidValue(
                    date.timeIntervalSince1970,
                    EncodingError.Context(
                        codingPath: codingPath,
                        debugDescription: "\(date.timeIntervalSince1970) seconds since 1970 is not an Int64 number of milliseconds"
                    )
                )
            }
            set(.int(since1970))
        case .deferredToDate:
            try date.encode(to: MessageEncoder(node: self, codingPath: codingPath, options: options))
        case .custom(let body):
            try body(date, MessageEncoder(node: self, codingPath: codingPath, options: options))
        }
    }

    private func encode(data: Data, codingPath: [any CodingKey], options: EncodingOptions) throws {
        switch options.data.base {
        case .binary:
            set(.binary([UInt8](data)))
        case .base64:
            set(.string(data.base64EncodedString()))
        case .custom(let body):
            try body(data, MessageEncoder(node: self, codingPath: codingPath, options: options))
        }
    }

    /// The finished message; `nil` if nothing was encoded into this node at all.
    func materialize() -> ChannelMessage? {
        switch kind {
        case .empty:
            return nil
        case .value:
            return value
        case .keyed:
            var map = OrderedDictionary<String, ChannelMessage>(minimumCapacity: entries.count)
            for (key, child) in entries {
                // A nested value that encoded nothing becomes an empty map, as JSONEncoder makes it `{}`.
                map[key] = child.materialize() ?? .map([:])
            }
            return .map(map)
        case .unkeyed:
            return .array(elements.map { $0.materialize() ?? .map([:]) })
        }
    }
}

private struct MessageEncoder: Encoder {
    let node: EncodingNode
    let codingPath: [any CodingKey]
    let options: EncodingOptions
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        node.becomeKeyed()
        return KeyedEncodingContainer(KeyedContainer<Key>(node: node, codingPath: codingPath, options: options))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        node.becomeUnkeyed()
        return UnkeyedContainer(node: node, codingPath: codingPath, options: options)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleValueContainer(node: node, codingPath: codingPath, options: options)
    }
}

/// Conversions shared by the three container kinds.
private enum Box {
    static func integer<T: BinaryInteger>(_ value: T) -> ChannelMessage {
        if let small = Int64(exactly: value) { return .int(small) }
        return .uint(UInt64(value))  // Only unsigned values above Int64.max get here.
    }

    static func wide<T: BinaryInteger>(_ value: T, codingPath: [any CodingKey]) throws -> ChannelMessage {
        if let small = Int64(exactly: value) { return .int(small) }
        if let large = UInt64(exactly: value) { return .uint(large) }
        throw EncodingError.invalidValue(
            value,
            EncodingError.Context(codingPath: codingPath, debugDescription: "\(value) does not fit in 64 bits, which msgpack cannot exceed")
        )
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: EncodingNode
    let codingPath: [any CodingKey]
    let options: EncodingOptions

    private func put(_ message: ChannelMessage, _ key: Key) {
        node.entries[key.stringValue] = EncodingNode(message)
    }

    mutating func encodeNil(forKey key: Key) throws { put(.nil, key) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { put(.bool(value), key) }
    mutating func encode(_ value: String, forKey key: Key) throws { put(.string(value), key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { put(.double(value), key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { put(.double(Double(value)), key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { put(Box.integer(value), key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { put(Box.integer(value), key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { put(Box.integer(value), key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { put(Box.integer(value), key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { put(Box.integer(value), key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { put(Box.integer(value), key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { put(Box.integer(value), key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { put(Box.integer(value), key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { put(Box.integer(value), key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { put(Box.integer(value), key) }

    mutating func encode(_ value: Int128, forKey key: Key) throws {
        put(try Box.wide(value, codingPath: codingPath + [key]), key)
    }

    mutating func encode(_ value: UInt128, forKey key: Key) throws {
        put(try Box.wide(value, codingPath: codingPath + [key]), key)
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        let child = EncodingNode()
        node.entries[key.stringValue] = child
        try child.encode(value, codingPath: codingPath + [key], options: options)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type,
        forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        let child = EncodingNode()
        child.becomeKeyed()
        node.entries[key.stringValue] = child
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(node: child, codingPath: codingPath + [key], options: options))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = EncodingNode()
        child.becomeUnkeyed()
        node.entries[key.stringValue] = child
        return UnkeyedContainer(node: child, codingPath: codingPath + [key], options: options)
    }

    mutating func superEncoder() -> any Encoder {
        superEncoder(for: StringKey("super"))
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        superEncoder(for: key)
    }

    private func superEncoder(for key: some CodingKey) -> any Encoder {
        let child = EncodingNode()
        node.entries[key.stringValue] = child
        return MessageEncoder(node: child, codingPath: codingPath + [key], options: options)
    }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let node: EncodingNode
    let codingPath: [any CodingKey]
    let options: EncodingOptions
    var count: Int { node.elements.count }

    private func append(_ message: ChannelMessage) {
        node.elements.append(EncodingNode(message))
    }

    private var nextKey: IndexKey { IndexKey(node.elements.count) }

    mutating func encodeNil() throws { append(.nil) }
    mutating func encode(_ value: Bool) throws { append(.bool(value)) }
    mutating func encode(_ value: String) throws { append(.string(value)) }
    mutating func encode(_ value: Double) throws { append(.double(value)) }
    mutating func encode(_ value: Float) throws { append(.double(Double(value))) }
    mutating func encode(_ value: Int) throws { append(Box.integer(value)) }
    mutating func encode(_ value: Int8) throws { append(Box.integer(value)) }
    mutating func encode(_ value: Int16) throws { append(Box.integer(value)) }
    mutating func encode(_ value: Int32) throws { append(Box.integer(value)) }
    mutating func encode(_ value: Int64) throws { append(Box.integer(value)) }
    mutating func encode(_ value: UInt) throws { append(Box.integer(value)) }
    mutating func encode(_ value: UInt8) throws { append(Box.integer(value)) }
    mutating func encode(_ value: UInt16) throws { append(Box.integer(value)) }
    mutating func encode(_ value: UInt32) throws { append(Box.integer(value)) }
    mutating func encode(_ value: UInt64) throws { append(Box.integer(value)) }
    mutating func encode(_ value: Int128) throws { append(try Box.wide(value, codingPath: codingPath + [nextKey])) }
    mutating func encode(_ value: UInt128) throws { append(try Box.wide(value, codingPath: codingPath + [nextKey])) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let key = nextKey
        let child = EncodingNode()
        node.elements.append(child)
        try child.encode(value, codingPath: codingPath + [key], options: options)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let key = nextKey
        let child = EncodingNode()
        child.becomeKeyed()
        node.elements.append(child)
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(node: child, codingPath: codingPath + [key], options: options))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let key = nextKey
        let child = EncodingNode()
        child.becomeUnkeyed()
        node.elements.append(child)
        return UnkeyedContainer(node: child, codingPath: codingPath + [key], options: options)
    }

    mutating func superEncoder() -> any Encoder {
        let key = nextKey
        let child = EncodingNode()
        node.elements.append(child)
        return MessageEncoder(node: child, codingPath: codingPath + [key], options: options)
    }
}

private struct SingleValueContainer: SingleValueEncodingContainer {
    let node: EncodingNode
    let codingPath: [any CodingKey]
    let options: EncodingOptions

    mutating func encodeNil() throws { node.set(.nil) }
    mutating func encode(_ value: Bool) throws { node.set(.bool(value)) }
    mutating func encode(_ value: String) throws { node.set(.string(value)) }
    mutating func encode(_ value: Double) throws { node.set(.double(value)) }
    mutating func encode(_ value: Float) throws { node.set(.double(Double(value))) }
    mutating func encode(_ value: Int) throws { node.set(Box.integer(value)) }
    mutating func encode(_ value: Int8) throws { node.set(Box.integer(value)) }
    mutating func encode(_ value: Int16) throws { node.set(Box.integer(value)) }
    mutating func encode(_ value: Int32) throws { node.set(Box.integer(value)) }
    mutating func encode(_ value: Int64) throws { node.set(Box.integer(value)) }
    mutating func encode(_ value: UInt) throws { node.set(Box.integer(value)) }
    mutating func encode(_ value: UInt8) throws { node.set(Box.integer(value)) }
    mutating func encode(_ value: UInt16) throws { node.set(Box.integer(value)) }
    mutating func encode(_ value: UInt32) throws { node.set(Box.integer(value)) }
    mutating func encode(_ value: UInt64) throws { node.set(Box.integer(value)) }
    mutating func encode(_ value: Int128) throws { node.set(try Box.wide(value, codingPath: codingPath)) }
    mutating func encode(_ value: UInt128) throws { node.set(try Box.wide(value, codingPath: codingPath)) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try node.encode(value, codingPath: codingPath, options: options)
    }
}

// MARK: - Decoding

/// Reads one message; also the source of the unboxing rules every container shares.
private struct MessageDecoder: Decoder {
    let message: ChannelMessage
    let codingPath: [any CodingKey]
    let options: DecodingOptions
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .map(let map) = message else {
            throw Self.mismatch(OrderedDictionary<String, ChannelMessage>.self, expected: "map", message, codingPath)
        }
        return KeyedDecodingContainer(KeyedReader<Key>(map: map, codingPath: codingPath, options: options))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let elements) = message else {
            throw Self.mismatch([ChannelMessage].self, expected: "array", message, codingPath)
        }
        return UnkeyedReader(elements: elements, codingPath: codingPath, options: options)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleValueReader(message: message, codingPath: codingPath, options: options)
    }

    // Unboxing rules.

    static func mismatch(_ type: Any.Type, expected: String, _ message: ChannelMessage, _ codingPath: [any CodingKey]) -> DecodingError {
        if case .nil = message {
            return .valueNotFound(type, DecodingError.Context(codingPath: codingPath, debugDescription: "expected \(expected), found nil"))
        }
        return .typeMismatch(
            type,
            DecodingError.Context(codingPath: codingPath, debugDescription: "expected \(expected), found \(CodingErrorText.kind(message))")
        )
    }

    static func unbox<T: Decodable>(_ message: ChannelMessage, as type: T.Type, codingPath: [any CodingKey], options: DecodingOptions) throws -> T {
        if T.self == ChannelMessage.self {
            return message as! T  // Checked just above.
        }
        if case .binary(let bytes) = message, T.self == [UInt8].self {
            return bytes as! T  // Checked just above.
        }
        if T.self == Date.self {
            return try date(message, codingPath, options) as! T  // Checked just above.
        }
        if T.self == Data.self {
            return try data(message, codingPath, options) as! T  // Checked just above.
        }
        return try T(from: MessageDecoder(message: message, codingPath: codingPath, options: options))
    }

    static func date(_ message: ChannelMessage, _ codingPath: [any CodingKey], _ options: DecodingOptions) throws -> Date {
        switch options.date.base {
        case .iso8601OrSecondsSince1970:
            switch message {
            case .string(let text): return try iso8601(text, codingPath)
            case .int, .uint, .double: return try seconds(message, codingPath)
            default: throw mismatch(Date.self, expected: "an ISO 8601 date string or seconds since 1970", message, codingPath)
            }
        case .iso8601:
            guard case .string(let text) = message else {
                throw mismatch(Date.self, expected: "an ISO 8601 date string", message, codingPath)
            }
            return try iso8601(text, codingPath)
        case .secondsSince1970:
            switch message {
            case .int, .uint, .double: return try seconds(message, codingPath)
            default: throw mismatch(Date.self, expected: "seconds since 1970", message, codingPath)
            }
        case .millisecondsSince1970:
            switch message {
            case .int(let milliseconds):
                // Move to the reference date in integers, so that the division is the only rounding.
                let (sinceReference, overflow) = milliseconds.subtractingReportingOverflow(ISO8601Timestamp.unixToReference * 1000)
                return overflow
                    ? Date(timeIntervalSince1970: Double(milliseconds) / 1000)
                    : Date(timeIntervalSinceReferenceDate: Double(sinceReference) / 1000)
            case .uint(let milliseconds):
                return Date(timeIntervalSince1970: Double(milliseconds) / 1000)
            case .double(let milliseconds):
                guard milliseconds.isFinite else { throw notFinite(milliseconds, "milliseconds", codingPath) }
                return Date(timeIntervalSince1970: milliseconds / 1000)
            default:
                throw mismatch(Date.self, expected: "milliseconds since 1970", message, codingPath)
            }
        case .deferredToDate:
            return try Date(from: MessageDecoder(message: message, codingPath: codingPath, options: options))
        case .custom(let body):
            return try body(MessageDecoder(message: message, codingPath: codingPath, options: options))
        }
    }

    private static func iso8601(_ text: String, _ codingPath: [any CodingKey]) throws -> Date {
        do {
            return try ISO8601Timestamp.parse(text)
        } catch {
            throw DecodingError.dataCorrupted(DecodingError.Context(codingPath: codingPath, debugDescription: error.reason, underlyingError: error))
        }
    }

    private static func seconds(_ message: ChannelMessage, _ codingPath: [any CodingKey]) throws -> Date {
        let seconds = try double(message, codingPath)
        guard seconds.isFinite else { throw notFinite(seconds, "seconds", codingPath) }
        return Date(timeIntervalSince1970: seconds)
    }

    private static func notFinite(_ value: Double, _ unit: String, _ codingPath: [any CodingKey]) -> DecodingError {
        .dataCorrupted(
            DecodingError.Context(
                codingPath: codingPath,
                debugDescription: "\(JSONFormat.pythonFloatRepr(value)) is not a number of \(unit) since 1970"
            )
        )
    }

    static func data(_ message: ChannelMessage, _ codingPath: [any CodingKey], _ options: DecodingOptions) throws -> Data {
        switch options.data.base {
        case .binary:
            switch message {
            case .binary(let bytes): return Data(bytes)
            // Lenient: a list of byte values, the shape Data's own Codable writes.
            case .array: return try Data(from: MessageDecoder(message: message, codingPath: codingPath, options: options))
            default: throw mismatch(Data.self, expected: "binary", message, codingPath)
            }
        case .base64:
            switch message {
            case .string(let text):
                guard let data = Data(base64Encoded: text) else {
                    throw DecodingError.dataCorrupted(DecodingError.Context(codingPath: codingPath, debugDescription: "string is not valid base64"))
                }
                return data
            case .binary(let bytes):
                return Data(bytes)
            default:
                throw mismatch(Data.self, expected: "a base64 string", message, codingPath)
            }
        case .custom(let body):
            return try body(MessageDecoder(message: message, codingPath: codingPath, options: options))
        }
    }

    static func bool(_ message: ChannelMessage, _ codingPath: [any CodingKey]) throws -> Bool {
        guard case .bool(let value) = message else { throw mismatch(Bool.self, expected: "Bool", message, codingPath) }
        return value
    }

    static func string(_ message: ChannelMessage, _ codingPath: [any CodingKey]) throws -> String {
        guard case .string(let value) = message else { throw mismatch(String.self, expected: "String", message, codingPath) }
        return value
    }

    static func double(_ message: ChannelMessage, _ codingPath: [any CodingKey]) throws -> Double {
        switch message {
        case .double(let value): return value
        case .int(let value): return Double(value)
        case .uint(let value): return Double(value)
        default: throw mismatch(Double.self, expected: "Double", message, codingPath)
        }
    }

    static func float(_ message: ChannelMessage, _ codingPath: [any CodingKey]) throws -> Float {
        let value = try double(message, codingPath)
        let narrowed = Float(value)
        guard narrowed.isFinite || !value.isFinite else {
            throw DecodingError.dataCorrupted(DecodingError.Context(codingPath: codingPath, debugDescription: "\(value) does not fit in Float"))
        }
        return narrowed
    }

    static func integer<T: FixedWidthInteger>(_ message: ChannelMessage, as type: T.Type, _ codingPath: [any CodingKey]) throws -> T {
        let result: T?
        let shown: String
        switch message {
        case .int(let value):
            result = T(exactly: value)
            shown = String(value)
        case .uint(let value):
            result = T(exactly: value)
            shown = String(value)
        case .double(let value):
            result = T(exactly: value)
            shown = JSONFormat.pythonFloatRepr(value)
        default:
            throw mismatch(T.self, expected: "\(T.self)", message, codingPath)
        }
        guard let result else {
            throw DecodingError.dataCorrupted(DecodingError.Context(codingPath: codingPath, debugDescription: "\(shown) does not fit in \(T.self)"))
        }
        return result
    }
}

private struct KeyedReader<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let map: OrderedDictionary<String, ChannelMessage>
    let codingPath: [any CodingKey]
    let options: DecodingOptions

    var allKeys: [Key] { map.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { map[key.stringValue] != nil }

    private func value(_ key: Key) throws -> ChannelMessage {
        guard let value = map[key.stringValue] else {
            throw DecodingError.keyNotFound(
                key,
                DecodingError.Context(codingPath: codingPath, debugDescription: "no value for key '\(key.stringValue)'")
            )
        }
        return value
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        try value(key).isNil
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try MessageDecoder.bool(try value(key), codingPath + [key]) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try MessageDecoder.string(try value(key), codingPath + [key]) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try MessageDecoder.double(try value(key), codingPath + [key]) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try MessageDecoder.float(try value(key), codingPath + [key]) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try integer(key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try integer(key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try integer(key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try integer(key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try integer(key) }
    func decode(_ type: Int128.Type, forKey key: Key) throws -> Int128 { try integer(key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try integer(key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try integer(key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try integer(key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try integer(key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try integer(key) }
    func decode(_ type: UInt128.Type, forKey key: Key) throws -> UInt128 { try integer(key) }

    private func integer<T: FixedWidthInteger>(_ key: Key) throws -> T {
        try MessageDecoder.integer(try value(key), as: T.self, codingPath + [key])
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let message = try value(key)
        return try MessageDecoder.unbox(message, as: T.self, codingPath: codingPath + [key], options: options)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try MessageDecoder(message: try value(key), codingPath: codingPath + [key], options: options).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try MessageDecoder(message: try value(key), codingPath: codingPath + [key], options: options).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        MessageDecoder(message: map["super"] ?? .nil, codingPath: codingPath + [StringKey("super")], options: options)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        MessageDecoder(message: map[key.stringValue] ?? .nil, codingPath: codingPath + [key], options: options)
    }
}

private struct UnkeyedReader: UnkeyedDecodingContainer {
    let elements: [ChannelMessage]
    let codingPath: [any CodingKey]
    let options: DecodingOptions
    private(set) var currentIndex = 0

    init(elements: [ChannelMessage], codingPath: [any CodingKey], options: DecodingOptions) {
        self.elements = elements
        self.codingPath = codingPath
        self.options = options
    }

    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    private var elementPath: [any CodingKey] { codingPath + [IndexKey(currentIndex)] }

    /// The next element, without consuming it.
    private func peek(_ type: Any.Type) throws -> ChannelMessage {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(
                type,
                DecodingError.Context(codingPath: elementPath, debugDescription: "array has only \(elements.count) element(s)")
            )
        }
        return elements[currentIndex]
    }

    /// Decodes the next element with `read` and consumes it only on success, as the protocol requires.
    private mutating func next<T>(_ type: T.Type, _ read: (ChannelMessage, [any CodingKey]) throws -> T) throws -> T {
        let value = try read(try peek(type), elementPath)
        currentIndex += 1
        return value
    }

    mutating func decodeNil() throws -> Bool {
        guard try peek(Never.self).isNil else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try next(type, MessageDecoder.bool) }
    mutating func decode(_ type: String.Type) throws -> String { try next(type, MessageDecoder.string) }
    mutating func decode(_ type: Double.Type) throws -> Double { try next(type, MessageDecoder.double) }
    mutating func decode(_ type: Float.Type) throws -> Float { try next(type, MessageDecoder.float) }
    mutating func decode(_ type: Int.Type) throws -> Int { try integer() }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try integer() }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try integer() }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try integer() }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try integer() }
    mutating func decode(_ type: Int128.Type) throws -> Int128 { try integer() }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try integer() }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try integer() }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try integer() }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try integer() }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try integer() }
    mutating func decode(_ type: UInt128.Type) throws -> UInt128 { try integer() }

    private mutating func integer<T: FixedWidthInteger>() throws -> T {
        try next(T.self) { message, path in try MessageDecoder.integer(message, as: T.self, path) }
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        // A copy: the closure must not capture `self` while `next` mutates it.
        let options = options
        return try next(type) { message, path in
            try MessageDecoder.unbox(message, as: T.self, codingPath: path, options: options)
        }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let options = options
        return try next(KeyedDecodingContainer<NestedKey>.self) { message, path in
            try MessageDecoder(message: message, codingPath: path, options: options).container(keyedBy: type)
        }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let options = options
        return try next((any UnkeyedDecodingContainer).self) { message, path in
            try MessageDecoder(message: message, codingPath: path, options: options).unkeyedContainer()
        }
    }

    mutating func superDecoder() throws -> any Decoder {
        let options = options
        return try next((any Decoder).self) { message, path in MessageDecoder(message: message, codingPath: path, options: options) }
    }
}

private struct SingleValueReader: SingleValueDecodingContainer {
    let message: ChannelMessage
    let codingPath: [any CodingKey]
    let options: DecodingOptions

    func decodeNil() -> Bool { message.isNil }
    func decode(_ type: Bool.Type) throws -> Bool { try MessageDecoder.bool(message, codingPath) }
    func decode(_ type: String.Type) throws -> String { try MessageDecoder.string(message, codingPath) }
    func decode(_ type: Double.Type) throws -> Double { try MessageDecoder.double(message, codingPath) }
    func decode(_ type: Float.Type) throws -> Float { try MessageDecoder.float(message, codingPath) }
    func decode(_ type: Int.Type) throws -> Int { try MessageDecoder.integer(message, as: type, codingPath) }
    func decode(_ type: Int8.Type) throws -> Int8 { try MessageDecoder.integer(message, as: type, codingPath) }
    func decode(_ type: Int16.Type) throws -> Int16 { try MessageDecoder.integer(message, as: type, codingPath) }
    func decode(_ type: Int32.Type) throws -> Int32 { try MessageDecoder.integer(message, as: type, codingPath) }
    func decode(_ type: Int64.Type) throws -> Int64 { try MessageDecoder.integer(message, as: type, codingPath) }
    func decode(_ type: Int128.Type) throws -> Int128 { try MessageDecoder.integer(message, as: type, codingPath) }
    func decode(_ type: UInt.Type) throws -> UInt { try MessageDecoder.integer(message, as: type, codingPath) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try MessageDecoder.integer(message, as: type, codingPath) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try MessageDecoder.integer(message, as: type, codingPath) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try MessageDecoder.integer(message, as: type, codingPath) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try MessageDecoder.integer(message, as: type, codingPath) }
    func decode(_ type: UInt128.Type) throws -> UInt128 { try MessageDecoder.integer(message, as: type, codingPath) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try MessageDecoder.unbox(message, as: T.self, codingPath: codingPath, options: options)
    }
}
