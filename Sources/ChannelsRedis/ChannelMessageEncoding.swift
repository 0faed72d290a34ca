import OrderedCollections

#if canImport(FoundationEssentials)
    import FoundationEssentials
#elseif canImport(Foundation)
    import Foundation
#endif

// The `Encoder` behind ChannelMessageEncoder (ChannelMessage+Codable.swift): containers writing into
// nodes that become a ChannelMessage.

// MARK: - Encoding

/// One value under construction. Containers hold a reference to their node so that nested containers can keep
/// writing after they are handed out, as `Encoder` requires; ``materialize()`` builds the message at the end.
final class EncodingNode {
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

struct MessageEncoder: Encoder {
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
enum Box {
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

struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
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

struct UnkeyedContainer: UnkeyedEncodingContainer {
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

struct SingleValueContainer: SingleValueEncodingContainer {
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
