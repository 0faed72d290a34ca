import OrderedCollections
import Testing

@testable import ChannelsRedis

@Suite("ChannelMessage")
struct ChannelMessageTests {
    @Test func literalsBuildTheExpectedCases() {
        let message: ChannelMessage = ["type": "x", "n": 1, "ok": true, "xs": [1, 2], "none": nil, "f": 2.5]
        guard case .map(let map) = message else {
            Issue.record("a dictionary literal must be a map")
            return
        }
        #expect(Array(map.keys) == ["type", "n", "ok", "xs", "none", "f"])
        #expect(map["type"] == .string("x"))
        #expect(map["n"] == .int(1))
        #expect(map["ok"] == .bool(true))
        #expect(map["xs"] == .array([.int(1), .int(2)]))
        #expect(map["none"] == .nil)
        #expect(map["f"] == .double(2.5))
    }

    @Test func documentationExample() {
        var message: ChannelMessage = ["type": "chat.message", "text": "hello", "n": 1, "tags": ["a", "b"], "reply": nil]
        message["seen"] = true
        #expect(message.type == "chat.message")
        #expect(message["text"]?.stringValue == "hello")
        #expect(message.description == "{'type': 'chat.message', 'text': 'hello', 'n': 1, 'tags': ['a', 'b'], 'reply': None, 'seen': True}")
    }

    @Test func repeatedLiteralKeyKeepsFirstPositionAndLastValue() {
        let message: ChannelMessage = ["a": 1, "b": 2, "a": 3]
        #expect(message.mapValue.map { Array($0.keys) } == ["a", "b"])
        #expect(message["a"] == 3)
    }

    @Test func convenienceInitializersNormalise() {
        #expect(ChannelMessage(42) == .int(42))
        guard case .int(5) = ChannelMessage(UInt64(5)) else {
            Issue.record("UInt64 that fits Int64 must be .int")
            return
        }
        guard case .int(.max) = ChannelMessage(UInt64(Int64.max)) else {
            Issue.record("Int64.max must be .int")
            return
        }
        guard case .uint(.max) = ChannelMessage(UInt64.max) else {
            Issue.record("UInt64.max must be .uint")
            return
        }
        let bytes: [UInt8] = [1, 2, 3]
        #expect(ChannelMessage(bytes) == .binary([1, 2, 3]))
        // An array literal passed to the initializer is bytes; a message literal needs a ChannelMessage context.
        #expect(ChannelMessage([1, 2, 3]) == .binary([1, 2, 3]))
        let literal: ChannelMessage = [1, 2, 3]
        #expect(literal == .array([1, 2, 3]))
    }

    @Test func keySubscriptGetsAndSets() {
        var message: ChannelMessage = ["type": "greet"]
        #expect(message["type"] == "greet")
        #expect(message["missing"] == nil)
        message["name"] = "Ada"
        message["type"] = "hello"
        message["reply"] = .nil
        #expect(message.mapValue.map { Array($0.keys) } == ["type", "name", "reply"])
        #expect(message["type"] == "hello")
        #expect(message["reply"]?.isNil == true)
        message["name"] = nil as ChannelMessage?
        #expect(message["name"] == nil)
        #expect(message.mapValue?.count == 2)
        #expect(ChannelMessage.string("x")["type"] == nil)
    }

    @Test func nestedKeySubscriptSets() {
        var message: ChannelMessage = ["outer": ["inner": 1]]
        message["outer"]?["inner"] = 2
        #expect(message == ["outer": ["inner": 2]])
    }

    @Test func indexSubscript() {
        let message: ChannelMessage = [10, "x"]
        #expect(message[0] == 10)
        #expect(message[1] == "x")
        #expect(message[2] == nil)
        #expect(message[-1] == nil)
        #expect(ChannelMessage.string("abc")[0] == nil)
    }

    @Test func typedAccessors() {
        #expect(ChannelMessage.string("s").stringValue == "s")
        #expect(ChannelMessage.int(3).stringValue == nil)
        #expect(ChannelMessage.int(3).intValue == 3)
        #expect(ChannelMessage.uint(.max).intValue == nil)
        #expect(ChannelMessage.uint(7).intValue == 7)
        #expect(ChannelMessage.double(3).intValue == nil)
        #expect(ChannelMessage.int(-3).int64Value == -3)
        #expect(ChannelMessage.uint(.max).int64Value == nil)
        #expect(ChannelMessage.uint(.max).uint64Value == .max)
        #expect(ChannelMessage.int(-1).uint64Value == nil)
        #expect(ChannelMessage.int(5).uint64Value == 5)
        #expect(ChannelMessage.double(2.5).doubleValue == 2.5)
        #expect(ChannelMessage.int(2).doubleValue == 2)
        #expect(ChannelMessage.uint(.max).doubleValue == 18_446_744_073_709_551_615.0)
        #expect(ChannelMessage.string("2").doubleValue == nil)
        #expect(ChannelMessage.bool(true).boolValue == true)
        #expect(ChannelMessage.int(1).boolValue == nil)
        #expect(ChannelMessage.binary([1]).bytesValue == [1])
        #expect(ChannelMessage.array([1]).arrayValue == [1])
        #expect(ChannelMessage.map(["k": 1]).mapValue == ["k": 1])
        #expect(ChannelMessage.nil.isNil)
        #expect(!ChannelMessage.bool(false).isNil)
        #expect(ChannelMessage.map(["type": "chat.message"]).type == "chat.message")
        #expect(ChannelMessage.map(["type": 1]).type == nil)
        #expect(ChannelMessage.array([]).type == nil)
    }

    @Test func integersCompareNumericallyAcrossCases() {
        #expect(ChannelMessage.uint(5) == .int(5))
        #expect(ChannelMessage.int(5) == .uint(5))
        #expect(ChannelMessage.int(-1) != .uint(.max))
        #expect(ChannelMessage.uint(.max) == .uint(.max))
        #expect(ChannelMessage.uint(5).hashValue == ChannelMessage.int(5).hashValue)
        #expect(Set<ChannelMessage>([.uint(5), .int(5), .int(6)]).count == 2)
    }

    @Test func integersAndDoublesAreDistinct() {
        #expect(ChannelMessage.int(1) != .double(1))
        #expect(ChannelMessage.bool(true) != .int(1))
        #expect(ChannelMessage.string("1") != .int(1))
    }

    @Test func mapsCompareRegardlessOfOrderLikePythonDicts() {
        let ab: ChannelMessage = ["a": 1, "b": [2, ["c": 3]]]
        let ba: ChannelMessage = ["b": [2, ["c": 3]], "a": 1]
        #expect(ab == ba)
        #expect(ab.hashValue == ba.hashValue)
        #expect(ab != ["a": 1])
        #expect(ab != ["a": 1, "b": 2])
        #expect(ChannelMessage.map(["a": 1]) != ["b": 1])
        // Arrays are ordered.
        #expect(ChannelMessage.array([1, 2]) != [2, 1])
    }

    @Test func doublesUseIEEEEquality() {
        #expect(ChannelMessage.double(.nan) != .double(.nan))
        #expect(ChannelMessage.double(0.0) == .double(-0.0))
        #expect(ChannelMessage.double(0.0).hashValue == ChannelMessage.double(-0.0).hashValue)
    }

    @Test func usableAsDictionaryKey() {
        var seen: [ChannelMessage: Int] = [:]
        seen[["type": "a", "n": 1]] = 1
        seen[["n": 1, "type": "a"]] = 2
        seen[.binary([1, 2])] = 3
        #expect(seen.count == 2)
        #expect(seen[["type": "a", "n": 1]] == 2)
    }

    @Test func descriptionIsPythonLike() {
        let message: ChannelMessage = [
            "type": "x", "n": 1, "ok": true, "no": false, "none": nil, "f": 1e16, "g": 2.5, "nan": .double(.nan),
            "inf": .double(-.infinity), "data": .binary([0, 0x41, 0x27, 0xFF, 0x0A]), "xs": [1, "two"], "big": .uint(.max),
        ]
        #expect(
            message.description
                == #"{'type': 'x', 'n': 1, 'ok': True, 'no': False, 'none': None, 'f': 1e+16, 'g': 2.5, 'nan': nan, 'inf': -inf, "#
                + #"'data': b"\x00A'\xff\n", 'xs': [1, 'two'], 'big': 18446744073709551615}"#
        )
        #expect(ChannelMessage.string("it's").description == #""it's""#)
        #expect(ChannelMessage.string("a\"b'c").description == #"'a"b\'c'"#)
        #expect(ChannelMessage.string("tab\there\\\u{1}é").description == #"'tab\there\\\x01é'"#)
        #expect(ChannelMessage.binary([]).description == "b''")
        #expect(ChannelMessage.map([:]).description == "{}")
        #expect(ChannelMessage.array([]).description == "[]")
    }
}
