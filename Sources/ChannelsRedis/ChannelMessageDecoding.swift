import OrderedCollections

#if canImport(FoundationEssentials)
    import FoundationEssentials
#elseif canImport(Foundation)
    import Foundation
#endif

// The `Decoder` behind ChannelMessageDecoder (ChannelMessage+Codable.swift): containers reading a
// ChannelMessage.

// MARK: - Decoding

/// Reads one message; also the source of the unboxing rules every container shares.
struct MessageDecoder: Decoder {
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

struct KeyedReader<Key: CodingKey>: KeyedDecodingContainerProtocol {
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

struct UnkeyedReader: UnkeyedDecodingContainer {
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

struct SingleValueReader: SingleValueDecodingContainer {
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
