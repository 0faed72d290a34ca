import OrderedCollections
import Testing

@testable import ChannelsRedis

private func dumps(_ message: ChannelMessage) throws -> String {
    var buffer: [UInt8] = []
    try JSONFormat.encode(message, into: &buffer)
    return String(decoding: buffer, as: UTF8.self)
}

private func loads(_ text: String) throws -> ChannelMessage {
    try Array(text.utf8).withUnsafeBytes { try JSONFormat.decode($0) }
}

private func loads(bytes: [UInt8]) throws -> ChannelMessage {
    try bytes.withUnsafeBytes { try JSONFormat.decode($0) }
}

private func expectRejected(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let error = #expect(throws: ChannelLayerError.self, "\(text)", sourceLocation: sourceLocation) { try loads(text) }
    #expect(error?.code == .decodingFailed, sourceLocation: sourceLocation)
}

/// Expected strings are `json.dumps(...)` output from CPython 3.11 (channels_redis's JSONSerializer calls it with no
/// arguments and encodes the result as UTF-8).
@Suite("JSON format")
struct JSONFormatTests {
    @Test func chatMessageMatchesPython() throws {
        let message: ChannelMessage = [
            "type": "chat.message", "text": "héllo wörld", "emoji": "😀👍🏽", "n": 3, "f": 2.5, "ok": true, "none": nil,
            "xs": [1, 2.0, "3"], "nested": ["a": ["b": []]],
        ]
        let expected =
            #"{"type": "chat.message", "text": "h\u00e9llo w\u00f6rld", "emoji": "\ud83d\ude00\ud83d\udc4d\ud83c\udffd", "#
            + #""n": 3, "f": 2.5, "ok": true, "none": null, "xs": [1, 2.0, "3"], "nested": {"a": {"b": []}}}"#
        #expect(try dumps(message) == expected)
        #expect(try loads(expected) == message)
    }

    @Test func nonASCIIBecomesLowercaseEscapesWithSurrogatePairs() throws {
        let text = "\u{e9}\u{4e2d}\u{1F600}\u{10FFFF}\u{FFFF}\u{0}\u{1F}\u{7F}\u{80}"
        let expected = #""\u00e9\u4e2d\ud83d\ude00\udbff\udfff\uffff\u0000\u001f\u007f\u0080""#
        #expect(try dumps(.string(text)) == expected)
        #expect(try loads(expected) == .string(text))
    }

    @Test func shortEscapesAndPunctuation() throws {
        #expect(try dumps("\"\\/\u{8}\u{C}\n\r\t") == #""\"\\/\b\f\n\r\t""#)
        #expect(try dumps(["": "", " ": [[]], "\"": "\\"]) == #"{"": "", " ": [[]], "\"": "\\"}"#)
        #expect(try loads(#""\"\\\/\b\f\n\r\t\u00E9""#) == "\"\\/\u{8}\u{C}\n\r\t\u{e9}")
    }

    @Test func floatsUsePythonRepr() throws {
        let values: [Double] = [
            1.0, 1e16, 1e15, 1e-05, 0.0001, -0.0, 0.1, 1e22, 1.7976931348623157e308, .leastNonzeroMagnitude, 2.2250738585072014e-308,
            123_456_789.125, 1.0 / 3.0, 9_007_199_254_740_992, .infinity, -.infinity, .nan,
        ]
        let expected =
            "[1.0, 1e+16, 1000000000000000.0, 1e-05, 0.0001, -0.0, 0.1, 1e+22, 1.7976931348623157e+308, 5e-324, "
            + "2.2250738585072014e-308, 123456789.125, 0.3333333333333333, 9007199254740992.0, Infinity, -Infinity, NaN]"
        #expect(try dumps(.array(values.map(ChannelMessage.double))) == expected)
    }

    @Test(arguments: [
        (0.5, "0.5"), (100.0, "100.0"), (1.5e300, "1.5e+300"), (-2.5e-7, "-2.5e-07"), (123_456_789_012_345_680.0, "1.2345678901234568e+17"),
        (0.000_123_4, "0.0001234"), (1.234e-5, "1.234e-05"), (9_999_999_999_999_998.0, "9999999999999998.0"), (1e100, "1e+100"),
    ])
    func pythonFloatRepr(value: Double, repr: String) {
        #expect(JSONFormat.pythonFloatRepr(value) == repr)
    }

    @Test func integersAreDecimal() throws {
        let message: ChannelMessage = [.int(.max), .int(.min), .uint(.max), 0, -1]
        #expect(try dumps(message) == "[9223372036854775807, -9223372036854775808, 18446744073709551615, 0, -1]")
        let decoded = try loads("[9223372036854775807, -9223372036854775808, 18446744073709551615, 0, -0]")
        #expect(decoded == [.int(.max), .int(.min), .uint(.max), 0, 0])
        guard case .uint = decoded[2] else {
            Issue.record("UInt64.max should decode as .uint")
            return
        }
    }

    @Test func integersBeyondUInt64BecomeDoubles() throws {
        #expect(try loads("100000000000000000000000") == .double(1e23))
    }

    @Test func binaryCannotBeJSON() {
        let error = #expect(throws: ChannelLayerError.self) { try dumps(["data": .binary([1, 2, 3])]) }
        #expect(error?.code == .encodingFailed)
        #expect(error?.message.contains("binary") == true)
    }

    @Test func emptyContainersAndLiterals() throws {
        #expect(try dumps([]) == "[]")
        #expect(try dumps([:]) == "{}")
        #expect(try dumps([nil, true, false]) == "[null, true, false]")
        #expect(try loads(" \t\n\r{ } ") == [:])
        #expect(try loads("[ ]") == [])
        #expect(try loads("[null,true , false]") == [nil, true, false])
    }

    @Test func decodesPythonsNonFiniteLiterals() throws {
        let decoded = try loads("[NaN, Infinity, -Infinity, 1e400, -1e400]")
        #expect(decoded[0]?.doubleValue?.isNaN == true)
        #expect(decoded[1] == .double(.infinity))
        #expect(decoded[2] == .double(-.infinity))
        #expect(decoded[3] == .double(.infinity))
        #expect(decoded[4] == .double(-.infinity))
    }

    @Test func decodesNumbersLikePython() throws {
        guard case .double(let hundred) = try loads("1E2"), case .double(let negativeZero) = try loads("-0.0") else {
            Issue.record("exponent and fraction should give doubles")
            return
        }
        #expect(hundred == 100)
        #expect(negativeZero.sign == .minus)
        #expect(try loads("-12") == -12)
        #expect(try loads("0.5e-3") == 0.0005)
    }

    @Test func decodesSurrogatePairsAndKeepsKeyOrder() throws {
        #expect(try loads(#""\ud83d\ude00""#) == "😀")
        let decoded = try loads(#"{"z": 1, "a": 2, "z": 3}"#)
        #expect(decoded.mapValue.map { Array($0.keys) } == ["z", "a"])
        #expect(decoded["z"] == 3)
    }

    @Test func skipsUTF8ByteOrderMark() throws {
        #expect(try loads(bytes: [0xEF, 0xBB, 0xBF] + Array("[1]".utf8)) == [1])
    }

    @Test func rawUTF8IsAccepted() throws {
        #expect(try loads(#"{"text": "héllo 😀"}"#) == ["text": "héllo 😀"])
    }

    @Test func rejectsWhatPythonRejects() {
        for text in [
            "", " ", "[1,]", "01", "1.", ".5", "+1", "[1 2]", #"{"a" 1}"#, #"{"a": 1,}"#, #""\x""#, "\"a\tb\"", "-", "nul", "-NaN",
            "1e", "1e+", "[", "{", #"{"a""#, "\"abc", "tru", "[1] 2", "{1: 2}", #""\u12""#, #""\uZZZZ""#, "'a'",
        ] {
            expectRejected(text)
        }
    }

    @Test func rejectsLoneSurrogatesAndBadUTF8() throws {
        expectRejected(#""\ud800""#)
        expectRejected(#""\ud800x""#)
        expectRejected(#""\udc00""#)
        expectRejected(#""\ud800\u0041""#)
        let error = #expect(throws: ChannelLayerError.self) { try loads(bytes: [0x22, 0xFF, 0x22]) }
        #expect(error?.code == .decodingFailed)
        #expect(throws: ChannelLayerError.self) { try loads(bytes: [0x22, 0x5C, 0x6E, 0xC3, 0x22]) }
    }

    @Test func rejectsExcessiveNesting() throws {
        let depth = JSONFormat.maximumDepth
        #expect(try loads(String(repeating: "[", count: depth) + String(repeating: "]", count: depth)).arrayValue?.count == 1)
        expectRejected(String(repeating: "[", count: depth + 1) + String(repeating: "]", count: depth + 1))
        expectRejected(String(repeating: "[", count: 200_000))
        expectRejected(String(repeating: #"{"a":"#, count: 100_000))
    }

    @Test func everyTruncationIsRejected() throws {
        let text = #"{"type": "x", "list": [1, 2.5, -3e2, "s\u00e9", null, true, false, {"k": []}], "n": NaN}"#
        _ = try loads(text)
        let bytes = Array(text.utf8)
        for length in 0..<bytes.count {
            let prefix = Array(bytes.prefix(length))
            // A prefix that is itself a complete document ("{...}" cannot be) would be fine; none of these are.
            #expect(throws: ChannelLayerError.self) { try loads(bytes: prefix) }
        }
    }

    @Test func serializerRoundTrip() throws {
        let message: ChannelMessage = ["type": "websocket.send", "text": "{\"json\": \"inside\"}", "n": 1.25]
        let bytes = try JSONSerializer().serialize(message)
        #expect(String(decoding: bytes, as: UTF8.self) == #"{"type": "websocket.send", "text": "{\"json\": \"inside\"}", "n": 1.25}"#)
        #expect(try bytes.withUnsafeBytes { try JSONSerializer().deserialize($0) } == message)
    }
}
