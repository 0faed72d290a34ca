import OrderedCollections
import Testing

@testable import ChannelsRedis

/// Bytes from a hex string such as `"83 a1 61"` (spaces optional).
private func hexBytes(_ text: String) -> [UInt8] {
    let digits = text.filter { !$0.isWhitespace }.utf8.map { byte -> UInt8 in
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: byte - UInt8(ascii: "A") + 10
        }
    }
    return stride(from: 0, to: digits.count, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }
}

private func pack(_ message: ChannelMessage) -> [UInt8] {
    var buffer: [UInt8] = []
    MessagePack.encode(message, into: &buffer)
    return buffer
}

private func unpack(_ bytes: [UInt8]) throws -> ChannelMessage {
    try bytes.withUnsafeBytes { try MessagePack.decode($0) }
}

/// Decoding `bytes` must throw a `ChannelLayerError` with code `.decodingFailed` (and never crash).
private func expectRejected(
    _ bytes: [UInt8],
    mentioning fragment: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let error = #expect(throws: ChannelLayerError.self, sourceLocation: sourceLocation) { try unpack(bytes) }
    #expect(error?.code == .decodingFailed, sourceLocation: sourceLocation)
    if let fragment, let error {
        #expect(error.message.contains(fragment), "\(error.message)", sourceLocation: sourceLocation)
    }
}

/// Whether two messages are the same case with the same payload (stricter than `==`, which is numeric).
private func sameCase(_ a: ChannelMessage, _ b: ChannelMessage) -> Bool {
    switch (a, b) {
    case (.int(let x), .int(let y)): x == y
    case (.uint(let x), .uint(let y)): x == y
    case (.double(let x), .double(let y)): x.bitPattern == y.bitPattern
    case (.int, _), (.uint, _), (.double, _), (_, .int), (_, .uint), (_, .double): false
    default: a == b
    }
}

/// The example in `ChannelMessageSerializer`'s documentation.
private struct VersionedMessagePack: ChannelMessageSerializer {
    func serialize(_ message: ChannelMessage) throws(ChannelLayerError) -> [UInt8] {
        try [1] + MessagePackSerializer().serialize(message)
    }

    func deserialize(_ bytes: UnsafeRawBufferPointer) throws(ChannelLayerError) -> ChannelMessage {
        guard bytes.first == 1 else { throw ChannelLayerError(.decodingFailed, "unknown format version") }
        return try MessagePackSerializer().deserialize(UnsafeRawBufferPointer(rebasing: bytes.dropFirst()))
    }
}

@Suite("MessagePack")
struct MessagePackTests {
    // MARK: Golden vectors

    @Test func goldenVectorEncodesLikePython() {
        let message: ChannelMessage = ["a": true, "b": nil, "c": ["d": []]]
        #expect(pack(message) == hexBytes("83 a1 61 c3 a1 62 c0 a1 63 81 a1 64 90"))
    }

    @Test func goldenVectorDecodes() throws {
        let message = try unpack(hexBytes("83 a1 61 c3 a1 62 c0 a1 63 81 a1 64 90"))
        #expect(message == ["a": true, "b": nil, "c": ["d": []]])
        #expect(message.mapValue.map { Array($0.keys) } == ["a", "b", "c"])
    }

    @Test func nilAndBooleans() throws {
        #expect(pack(.nil) == [0xC0])
        #expect(pack(false) == [0xC2])
        #expect(pack(true) == [0xC3])
        #expect(try unpack([0xC0]) == .nil)
        #expect(try unpack([0xC2]) == false)
        #expect(try unpack([0xC3]) == true)
    }

    // MARK: Integers

    /// Every width and boundary, with the bytes `msgpack.packb` produces (checked in Python 3.11, msgpack 1.2.4).
    static let integerVectors: [(ChannelMessage, String)] = [
        (0, "00"), (1, "01"), (127, "7f"), (128, "cc 80"), (200, "cc c8"), (255, "cc ff"), (256, "cd 01 00"),
        (65_535, "cd ff ff"), (65_536, "ce 00 01 00 00"), (4_294_967_295, "ce ff ff ff ff"),
        (4_294_967_296, "cf 00 00 00 01 00 00 00 00"), (.int(.max), "cf 7f ff ff ff ff ff ff ff"),
        (.uint(9_223_372_036_854_775_808), "cf 80 00 00 00 00 00 00 00"), (.uint(.max), "cf ff ff ff ff ff ff ff ff"),
        (-1, "ff"), (-32, "e0"), (-33, "d0 df"), (-100, "d0 9c"), (-128, "d0 80"), (-129, "d1 ff 7f"), (-200, "d1 ff 38"),
        (-32_768, "d1 80 00"), (-32_769, "d2 ff ff 7f ff"), (-2_147_483_648, "d2 80 00 00 00"),
        (-2_147_483_649, "d3 ff ff ff ff 7f ff ff ff"), (.int(.min), "d3 80 00 00 00 00 00 00 00"),
    ]

    @Test(arguments: integerVectors)
    func integerTakesPythonsSmallestForm(message: ChannelMessage, hex: String) throws {
        #expect(pack(message) == hexBytes(hex))
        let decoded = try unpack(hexBytes(hex))
        #expect(sameCase(decoded, message), "\(decoded) vs \(message)")
    }

    @Test func unnormalisedUIntEncodesLikeInt() {
        #expect(pack(.uint(5)) == [0x05])
        #expect(pack(.uint(300)) == hexBytes("cd 01 2c"))
    }

    @Test func widerThanNeededIntegersDecodeNormalised() throws {
        #expect(sameCase(try unpack(hexBytes("cc 05")), .int(5)))
        #expect(sameCase(try unpack(hexBytes("cf 00 00 00 00 00 00 00 05")), .int(5)))
        #expect(sameCase(try unpack(hexBytes("cf 7f ff ff ff ff ff ff ff")), .int(.max)))
        #expect(sameCase(try unpack(hexBytes("d3 00 00 00 00 00 00 00 05")), .int(5)))
        #expect(sameCase(try unpack(hexBytes("d0 05")), .int(5)))
        #expect(sameCase(try unpack(hexBytes("d1 ff ff")), .int(-1)))
        #expect(sameCase(try unpack(hexBytes("d2 ff ff ff ff")), .int(-1)))
    }

    // MARK: Floats

    @Test func floatsAreAlwaysFloat64() throws {
        #expect(pack(1.5) == hexBytes("cb 3f f8 00 00 00 00 00 00"))
        #expect(pack(.double(-0.0)) == hexBytes("cb 80 00 00 00 00 00 00 00"))
        #expect(pack(.double(.infinity)) == hexBytes("cb 7f f0 00 00 00 00 00 00"))
        #expect(pack(.double(.nan)) == hexBytes("cb 7f f8 00 00 00 00 00 00"))
        #expect(pack(.double(1)) == hexBytes("cb 3f f0 00 00 00 00 00 00"))
        let negativeZero = try unpack(hexBytes("cb 80 00 00 00 00 00 00 00"))
        #expect(negativeZero.doubleValue?.sign == .minus)
        #expect(try unpack(hexBytes("cb 7f f8 00 00 00 00 00 00")).doubleValue?.isNaN == true)
    }

    @Test func float32DecodesAsDouble() throws {
        #expect(sameCase(try unpack(hexBytes("ca 3f c0 00 00")), .double(1.5)))
        #expect(sameCase(try unpack(hexBytes("ca ff 80 00 00")), .double(-.infinity)))
        #expect(try unpack(hexBytes("ca 3d cc cc cd")) == .double(Double(Float(0.1))))
    }

    // MARK: Strings and binary

    @Test(arguments: [
        (0, "a0"), (1, "a1"), (31, "bf"), (32, "d9 20"), (255, "d9 ff"), (256, "da 01 00"), (65_535, "da ff ff"),
        (65_536, "db 00 01 00 00"), (70_000, "db 00 01 11 70"),
    ])
    func stringHeaderFollowsUTF8Length(length: Int, header: String) throws {
        let text = String(repeating: "x", count: length)
        let bytes = pack(.string(text))
        #expect(Array(bytes.prefix(hexBytes(header).count)) == hexBytes(header))
        #expect(bytes.count == hexBytes(header).count + length)
        #expect(try unpack(bytes) == .string(text))
    }

    @Test func stringLengthCountsUTF8BytesNotCharacters() throws {
        #expect(pack("é") == hexBytes("a2 c3 a9"))
        #expect(pack("😀") == hexBytes("a4 f0 9f 98 80"))
        let sixteenE = String(repeating: "é", count: 16)  // 16 characters, 32 bytes: str8
        #expect(Array(pack(.string(sixteenE)).prefix(2)) == hexBytes("d9 20"))
        let mixed = "héllo wörld 中文 😀👍🏽 \u{0} \u{10FFFF}"
        #expect(try unpack(pack(.string(mixed))) == .string(mixed))
    }

    @Test(arguments: [
        (0, "c4 00"), (1, "c4 01"), (255, "c4 ff"), (256, "c5 01 00"), (65_535, "c5 ff ff"), (65_536, "c6 00 01 00 00"),
    ])
    func binaryUsesBinFamily(length: Int, header: String) throws {
        let data = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let bytes = pack(.binary(data))
        #expect(Array(bytes.prefix(hexBytes(header).count)) == hexBytes(header))
        #expect(bytes.count == hexBytes(header).count + length)
        #expect(try unpack(bytes) == .binary(data))
    }

    // MARK: Arrays and maps

    @Test(arguments: [
        (0, "90"), (1, "91"), (15, "9f"), (16, "dc 00 10"), (65_535, "dc ff ff"), (65_536, "dd 00 01 00 00"),
    ])
    func arrayHeaderBySize(count: Int, header: String) throws {
        let message = ChannelMessage.array((0..<count).map { ChannelMessage($0 % 100) })
        let bytes = pack(message)
        #expect(Array(bytes.prefix(hexBytes(header).count)) == hexBytes(header))
        #expect(try unpack(bytes) == message)
    }

    @Test(arguments: [
        (0, "80"), (1, "81"), (15, "8f"), (16, "de 00 10"), (65_535, "de ff ff"), (65_536, "df 00 01 00 00"),
    ])
    func mapHeaderBySize(count: Int, header: String) throws {
        var map = OrderedDictionary<String, ChannelMessage>()
        for index in 0..<count { map["key\(index)"] = ChannelMessage(index) }
        let bytes = pack(.map(map))
        #expect(Array(bytes.prefix(hexBytes(header).count)) == hexBytes(header))
        let decoded = try unpack(bytes)
        #expect(decoded == .map(map))
        #expect(decoded.mapValue?.keys.elementsEqual(map.keys) == true)
    }

    @Test func mapsKeepInsertionOrder() throws {
        let message: ChannelMessage = ["z": 1, "a": 2, "m": 3]
        #expect(pack(message) == hexBytes("83 a1 7a 01 a1 61 02 a1 6d 03"))
        #expect(try unpack(pack(message)).mapValue.map { Array($0.keys) } == ["z", "a", "m"])
    }

    @Test func representativeMessageBytes() {
        let message: ChannelMessage = ["type": "chat.message", "message": "hi", "n": -5, "x": 0.5, "raw": .binary([1, 2])]
        let expected = hexBytes(
            "85 a4 74 79 70 65 ac 63 68 61 74 2e 6d 65 73 73 61 67 65 a7 6d 65 73 73 61 67 65 a2 68 69"
                + " a1 6e fb a1 78 cb 3f e0 00 00 00 00 00 00 a3 72 61 77 c4 02 01 02"
        )
        #expect(pack(message) == expected)
    }

    @Test func nestedValuesRoundTrip() throws {
        let message: ChannelMessage = [
            "type": "x",
            "list": [1, -1, 2.5, "s", nil, true, [[], [:]], ["k": .binary([0, 255])]],
            "deep": ["a": ["b": ["c": ["d": [1, 2, 3]]]]],
            "big": .uint(.max),
            "small": .int(.min),
        ]
        #expect(try unpack(pack(message)) == message)
    }

    @Test func duplicateKeysKeepFirstPositionAndLastValue() throws {
        // {"a": 1, "b": 2, "a": 3} as msgpack; Python's unpackb gives {'a': 3, 'b': 2}.
        let decoded = try unpack(hexBytes("83 a1 61 01 a1 62 02 a1 61 03"))
        #expect(decoded.mapValue.map { Array($0.keys) } == ["a", "b"])
        #expect(decoded["a"] == 3)
    }

    @Test func mapsOnBothSidesOfTheUncheckedLimitKeepOrderAndPythonsDuplicateRule() throws {
        // Small maps are checked for repeated keys key by key, larger ones by the dictionary.
        for count in [MessagePack.uncheckedMapLimit - 1, MessagePack.uncheckedMapLimit, MessagePack.uncheckedMapLimit + 1, 40] {
            let keys = (0..<count).map { "k\($0)" }
            var bytes: [UInt8] = count < 16 ? [0x80 | UInt8(count)] : [0xDE, 0, UInt8(count)]
            for (index, key) in keys.enumerated() {
                bytes += [0xA0 | UInt8(key.utf8.count)] + Array(key.utf8) + [UInt8(index)]
            }
            let decoded = try unpack(bytes)
            #expect(decoded.mapValue.map { Array($0.keys) } == keys)
            #expect(decoded[keys[count - 1]]?.intValue == count - 1)

            // The same with the first key repeated at the end: first place, last value.
            var repeated: [UInt8] = count + 1 < 16 ? [0x80 | UInt8(count + 1)] : [0xDE, 0, UInt8(count + 1)]
            repeated += bytes.dropFirst(count < 16 ? 1 : 3)
            repeated += [0xA2] + Array("k0".utf8) + [0x7F]
            let last = try unpack(repeated)
            #expect(last.mapValue.map { Array($0.keys) } == keys)
            #expect(last["k0"] == 0x7F)
        }
    }

    @Test func binKeysAreAcceptedWhenValidUTF8() throws {
        #expect(try unpack(hexBytes("81 c4 01 61 01")) == ["a": 1])
        expectRejected(hexBytes("81 c4 01 ff 01"), mentioning: "not valid UTF-8")
    }

    @Test func deepNestingWithinLimitDecodes() throws {
        let depth = MessagePack.maximumDepth
        let bytes = [UInt8](repeating: 0x91, count: depth) + [0xC0]
        var message = try unpack(bytes)
        for _ in 0..<depth {
            message = try #require(message[0])
        }
        #expect(message == .nil)
    }

    // MARK: Rejection

    @Test func everyTruncationIsRejected() {
        let message: ChannelMessage = [
            "type": "chat.message", "text": "héllo", "n": 70_000, "neg": -40_000, "f": 1.25, "raw": .binary([1, 2, 3]),
            "list": [1, "two", [3], ["four": 4]], "big": .uint(.max), "long": .string(String(repeating: "y", count: 40)),
        ]
        let bytes = pack(message)
        for length in 0..<bytes.count {
            expectRejected(Array(bytes.prefix(length)))
        }
        #expect((try? unpack(bytes)) == message)
    }

    @Test func emptyInputIsRejected() {
        expectRejected([], mentioning: "truncated")
    }

    @Test func invalidUTF8IsRejected() {
        expectRejected(hexBytes("a1 ff"), mentioning: "invalid UTF-8")
        expectRejected(hexBytes("a2 c0 80"), mentioning: "invalid UTF-8")  // overlong
        expectRejected(hexBytes("a3 ed a0 80"), mentioning: "invalid UTF-8")  // a surrogate
        expectRejected(hexBytes("a2 c3 28"), mentioning: "invalid UTF-8")
        expectRejected(hexBytes("81 a1 ff 01"), mentioning: "invalid UTF-8")  // in a key
    }

    @Test func extTypesAreRejected() {
        expectRejected(hexBytes("d4 01 00"), mentioning: "ext type 1")
        expectRejected(hexBytes("d5 02 00 00"), mentioning: "ext type 2")
        expectRejected(hexBytes("d6 ff 00 00 00 00"), mentioning: "ext type -1")  // timestamp 32
        expectRejected(hexBytes("d7 ff 00 00 00 00 00 00 00 00"), mentioning: "ext type -1")
        expectRejected(hexBytes("d8 05" + String(repeating: "00", count: 16)), mentioning: "ext type 5")
        expectRejected(hexBytes("c7 01 07 00"), mentioning: "ext type 7")
        expectRejected(hexBytes("c8 00 01 07 00"), mentioning: "ext type 7")
        expectRejected(hexBytes("c9 00 00 00 01 07 00"), mentioning: "ext type 7")
        expectRejected(hexBytes("91 d4 01 00"), mentioning: "ext type")
    }

    @Test func neverUsedByteIsRejected() {
        expectRejected([0xC1], mentioning: "0xc1")
    }

    @Test func trailingBytesAreRejected() {
        expectRejected(hexBytes("c0 c0"), mentioning: "trailing")
        expectRejected(hexBytes("83 a1 61 c3 a1 62 c0 a1 63 81 a1 64 90 00"), mentioning: "1 trailing byte")
    }

    @Test func hugeDeclaredLengthsAreRejectedBeforeAllocating() {
        expectRejected(hexBytes("db ff ff ff ff 61"), mentioning: "truncated")
        expectRejected(hexBytes("c6 ff ff ff ff 00"), mentioning: "truncated")
        expectRejected(hexBytes("dd ff ff ff ff 00 00"), mentioning: "declares 4294967295 element(s)")
        expectRejected(hexBytes("df ff ff ff ff a1 61 00"), mentioning: "declares 4294967295 entries")
        expectRejected(hexBytes("dc ff ff c0"), mentioning: "declares 65535")
        expectRejected(hexBytes("de 00 02 a1 61 01"), mentioning: "declares 2 entries")
    }

    @Test func excessiveNestingIsRejected() {
        expectRejected([UInt8](repeating: 0x91, count: MessagePack.maximumDepth + 1) + [0xC0], mentioning: "nesting")
        expectRejected([UInt8](repeating: 0x91, count: 1_000_000) + [0xC0], mentioning: "nesting")
        expectRejected([UInt8](repeating: 0x81, count: 2) + [UInt8](repeating: 0x00, count: 2), mentioning: "key")
        var mapChain: [UInt8] = []
        for _ in 0..<100_000 { mapChain += [0x81, 0xA0] }
        expectRejected(mapChain + [0xC0], mentioning: "nesting")
    }

    @Test func nonStringKeysAreRejected() {
        expectRejected(hexBytes("81 01 01"), mentioning: "is an int")
        expectRejected(hexBytes("81 c0 01"), mentioning: "is nil")
        expectRejected(hexBytes("81 90 01"), mentioning: "is an array")
        expectRejected(hexBytes("81 80 01"), mentioning: "is a map")
        expectRejected(hexBytes("81 cb 00 00 00 00 00 00 00 00 01"), mentioning: "is a float")
        expectRejected(hexBytes("81 c3 01"), mentioning: "is a bool")
    }

    @Test func randomGarbageNeverCrashes() {
        var random = SplitMix64(state: 42)
        for _ in 0..<20_000 {
            let length = Int(random.next() % 24)
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            // Either outcome is fine; only a crash is not.
            _ = try? unpack(bytes)
        }
    }

    @Test func utf8ValidationAgreesWithTheStandardLibrary() {
        func check(_ bytes: [UInt8]) -> Bool {
            let ours = bytes.withUnsafeBytes { String(validatingUTF8Bytes: $0) }
            let reference = String(validating: bytes, as: UTF8.self)
            return ours == reference
        }
        var disagreements: [[UInt8]] = []
        for first in 0...255 {
            if !check([UInt8(first)]) { disagreements.append([UInt8(first)]) }
            for second in 0...255 where !check([UInt8(first), UInt8(second)]) {
                disagreements.append([UInt8(first), UInt8(second)])
            }
        }
        // Every lead byte with every second byte, followed by continuation and non-continuation bytes.
        for lead in 0xC0...0xFF {
            for second in 0...255 {
                for tail in [[0x80, 0x80], [0xBF, 0xBF], [0x80], [0x41, 0x80], [0x80, 0x41]] as [[UInt8]] {
                    let bytes = [UInt8(lead), UInt8(second)] + tail
                    if !check(bytes) { disagreements.append(bytes) }
                }
            }
        }
        var random = SplitMix64(state: 7)
        let alphabet: [UInt8] = [
            0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF,
        ]
        for _ in 0..<50_000 {
            let length = Int(random.next() % 24)
            let bytes = (0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }
            if !check(bytes) { disagreements.append(bytes) }
        }
        let long = Array("abcdefghijklmnopqrstuvwxyz héllo wörld 😀 0123456789".utf8)
        for cut in 0...long.count where !check(Array(long.prefix(cut))) {
            disagreements.append(Array(long.prefix(cut)))
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(10))")
    }

    @Test func serializerWrapsTheCodec() throws {
        let serializer = MessageSerializer.msgpack
        #expect(serializer.name == "msgpack")
        let bytes = try serializer.base.serialize(["a": true, "b": nil, "c": ["d": []]])
        #expect(bytes == hexBytes("83 a1 61 c3 a1 62 c0 a1 63 81 a1 64 90"))
        #expect(try bytes.withUnsafeBytes { try serializer.base.deserialize($0) } == ["a": true, "b": nil, "c": ["d": []]])
        #expect(MessageSerializer.json.name == "json")
        #expect(MessageSerializer.custom(JSONSerializer()).name == "custom")
    }

    @Test func customSerializerPlugsIn() throws {
        let serializer = MessageSerializer.custom(VersionedMessagePack())
        let bytes = try serializer.base.serialize(["a": 1])
        #expect(bytes == [1, 0x81, 0xA1, 0x61, 0x01])
        #expect(try bytes.withUnsafeBytes { try serializer.base.deserialize($0) } == ["a": 1])
        let error = #expect(throws: ChannelLayerError.self) { try [2, 0xC0].withUnsafeBytes { try serializer.base.deserialize($0) } }
        #expect(error?.code == .decodingFailed)
    }
}
