import ChannelsRedisTestSupport
import Foundation
import Testing

@testable import ChannelsRedis

@Suite struct ConsistentHashTests {
    @Test func matchesChannelsRedisVectors() {
        #expect(ConsistentHash.shardIndex(for: "key_one", shardCount: 2) == 1)
        #expect(ConsistentHash.shardIndex(for: "key_two", shardCount: 2) == 0)
        #expect(ConsistentHash.shardIndex(for: "key_one", shardCount: 10) == 6)
        #expect(ConsistentHash.shardIndex(for: "key_two", shardCount: 10) == 4)
    }

    @Test func singleShardIsAlwaysZero() {
        for name in ["", "key_one", "asgi__group__chat", "ünïcødé", String(repeating: "x", count: 1000)] {
            #expect(ConsistentHash.shardIndex(for: name, shardCount: 1) == 0)
        }
    }

    @Test func indexStaysInRange() {
        var generator = SplitMix64(state: 7)
        for shardCount in [2, 3, 7, 64, 4095, 4096, 4097, 10_000] {
            for _ in 0..<200 {
                let name = randomName(using: &generator)
                let index = ConsistentHash.shardIndex(for: name, shardCount: shardCount)
                #expect((0..<shardCount).contains(index))
            }
        }
    }

    /// Python computes `int(bucket / (4096 / float(n)))` in floating point, which for some buckets and ring sizes
    /// differs from integer arithmetic. Checks every bucket (through a name that lands in it) and ring size 1–200
    /// against that formula, and that integer arithmetic would indeed have been wrong somewhere.
    @Test func usesFloatingPointDivisionLikePython() {
        let names = Self.namesCoveringEveryBucket()
        var mismatches: [String] = []
        for shardCount in 1...200 {
            for (bucket, name) in names.enumerated() {
                let python = Int(Double(bucket) / (4096.0 / Double(shardCount)))
                if ConsistentHash.shardIndex(for: name, shardCount: shardCount) != python {
                    mismatches.append("bucket \(bucket), \(shardCount) shards")
                }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(20))")
        // And integer arithmetic really does disagree somewhere, which is why the port must not use it.
        var disagreements = 0
        for shardCount in 1...200 {
            for bucket in 0..<4096 where Int(Double(bucket) / (4096.0 / Double(shardCount))) != bucket * shardCount / 4096 {
                disagreements += 1
            }
        }
        #expect(disagreements > 0)
    }

    @Test func crc32MatchesKnownChecksums() {
        #expect(CRC32.checksum(Array("".utf8)) == 0)
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum(Array("The quick brown fox jumps over the lazy dog".utf8)) == 0x414F_A339)
        #expect(CRC32.checksum(Array("a".utf8)) == 0xE8B7_BE43)
    }

    /// The sliced fast path against a plain bit-at-a-time CRC, for every length around the 8-byte stride.
    @Test func crc32FastPathMatchesBitwiseReference() {
        var generator = SplitMix64(state: 42)
        for length in 0..<80 {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            #expect(CRC32.checksum(bytes) == bitwiseCRC32(bytes), "length \(length)")
        }
    }

    @Test func crc32ContinuesFromAPreviousValue() {
        let whole = Array("channels_redis consistent hashing".utf8)
        for split in 0...whole.count {
            let first = whole[..<split].withUnsafeBytes { CRC32.checksum($0) }
            let both = whole[split...].withUnsafeBytes { CRC32.checksum($0, previous: first) }
            #expect(both == CRC32.checksum(whole))
        }
    }

    /// Cross-check against channels_redis's own `_consistent_hash` (and `binascii.crc32`) in the project's venv: one
    /// name for every one of the 4096 buckets, plus random names with non-ASCII text, over ring sizes 1–200. Fails, not
    /// skips, when the venv is missing.
    @Test func agreesWithPythonChannelsRedis() async throws {
        let maxRing = 200
        var names = Self.namesCoveringEveryBucket()
        names += ["key_one", "key_two", "", "asgi__group__chat_lobby", "asgispecific.3f2a9c7e5b1d4e8f9a0b1c2d3e4f5a6b"]
        var generator = SplitMix64(state: 2024)
        for _ in 0..<1000 {
            names.append(randomName(using: &generator))
        }
        let output = try await runHashPeer(names: names, maxRing: maxRing)
        let lines = output.split(separator: "\n")
        try #require(lines.count == names.count)
        var mismatches: [String] = []
        for (name, line) in zip(names, lines) {
            let numbers = line.split(separator: " ").map { UInt64($0) }
            try #require(numbers.count == maxRing + 1 && numbers.allSatisfy { $0 != nil })
            if UInt64(CRC32.checksum(Array(name.utf8))) != numbers[0] {
                mismatches.append("crc32(\(name.debugDescription))")
            }
            for shardCount in 1...maxRing where UInt64(ConsistentHash.shardIndex(for: name, shardCount: shardCount)) != numbers[shardCount] {
                mismatches.append("(\(name.debugDescription), \(shardCount))")
            }
        }
        #expect(mismatches.isEmpty, "differs from Python for \(mismatches.prefix(20))")
    }

    /// Names `n` such that `crc32(names[b]) & 0xFFF == b`, found by trying `bucket-0`, `bucket-1`, ...
    static func namesCoveringEveryBucket() -> [String] {
        var names = [String?](repeating: nil, count: 4096)
        var missing = 4096
        var counter = 0
        while missing > 0 {
            let name = "bucket-\(counter)"
            let bucket = Int(CRC32.checksum(Array(name.utf8)) & 0xFFF)
            if names[bucket] == nil {
                names[bucket] = name
                missing -= 1
            }
            counter += 1
        }
        return names.map { $0! }
    }
}

/// Mixed-script names: ASCII name characters, Latin-1, Cyrillic, CJK, emoji, combining marks and control-free
/// punctuation, 0–40 characters long.
private func randomName(using generator: inout SplitMix64) -> String {
    let pools: [[Unicode.Scalar]] = [
        Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!".unicodeScalars),
        Array("éèüßøñÅÆ€£¥©".unicodeScalars),
        Array("привет мир".unicodeScalars),
        Array("频道组消息測試".unicodeScalars),
        ["\u{1F600}", "\u{1F680}", "\u{1F1EB}", "\u{1F1F7}", "\u{10FFFF}"],
        ["\u{0301}", "\u{0308}", "\u{200D}", "\u{FEFF}", "\u{FFFD}"],
        Array(" \"'\\/@#%&*()[]{}<>?".unicodeScalars),
    ]
    let length = Int(generator.next() % 41)
    var scalars = String.UnicodeScalarView()
    for _ in 0..<length {
        let pool = pools[Int(generator.next() % UInt64(pools.count))]
        scalars.append(pool[Int(generator.next() % UInt64(pool.count))])
    }
    return String(scalars)
}

/// CRC-32 one bit at a time, straight from the definition.
private func bitwiseCRC32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 {
            crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1
        }
    }
    return ~crc
}

/// Runs `Tests/Python/consistent_hash.py` through ``PythonPeer`` (the project's venv; missing, it fails the test) and
/// returns its standard output.
private func runHashPeer(names: [String], maxRing: Int) async throws -> String {
    let input = try TemporaryFile("consistent-hash", suffix: ".json", contents: JSONSerialization.data(withJSONObject: names))
    defer { input.remove() }
    return try await PythonPeer.output(script: "consistent_hash.py", arguments: [input.path, "\(maxRing)"])
}
