import OrderedCollections

// The JSON reader of JSONFormat (JSONFormat.swift): json.loads as channels_redis reads messages.
extension JSONFormat {
    // MARK: Decoding

    /// Parses one JSON document that fills `bytes` (surrounding whitespace allowed), like `json.loads(bytes)`.
    ///
    /// - Throws: ``ChannelLayerError/Code/decodingFailed`` for malformed input.
    static func decode(_ bytes: UnsafeRawBufferPointer) throws(ChannelLayerError) -> ChannelMessage {
        var parser = Parser(bytes)
        parser.skipByteOrderMark()
        parser.skipWhitespace()
        let message = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.atEnd else { throw parser.failure("extra data after the value") }
        return message
    }

    fileprivate struct Parser {
        private let base: UnsafeRawPointer?
        private let end: Int
        private var position = 0

        init(_ bytes: UnsafeRawBufferPointer) {
            self.base = bytes.baseAddress
            self.end = bytes.count
        }

        var atEnd: Bool { position >= end }

        func failure(_ message: String) -> ChannelLayerError {
            ChannelLayerError(.decodingFailed, "JSON: \(message) at offset \(position)")
        }

        /// The byte at `position`, or nil at the end.
        @inline(__always)
        private func peek() -> UInt8? {
            guard position < end, let base else { return nil }
            return base.load(fromByteOffset: position, as: UInt8.self)
        }

        @inline(__always)
        private func byte(at offset: Int) -> UInt8 {
            // Callers have checked offset < end.
            base.unsafelyUnwrapped.load(fromByteOffset: offset, as: UInt8.self)
        }

        mutating func skipByteOrderMark() {
            if end >= 3, byte(at: 0) == 0xEF, byte(at: 1) == 0xBB, byte(at: 2) == 0xBF {
                position = 3
            }
        }

        mutating func skipWhitespace() {
            while let byte = peek(), byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 {
                position += 1
            }
        }

        private mutating func expectLiteral(_ literal: StaticString, _ value: ChannelMessage) throws(ChannelLayerError) -> ChannelMessage {
            let count = literal.utf8CodeUnitCount
            guard end - position >= count else { throw failure("expecting value") }
            let matches = literal.withUTF8Buffer { expected in
                (0..<count).allSatisfy { byte(at: position + $0) == expected[$0] }
            }
            guard matches else { throw failure("expecting value") }
            position += count
            return value
        }

        mutating func parseValue(depth: Int) throws(ChannelLayerError) -> ChannelMessage {
            guard let first = peek() else { throw failure("expecting value") }
            switch first {
            case UInt8(ascii: "{"):
                return try parseObject(depth: depth)
            case UInt8(ascii: "["):
                return try parseArray(depth: depth)
            case UInt8(ascii: "\""):
                return .string(try parseString())
            case UInt8(ascii: "n"):
                return try expectLiteral("null", .nil)
            case UInt8(ascii: "t"):
                return try expectLiteral("true", .bool(true))
            case UInt8(ascii: "f"):
                return try expectLiteral("false", .bool(false))
            case UInt8(ascii: "N"):
                return try expectLiteral("NaN", .double(.nan))
            case UInt8(ascii: "I"):
                return try expectLiteral("Infinity", .double(.infinity))
            case UInt8(ascii: "-"):
                if position + 1 < end, byte(at: position + 1) == UInt8(ascii: "I") {
                    return try expectLiteral("-Infinity", .double(-.infinity))
                }
                return try parseNumber()
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                return try parseNumber()
            default:
                throw failure("expecting value")
            }
        }

        private mutating func parseObject(depth: Int) throws(ChannelLayerError) -> ChannelMessage {
            guard depth < JSONFormat.maximumDepth else { throw failure("nesting deeper than \(JSONFormat.maximumDepth) levels") }
            position += 1  // {
            var map = OrderedDictionary<String, ChannelMessage>()
            skipWhitespace()
            if peek() == UInt8(ascii: "}") {
                position += 1
                return .map(map)
            }
            while true {
                skipWhitespace()
                guard peek() == UInt8(ascii: "\"") else { throw failure("expecting property name enclosed in double quotes") }
                let key = try parseString()
                skipWhitespace()
                guard peek() == UInt8(ascii: ":") else { throw failure("expecting ':' delimiter") }
                position += 1
                skipWhitespace()
                map[key] = try parseValue(depth: depth + 1)
                skipWhitespace()
                switch peek() {
                case UInt8(ascii: ","):
                    position += 1
                case UInt8(ascii: "}"):
                    position += 1
                    return .map(map)
                default:
                    throw failure("expecting ',' delimiter")
                }
            }
        }

        private mutating func parseArray(depth: Int) throws(ChannelLayerError) -> ChannelMessage {
            guard depth < JSONFormat.maximumDepth else { throw failure("nesting deeper than \(JSONFormat.maximumDepth) levels") }
            position += 1  // [
            var elements: [ChannelMessage] = []
            skipWhitespace()
            if peek() == UInt8(ascii: "]") {
                position += 1
                return .array(elements)
            }
            while true {
                skipWhitespace()
                elements.append(try parseValue(depth: depth + 1))
                skipWhitespace()
                switch peek() {
                case UInt8(ascii: ","):
                    position += 1
                case UInt8(ascii: "]"):
                    position += 1
                    return .array(elements)
                default:
                    throw failure("expecting ',' delimiter")
                }
            }
        }

        private mutating func parseNumber() throws(ChannelLayerError) -> ChannelMessage {
            let start = position
            var isInteger = true
            if peek() == UInt8(ascii: "-") { position += 1 }
            guard let leading = peek(), leading >= UInt8(ascii: "0"), leading <= UInt8(ascii: "9") else {
                throw failure("expecting value")
            }
            if leading == UInt8(ascii: "0") {
                position += 1
            } else {
                skipDigits()
            }
            if peek() == UInt8(ascii: "."), position + 1 < end, isDigit(byte(at: position + 1)) {
                isInteger = false
                position += 1
                skipDigits()
            }
            if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
                // Python's NUMBER_RE only takes the exponent when digits follow; otherwise "1e" stops before the e.
                var look = position + 1
                if look < end, byte(at: look) == UInt8(ascii: "+") || byte(at: look) == UInt8(ascii: "-") { look += 1 }
                if look < end, isDigit(byte(at: look)) {
                    isInteger = false
                    position = look
                    skipDigits()
                }
            }
            let text = String(decoding: UnsafeRawBufferPointer(start: base.unsafelyUnwrapped + start, count: position - start), as: UTF8.self)
            if isInteger {
                if let value = Int64(text) { return .int(value) }
                if let value = UInt64(text) { return .uint(value) }
            }
            guard let value = Double(text) else { throw failure("invalid number '\(text)'") }
            return .double(value)
        }

        @inline(__always)
        private func isDigit(_ byte: UInt8) -> Bool {
            byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
        }

        private mutating func skipDigits() {
            while let byte = peek(), isDigit(byte) { position += 1 }
        }

        private mutating func parseString() throws(ChannelLayerError) -> String {
            position += 1  // opening quote
            let start = position
            // Fast path: no escapes, just find the closing quote and validate the UTF-8 in place.
            while let byte = peek() {
                if byte == UInt8(ascii: "\"") {
                    let raw = UnsafeRawBufferPointer(start: base.unsafelyUnwrapped + start, count: position - start)
                    position += 1
                    return try validated(raw, at: start)
                }
                if byte == UInt8(ascii: "\\") { break }
                if byte < 0x20 { throw failure("invalid control character in string") }
                position += 1
            }
            guard !atEnd else { throw failure("unterminated string starting") }

            var bytes = [UInt8](UnsafeRawBufferPointer(start: base.unsafelyUnwrapped + start, count: position - start))
            while true {
                guard let byte = peek() else { throw failure("unterminated string starting") }
                position += 1
                switch byte {
                case UInt8(ascii: "\""):
                    guard let string = bytes.withUnsafeBytes({ String(validatingUTF8Bytes: $0) }) else {
                        throw ChannelLayerError(.decodingFailed, "JSON: invalid UTF-8 in the string at offset \(start)")
                    }
                    return string
                case UInt8(ascii: "\\"):
                    try parseEscape(into: &bytes)
                case 0..<0x20:
                    position -= 1
                    throw failure("invalid control character in string")
                default:
                    bytes.append(byte)
                }
            }
        }

        private func validated(_ raw: UnsafeRawBufferPointer, at offset: Int) throws(ChannelLayerError) -> String {
            guard let string = String(validatingUTF8Bytes: raw) else {
                throw ChannelLayerError(.decodingFailed, "JSON: invalid UTF-8 in the string at offset \(offset)")
            }
            return string
        }

        private mutating func parseEscape(into bytes: inout [UInt8]) throws(ChannelLayerError) {
            guard let escape = peek() else { throw failure("unterminated string starting") }
            position += 1
            switch escape {
            case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "/"): bytes.append(UInt8(ascii: "/"))
            case UInt8(ascii: "b"): bytes.append(0x08)
            case UInt8(ascii: "f"): bytes.append(0x0C)
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "u"):
                var unit = try parseHex4()
                if (0xD800..<0xDC00).contains(unit) {
                    guard end - position >= 6, byte(at: position) == UInt8(ascii: "\\"), byte(at: position + 1) == UInt8(ascii: "u") else {
                        throw failure("lone surrogate \\u\(String(unit, radix: 16)) cannot be represented")
                    }
                    position += 2
                    let low = try parseHex4()
                    guard (0xDC00..<0xE000).contains(low) else {
                        throw failure("lone surrogate \\u\(String(unit, radix: 16)) cannot be represented")
                    }
                    unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(unit) {
                    throw failure("lone surrogate \\u\(String(unit, radix: 16)) cannot be represented")
                }
                appendUTF8(unit, to: &bytes)
            default:
                position -= 1
                throw failure("invalid \\escape")
            }
        }

        /// Appends a scalar value (never a surrogate: the caller excluded those) as UTF-8.
        private func appendUTF8(_ scalar: UInt32, to bytes: inout [UInt8]) {
            switch scalar {
            case ..<0x80:
                bytes.append(UInt8(scalar))
            case ..<0x800:
                bytes.append(UInt8(0xC0 | scalar >> 6))
                bytes.append(UInt8(0x80 | scalar & 0x3F))
            case ..<0x10000:
                bytes.append(UInt8(0xE0 | scalar >> 12))
                bytes.append(UInt8(0x80 | scalar >> 6 & 0x3F))
                bytes.append(UInt8(0x80 | scalar & 0x3F))
            default:
                bytes.append(UInt8(0xF0 | scalar >> 18))
                bytes.append(UInt8(0x80 | scalar >> 12 & 0x3F))
                bytes.append(UInt8(0x80 | scalar >> 6 & 0x3F))
                bytes.append(UInt8(0x80 | scalar & 0x3F))
            }
        }

        private mutating func parseHex4() throws(ChannelLayerError) -> UInt32 {
            guard end - position >= 4 else { throw failure("invalid \\uXXXX escape") }
            var value: UInt32 = 0
            for offset in 0..<4 {
                let byte = byte(at: position + offset)
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw failure("invalid \\uXXXX escape")
                }
                value = value << 4 | UInt32(digit)
            }
            position += 4
            return value
        }
    }
}
