import ChannelsRedis
import Foundation
import OrderedCollections

// The messages the interop tests send both ways.

/// One message with a bit of everything.
func richMessage(binary: Bool) -> ChannelMessage {
    let ints: [ChannelMessage] = [
        0, 1, -1, 127, 128, 255, 256, -32, -33, -128, -129, 65_535, 65_536, -32_768, -32_769, 4_294_967_295, 4_294_967_296,
        .int(.max), .int(.min), .uint(.max),
    ]
    let floats: [Double] = [0.0, -0.0, 0.1, 1.5, -2.25, 1e16, 1e-7, .greatestFiniteMagnitude, .leastNonzeroMagnitude, .infinity, -.infinity, .nan]
    let deep: ChannelMessage = ["level1": ["level2": ["level3": [["deep": [1, [2, [3, ["x": nil]]]]]]]]]
    var message: ChannelMessage = ["type": "interop.rich", "text": "Ahoy-hoy!"]
    message["unicode"] = "héllo wörld – 日本語 – עברית – 😀👍🏽 – e\u{301} – \u{0}nul – \u{FEFF}\u{2028}"
    message["empty"] = ""
    message["ints"] = .array(ints)
    message["floats"] = .array(floats.map { .double($0) })
    message["bools"] = [true, false]
    message["none"] = .nil
    message["nested"] = deep
    message["emptyMap"] = [:]
    message["emptyList"] = []
    message["ключ 🔑"] = "a unicode key"
    if binary {
        message["bytes"] = .binary([0, 1, 0x7F, 0x80, 0xFE, 0xFF])
        message["emptyBytes"] = .binary([])
        message["nestedBytes"] = ["inner": [.binary([0xC0, 0xC1]), "text"]]
    }
    return message
}

/// Messages for the byte-for-byte comparison with Python's serializer.
func wireCorpus(binary: Bool) -> [ChannelMessage] {
    let floats: [Double] = [
        0.1, 0.2, 0.30000000000000004, 1e16, 1e22, 1e-5, 1e-7, 123_456_789_012_345_680.0, .leastNonzeroMagnitude, 1.7976931348623157e308, -0.0, 3.0,
        100.0, 1e15, 123.456,
    ]
    let ints: [Int] = [-1, -31, -32, -33, -127, -128, -129, -32_767, -32_768, -32_769, -2_147_483_648, -2_147_483_649, 2_147_483_647, 2_147_483_648]
    var corpus: [ChannelMessage] = [richMessage(binary: binary)]
    corpus.append(["a": true, "b": nil, "c": ["d": []]])
    corpus.append([:])
    corpus.append(["type": "chat.message", "message": "Hello"])
    corpus.append(["floats": .array(floats.map { .double($0) })])
    corpus.append([
        "s31": .string(String(repeating: "x", count: 31)), "s32": .string(String(repeating: "y", count: 32)),
        "s256": .string(String(repeating: "z", count: 256)),
    ])
    corpus.append(["ascii controls": "\u{1}\u{8}\u{9}\u{A}\u{C}\u{D}\u{1F}\u{7F}\"\\/", "latin": "ÿ", "astral": "𝄞"])
    corpus.append(.map(.init(uniqueKeysWithValues: (0..<20).map { ("k\($0)", ChannelMessage($0)) })))
    corpus.append(.array((0..<20).map { ChannelMessage($0) }))
    corpus.append(["type": "ints", "values": .array(ints.map { ChannelMessage($0) })])
    if binary {
        corpus.append(["bin": .binary(pseudoRandomBytes(300, seed: 3)), "bin16": .binary(pseudoRandomBytes(70_000, seed: 4))])
    }
    return corpus
}

/// Messages covering every value kind and size class, each crossing both ways.
func valueCorpus(binary: Bool) -> [ChannelMessage] {
    var corpus: [ChannelMessage] = []
    let ints: [Int64] = [
        0, 1, 127, 128, 255, 256, 65_535, 65_536, 4_294_967_295, 4_294_967_296, .max, -1, -32, -33, -128, -129, -32_768, -32_769,
        -2_147_483_648, -2_147_483_649, .min,
    ]
    for value in ints { corpus.append(["type": "int", "value": .int(value)]) }
    corpus.append(["type": "int", "value": .uint(UInt64(Int64.max) + 1)])
    corpus.append(["type": "int", "value": .uint(.max)])
    let floats: [Double] = [
        0, -0.0, 1, -1, 0.1, 1.0 / 3.0, .pi, 1e300, -1e-300, .leastNonzeroMagnitude, .greatestFiniteMagnitude, .infinity, -.infinity, .nan,
    ]
    for value in floats { corpus.append(["type": "float", "value": .double(value)]) }
    let strings: [String] = [
        "", "a", "Ünïcödé", "日本語のテキスト", "مرحبا بالعالم", "👩‍👩‍👧‍👦", "e\u{301}", "\u{E9}", "\u{0}", "\u{FFFF}", "\u{10FFFF}", "tab\tnew\nline",
    ]
    for value in strings { corpus.append(["type": "string", "value": .string(value)]) }
    var deep: ChannelMessage = ["bottom": true]
    for level in 0..<100 {
        if level.isMultiple(of: 2) {
            deep = ["level": deep]
        } else {
            deep = .array([deep])
        }
    }
    corpus.append(["type": "deep", "value": deep])
    corpus.append(["type": "array16", "value": .array((0..<70).map { ChannelMessage($0) })])
    corpus.append(["type": "array32", "value": .array((0..<70_000).map { ChannelMessage($0 % 300) })])
    corpus.append(["type": "map16", "value": .map(.init(uniqueKeysWithValues: (0..<300).map { ("key\($0)", ChannelMessage($0)) }))])
    corpus.append(["type": "map32", "value": .map(.init(uniqueKeysWithValues: (0..<70_000).map { ("k\($0)", ChannelMessage($0 % 7)) }))])
    let mixed: [ChannelMessage] = [nil, true, 1, 1.5, "s", [], [:], ["k": [nil]]]
    corpus.append(["type": "mixed", "value": .array(mixed)])
    if binary {
        corpus.append(["type": "bytes", "value": .binary([])])
        corpus.append(["type": "bytes", "value": .binary([0])])
        corpus.append(["type": "bytes", "value": .binary(Array(0...255))])
        corpus.append(["type": "bytes", "value": ["in": [.binary([0xFF]), ["deeper": .binary([0x80, 0x00])]]]])
    }
    return corpus
}

/// A typed chat event for the Codable tests.
struct InteropChatEvent: Codable, Equatable {
    struct Author: Codable, Equatable {
        var name: String
        var id: Int
    }

    enum Mood: String, Codable {
        case happy, grumpy
    }

    var type: String
    var message: String
    var author: Author
    var mentions: [Author]
    var attachment: Data
    var score: Double
    var sequence: UInt64
    var offset: Int64
    var pinned: Bool
    var mood: Mood
    var editedAt: Double?
    var reactions: [String]
}

/// `count` bytes from a seeded generator (an LCG): the same on every run.
func pseudoRandomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<count).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return UInt8(truncatingIfNeeded: state >> 56)
    }
}
