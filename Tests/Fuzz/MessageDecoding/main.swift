// libFuzzer target for the message decoders: every input is decoded as msgpack
// (MessagePackSerializer, Sources/ChannelsRedis/Serialization/MessagePack.swift) and as JSON
// (JSONSerializer, JSONFormat.swift), the bytes any peer on the prefix can publish.
//
// Besides crashes and AddressSanitizer reports it stops on:
// - a decoder throwing anything but `.decodingFailed`;
// - a decoded message its own format cannot encode, or whose encoding does not decode again to a
//   message with the same encoding (compared as bytes: `.nan` is not equal to itself);
// - the same for the other format, whenever it can carry the message (JSON has no binary).
// Built with -parse-as-library: libFuzzer brings main. Run by .ci/fuzz.

import ChannelsRedis

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMessageDecoding(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    for (name, serializer) in formats {
        let message: ChannelMessage
        do {
            message = try serializer.deserialize(bytes)
        } catch {
            precondition(error.code == .decodingFailed, "\(name): decoding threw \(error.code), not decodingFailed: \(error)")
            continue
        }
        _ = message.description
        let encoded = stableEncoding(of: message, in: name, serializer)
        precondition(encoded != nil, "\(name): decoded \(message) but cannot encode it")
        for (otherName, other) in formats where otherName != name {
            _ = stableEncoding(of: message, in: otherName, other)
        }
    }
    return 0
}

private let formats: [(String, any ChannelMessageSerializer)] = [("msgpack", MessagePackSerializer()), ("json", JSONSerializer())]

/// `message` encoded, checked to decode to a message that encodes to the same bytes; nil when the
/// format cannot carry it (`.encodingFailed`).
private func stableEncoding(of message: ChannelMessage, in name: String, _ serializer: any ChannelMessageSerializer) -> [UInt8]? {
    let encoded: [UInt8]
    do {
        encoded = try serializer.serialize(message)
    } catch {
        precondition(error.code == .encodingFailed, "\(name): encoding threw \(error.code), not encodingFailed: \(error)")
        return nil
    }
    let decoded: ChannelMessage
    do {
        decoded = try encoded.withUnsafeBytes { raw throws(ChannelLayerError) in try serializer.deserialize(raw) }
    } catch {
        preconditionFailure("\(name): cannot decode its own encoding of \(message) (\(encoded)): \(error)")
    }
    let again: [UInt8]
    do {
        again = try serializer.serialize(decoded)
    } catch {
        preconditionFailure("\(name): cannot encode \(decoded), decoded from its own encoding of \(message): \(error)")
    }
    precondition(again == encoded, "\(name): \(message) encodes as \(encoded), which decodes to \(decoded), which encodes as \(again)")
    return encoded
}
