import OrderedCollections

/// JSON exactly as channels_redis 4.3.0's `JSONSerializer` writes it: `json.dumps(message).encode("utf-8")`
/// with no extra arguments, and reads it: `json.loads(bytes)`.
///
/// Python's defaults fix the bytes: separators `", "` and `": "`, `ensure_ascii=True` (every character outside
/// printable ASCII, DEL included, becomes `\uXXXX` in lowercase hex, astral characters as a surrogate pair),
/// `\n \r \t \b \f \" \\` as short escapes, floats as `repr(float)` (`1.0`, `1e+16`, `1e-05`), non-finite floats
/// as `NaN`, `Infinity`, `-Infinity` (`allow_nan=True`), and dict entries in insertion order. Binary values have
/// no JSON form (Python raises `TypeError`); encoding them fails with ``ChannelLayerError/Code/encodingFailed``.
///
/// Decoding accepts standard JSON plus Python's `NaN`, `Infinity` and `-Infinity`, skips a leading UTF-8 BOM (as
/// `json.loads` on bytes does), and rejects with ``ChannelLayerError/Code/decodingFailed``: invalid UTF-8, raw
/// control characters inside strings (`strict=True`), lone surrogates (a Swift `String` cannot hold them),
/// trailing data and nesting deeper than ``maximumDepth``. Integers become ``ChannelMessage/int(_:)`` or
/// ``ChannelMessage/uint(_:)``; an integer beyond `UInt64` (Python would keep it exact) becomes the nearest
/// ``ChannelMessage/double(_:)``. A repeated key keeps its first position and takes its last value, like a dict.
enum JSONFormat {
    /// How deeply arrays and objects may nest before decoding gives up.
    static let maximumDepth = 512

    // MARK: Encoding

    /// Appends `json.dumps(message)` as UTF-8 (which, with `ensure_ascii`, is plain ASCII) to `buffer`.
    ///
    /// - Throws: ``ChannelLayerError/Code/encodingFailed`` when the message contains binary data.
    static func encode(_ message: ChannelMessage, into buffer: inout [UInt8]) throws(ChannelLayerError) {
        switch message {
        case .nil:
            buffer.append(contentsOf: "null".utf8)
        case .bool(let value):
            buffer.append(contentsOf: (value ? "true" : "false").utf8)
        case .int(let value):
            buffer.append(contentsOf: String(value).utf8)
        case .uint(let value):
            buffer.append(contentsOf: String(value).utf8)
        case .double(let value):
            if value.isNaN {
                buffer.append(contentsOf: "NaN".utf8)
            } else if value.isInfinite {
                buffer.append(contentsOf: (value < 0 ? "-Infinity" : "Infinity").utf8)
            } else {
                buffer.append(contentsOf: pythonFloatRepr(value).utf8)
            }
        case .string(let value):
            encodeString(value, into: &buffer)
        case .binary(let value):
            throw ChannelLayerError(
                .encodingFailed,
                "JSON cannot carry binary data (\(value.count) byte(s)); use the msgpack serializer for bytes"
            )
        case .array(let elements):
            buffer.append(UInt8(ascii: "["))
            var first = true
            for element in elements {
                if !first { buffer.append(contentsOf: [UInt8(ascii: ","), UInt8(ascii: " ")]) }
                first = false
                try encode(element, into: &buffer)
            }
            buffer.append(UInt8(ascii: "]"))
        case .map(let map):
            buffer.append(UInt8(ascii: "{"))
            var first = true
            for (key, value) in map {
                if !first { buffer.append(contentsOf: [UInt8(ascii: ","), UInt8(ascii: " ")]) }
                first = false
                encodeString(key, into: &buffer)
                buffer.append(contentsOf: [UInt8(ascii: ":"), UInt8(ascii: " ")])
                try encode(value, into: &buffer)
            }
            buffer.append(UInt8(ascii: "}"))
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Python's `json.encoder.py_encode_basestring_ascii`.
    private static func encodeString(_ string: String, into buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "\""))
        for scalar in string.unicodeScalars {
            let value = scalar.value
            switch value {
            case 0x22: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case 0x5C: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x08: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x20..<0x7F: buffer.append(UInt8(truncatingIfNeeded: value))
            case 0x10000...:
                let offset = value - 0x10000
                appendUnicodeEscape(0xD800 | (offset >> 10), into: &buffer)
                appendUnicodeEscape(0xDC00 | (offset & 0x3FF), into: &buffer)
            default:
                appendUnicodeEscape(value, into: &buffer)
            }
        }
        buffer.append(UInt8(ascii: "\""))
    }

    @inline(__always)
    private static func appendUnicodeEscape(_ unit: UInt32, into buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "\\"))
        buffer.append(UInt8(ascii: "u"))
        buffer.append(hexDigits[Int((unit >> 12) & 0xF)])
        buffer.append(hexDigits[Int((unit >> 8) & 0xF)])
        buffer.append(hexDigits[Int((unit >> 4) & 0xF)])
        buffer.append(hexDigits[Int(unit & 0xF)])
    }

    /// Python's `repr(float)`: the shortest digits that round-trip, in fixed notation when the decimal exponent is
    /// in `-4 ..< 16` (always with a fractional part, `1.0`), otherwise in exponent notation with a sign and at
    /// least two exponent digits (`1e+16`, `1.5e-07`). Non-finite values are `inf`, `-inf`, `nan`.
    static func pythonFloatRepr(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        if value == 0 { return value.sign == .minus ? "-0.0" : "0.0" }

        // Swift's description also prints the shortest round-tripping digits (closest to the exact value), only
        // laid out differently; take its digits and decimal exponent and lay them out as Python does.
        var digits: [UInt8] = []
        var pointPosition: Int?
        var exponent = 0
        var exponentNegative = false
        var inExponent = false
        for byte in value.magnitude.description.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if inExponent {
                    exponent = exponent * 10 + Int(byte - UInt8(ascii: "0"))
                } else {
                    digits.append(byte)
                }
            case UInt8(ascii: "."):
                pointPosition = digits.count
            case UInt8(ascii: "e"), UInt8(ascii: "E"):
                inExponent = true
            case UInt8(ascii: "-"):
                exponentNegative = true
            default:
                break
            }
        }
        // The value is digits[0].digits[1...] × 10^(decimalPoint - 1).
        var decimalPoint = (pointPosition ?? digits.count) + (exponentNegative ? -exponent : exponent)
        var leading = 0
        while leading < digits.count - 1, digits[leading] == UInt8(ascii: "0") {
            leading += 1
            decimalPoint -= 1
        }
        var trailing = digits.count
        while trailing > leading + 1, digits[trailing - 1] == UInt8(ascii: "0") {
            trailing -= 1
        }
        let significant = digits[leading..<trailing]

        var out: [UInt8] = value.sign == .minus ? [UInt8(ascii: "-")] : []
        if decimalPoint > -4 && decimalPoint <= 16 {
            if decimalPoint <= 0 {
                out.append(contentsOf: "0.".utf8)
                out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: -decimalPoint))
                out.append(contentsOf: significant)
            } else if decimalPoint >= significant.count {
                out.append(contentsOf: significant)
                out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: decimalPoint - significant.count))
                out.append(contentsOf: ".0".utf8)
            } else {
                let split = significant.startIndex + decimalPoint
                out.append(contentsOf: significant[..<split])
                out.append(UInt8(ascii: "."))
                out.append(contentsOf: significant[split...])
            }
        } else {
            out.append(significant[significant.startIndex])
            if significant.count > 1 {
                out.append(UInt8(ascii: "."))
                out.append(contentsOf: significant.dropFirst())
            }
            let power = decimalPoint - 1
            out.append(UInt8(ascii: "e"))
            out.append(power < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
            let powerDigits = String(power.magnitude)
            if powerDigits.utf8.count < 2 { out.append(UInt8(ascii: "0")) }
            out.append(contentsOf: powerDigits.utf8)
        }
        return String(decoding: out, as: UTF8.self)
    }
}
