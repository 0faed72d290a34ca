public import OrderedCollections

/// A message that travels through a channel layer: the Swift image of the Python values that
/// Django Channels sends (`dict`, `list`, `str`, `bytes`, `int`, `float`, `bool`, `None`).
///
/// Messages are usually maps with a `"type"` key, written as literals. Maps keep insertion order, which is
/// also the order in which their entries are serialized, exactly as Python dicts do.
///
/// ```swift
/// var message: ChannelMessage = ["type": "chat.message", "text": "hello", "n": 1, "tags": ["a", "b"], "reply": nil]
/// message["seen"] = true
/// if message.type == "chat.message", let text = message["text"]?.stringValue {
///     print(text, message)  // hello {'type': 'chat.message', 'text': 'hello', 'n': 1, ...}
/// }
/// ```
///
/// ## Integers
/// Python integers map to ``int(_:)`` when they fit `Int64`, and to ``uint(_:)`` only for values above
/// `Int64.max` (up to `UInt64.max`, the largest msgpack can carry). Every producer in this library
/// normalises that way; a hand-built `.uint` that fits `Int64` still compares and hashes equal to the
/// matching `.int` and serializes identically.
///
/// ## Equality
/// Equality follows Python: maps compare equal regardless of key order (`{'a': 1, 'b': 2} == {'b': 2, 'a': 1}`),
/// and integers compare numerically across ``int(_:)`` and ``uint(_:)``. Unlike Python, an integer never equals
/// a double (`.int(1) != .double(1)`), because they serialize differently. Doubles use IEEE comparison, so a
/// message containing `.nan` is not equal to itself.
public enum ChannelMessage: Sendable {
    /// Python `None`; msgpack `nil`, JSON `null`.
    case `nil`
    /// Python `bool`.
    case bool(Bool)
    /// A Python `int` that fits `Int64`.
    case int(Int64)
    /// A Python `int` above `Int64.max`. Values that fit `Int64` are always ``int(_:)``.
    case uint(UInt64)
    /// Python `float`: msgpack always carries it as float64.
    case double(Double)
    /// Python `str`.
    case string(String)
    /// Python `bytes`: msgpack `bin`. It has no JSON form.
    case binary([UInt8])
    /// Python `list` (or `tuple`, which msgpack also packs as an array).
    case array([ChannelMessage])
    /// Python `dict` with `str` keys, in insertion order.
    case map(OrderedDictionary<String, ChannelMessage>)
}

// MARK: - Convenience initializers

extension ChannelMessage {
    /// Creates an integer message.
    ///
    /// ```swift
    /// let count = ChannelMessage(items.count)
    /// ```
    public init(_ value: Int) {
        self = .int(Int64(value))
    }

    /// Creates an integer message, as ``int(_:)`` when the value fits `Int64` and ``uint(_:)`` otherwise.
    ///
    /// ```swift
    /// ChannelMessage(UInt64(5))         // .int(5)
    /// ChannelMessage(UInt64.max)        // .uint(18446744073709551615)
    /// ```
    public init(_ value: UInt64) {
        if value <= UInt64(Int64.max) {
            self = .int(Int64(value))
        } else {
            self = .uint(value)
        }
    }

    /// Creates a binary message (Python `bytes`).
    ///
    /// An array literal written as the argument, `ChannelMessage([1, 2])`, also lands here and makes bytes;
    /// for a list of integers write the literal where a `ChannelMessage` is expected (`let xs: ChannelMessage =
    /// [1, 2]`) or use ``array(_:)``.
    ///
    /// ```swift
    /// let blob = ChannelMessage([0xde, 0xad, 0xbe, 0xef])  // .binary, Python b'\xde\xad\xbe\xef'
    /// ```
    public init(_ bytes: [UInt8]) {
        self = .binary(bytes)
    }
}

// MARK: - Literals

extension ChannelMessage: ExpressibleByNilLiteral {
    /// Creates ``nil``, so that `nil` can be written inside message literals.
    public init(nilLiteral: ()) {
        self = .nil
    }
}

extension ChannelMessage: ExpressibleByBooleanLiteral {
    /// Creates a ``bool(_:)``.
    public init(booleanLiteral value: Bool) {
        self = .bool(value)
    }
}

extension ChannelMessage: ExpressibleByIntegerLiteral {
    /// Creates an ``int(_:)``.
    public init(integerLiteral value: Int64) {
        self = .int(value)
    }
}

extension ChannelMessage: ExpressibleByFloatLiteral {
    /// Creates a ``double(_:)``.
    public init(floatLiteral value: Double) {
        self = .double(value)
    }
}

extension ChannelMessage: ExpressibleByStringLiteral {
    /// Creates a ``string(_:)``.
    public init(stringLiteral value: String) {
        self = .string(value)
    }
}

/// Interpolated strings are messages too: `["message": "\(name) joined"]`.
extension ChannelMessage: ExpressibleByStringInterpolation {}

extension ChannelMessage: ExpressibleByArrayLiteral {
    /// Creates an ``array(_:)``.
    public init(arrayLiteral elements: ChannelMessage...) {
        self = .array(elements)
    }
}

extension ChannelMessage: ExpressibleByDictionaryLiteral {
    /// Creates a ``map(_:)`` in the order the literal lists its keys.
    ///
    /// As in a Python dict literal, a repeated key keeps its first position and takes its last value.
    public init(dictionaryLiteral elements: (String, ChannelMessage)...) {
        var map = OrderedDictionary<String, ChannelMessage>(minimumCapacity: elements.count)
        for (key, value) in elements {
            map[key] = value
        }
        self = .map(map)
    }
}

// MARK: - Accessors

extension ChannelMessage {
    /// The value stored under `key` when this is a map; `nil` for a missing key or a message that is not a map.
    ///
    /// Setting a value on a map inserts or replaces it (keeping the key's position); setting Swift's `nil`
    /// removes the key. To store Python `None`, assign ``nil`` explicitly: `message["reply"] = .nil`.
    /// Setting a key on a message that is not a map is a programming error and traps.
    ///
    /// ```swift
    /// var message: ChannelMessage = ["type": "greet"]
    /// message["name"] = "Ada"
    /// message["name"]?.stringValue  // "Ada"
    /// ```
    public subscript(key: String) -> ChannelMessage? {
        get {
            guard case .map(let map) = self else { return nil }
            return map[key]
        }
        set {
            guard case .map(var map) = self else {
                preconditionFailure("cannot set key '\(key)' on a ChannelMessage that is not a map: \(self)")
            }
            // Drop our reference before mutating so that the map's storage is uniquely referenced.
            self = .nil
            map[key] = newValue
            self = .map(map)
        }
    }

    /// The element at `index` when this is an array and the index is in range; otherwise `nil`.
    ///
    /// ```swift
    /// let xs: ChannelMessage = [10, 20]
    /// xs[1]?.intValue  // 20
    /// xs[5]            // nil
    /// ```
    public subscript(index: Int) -> ChannelMessage? {
        guard case .array(let array) = self, array.indices.contains(index) else { return nil }
        return array[index]
    }

    /// The `"type"` entry of a map message, which Channels uses to dispatch to a handler.
    public var type: String? {
        self["type"]?.stringValue
    }

    /// Whether this is ``nil`` (Python `None`).
    public var isNil: Bool {
        if case .nil = self { return true }
        return false
    }

    /// The string of a ``string(_:)``.
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The value of an ``int(_:)`` or ``uint(_:)`` when it fits `Int`.
    public var intValue: Int? {
        switch self {
        case .int(let value): Int(exactly: value)
        case .uint(let value): Int(exactly: value)
        default: nil
        }
    }

    /// The value of an ``int(_:)``, or of a ``uint(_:)`` that fits `Int64`.
    public var int64Value: Int64? {
        switch self {
        case .int(let value): value
        case .uint(let value): Int64(exactly: value)
        default: nil
        }
    }

    /// The value of a ``uint(_:)``, or of a non-negative ``int(_:)``.
    public var uint64Value: UInt64? {
        switch self {
        case .int(let value): UInt64(exactly: value)
        case .uint(let value): value
        default: nil
        }
    }

    /// The value of a ``double(_:)``, or an integer converted to `Double` (rounded if it has more than 53 bits).
    public var doubleValue: Double? {
        switch self {
        case .double(let value): value
        case .int(let value): Double(value)
        case .uint(let value): Double(value)
        default: nil
        }
    }

    /// The value of a ``bool(_:)``. Integers are not booleans here.
    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// The bytes of a ``binary(_:)``.
    public var bytesValue: [UInt8]? {
        if case .binary(let value) = self { return value }
        return nil
    }

    /// The elements of an ``array(_:)``.
    public var arrayValue: [ChannelMessage]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// The entries of a ``map(_:)``, in insertion order.
    public var mapValue: OrderedDictionary<String, ChannelMessage>? {
        if case .map(let value) = self { return value }
        return nil
    }
}

// MARK: - Equatable and Hashable

extension ChannelMessage: Hashable {
    /// Compares like Python: integers numerically across ``int(_:)`` and ``uint(_:)``, maps regardless of key order.
    public static func == (lhs: ChannelMessage, rhs: ChannelMessage) -> Bool {
        switch (lhs, rhs) {
        case (.nil, .nil):
            return true
        case (.bool(let a), .bool(let b)):
            return a == b
        case (.int(let a), .int(let b)):
            return a == b
        case (.uint(let a), .uint(let b)):
            return a == b
        case (.int(let a), .uint(let b)), (.uint(let b), .int(let a)):
            return a >= 0 && UInt64(a) == b
        case (.double(let a), .double(let b)):
            return a == b
        case (.string(let a), .string(let b)):
            return a == b
        case (.binary(let a), .binary(let b)):
            return a == b
        case (.array(let a), .array(let b)):
            return a == b
        case (.map(let a), .map(let b)):
            guard a.count == b.count else { return false }
            for (key, value) in a {
                guard let other = b[key], other == value else { return false }
            }
            return true
        default:
            return false
        }
    }

    /// Hashes consistently with ``==(_:_:)``.
    public func hash(into hasher: inout Hasher) {
        switch self {
        case .nil:
            hasher.combine(0 as UInt8)
        case .bool(let value):
            hasher.combine(1 as UInt8)
            hasher.combine(value)
        case .int(let value):
            hasher.combine(2 as UInt8)
            hasher.combine(value)
        case .uint(let value):
            if let small = Int64(exactly: value) {
                hasher.combine(2 as UInt8)
                hasher.combine(small)
            } else {
                hasher.combine(3 as UInt8)
                hasher.combine(value)
            }
        case .double(let value):
            hasher.combine(4 as UInt8)
            hasher.combine(value)
        case .string(let value):
            hasher.combine(5 as UInt8)
            hasher.combine(value)
        case .binary(let value):
            hasher.combine(6 as UInt8)
            hasher.combine(value)
        case .array(let value):
            hasher.combine(7 as UInt8)
            hasher.combine(value)
        case .map(let value):
            // Order-independent, like equality: sum the hashes of the entries.
            hasher.combine(8 as UInt8)
            hasher.combine(value.count)
            var sum = 0
            for (key, element) in value {
                var entry = Hasher()
                entry.combine(key)
                entry.combine(element)
                sum &+= entry.finalize()
            }
            hasher.combine(sum)
        }
    }
}

// MARK: - Description

extension ChannelMessage: CustomStringConvertible {
    /// A Python-like `repr`: `{'type': 'x', 'n': 1, 'ok': True, 'data': b'\x00', 'none': None}`.
    public var description: String {
        var text = ""
        Self.appendRepr(self, to: &text)
        return text
    }

    private static func appendRepr(_ message: ChannelMessage, to text: inout String) {
        switch message {
        case .nil:
            text += "None"
        case .bool(let value):
            text += value ? "True" : "False"
        case .int(let value):
            text += String(value)
        case .uint(let value):
            text += String(value)
        case .double(let value):
            text += JSONFormat.pythonFloatRepr(value)
        case .string(let value):
            appendStringRepr(value, to: &text)
        case .binary(let value):
            appendBytesRepr(value, to: &text)
        case .array(let elements):
            text += "["
            for (index, element) in elements.enumerated() {
                if index > 0 { text += ", " }
                appendRepr(element, to: &text)
            }
            text += "]"
        case .map(let map):
            text += "{"
            for (index, (key, value)) in map.enumerated() {
                if index > 0 { text += ", " }
                appendStringRepr(key, to: &text)
                text += ": "
                appendRepr(value, to: &text)
            }
            text += "}"
        }
    }

    /// Python's `repr(str)`: single quotes unless the text holds a `'` and no `"`; control characters escaped.
    private static func appendStringRepr(_ string: String, to text: inout String) {
        let quote: Character = string.contains("'") && !string.contains("\"") ? "\"" : "'"
        text.append(quote)
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            default:
                if Character(scalar) == quote {
                    text += "\\"
                    text.unicodeScalars.append(scalar)
                } else if scalar.value < 0x20 || scalar.value == 0x7F {
                    text += "\\x" + hex(scalar.value, width: 2)
                } else if (0x80..<0xA0).contains(scalar.value) {
                    text += "\\x" + hex(scalar.value, width: 2)
                } else {
                    text.unicodeScalars.append(scalar)
                }
            }
        }
        text.append(quote)
    }

    /// Python's `repr(bytes)`: printable ASCII as is, everything else as `\xNN`.
    private static func appendBytesRepr(_ bytes: [UInt8], to text: inout String) {
        let quote: UInt8 = bytes.contains(UInt8(ascii: "'")) && !bytes.contains(UInt8(ascii: "\"")) ? UInt8(ascii: "\"") : UInt8(ascii: "'")
        text += "b"
        text.unicodeScalars.append(Unicode.Scalar(quote))
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\\"): text += "\\\\"
            case UInt8(ascii: "\n"): text += "\\n"
            case UInt8(ascii: "\r"): text += "\\r"
            case UInt8(ascii: "\t"): text += "\\t"
            case quote: text += "\\" + String(Unicode.Scalar(byte))
            case 0x20..<0x7F: text.unicodeScalars.append(Unicode.Scalar(byte))
            default: text += "\\x" + hex(UInt32(byte), width: 2)
            }
        }
        text.unicodeScalars.append(Unicode.Scalar(quote))
    }

    private static func hex(_ value: UInt32, width: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
