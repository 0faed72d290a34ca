import ChannelsRedisTestSupport
import Foundation
import OrderedCollections
import Testing

@testable import ChannelsRedis

/// Compares the Swift serializers with Python's `msgpack.packb`/`unpackb` and `json.dumps`/`loads` on a large
/// seeded random corpus, byte for byte in both directions.
@Suite("Python cross-check")
struct PythonCrossCheckTests {
    static let seed: UInt64 = 0x4348_414E_4E45_4C53  // "CHANNELS"
    static let randomCases = 2_000

    @Test(.timeLimit(.minutes(5)))
    func serializersMatchPythonByteForByte() async throws {
        var generator = CorpusGenerator(seed: Self.seed)
        var corpus = CorpusGenerator.fixedCases
        for _ in 0..<Self.randomCases {
            corpus.append(generator.value(depth: 0))
        }

        // Swift's side: the corpus plus what Swift makes of each value.
        var file = Array("CRCORPUS1".utf8)
        Corpus.appendU32(corpus.count, to: &file)
        var swiftJSON: [[UInt8]?] = []
        for value in corpus {
            Corpus.append(value, to: &file)
            let packed = try MessagePackSerializer().serialize(value)
            Corpus.appendU32(packed.count, to: &file)
            file += packed
            if Corpus.containsBinary(value) {
                #expect(throws: ChannelLayerError.self) { try JSONSerializer().serialize(value) }
                swiftJSON.append(nil)
                file.append(0)
            } else {
                let json = try JSONSerializer().serialize(value)
                swiftJSON.append(json)
                file.append(1)
                Corpus.appendU32(json.count, to: &file)
                file += json
            }
        }

        let corpusFile = try TemporaryFile("crosscheck", suffix: ".corpus", contents: file)
        let outputFile = TemporaryFile("crosscheck", suffix: ".out")
        defer {
            corpusFile.remove()
            outputFile.remove()
        }

        let result = try await PythonPeer.run(
            script: "msgpack_crosscheck.py",
            arguments: [corpusFile.path, outputFile.path],
            timeout: .seconds(240)
        )
        try #require(result.status == 0, "Python rejected Swift's bytes:\n\(result.stdout)\(result.stderr)")

        // Python's side: its bytes must equal Swift's, and Swift must decode them back to the original.
        let output = try outputFile.contents()
        var reader = Corpus.Reader(bytes: output)
        #expect(try reader.u32() == corpus.count)
        var mismatches = 0
        for (index, value) in corpus.enumerated() {
            let pythonMsgpack = try reader.bytes(count: try reader.u32())
            let swiftMsgpack = try MessagePackSerializer().serialize(value)
            if pythonMsgpack != swiftMsgpack {
                mismatches += 1
                Issue.record(
                    "case \(index): msgpack differs for \(abbreviated(value, limit: 300))\n python \(hexDump(pythonMsgpack, limit: 200))\n swift  \(hexDump(swiftMsgpack, limit: 200))"
                )
            }
            let decoded = try pythonMsgpack.withUnsafeBytes { try MessagePackSerializer().deserialize($0) }
            if !Corpus.identical(decoded, value) {
                mismatches += 1
                Issue.record(
                    "case \(index): decoding Python's msgpack gave \(abbreviated(decoded, limit: 300)), expected \(abbreviated(value, limit: 300))"
                )
            }
            let hasJSON = try reader.u8() == 1
            #expect(hasJSON == (swiftJSON[index] != nil), "case \(index): JSON availability differs")
            if hasJSON {
                let pythonJSON = try reader.bytes(count: try reader.u32())
                if let json = swiftJSON[index], json != pythonJSON {
                    mismatches += 1
                    Issue.record(
                        "case \(index): JSON differs\n python \(String(decoding: pythonJSON.prefix(400), as: UTF8.self))\n swift  \(String(decoding: json.prefix(400), as: UTF8.self))"
                    )
                }
                let decodedJSON = try pythonJSON.withUnsafeBytes { try JSONSerializer().deserialize($0) }
                if !Corpus.identical(decodedJSON, value) {
                    mismatches += 1
                    Issue.record(
                        "case \(index): decoding Python's JSON gave \(abbreviated(decodedJSON, limit: 300)), expected \(abbreviated(value, limit: 300))"
                    )
                }
            }
            if mismatches > 20 { break }
        }
        #expect(reader.isAtEnd || mismatches > 20)
        #expect(corpus.count == CorpusGenerator.fixedCases.count + Self.randomCases)
    }

    /// `Date` and `Data` through ``ChannelMessageEncoder`` and ``ChannelMessageDecoder``, against Python's
    /// `datetime.fromisoformat`, Django's `DjangoJSONEncoder`, `time.time()` floats and `bytes`, both ways.
    @Test(.timeLimit(.minutes(2)))
    func codableDatesAndDataMatchPython() async throws {
        // Swift's side: instants as (Unix seconds, microseconds), each encoded with three strategies.
        var instants: [(seconds: Int64, micros: Int64)] = [
            (0, 0), (0, 500), (0, 999_999), (-1, 500_000), (1_796_153_637, 123_000), (1_796_153_637, 123_456),
            (1_796_153_637, 999_000), (951_825_600, 0), (1_709_251_199, 999_999), (-2_203_891_201, 1),
            (-62_135_596_800, 0), (-62_135_596_800, 1_000), (253_402_300_799, 999_000), (-12_219_292_800, 0),
            (4_107_542_400, 0),
        ]
        var random = SplitMix64(state: Self.seed)
        for index in 0..<400 {
            if index % 2 == 0 {
                // 1900...2100 to the microsecond, where a Date still holds microseconds exactly.
                instants.append((Int64(random.next() % 6_311_433_600) - 2_208_988_800, Int64(random.next() % 1_000_000)))
            } else {
                // Years 1...9999 to the millisecond.
                instants.append((Int64(random.next() % 315_537_897_600) - 62_135_596_800, Int64(random.next() % 1000) * 1000))
            }
        }
        let dates = instants.map { Date(timeIntervalSinceReferenceDate: Double($0.seconds - 978_307_200) + Double($0.micros) / 1e6) }
        let payloads = [Data(), Data([0, 0xFF]), Data((0...255).map { UInt8($0) }), Data((0..<70_000).map { UInt8($0 % 251) })]
        let swiftMessage: ChannelMessage = [
            "type": "codable.check",
            "iso": try ChannelMessageEncoder().encode(dates),
            "seconds": try ChannelMessageEncoder(dateEncodingStrategy: .secondsSince1970).encode(dates),
            "milliseconds": try ChannelMessageEncoder(dateEncodingStrategy: .millisecondsSince1970).encode(dates),
            "expected": .array(instants.map { [.int($0.seconds), .int($0.micros)] }),
            "payloads": try ChannelMessageEncoder().encode(payloads),
            "payloads_base64": try ChannelMessageEncoder(dataEncodingStrategy: .base64).encode(payloads),
            "payloads_expected": .array(payloads.map { .binary([UInt8]($0)) }),
        ]

        let messageFile = try TemporaryFile("codable", suffix: ".msgpack", contents: try MessagePackSerializer().serialize(swiftMessage))
        let outputFile = TemporaryFile("codable", suffix: ".out")
        defer {
            messageFile.remove()
            outputFile.remove()
        }

        let result = try await PythonPeer.run(
            script: "msgpack_crosscheck.py",
            arguments: ["codable", messageFile.path, outputFile.path],
            timeout: .seconds(90)
        )
        try #require(result.status == 0, "Python rejected Swift's dates or Data:\n\(result.stdout)\(result.stderr)")

        // Python's side: what a Python peer sends, decoded with the default strategies.
        struct FromPython: Decodable {
            var floats: [Date]
            var ints: [Date]
            var strings: [Date]
            var bytes: [Data]
        }
        let output = try outputFile.contents()
        let message = try output.withUnsafeBytes { try MessagePackSerializer().deserialize($0) }
        let decoded = try ChannelMessageDecoder().decode(FromPython.self, from: message)

        let floats = try #require(message["floats"]?.arrayValue)
        #expect(decoded.floats.count == floats.count)
        for (date, number) in zip(decoded.floats, floats) {
            // time.time()'s float, kept exactly.
            #expect(date.timeIntervalSince1970 == number.doubleValue, "\(number)")
        }
        let ints = try #require(message["ints"]?.arrayValue)
        #expect(decoded.ints.map { Int64($0.timeIntervalSince1970) } == ints.compactMap(\.int64Value))

        let strings = try #require(message["strings"]?.arrayValue)
        let expected = try #require(message["strings_expected"]?.arrayValue)
        #expect(decoded.strings.count == strings.count && strings.count == expected.count)
        for (index, date) in decoded.strings.enumerated() {
            let seconds = try #require(expected[index][0]?.int64Value)
            let micros = try #require(expected[index][1]?.int64Value)
            // The instant Python's fromisoformat reads, to the microsecond.
            let instant = Date(timeIntervalSinceReferenceDate: Double(seconds - 978_307_200) + Double(micros) / 1e6)
            #expect(date == instant, "\(strings[index]): \(date.timeIntervalSince1970), Python \(seconds).\(micros)")
        }

        let hex = try #require(message["bytes_hex"]?.arrayValue).compactMap(\.stringValue)
        #expect(decoded.bytes.map { $0.map { String(format: "%02x", $0) }.joined() } == hex)
        #expect(decoded.bytes.last == Data("ab".utf8))  // bytearray packs as bin too
    }
}

// MARK: - Corpus format

/// The self-describing format `msgpack_crosscheck.py` reads (see its docstring).
enum Corpus {
    static func appendU32(_ value: Int, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: UInt32(value).bigEndian) { bytes += $0 }
    }

    static func append(_ value: ChannelMessage, to bytes: inout [UInt8]) {
        switch value {
        case .nil:
            bytes.append(UInt8(ascii: "N"))
        case .bool(let flag):
            bytes.append(UInt8(ascii: flag ? "T" : "F"))
        case .int(let number):
            bytes.append(UInt8(ascii: "I"))
            withUnsafeBytes(of: number.bigEndian) { bytes += $0 }
        case .uint(let number):
            bytes.append(UInt8(ascii: "U"))
            withUnsafeBytes(of: number.bigEndian) { bytes += $0 }
        case .double(let number):
            bytes.append(UInt8(ascii: "D"))
            withUnsafeBytes(of: number.bitPattern.bigEndian) { bytes += $0 }
        case .string(let text):
            bytes.append(UInt8(ascii: "S"))
            appendU32(text.utf8.count, to: &bytes)
            bytes += text.utf8
        case .binary(let data):
            bytes.append(UInt8(ascii: "B"))
            appendU32(data.count, to: &bytes)
            bytes += data
        case .array(let elements):
            bytes.append(UInt8(ascii: "A"))
            appendU32(elements.count, to: &bytes)
            for element in elements { append(element, to: &bytes) }
        case .map(let map):
            bytes.append(UInt8(ascii: "M"))
            appendU32(map.count, to: &bytes)
            for (key, element) in map {
                appendU32(key.utf8.count, to: &bytes)
                bytes += key.utf8
                append(element, to: &bytes)
            }
        }
    }

    struct Reader {
        var bytes: [UInt8]
        var position = 0
        var isAtEnd: Bool { position == bytes.count }

        struct Truncated: Error {}

        mutating func u8() throws -> UInt8 {
            guard position < bytes.count else { throw Truncated() }
            defer { position += 1 }
            return bytes[position]
        }

        mutating func u32() throws -> Int {
            Int(try bytes(count: 4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        }

        mutating func bytes(count: Int) throws -> [UInt8] {
            guard bytes.count - position >= count else { throw Truncated() }
            defer { position += count }
            return Array(bytes[position..<position + count])
        }
    }

    static func containsBinary(_ value: ChannelMessage) -> Bool {
        switch value {
        case .binary: true
        case .array(let elements): elements.contains(where: containsBinary)
        case .map(let map): map.values.contains(where: containsBinary)
        default: false
        }
    }

    /// Strict equality: same case, same bits for doubles (NaN equals NaN, -0.0 differs from 0.0), same key order.
    static func identical(_ a: ChannelMessage, _ b: ChannelMessage) -> Bool {
        switch (a, b) {
        case (.double(let x), .double(let y)):
            return x.bitPattern == y.bitPattern || (x.isNaN && y.isNaN)
        case (.int(let x), .int(let y)):
            return x == y
        case (.uint(let x), .uint(let y)):
            return x == y
        case (.array(let x), .array(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { identical($0, $1) }
        case (.map(let x), .map(let y)):
            return x.keys.elementsEqual(y.keys) && zip(x.values, y.values).allSatisfy { identical($0, $1) }
        case (.nil, .nil), (.bool, .bool), (.string, .string), (.binary, .binary):
            return a == b
        default:
            return false
        }
    }
}

// MARK: - Random values

struct CorpusGenerator {
    var random: SplitMix64

    init(seed: UInt64) {
        random = SplitMix64(state: seed)
    }

    /// Size-class boundaries and the largest forms, which random sizes would rarely hit.
    static let fixedCases: [ChannelMessage] = {
        var cases: [ChannelMessage] = [
            ["a": true, "b": nil, "c": ["d": []]],
            .int(.min), .int(.max), .uint(.max), .uint(UInt64(Int64.max) + 1),
            .double(-0.0), .double(.infinity), .double(-.infinity), .double(.nan), .double(.leastNonzeroMagnitude),
            .double(.greatestFiniteMagnitude), .double(1e16), .double(1e15), .double(1e-5), .double(0.0001), .double(0.1),
            .string(""), .string("😀"), .string("\u{7F}\u{0}\u{1F}\u{2028}\u{FEFF}\u{FFFF}\u{10FFFF}"), .binary([]),
        ]
        for length in [31, 32, 255, 256, 65_535, 65_536] {
            cases.append(.string(String(repeating: "x", count: length)))
            cases.append(.binary([UInt8](repeating: 7, count: length)))
        }
        for count in [15, 16, 65_535, 65_536] {
            cases.append(.array((0..<count).map { ChannelMessage($0 % 300 - 150) }))
            var map = OrderedDictionary<String, ChannelMessage>()
            for index in 0..<count { map["k\(index)"] = ChannelMessage(index) }
            cases.append(.map(map))
        }
        return cases
    }()

    mutating func next(_ bound: Int) -> Int {
        Int(random.next() % UInt64(bound))
    }

    mutating func chance(_ percent: Int) -> Bool {
        next(100) < percent
    }

    mutating func value(depth: Int) -> ChannelMessage {
        let kinds = depth >= 4 ? 7 : 9
        switch next(kinds) {
        case 0: return .nil
        case 1: return .bool(chance(50))
        case 2, 3: return integer()
        case 4: return .double(double())
        case 5: return .string(string())
        case 6: return .binary(binary())
        case 7: return .array((0..<size()).map { _ in value(depth: depth + 1) })
        default:
            var map = OrderedDictionary<String, ChannelMessage>()
            for _ in 0..<size() {
                map[chance(70) ? "k\(next(1000))" : string()] = value(depth: depth + 1)
            }
            return .map(map)
        }
    }

    mutating func size() -> Int {
        switch next(20) {
        case 0: 16 + next(300)
        case 1: 15
        case 2: 16
        default: next(8)
        }
    }

    static let integerEdges: [Int64] = [
        0, 1, 127, 128, 255, 256, 65_535, 65_536, 4_294_967_295, 4_294_967_296, .max,
        -1, -32, -33, -128, -129, -32_768, -32_769, -2_147_483_648, -2_147_483_649, .min,
    ]

    mutating func integer() -> ChannelMessage {
        switch next(6) {
        case 0:
            let edge = Self.integerEdges[next(Self.integerEdges.count)]
            let (result, overflow) = edge.addingReportingOverflow(Int64(next(3)) - 1)
            return .int(overflow ? edge : result)
        case 1:
            return ChannelMessage(UInt64(Int64.max) + 1 + random.next() % UInt64(Int64.max))
        case 2:
            return .int(Int64(bitPattern: random.next()))
        default:
            // A random width, so every size class gets hit.
            let bits = UInt64(1 + next(63))
            let magnitude = Int64(random.next() >> (64 - bits))
            return .int(chance(50) ? magnitude : -magnitude)
        }
    }

    static let doubleEdges: [Double] = [
        0, -0.0, 1, -1, 0.5, 0.1, 1e16, 1e15, 9_999_999_999_999_998, 1e-4, 1e-5, 1e22, 1e100, 1e-300,
        .infinity, -.infinity, .nan, .leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude,
        123_456_789_012_345_680, 0.000_123_4, 2.5e-5, 100, 1_234_567.890_123,
    ]

    mutating func double() -> Double {
        switch next(5) {
        case 0: return Self.doubleEdges[next(Self.doubleEdges.count)]
        case 1: return Double(Int64(bitPattern: random.next()) >> Int64(next(63)))
        case 2: return Double(next(2_000_000)) / Double([1, 10, 100, 1000, 1e6, 1e9][next(6)])
        default:
            // Random bits: every exponent, subnormals, and (rarely) NaNs with payloads.
            let bits = random.next()
            let value = Double(bitPattern: bits)
            return value.isNaN ? .nan : value
        }
    }

    mutating func scalar() -> Unicode.Scalar {
        while true {
            let candidate: UInt32 =
                switch next(6) {
                case 0: UInt32(next(0x20))  // control characters
                case 1, 2: UInt32(0x20 + next(0x60))  // printable ASCII, DEL
                case 3: UInt32(0x80 + next(0x780))  // two-byte UTF-8
                case 4: UInt32(0x800 + next(0xF800))  // BMP, surrogates filtered below
                default: UInt32(0x10000 + next(0x100000))  // astral
                }
            if let scalar = Unicode.Scalar(candidate) { return scalar }
        }
    }

    mutating func string() -> String {
        let length =
            switch next(10) {
            case 0: 20 + next(400)
            default: next(12)
            }
        var text = ""
        text.unicodeScalars.append(contentsOf: (0..<length).map { _ in scalar() })
        return text
    }

    mutating func binary() -> [UInt8] {
        let length =
            switch next(10) {
            case 0: 200 + next(400)
            default: next(20)
            }
        return (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
    }
}
