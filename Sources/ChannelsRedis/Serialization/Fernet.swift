import Crypto
import _CryptoExtras

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Fernet encryption as Python channels_redis applies it for `symmetric_encryption_keys`, so that Swift and Python
/// processes sharing the same keys can read each other's messages.
///
/// channels_redis turns each configured key string into a Fernet key, `urlsafe_b64encode(sha256(key.encode("utf8")))`,
/// and wraps them all in a `MultiFernet`: messages are encrypted with the first key and decrypted with whichever key
/// verifies, so keys can be rotated by putting the new key first and keeping the old one until every process has it.
///
/// A token is the URL-safe base64 (with `=` padding) of
/// `0x80 ‖ timestamp (UInt64 big-endian seconds) ‖ IV (16) ‖ AES-128-CBC-PKCS7 ciphertext ‖ HMAC-SHA256`, where the HMAC
/// covers everything before it. The first 16 bytes of the 32-byte key sign, the last 16 encrypt.
///
/// The pubsub layer decrypts with no TTL: `RedisPubSubChannelLayer` builds its serializer without an `expiry`, so
/// `BaseMessageSerializer.deserialize` passes `ttl=None` and `cryptography` then ignores the timestamp entirely (no
/// expiry and no clock-skew check). This type does the same; the timestamp is written but never checked.
///
/// ```swift
/// let fernet = try Fernet(keys: ["new-secret", "old-secret"])
/// let token = try fernet.encrypt(Array("hello".utf8))
/// let plaintext = try fernet.decrypt(token)  // or decrypt(_: UnsafeRawBufferPointer) straight from a reply buffer
/// ```
struct Fernet: Sendable {
    /// One Fernet key, split into its two halves.
    ///
    /// Held as bytes, not `SymmetricKey`s, because swift-crypto 3.x (which the package manifest allows) does not
    /// declare `SymmetricKey` Sendable. Making a `SymmetricKey` from 16 bytes is one small allocation, next to the AES
    /// and HMAC work it feeds.
    private struct Key: Sendable {
        private let signingBytes: [UInt8]
        private let encryptionBytes: [UInt8]

        init(secret: String) {
            let digest = Array(SHA256.hash(data: Array(secret.utf8)))
            signingBytes = Array(digest[0..<16])
            encryptionBytes = Array(digest[16..<32])
        }

        var signing: SymmetricKey { SymmetricKey(data: signingBytes) }
        var encryption: SymmetricKey { SymmetricKey(data: encryptionBytes) }
    }

    private static let version: UInt8 = 0x80
    private static let headerLength = 1 + 8 + 16  // version, timestamp, IV
    private static let macLength = 32
    private static let blockLength = 16

    /// The keys in configuration order; the first encrypts, any decrypts. Never empty.
    private let keys: [Key]

    /// Creates a Fernet from channels_redis-style key strings.
    ///
    /// - Parameter keys: The secrets, newest first, as given to channels_redis's `symmetric_encryption_keys`. Any
    ///   string works (it is hashed); the first one encrypts.
    /// - Throws: ``ChannelLayerError`` with code `.invalidConfiguration` if `keys` is empty.
    init(keys: [String]) throws(ChannelLayerError) {
        guard !keys.isEmpty else {
            throw ChannelLayerError(.invalidConfiguration, "symmetric encryption needs at least one key")
        }
        self.keys = keys.map(Key.init(secret:))
    }

    /// The Fernet key Python's channels_redis derives from `secret`: URL-safe base64 of its UTF-8 SHA-256.
    ///
    /// Only for cross-checking against Python; the layer never needs the text form.
    static func fernetKey(for secret: String) -> String {
        String(decoding: Base64URL.encode(Array(SHA256.hash(data: Array(secret.utf8)))), as: UTF8.self)
    }

    /// Encrypts `plaintext` with the first key, a random IV and the current time.
    ///
    /// - Parameter plaintext: The serialized message.
    /// - Returns: The token as ASCII bytes, exactly what Python's `MultiFernet.encrypt` would return.
    /// - Throws: ``ChannelLayerError`` with code `.encodingFailed` if encryption fails (it does not, with valid keys).
    func encrypt(_ plaintext: [UInt8]) throws(ChannelLayerError) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var iv = [UInt8](repeating: 0, count: 16)
        for index in iv.indices {
            iv[index] = generator.next()
        }
        // Python writes `int(time.time())`: whole seconds, truncated.
        let timestamp = UInt64(max(0, Date().timeIntervalSince1970))
        return try encrypt(plaintext, iv: iv, timestamp: timestamp)
    }

    /// Encrypts `plaintext` with the first key and the given IV and timestamp, so tests can produce exact tokens.
    ///
    /// - Parameters:
    ///   - plaintext: The serialized message.
    ///   - iv: 16 bytes; must be random and never reused in real use.
    ///   - timestamp: Seconds since 1970, written into the token.
    /// - Returns: The token as ASCII bytes.
    /// - Throws: ``ChannelLayerError`` with code `.encodingFailed` if `iv` is not 16 bytes or encryption fails.
    func encrypt(_ plaintext: [UInt8], iv: [UInt8], timestamp: UInt64) throws(ChannelLayerError) -> [UInt8] {
        let key = keys[0]
        let ciphertext: Data
        do {
            ciphertext = try AES._CBC.encrypt(plaintext, using: key.encryption, iv: AES._CBC.IV(ivBytes: iv))
        } catch {
            throw ChannelLayerError(.encodingFailed, "Fernet encryption failed", underlying: error)
        }
        var token = [UInt8]()
        token.reserveCapacity(Self.headerLength + ciphertext.count + Self.macLength)
        token.append(Self.version)
        for shift in stride(from: 56, through: 0, by: -8) {
            token.append(UInt8(truncatingIfNeeded: timestamp >> UInt64(shift)))
        }
        token.append(contentsOf: iv)
        token.append(contentsOf: ciphertext)
        token.append(contentsOf: HMAC<SHA256>.authenticationCode(for: token, using: key.signing))
        return Base64URL.encode(token)
    }

    /// Decrypts a token made by this type or by Python's `Fernet`/`MultiFernet` with any of the configured keys.
    ///
    /// The HMAC is checked (in constant time) before anything is decrypted, and the padding is only looked at under a
    /// key whose HMAC verified, so a tampered token reveals nothing. As in Python, the token must be canonical URL-safe
    /// base64 *with* padding, and its timestamp is not checked.
    ///
    /// - Parameter token: The token's ASCII bytes.
    /// - Returns: The plaintext.
    /// - Throws: ``ChannelLayerError`` with code `.decodingFailed` if the token is malformed or no key verifies it.
    func decrypt(_ token: UnsafeRawBufferPointer) throws(ChannelLayerError) -> [UInt8] {
        guard let data = Base64URL.decode(token) else {
            throw ChannelLayerError(.decodingFailed, "Fernet token is not padded URL-safe base64")
        }
        guard data.first == Self.version else {
            throw ChannelLayerError(.decodingFailed, "Fernet token does not start with version byte 0x80")
        }
        let ciphertextLength = data.count - Self.headerLength - Self.macLength
        // The length is public, so checking it before the HMAC leaks nothing. Python reaches the same verdict
        // (InvalidToken) later, after the HMAC or the AES step fails.
        guard ciphertextLength >= Self.blockLength, ciphertextLength % Self.blockLength == 0 else {
            throw ChannelLayerError(.decodingFailed, "Fernet token is truncated or malformed (\(data.count) bytes decoded)")
        }
        let plaintext: [UInt8]? = data.withUnsafeBytes { bytes in
            let signed = UnsafeRawBufferPointer(rebasing: bytes[..<(data.count - Self.macLength)])
            let mac = UnsafeRawBufferPointer(rebasing: bytes[(data.count - Self.macLength)...])
            let iv = UnsafeRawBufferPointer(rebasing: bytes[9..<Self.headerLength])
            let ciphertext = UnsafeRawBufferPointer(rebasing: bytes[Self.headerLength..<(data.count - Self.macLength)])
            for key in keys where HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: signed, using: key.signing) {
                // Like `MultiFernet`, a key whose HMAC verifies but whose padding does not is skipped, not fatal.
                guard let iv = try? AES._CBC.IV(ivBytes: iv),
                    let plaintext = try? AES._CBC.decrypt(ciphertext, using: key.encryption, iv: iv)
                else { continue }
                return Array(plaintext)
            }
            return nil
        }
        guard let plaintext else {
            throw ChannelLayerError(.decodingFailed, "Fernet token failed to verify with any configured key")
        }
        return plaintext
    }

    /// Decrypts a token held in an array, like the `UnsafeRawBufferPointer` variant.
    func decrypt(_ token: [UInt8]) throws(ChannelLayerError) -> [UInt8] {
        try token.withUnsafeBytes { bytes in Result { () throws(ChannelLayerError) in try decrypt(bytes) } }.get()
    }
}

/// URL-safe base64 (RFC 4648 §5) with `=` padding, as Python's `base64.urlsafe_b64encode` writes it.
///
/// Decoding is strict: only the URL-safe alphabet, length a multiple of 4, padding only at the end. That accepts every
/// token any Fernet implementation produces and rejects unpadded ones as Python does ("Incorrect padding"). Python's
/// decoder is laxer with garbage (it skips bytes outside the alphabet and stops at the first padding); such input never
/// comes from a Fernet encoder, and rejecting it changes nothing a peer could rely on.
private enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    private static let padding = UInt8(ascii: "=")
    private static let invalid: UInt8 = 0xFF

    /// The 6-bit value of each byte, or `invalid`.
    private static let values: [UInt8] = {
        var values = [UInt8](repeating: invalid, count: 256)
        for (value, character) in alphabet.enumerated() {
            values[Int(character)] = UInt8(value)
        }
        return values
    }()

    static func encode(_ bytes: [UInt8]) -> [UInt8] {
        var output = [UInt8]()
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= bytes.count {
            let group = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            output.append(alphabet[Int(group >> 18)])
            output.append(alphabet[Int((group >> 12) & 0x3F)])
            output.append(alphabet[Int((group >> 6) & 0x3F)])
            output.append(alphabet[Int(group & 0x3F)])
            index += 3
        }
        switch bytes.count - index {
        case 1:
            let group = UInt32(bytes[index]) << 16
            output.append(alphabet[Int(group >> 18)])
            output.append(alphabet[Int((group >> 12) & 0x3F)])
            output.append(padding)
            output.append(padding)
        case 2:
            let group = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            output.append(alphabet[Int(group >> 18)])
            output.append(alphabet[Int((group >> 12) & 0x3F)])
            output.append(alphabet[Int((group >> 6) & 0x3F)])
            output.append(padding)
        default:
            break
        }
        return output
    }

    /// The decoded bytes, or `nil` if `text` is not padded URL-safe base64.
    static func decode(_ text: UnsafeRawBufferPointer) -> [UInt8]? {
        guard text.count % 4 == 0 else { return nil }
        var paddingCount = 0
        if text.count >= 4 {
            if text[text.count - 1] == padding { paddingCount += 1 }
            if text[text.count - 2] == padding { paddingCount += 1 }
        }
        // "x===" is never valid: one character carries only 6 bits.
        let dataCount = text.count - paddingCount
        var output = [UInt8]()
        output.reserveCapacity(text.count / 4 * 3)
        return values.withUnsafeBufferPointer { values -> [UInt8]? in
            var accumulator: UInt32 = 0
            var bits = 0
            for index in 0..<dataCount {
                let value = values[Int(text[index])]
                if value == invalid { return nil }
                accumulator = (accumulator << 6) | UInt32(value)
                bits += 6
                if bits >= 8 {
                    bits -= 8
                    output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                }
            }
            // Leftover bits in the last character are ignored, as Python ignores them ("QUJ=" decodes like "QUI=").
            return output
        }
    }
}
