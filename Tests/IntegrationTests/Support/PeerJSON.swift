import ChannelsRedis
import Foundation

/// A value on the peer's pipe: JSON without numbers (peer.py tags them, see its header).
indirect enum PeerJSON: Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case string(String)
    case array([PeerJSON])
    case object([String: PeerJSON])

    /// The tagged form of a message.
    init(_ message: ChannelMessage) {
        switch message {
        case .nil: self = .null
        case .bool(let value): self = .bool(value)
        case .int(let value): self = .object(["$int": .string(String(value))])
        case .uint(let value): self = .object(["$int": .string(String(value))])
        case .double(let value): self = .object(["$float": .string(hex64(value.bitPattern))])
        case .string(let value): self = .string(value)
        case .binary(let value): self = .object(["$bytes": .string(Data(value).base64EncodedString())])
        case .array(let elements): self = .array(elements.map(PeerJSON.init))
        case .map(let map): self = .object(["$map": .array(map.map { .array([.string($0.key), PeerJSON($0.value)]) })])
        }
    }

    /// From `JSONSerialization`'s output. The peer never writes JSON numbers, so any `NSNumber` here is a bool.
    init(any value: Any) throws {
        if value is NSNull {
            self = .null
        } else if let string = value as? String {
            self = .string(string)
        } else if let bool = value as? Bool {
            self = .bool(bool)
        } else if let array = value as? [Any] {
            self = .array(try array.map { try PeerJSON(any: $0) })
        } else if let object = value as? [String: Any] {
            self = .object(try object.mapValues { try PeerJSON(any: $0) })
        } else {
            throw InteropFailure("unexpected JSON value \(value)")
        }
    }

    /// The message a tagged form stands for.
    func message() throws -> ChannelMessage {
        switch self {
        case .null: return .nil
        case .bool(let value): return .bool(value)
        case .string(let value): return .string(value)
        case .array(let elements): return .array(try elements.map { try $0.message() })
        case .object(let object):
            guard object.count == 1, let (tag, payload) = object.first else { throw InteropFailure("not a tagged value: \(self)") }
            switch (tag, payload) {
            case ("$int", .string(let text)):
                if let value = Int64(text) { return .int(value) }
                if let value = UInt64(text) { return .uint(value) }
                throw InteropFailure("the Python int \(text) does not fit 64 bits")
            case ("$float", .string(let text)):
                guard let bits = UInt64(text, radix: 16) else { throw InteropFailure("bad $float \(text)") }
                return .double(Double(bitPattern: bits))
            case ("$bytes", .string(let text)):
                guard let data = Data(base64Encoded: text) else { throw InteropFailure("bad $bytes") }
                return .binary([UInt8](data))
            case ("$map", .array(let pairs)):
                var map: [(String, ChannelMessage)] = []
                map.reserveCapacity(pairs.count)
                for pair in pairs {
                    guard case .array(let entry) = pair, entry.count == 2, case .string(let key) = entry[0] else {
                        throw InteropFailure("a $map entry is not [str, value]: \(pair)")
                    }
                    map.append((key, try entry[1].message()))
                }
                var message: ChannelMessage = [:]
                for (key, value) in map {
                    guard message[key] == nil else { throw InteropFailure("duplicate key \(key) in $map") }
                    message[key] = value
                }
                return message
            default:
                throw InteropFailure("not a tagged value: \(self)")
            }
        }
    }

    /// One line of JSON: strings escaped as JSON requires, non-ASCII as raw UTF-8.
    func serialized() -> String {
        var bytes: [UInt8] = []
        append(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    private func append(to bytes: inout [UInt8]) {
        switch self {
        case .null: bytes += Array("null".utf8)
        case .bool(let value): bytes += Array((value ? "true" : "false").utf8)
        case .string(let value): Self.appendString(value, to: &bytes)
        case .array(let elements):
            bytes.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                element.append(to: &bytes)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let object):
            bytes.append(UInt8(ascii: "{"))
            for (index, (key, value)) in object.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                Self.appendString(key, to: &bytes)
                bytes.append(UInt8(ascii: ":"))
                value.append(to: &bytes)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    private static func appendString(_ string: String, to bytes: inout [UInt8]) {
        let hexDigits = Array("0123456789abcdef".utf8)
        bytes.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0..<0x20: bytes += Array("\\u00".utf8) + [hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xF)]]
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    var description: String {
        let text = serialized()
        return text.count > 300 ? String(text.prefix(300)) + "…" : text
    }
}
