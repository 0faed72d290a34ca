// libFuzzer target for Fernet decryption (Sources/ChannelsRedis/Serialization/Fernet.swift): with
// symmetric_encryption_keys set, every payload from Redis goes through `Fernet.decrypt` first.
//
// The first byte picks what the rest is, so that the fuzzer also reaches what lies behind the
// HMAC, which random bytes never pass:
//   0  a token as it comes off the wire (base64, version, length checks, HMAC);
//   1  IV and ciphertext of a token this target signs with the right key, so AES-CBC and the
//      PKCS7 padding check see arbitrary blocks; a plaintext that comes out must encrypt back to
//      the very same token (CBC with valid padding is one to one);
//   2  a plaintext, encrypted with the old key of a rotation and decrypted with [new, old]; a
//      Fernet with only the new key must refuse it;
//   3  a plaintext, encrypted, then one bit of the decoded token flipped: decryption must fail.
// Any error but `.decodingFailed` stops it too. Built with -parse-as-library (libFuzzer brings
// main) and -enable-testing (Fernet is internal). Run by .ci/fuzz.

import Crypto

@testable import ChannelsRedis

private let newSecret = "fuzz-key-new"
private let oldSecret = "fuzz-key-old"
private let rotation = try! Fernet(keys: [newSecret, oldSecret])
private let newOnly = try! Fernet(keys: [newSecret])
private let oldOnly = try! Fernet(keys: [oldSecret])
/// The signing half of the new key, as channels_redis derives it: the first 16 bytes of SHA-256.
/// (Bytes: swift-crypto 3's SymmetricKey is not Sendable, and this is a global.)
private let signingBytes = Array(Array(SHA256.hash(data: Array(newSecret.utf8)))[0..<16])
private let timestamp: UInt64 = 1_700_000_000

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFernetDecryption(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = Array(UnsafeRawBufferPointer(start: start, count: count))
    guard let mode = input.first else { return 0 }
    let rest = Array(input.dropFirst())
    switch mode % 4 {
    case 0:
        _ = decrypt(rest, with: rotation)
    case 1:
        forged(rest)
    case 2:
        let token = encrypt(rest, with: oldOnly, iv: iv(from: input))
        precondition(decrypt(token, with: rotation) == rest, "the rotation's old key does not decrypt")
        precondition(decrypt(token, with: newOnly) == nil, "a token of another key decrypted")
    default:
        let token = encrypt(rest, with: newOnly, iv: iv(from: input))
        precondition(decrypt(token, with: newOnly) == rest, "a token does not decrypt to its plaintext")
        guard var raw = base64URLDecode(token) else { preconditionFailure("a token is not base64url") }
        let bit = input.reduce(0) { ($0 &* 31 &+ Int($1)) & 0x7FFF_FFFF } % (raw.count * 8)
        raw[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
        precondition(decrypt(base64URLEncode(raw), with: newOnly) == nil, "a token with bit \(bit) flipped decrypted")
    }
    return 0
}

/// Signs IV ‖ ciphertext from `body` (whole blocks, at least one) with the new key.
private func forged(_ body: [UInt8]) {
    var iv = Array(body.prefix(16))
    iv += [UInt8](repeating: 0, count: 16 - iv.count)
    var ciphertext = Array(body.dropFirst(16))
    ciphertext.removeLast(ciphertext.count % 16)
    if ciphertext.isEmpty { ciphertext = [UInt8](repeating: 0, count: 16) }
    var raw: [UInt8] = [0x80]
    for shift in stride(from: 56, through: 0, by: -8) { raw.append(UInt8(truncatingIfNeeded: timestamp >> UInt64(shift))) }
    raw += iv + ciphertext
    raw += HMAC<SHA256>.authenticationCode(for: raw, using: SymmetricKey(data: signingBytes))
    let token = base64URLEncode(raw)
    guard let plaintext = decrypt(token, with: rotation) else { return }
    precondition(plaintext.count < ciphertext.count && plaintext.count >= ciphertext.count - 16, "PKCS7 removed the wrong amount")
    precondition(encrypt(plaintext, with: newOnly, iv: iv) == token, "decrypt and encrypt disagree")
}

private func iv(from input: [UInt8]) -> [UInt8] {
    (0..<16).map { index in input.isEmpty ? 0 : input[index % input.count] &+ UInt8(index) }
}

private func encrypt(_ plaintext: [UInt8], with fernet: Fernet, iv: [UInt8]) -> [UInt8] {
    do {
        return try fernet.encrypt(plaintext, iv: iv, timestamp: timestamp)
    } catch {
        preconditionFailure("encryption failed: \(error)")
    }
}

/// The plaintext, or nil when decryption failed as it must (`.decodingFailed`).
private func decrypt(_ token: [UInt8], with fernet: Fernet) -> [UInt8]? {
    do {
        return try fernet.decrypt(token)
    } catch {
        precondition(error.code == .decodingFailed, "decryption threw \(error.code), not decodingFailed: \(error)")
        return nil
    }
}

// MARK: Base64url with padding (Fernet's own is private)

private let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

private func base64URLEncode(_ bytes: [UInt8]) -> [UInt8] {
    var output: [UInt8] = []
    var index = 0
    while index < bytes.count {
        let chunk = bytes[index..<min(index + 3, bytes.count)]
        var group = UInt32(0)
        for (offset, byte) in chunk.enumerated() { group |= UInt32(byte) << UInt32(16 - 8 * offset) }
        for position in 0..<4 {
            output.append(position <= chunk.count ? alphabet[Int((group >> UInt32(18 - 6 * position)) & 0x3F)] : UInt8(ascii: "="))
        }
        index += 3
    }
    return output
}

private func base64URLDecode(_ text: [UInt8]) -> [UInt8]? {
    var output: [UInt8] = []
    var accumulator = UInt32(0)
    var bits = 0
    for character in text where character != UInt8(ascii: "=") {
        guard let value = alphabet.firstIndex(of: character) else { return nil }
        accumulator = (accumulator << 6) | UInt32(value)
        bits += 6
        if bits >= 8 {
            bits -= 8
            output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
        }
    }
    return output
}
