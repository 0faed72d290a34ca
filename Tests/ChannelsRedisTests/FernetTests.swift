import ChannelsRedisTestSupport
import Foundation
import Testing

@testable import ChannelsRedis

@Suite struct FernetTests {
    /// Tokens made by Python's `cryptography` (via channels_redis's key derivation) with fixed IVs and timestamps.
    enum Golden {
        static let key = "a-test-key"
        static let fernetKey = "vQHTG9CFHUSqb8quMxeiDkUMwWkp8zurx5IirXypqVI="
        /// "hello", timestamp 1_700_000_000, IV 00 01 ... 0f.
        static let hello = "gAAAAABlU_EAAAECAwQFBgcICQoLDA0OD8zqe7N7Pn40O_YVquhNxCwIb9n0cM6yiYmec78HIu6FOohapZhz8prCJjZZWAwgYA=="
        /// "ünïcødé 🚀" in UTF-8, timestamp 1, IV ff × 16.
        static let unicode =
            "gAAAAAAAAAAB_____________________6xUyKfL7uPBvT-tNg8d2WTPy7DzKcYWRnbAhXWIYR90k733bvGags5rvdqDT9rMq7DbXJaEqfilbXaTLTXOR2E="
        /// Correctly signed with the golden key, but the decrypted block's PKCS7 padding is invalid: last byte 0x00,
        /// last byte 0x11, and "... 03 02".
        static let badPadding = [
            "gAAAAABlU_EAAAECAwQFBgcICQoLDA0OD1zTO-OSgZw_yOD8E6o-pDc1gywuwuphqqX5Moys72wM8FB7SUnTYZhd2IbOH6oX8w==",
            "gAAAAABlU_EAAAECAwQFBgcICQoLDA0ODxYrElhdIoCsxEv4-SG_BIaqSwnWTwOru0IHQKNhXDrfzLaozhh2L0tzDSilLB-NnA==",
            "gAAAAABlU_EAAAECAwQFBgcICQoLDA0OD8F5q9rm0o_t4DW1KBjo9OIgmaq78W5Kr3XIEZP7-kuiMKDUh08WUW3HOMGMR2eW3g==",
        ]
    }

    static let verifyFailure = "Fernet token failed to verify with any configured key"

    // MARK: Keys and exact tokens

    @Test func derivesChannelsRedisFernetKey() {
        #expect(Fernet.fernetKey(for: Golden.key) == Golden.fernetKey)
    }

    @Test func producesPythonsExactTokens() throws {
        let fernet = try Fernet(keys: [Golden.key])
        let hello = try fernet.encrypt(Array("hello".utf8), iv: Array(0..<16), timestamp: 1_700_000_000)
        #expect(String(decoding: hello, as: UTF8.self) == Golden.hello)
        let unicode = try fernet.encrypt(Array("ünïcødé 🚀".utf8), iv: Array(repeating: 0xFF, count: 16), timestamp: 1)
        #expect(String(decoding: unicode, as: UTF8.self) == Golden.unicode)
    }

    @Test func decryptsPythonsTokens() throws {
        let fernet = try Fernet(keys: [Golden.key])
        #expect(try fernet.decrypt(Array(Golden.hello.utf8)) == Array("hello".utf8))
        #expect(try fernet.decrypt(Array(Golden.unicode.utf8)) == Array("ünïcødé 🚀".utf8))
    }

    @Test func emptyKeyListIsAConfigurationError() {
        let error = #expect(throws: ChannelLayerError.self) { try Fernet(keys: []) }
        #expect(error?.code == .invalidConfiguration)
    }

    @Test func anyStringIsAKey() throws {
        for key in ["", " ", "ключ", "🔑", String(repeating: "k", count: 10_000)] {
            let fernet = try Fernet(keys: [key])
            #expect(try fernet.decrypt(try fernet.encrypt(Array("x".utf8))) == Array("x".utf8))
        }
    }

    // MARK: Round trips and layout

    @Test func roundTripsEveryLengthAroundTheBlockSize() throws {
        let fernet = try Fernet(keys: ["secret"])
        for length in Array(0...50) + [255, 1000, 65_536] {
            let plaintext = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            let token = try fernet.encrypt(plaintext)
            #expect(try fernet.decrypt(token) == plaintext, "length \(length)")
        }
    }

    @Test func tokenHasTheFernetLayout() throws {
        let fernet = try Fernet(keys: ["secret"])
        let iv = Array(UInt8(100)..<116)
        for length in [0, 1, 15, 16, 17, 100] {
            let token = try fernet.encrypt([UInt8](repeating: 0x41, count: length), iv: iv, timestamp: 0x0102_0304_0506_0708)
            let urlSafe = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=".utf8)
            #expect(token.allSatisfy(urlSafe.contains))
            #expect(token.count % 4 == 0)
            let data = try #require(standardBase64Decode(token))
            let ciphertextLength = (length / 16 + 1) * 16
            #expect(data.count == 1 + 8 + 16 + ciphertextLength + 32)
            #expect(data[0] == 0x80)
            #expect(Array(data[1..<9]) == [1, 2, 3, 4, 5, 6, 7, 8])
            #expect(Array(data[9..<25]) == iv)
        }
    }

    @Test func encryptStampsTheCurrentTimeAndARandomIV() throws {
        let fernet = try Fernet(keys: ["secret"])
        let before = UInt64(Date().timeIntervalSince1970)
        let first = try #require(standardBase64Decode(try fernet.encrypt(Array("same".utf8))))
        let second = try #require(standardBase64Decode(try fernet.encrypt(Array("same".utf8))))
        let after = UInt64(Date().timeIntervalSince1970)
        let timestamp = first[1..<9].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        #expect((before...after).contains(timestamp))
        #expect(first[9..<25] != second[9..<25])
    }

    /// The pubsub layer passes no TTL, so neither an ancient nor a far-future timestamp matters.
    @Test func ignoresTheTimestamp() throws {
        let fernet = try Fernet(keys: ["secret"])
        for timestamp in [0, 1, UInt64(Int64.max), UInt64.max] {
            let token = try fernet.encrypt(Array("old".utf8), iv: Array(repeating: 7, count: 16), timestamp: timestamp)
            #expect(try fernet.decrypt(token) == Array("old".utf8))
        }
    }

    @Test func bufferAndArrayDecryptAgree() throws {
        let fernet = try Fernet(keys: ["secret"])
        let token = try fernet.encrypt(Array("payload".utf8))
        let viaBuffer = try token.withUnsafeBytes { bytes throws(ChannelLayerError) in try fernet.decrypt(bytes) }
        #expect(viaBuffer == Array("payload".utf8))
        #expect(try fernet.decrypt(token) == viaBuffer)
    }

    @Test func rejectsAnEncryptionIVOfTheWrongSize() throws {
        let fernet = try Fernet(keys: ["secret"])
        let error = #expect(throws: ChannelLayerError.self) { try fernet.encrypt([1], iv: [1, 2, 3], timestamp: 0) }
        #expect(error?.code == .encodingFailed)
    }

    // MARK: Rotation

    @Test func encryptsWithTheFirstKeyAndDecryptsWithAny() throws {
        let old = try Fernet(keys: ["old"])
        let rotated = try Fernet(keys: ["new", "old"])
        let new = try Fernet(keys: ["new"])
        let fromOld = try old.encrypt(Array("a".utf8))
        #expect(try rotated.decrypt(fromOld) == Array("a".utf8))
        let fromRotated = try rotated.encrypt(Array("b".utf8))
        #expect(try new.decrypt(fromRotated) == Array("b".utf8))
        expectDecodingFailure(Self.verifyFailure) { try old.decrypt(fromRotated) }
    }

    // MARK: Rejections

    @Test func rejectsATokenFromAnotherKey() throws {
        let token = try Fernet(keys: ["one"]).encrypt(Array("secret".utf8))
        let other = try Fernet(keys: ["two", "three"])
        expectDecodingFailure(Self.verifyFailure) { try other.decrypt(token) }
    }

    @Test func rejectsEveryTamperedByte() throws {
        let fernet = try Fernet(keys: ["secret"])
        let token = try fernet.encrypt(Array("attack at dawn".utf8))
        let data = try #require(standardBase64Decode(token))
        for index in data.indices {
            var tampered = data
            tampered[index] ^= 0x01
            let text = Array(Data(tampered).base64EncodedString().utf8).map(toURLSafe)
            let error = #expect(throws: ChannelLayerError.self, "byte \(index)") { try fernet.decrypt(text) }
            #expect(error?.code == .decodingFailed)
            if index > 0 { #expect(error?.message == Self.verifyFailure, "byte \(index)") }
        }
    }

    @Test func rejectsAValidlySignedTokenWithBadPadding() throws {
        let fernet = try Fernet(keys: [Golden.key])
        for token in Golden.badPadding {
            expectDecodingFailure(Self.verifyFailure) { try fernet.decrypt(Array(token.utf8)) }
        }
    }

    @Test func rejectsMalformedBase64() throws {
        let fernet = try Fernet(keys: [Golden.key])
        let unpadded = String(Golden.hello.dropLast(2))
        let malformed = [
            unpadded,  // Python: "Incorrect padding"
            Golden.hello.replacingOccurrences(of: "_", with: "/"),  // standard, not URL-safe, alphabet
            " " + Golden.hello,
            Golden.hello + "\n",
            Golden.hello + "AAAA",  // data after the padding
            "*" + Golden.hello.dropFirst(),
            String(Golden.hello.dropLast()),  // length not a multiple of 4
            "gAA===",
            "====",
        ]
        #expect(Golden.hello.contains("_") && Golden.unicode.contains("-"))
        for token in malformed {
            let error = #expect(throws: ChannelLayerError.self, "\(token.debugDescription)") { try fernet.decrypt(Array(token.utf8)) }
            #expect(error?.code == .decodingFailed)
        }
        // The same checks through the `-` of another token.
        let plus = Golden.unicode.replacingOccurrences(of: "-", with: "+")
        expectDecodingFailure("Fernet token is not padded URL-safe base64") { try fernet.decrypt(Array(plus.utf8)) }
    }

    @Test func rejectsAWrongVersionOrLength() throws {
        let fernet = try Fernet(keys: [Golden.key])
        var data = try #require(standardBase64Decode(Array(Golden.hello.utf8)))
        data[0] = 0x81
        expectDecodingFailure("Fernet token does not start with version byte 0x80") { try fernet.decrypt(urlSafe(data)) }
        expectDecodingFailure("Fernet token does not start with version byte 0x80") { try fernet.decrypt([]) }
        for length in [1, 9, 25, 56, 57, 72, 74, 88] {
            let short = [0x80] + [UInt8](repeating: 0, count: length - 1)
            let error = #expect(throws: ChannelLayerError.self, "length \(length)") { try fernet.decrypt(urlSafe(short)) }
            #expect(error?.code == .decodingFailed)
            #expect(error?.message.hasPrefix("Fernet token is truncated or malformed") == true)
        }
    }

    // MARK: Cross-checks with Python channels_redis

    @Test func pythonDerivesTheSameKeys() async throws {
        let keys = ["a-test-key", "", "ключ 🔑", "with spaces and = signs"]
        let results = try await fernetPeer(keys.map { ["op": "fernet_key", "key": $0] })
        for (key, result) in zip(keys, results) {
            #expect(result as? String == Fernet.fernetKey(for: key), "\(key.debugDescription)")
        }
    }

    @Test func pythonMakesTheSameTokenFromTheSameIVAndTime() async throws {
        let keys = ["swift-key", "ignored-second-key"]
        let fernet = try Fernet(keys: keys)
        let cases: [(plaintext: [UInt8], iv: [UInt8], timestamp: UInt64)] = [
            ([], Array(repeating: 0, count: 16), 0),
            (Array("hello".utf8), Array(0..<16), 1_700_000_000),
            ((0..<300).map { UInt8(truncatingIfNeeded: $0) }, Array(repeating: 0xAB, count: 16), UInt64(Int64.max)),
        ]
        let requests: [[String: Any]] = cases.map {
            ["op": "encrypt_at", "keys": keys, "plaintext": base64($0.plaintext), "iv": base64($0.iv), "timestamp": $0.timestamp]
        }
        let results = try await fernetPeer(requests)
        for (testCase, result) in zip(cases, results) {
            let swift = try fernet.encrypt(testCase.plaintext, iv: testCase.iv, timestamp: testCase.timestamp)
            #expect(result as? String == String(decoding: swift, as: UTF8.self))
        }
    }

    @Test func pythonDecryptsSwiftTokens() async throws {
        let keys = ["first", "second"]
        let fernet = try Fernet(keys: keys)
        let plaintexts = samplePlaintexts()
        let tokens = try plaintexts.map { try String(decoding: fernet.encrypt($0), as: UTF8.self) }
        let results = try await fernetPeer(tokens.map { ["op": "decrypt", "keys": keys, "token": $0] })
        for (plaintext, result) in zip(plaintexts, results) {
            #expect(plaintextOf(result) == plaintext)
        }
    }

    @Test func swiftDecryptsPythonTokens() async throws {
        let keys = ["first", "second"]
        let fernet = try Fernet(keys: keys)
        let plaintexts = samplePlaintexts()
        let results = try await fernetPeer(plaintexts.map { ["op": "encrypt", "keys": keys, "plaintext": base64($0)] })
        for (plaintext, result) in zip(plaintexts, results) {
            let token = try #require(result as? String)
            #expect(try fernet.decrypt(Array(token.utf8)) == plaintext)
        }
    }

    /// Python encrypts with `[a, b]` (so with `a`); Swift decrypts with `[b, a]` and `[a]`, and `[b]` alone must fail.
    /// The other way round too.
    @Test func keyRotationWorksAcrossLanguages() async throws {
        let plaintext = Array("rotate me".utf8)
        let fromPython = try #require(
            try await fernetPeer([["op": "encrypt", "keys": ["a", "b"], "plaintext": base64(plaintext)]]).first as? String
        )
        #expect(try Fernet(keys: ["b", "a"]).decrypt(Array(fromPython.utf8)) == plaintext)
        #expect(try Fernet(keys: ["a"]).decrypt(Array(fromPython.utf8)) == plaintext)
        expectDecodingFailure(Self.verifyFailure) { try Fernet(keys: ["b"]).decrypt(Array(fromPython.utf8)) }

        let fromSwift = String(decoding: try Fernet(keys: ["a", "b"]).encrypt(plaintext), as: UTF8.self)
        let results = try await fernetPeer([
            ["op": "decrypt", "keys": ["b", "a"], "token": fromSwift],
            ["op": "decrypt", "keys": ["a"], "token": fromSwift],
            ["op": "decrypt", "keys": ["b"], "token": fromSwift],
        ])
        #expect(plaintextOf(results[0]) == plaintext)
        #expect(plaintextOf(results[1]) == plaintext)
        #expect(isInvalidToken(results[2]))
    }

    @Test func tamperedTokensAreRejectedByBoth() async throws {
        let keys = ["tamper"]
        let fernet = try Fernet(keys: keys)
        var swiftToken = try fernet.encrypt(Array("original".utf8))
        // Flip a bit in the middle of the ciphertext, keeping the base64 valid (the character stays URL-safe).
        swiftToken[60] = swiftToken[60] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let fromPython = try #require(
            try await fernetPeer([["op": "encrypt", "keys": keys, "plaintext": base64(Array("original".utf8))]]).first as? String
        )
        var pythonToken = Array(fromPython.utf8)
        pythonToken[60] = pythonToken[60] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")

        let results = try await fernetPeer([
            ["op": "decrypt", "keys": keys, "token": String(decoding: swiftToken, as: UTF8.self)],
            ["op": "decrypt", "keys": keys, "token": String(decoding: pythonToken, as: UTF8.self)],
        ])
        #expect(isInvalidToken(results[0]))
        #expect(isInvalidToken(results[1]))
        expectDecodingFailure(Self.verifyFailure) { try fernet.decrypt(swiftToken) }
        expectDecodingFailure(Self.verifyFailure) { try fernet.decrypt(pythonToken) }
    }

    /// Through `RedisPubSubChannelLayer.serialize`/`deserialize` themselves: msgpack inside Fernet, and a token stamped
    /// 1970 is still accepted, which shows the pubsub layer decrypts with no TTL.
    @Test func pubsubLayerReadsSwiftTokensAndViceVersa() async throws {
        let keys = ["layer-key"]
        let fernet = try Fernet(keys: keys)
        // msgpack of {"a": True, "b": None, "c": {"d": []}}
        let golden: [UInt8] = [0x83, 0xA1, 0x61, 0xC3, 0xA1, 0x62, 0xC0, 0xA1, 0x63, 0x81, 0xA1, 0x64, 0x90]
        let ancient = String(decoding: try fernet.encrypt(golden, iv: Array(repeating: 3, count: 16), timestamp: 0), as: UTF8.self)
        let results = try await fernetPeer([
            ["op": "layer_deserialize", "keys": keys, "token": ancient],
            // As JSON text, so that the key order (and so the msgpack bytes) survives the trip.
            ["op": "layer_serialize", "keys": keys, "message_json": #"{"a": true, "b": null, "c": {"d": []}}"#],
        ])
        let message = try #require((results[0] as? [String: Any])?["message"] as? [String: Any])
        #expect(message["a"] as? Bool == true)
        #expect(message["b"] is NSNull)
        #expect((message["c"] as? [String: Any])?["d"] as? [Any] != nil)
        let fromLayer = try #require(results[1] as? String)
        #expect(try fernet.decrypt(Array(fromLayer.utf8)) == golden)
    }
}

// MARK: - Helpers

private func expectDecodingFailure(
    _ message: String,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> [UInt8]
) {
    do {
        let plaintext = try body()
        Issue.record("expected a decoding failure, got \(plaintext.count) bytes", sourceLocation: sourceLocation)
    } catch let error as ChannelLayerError {
        #expect(error.code == .decodingFailed, sourceLocation: sourceLocation)
        #expect(error.message == message, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a ChannelLayerError, got \(error)", sourceLocation: sourceLocation)
    }
}

private func samplePlaintexts() -> [[UInt8]] {
    [
        [],
        Array("hello".utf8),
        Array(repeating: 0x10, count: 16),
        (0..<256).map { UInt8($0) },
        Array("ünïcødé 🚀 频道".utf8),
        (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7) },
    ]
}

private func base64(_ bytes: [UInt8]) -> String {
    Data(bytes).base64EncodedString()
}

private func toURLSafe(_ byte: UInt8) -> UInt8 {
    switch byte {
    case UInt8(ascii: "+"): UInt8(ascii: "-")
    case UInt8(ascii: "/"): UInt8(ascii: "_")
    default: byte
    }
}

private func urlSafe(_ bytes: [UInt8]) -> [UInt8] {
    Array(Data(bytes).base64EncodedString().utf8).map(toURLSafe)
}

/// Decodes a URL-safe token with Foundation, independently of the code under test.
private func standardBase64Decode(_ token: [UInt8]) -> [UInt8]? {
    let standard = token.map { byte -> UInt8 in
        switch byte {
        case UInt8(ascii: "-"): UInt8(ascii: "+")
        case UInt8(ascii: "_"): UInt8(ascii: "/")
        default: byte
        }
    }
    return Data(base64Encoded: Data(standard)).map { Array($0) }
}

private func plaintextOf(_ result: Any) -> [UInt8]? {
    guard let text = (result as? [String: Any])?["plaintext"] as? String, let data = Data(base64Encoded: text) else { return nil }
    return Array(data)
}

private func isInvalidToken(_ result: Any) -> Bool {
    (result as? [String: Any])?["error"] as? String == "InvalidToken"
}

/// Runs `Tests/Python/fernet_peer.py` on the requests through ``PythonPeer`` (the project's venv; missing, it fails the
/// test) and returns its results, in order.
private func fernetPeer(_ requests: [[String: Any]]) async throws -> [Any] {
    let input = try TemporaryFile("fernet-peer", suffix: ".json", contents: JSONSerialization.data(withJSONObject: requests))
    defer { input.remove() }
    let output = try await PythonPeer.output(script: "fernet_peer.py", arguments: [input.path])
    let results = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [Any])
    try #require(results.count == requests.count)
    return results
}
