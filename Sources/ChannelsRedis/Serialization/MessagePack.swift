import OrderedCollections

#if canImport(Glibc)
    import Glibc
#endif

/// The msgpack wire format as Python's `msgpack.packb` / `msgpack.unpackb` (msgpack-python ≥ 1.0 defaults) speak it.
///
/// Encoding is byte-identical to `msgpack.packb(value)`: `str` in the str family chosen by UTF-8 length, `bytes`
/// as `bin`, integers in their smallest form (non-negative ones always unsigned: 200 is `cc c8`, 2**63 is
/// `cf 80…`; negative ones signed: -100 is `d0 9c`, -200 is `d1 ff 38`), floats always float64 (`cb`), maps in
/// insertion order.
///
/// Decoding accepts everything msgpack-python can produce and rejects, with
/// ``ChannelLayerError/Code/decodingFailed``, what `msgpack.unpackb` would reject or what the model cannot hold:
/// ext types (including the timestamp ext), the never-used byte `c1`, non-string map keys, invalid UTF-8,
/// truncation, trailing bytes, lengths larger than the input and nesting deeper than ``maximumDepth``.
///
/// Map keys packed as `bin` (a Python `bytes` key, which `unpackb` allows) are accepted when they are valid UTF-8
/// and become `String` keys; other `bin` keys are rejected. A repeated key keeps its first position and takes its
/// last value, as `unpackb` building a dict does.
enum MessagePack {
    /// How deeply arrays and maps may nest before decoding gives up (instead of overflowing the stack).
    static let maximumDepth = 512

    // MARK: Encoding

    /// Appends the msgpack encoding of `message` to `buffer`.
    static func encode(_ message: ChannelMessage, into buffer: inout [UInt8]) {
        switch message {
        case .nil:
            buffer.append(0xC0)
        case .bool(let value):
            buffer.append(value ? 0xC3 : 0xC2)
        case .int(let value):
            encodeInteger(value, into: &buffer)
        case .uint(let value):
            if let small = Int64(exactly: value) {
                encodeInteger(small, into: &buffer)
            } else {
                buffer.append(0xCF)
                appendBigEndian(value, to: &buffer)
            }
        case .double(let value):
            buffer.append(0xCB)
            appendBigEndian(value.bitPattern, to: &buffer)
        case .string(let value):
            encodeString(value, into: &buffer)
        case .binary(let value):
            encodeHeader(count: value.count, fix: nil, fixLimit: 0, eight: 0xC4, sixteen: 0xC5, thirtyTwo: 0xC6, into: &buffer)
            buffer.append(contentsOf: value)
        case .array(let elements):
            encodeHeader(count: elements.count, fix: 0x90, fixLimit: 16, eight: nil, sixteen: 0xDC, thirtyTwo: 0xDD, into: &buffer)
            for element in elements {
                encode(element, into: &buffer)
            }
        case .map(let map):
            encodeHeader(count: map.count, fix: 0x80, fixLimit: 16, eight: nil, sixteen: 0xDE, thirtyTwo: 0xDF, into: &buffer)
            // By index over the two arrays: iterating pairs and wrapping each key in a `.string`
            // would retain and release every key and value once more.
            let keys = map.keys
            let values = map.values
            for index in keys.indices {
                encodeString(keys[index], into: &buffer)
                encode(values[index], into: &buffer)
            }
        }
    }

    @inline(__always)
    private static func encodeString(_ value: String, into buffer: inout [UInt8]) {
        let done: Void? = value.utf8.withContiguousStorageIfAvailable { utf8 in
            encodeHeader(count: utf8.count, fix: 0xA0, fixLimit: 32, eight: 0xD9, sixteen: 0xDA, thirtyTwo: 0xDB, into: &buffer)
            buffer.append(contentsOf: utf8)
        }
        if done == nil {  // a bridged or otherwise non-contiguous string
            var copy = value
            copy.withUTF8 { utf8 in
                encodeHeader(count: utf8.count, fix: 0xA0, fixLimit: 32, eight: 0xD9, sixteen: 0xDA, thirtyTwo: 0xDB, into: &buffer)
                buffer.append(contentsOf: utf8)
            }
        }
    }

    /// Integers exactly as msgpack-python picks them: non-negative values in the smallest unsigned form,
    /// negative values in the smallest signed form.
    @inline(__always)
    private static func encodeInteger(_ value: Int64, into buffer: inout [UInt8]) {
        if value >= 0 {
            if value < 0x80 {
                buffer.append(UInt8(truncatingIfNeeded: value))
            } else if value <= 0xFF {
                buffer.append(0xCC)
                buffer.append(UInt8(truncatingIfNeeded: value))
            } else if value <= 0xFFFF {
                buffer.append(0xCD)
                appendBigEndian(UInt16(truncatingIfNeeded: value), to: &buffer)
            } else if value <= 0xFFFF_FFFF {
                buffer.append(0xCE)
                appendBigEndian(UInt32(truncatingIfNeeded: value), to: &buffer)
            } else {
                buffer.append(0xCF)
                appendBigEndian(UInt64(truncatingIfNeeded: value), to: &buffer)
            }
        } else if value >= -32 {
            buffer.append(UInt8(truncatingIfNeeded: value))
        } else if value >= Int64(Int8.min) {
            buffer.append(0xD0)
            buffer.append(UInt8(truncatingIfNeeded: value))
        } else if value >= Int64(Int16.min) {
            buffer.append(0xD1)
            appendBigEndian(UInt16(truncatingIfNeeded: value), to: &buffer)
        } else if value >= Int64(Int32.min) {
            buffer.append(0xD2)
            appendBigEndian(UInt32(truncatingIfNeeded: value), to: &buffer)
        } else {
            buffer.append(0xD3)
            appendBigEndian(UInt64(truncatingIfNeeded: value), to: &buffer)
        }
    }

    /// A str/bin/array/map header. `fix` is nil for bin (no fix form), `eight` nil for array/map (no 8-bit form).
    @inline(__always)
    private static func encodeHeader(
        count: Int,
        fix: UInt8?,
        fixLimit: Int,
        eight: UInt8?,
        sixteen: UInt8,
        thirtyTwo: UInt8,
        into buffer: inout [UInt8]
    ) {
        if let fix, count < fixLimit {
            buffer.append(fix | UInt8(truncatingIfNeeded: count))
        } else if let eight, count <= 0xFF {
            buffer.append(eight)
            buffer.append(UInt8(truncatingIfNeeded: count))
        } else if count <= 0xFFFF {
            buffer.append(sixteen)
            appendBigEndian(UInt16(truncatingIfNeeded: count), to: &buffer)
        } else {
            // msgpack cannot carry 4 GiB or more in one object; Python's packb raises ValueError there.
            precondition(count <= 0xFFFF_FFFF, "msgpack cannot encode an object with \(count) bytes or elements")
            buffer.append(thirtyTwo)
            appendBigEndian(UInt32(truncatingIfNeeded: count), to: &buffer)
        }
    }

    @inline(__always)
    private static func appendBigEndian<T: FixedWidthInteger>(_ value: T, to buffer: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { buffer.append(contentsOf: $0) }
    }

    // MARK: Decoding

    /// Maps up to this many entries are checked for repeated keys by comparing each new key with
    /// the ones before it; larger ones go through the dictionary's hash table.
    static let uncheckedMapLimit = 16

    /// Decodes exactly one msgpack value that fills `bytes` completely.
    ///
    /// - Throws: ``ChannelLayerError/Code/decodingFailed`` for malformed input, unsupported types, or trailing bytes.
    static func decode(_ bytes: UnsafeRawBufferPointer) throws(ChannelLayerError) -> ChannelMessage {
        var reader = Reader(bytes)
        let message = try reader.readValue(depth: 0)
        guard reader.remaining == 0 else {
            throw ChannelLayerError(
                .decodingFailed,
                "msgpack: \(reader.remaining) trailing byte(s) after the value at offset \(reader.position)"
            )
        }
        return message
    }

    /// A cursor over the input with explicit bounds checks; reads through the raw pointer, never by slicing.
    private struct Reader {
        private let base: UnsafeRawPointer?
        private let end: Int
        private(set) var position = 0

        init(_ bytes: UnsafeRawBufferPointer) {
            self.base = bytes.baseAddress
            self.end = bytes.count
        }

        var remaining: Int { end - position }

        private func failure(_ message: String) -> ChannelLayerError {
            ChannelLayerError(.decodingFailed, "msgpack: \(message)")
        }

        private func truncated(_ what: StaticString, needed: Int) -> ChannelLayerError {
            failure("truncated input: \(what) at offset \(position) needs \(needed) byte(s), \(remaining) left")
        }

        @inline(__always)
        private mutating func readByte() throws(ChannelLayerError) -> UInt8 {
            guard position < end, let base else { throw truncated("a type byte", needed: 1) }
            let byte = base.load(fromByteOffset: position, as: UInt8.self)
            position += 1
            return byte
        }

        @inline(__always)
        private mutating func readBigEndian<T: FixedWidthInteger>(_: T.Type, _ what: StaticString) throws(ChannelLayerError) -> T {
            let size = MemoryLayout<T>.size
            guard remaining >= size, let base else { throw truncated(what, needed: size) }
            let value = base.loadUnaligned(fromByteOffset: position, as: T.self)
            position += size
            return T(bigEndian: value)
        }

        /// Checks that `count` bytes are there, returns a pointer to them and moves past them.
        @inline(__always)
        private mutating func take(_ count: Int, _ what: StaticString) throws(ChannelLayerError) -> UnsafeRawBufferPointer {
            guard count <= remaining else { throw truncated(what, needed: count) }
            let start = base.map { $0 + position }
            position += count
            return UnsafeRawBufferPointer(start: start, count: count)
        }

        private mutating func readString(count: Int) throws(ChannelLayerError) -> String {
            let offset = position
            let raw = try take(count, "a str body")
            guard let string = String(validatingUTF8Bytes: raw) else {
                throw failure("invalid UTF-8 in the str at offset \(offset)")
            }
            return string
        }

        private mutating func readBinary(count: Int) throws(ChannelLayerError) -> [UInt8] {
            [UInt8](try take(count, "a bin body"))
        }

        private mutating func readArray(count: Int, depth: Int) throws(ChannelLayerError) -> ChannelMessage {
            // Every element takes at least one byte: a hostile count fails here, before any allocation.
            guard count <= remaining else {
                throw failure("array at offset \(position) declares \(count) element(s) but only \(remaining) byte(s) remain")
            }
            guard depth < MessagePack.maximumDepth else { throw failure("nesting deeper than \(MessagePack.maximumDepth) levels") }
            var elements: [ChannelMessage] = []
            elements.reserveCapacity(count)
            for _ in 0..<count {
                elements.append(try readValue(depth: depth + 1))
            }
            return .array(elements)
        }

        private mutating func readMap(count: Int, depth: Int) throws(ChannelLayerError) -> ChannelMessage {
            // Every entry takes at least two bytes (a key and a value).
            guard count <= remaining / 2 else {
                throw failure("map at offset \(position) declares \(count) entries but only \(remaining) byte(s) remain")
            }
            guard depth < MessagePack.maximumDepth else { throw failure("nesting deeper than \(MessagePack.maximumDepth) levels") }
            // Keys and values straight into the two arrays an OrderedDictionary is made of: building
            // it entry by entry would size and search its tables each time.
            var keys = ContiguousArray<String>()
            var values = ContiguousArray<ChannelMessage>()
            keys.reserveCapacity(count)
            values.reserveCapacity(count)
            var unique = count <= MessagePack.uncheckedMapLimit
            for _ in 0..<count {
                let key = try readKey()
                if unique, keys.contains(key) { unique = false }
                keys.append(key)
                values.append(try readValue(depth: depth + 1))
            }
            if unique { return .map(OrderedDictionary(uncheckedUniqueKeys: keys, values: values)) }
            // Large, or a key repeats: as Python's dict, a repeated key keeps its first place and
            // takes its last value.
            var map = OrderedDictionary<String, ChannelMessage>(minimumCapacity: count)
            for (key, value) in zip(keys, values) { map[key] = value }
            return .map(map)
        }

        private mutating func readKey() throws(ChannelLayerError) -> String {
            let offset = position
            let byte = try readByte()
            switch byte {
            case 0xA0...0xBF: return try readString(count: Int(byte & 0x1F))
            case 0xD9: return try readString(count: Int(try readBigEndian(UInt8.self, "a str8 length")))
            case 0xDA: return try readString(count: Int(try readBigEndian(UInt16.self, "a str16 length")))
            case 0xDB: return try readString(count: Int(try readBigEndian(UInt32.self, "a str32 length")))
            case 0xC4, 0xC5, 0xC6:
                // A Python `bytes` key: accepted when it is valid UTF-8, as a String key.
                let count: Int
                switch byte {
                case 0xC4: count = Int(try readBigEndian(UInt8.self, "a bin8 length"))
                case 0xC5: count = Int(try readBigEndian(UInt16.self, "a bin16 length"))
                default: count = Int(try readBigEndian(UInt32.self, "a bin32 length"))
                }
                let raw = try take(count, "a bin key")
                guard let key = String(validatingUTF8Bytes: raw) else {
                    throw failure("map key at offset \(offset) is bytes that are not valid UTF-8")
                }
                return key
            default:
                throw failure("map key at offset \(offset) is \(Self.typeName(byte)), only str keys are supported")
            }
        }

        mutating func readValue(depth: Int) throws(ChannelLayerError) -> ChannelMessage {
            let offset = position
            let byte = try readByte()
            switch byte {
            case 0x00...0x7F:
                return .int(Int64(byte))
            case 0x80...0x8F:
                return try readMap(count: Int(byte & 0x0F), depth: depth)
            case 0x90...0x9F:
                return try readArray(count: Int(byte & 0x0F), depth: depth)
            case 0xA0...0xBF:
                return .string(try readString(count: Int(byte & 0x1F)))
            case 0xC0:
                return .nil
            case 0xC2:
                return .bool(false)
            case 0xC3:
                return .bool(true)
            case 0xC4:
                return .binary(try readBinary(count: Int(try readBigEndian(UInt8.self, "a bin8 length"))))
            case 0xC5:
                return .binary(try readBinary(count: Int(try readBigEndian(UInt16.self, "a bin16 length"))))
            case 0xC6:
                return .binary(try readBinary(count: Int(try readBigEndian(UInt32.self, "a bin32 length"))))
            case 0xC7, 0xC8, 0xC9, 0xD4...0xD8:
                throw failure("ext type \(try extType(byte)) at offset \(offset) not supported")
            case 0xCA:
                return .double(Double(Float(bitPattern: try readBigEndian(UInt32.self, "a float32"))))
            case 0xCB:
                return .double(Double(bitPattern: try readBigEndian(UInt64.self, "a float64")))
            case 0xCC:
                return .int(Int64(try readBigEndian(UInt8.self, "a uint8")))
            case 0xCD:
                return .int(Int64(try readBigEndian(UInt16.self, "a uint16")))
            case 0xCE:
                return .int(Int64(try readBigEndian(UInt32.self, "a uint32")))
            case 0xCF:
                return ChannelMessage(try readBigEndian(UInt64.self, "a uint64"))
            case 0xD0:
                return .int(Int64(try readBigEndian(Int8.self, "an int8")))
            case 0xD1:
                return .int(Int64(try readBigEndian(Int16.self, "an int16")))
            case 0xD2:
                return .int(Int64(try readBigEndian(Int32.self, "an int32")))
            case 0xD3:
                return .int(try readBigEndian(Int64.self, "an int64"))
            case 0xD9:
                return .string(try readString(count: Int(try readBigEndian(UInt8.self, "a str8 length"))))
            case 0xDA:
                return .string(try readString(count: Int(try readBigEndian(UInt16.self, "a str16 length"))))
            case 0xDB:
                return .string(try readString(count: Int(try readBigEndian(UInt32.self, "a str32 length"))))
            case 0xDC:
                return try readArray(count: Int(try readBigEndian(UInt16.self, "an array16 length")), depth: depth)
            case 0xDD:
                return try readArray(count: Int(try readBigEndian(UInt32.self, "an array32 length")), depth: depth)
            case 0xDE:
                return try readMap(count: Int(try readBigEndian(UInt16.self, "a map16 length")), depth: depth)
            case 0xDF:
                return try readMap(count: Int(try readBigEndian(UInt32.self, "a map32 length")), depth: depth)
            case 0xE0...0xFF:
                return .int(Int64(Int8(bitPattern: byte)))
            default:  // 0xC1
                throw failure("byte 0xc1 at offset \(offset) is never used in msgpack")
            }
        }

        /// Reads past an ext header far enough to name its type for the error message.
        private mutating func extType(_ byte: UInt8) throws(ChannelLayerError) -> Int8 {
            switch byte {
            case 0xC7: _ = try readBigEndian(UInt8.self, "an ext8 length")
            case 0xC8: _ = try readBigEndian(UInt16.self, "an ext16 length")
            case 0xC9: _ = try readBigEndian(UInt32.self, "an ext32 length")
            default: break
            }
            return try readBigEndian(Int8.self, "an ext type")
        }

        private static func typeName(_ byte: UInt8) -> String {
            switch byte {
            case 0x00...0x7F, 0xCC...0xD3, 0xE0...0xFF: "an int"
            case 0x80...0x8F, 0xDE, 0xDF: "a map"
            case 0x90...0x9F, 0xDC, 0xDD: "an array"
            case 0xC0: "nil"
            case 0xC2, 0xC3: "a bool"
            case 0xCA, 0xCB: "a float"
            case 0xC7...0xC9, 0xD4...0xD8: "an ext"
            default: "byte 0x" + String(byte, radix: 16)
            }
        }
    }
}

extension String {
    /// Creates a string from bytes that must be well-formed UTF-8 (Unicode table 3-7: no overlong forms, no
    /// surrogates, nothing above U+10FFFF), or returns `nil`.
    ///
    /// One validating pass, in the standard library: `String(decoding:as:)` replaces every ill-formed
    /// sequence with U+FFFD, so its bytes equal the input exactly when the input was well-formed (at
    /// the first ill-formed sequence the output has EF BF BD, which is well-formed, so they differ).
    /// A check of our own followed by this decoding would validate every string twice;
    /// `String(validating:as:)` is not specialised for raw buffers (generic metadata look-ups). This
    /// runs once per string of every received message.
    init?(validatingUTF8Bytes raw: UnsafeRawBufferPointer) {
        var string = String(decoding: raw, as: UTF8.self)
        let unchanged = string.withUTF8 { utf8 in
            utf8.count == raw.count && (raw.isEmpty || memcmp(utf8.baseAddress!, raw.baseAddress!, raw.count) == 0)
        }
        guard unchanged else { return nil }
        self = string
    }
}
