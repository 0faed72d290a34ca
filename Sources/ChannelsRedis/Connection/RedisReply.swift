internal import CHiredis

#if canImport(Glibc)
    import Glibc
#endif

/// Reading hiredis replies. They live only during the callback: copy what you keep.
enum RedisReply {
    static func bytes(_ reply: UnsafePointer<redisReply>) -> UnsafeRawBufferPointer {
        guard let start = reply.pointee.str else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        // `len`, not strlen: payloads are binary.
        return UnsafeRawBufferPointer(start: start, count: reply.pointee.len)
    }

    static func text(_ reply: UnsafePointer<redisReply>) -> String? {
        guard reply.pointee.str != nil else { return nil }
        return String(decoding: bytes(reply), as: UTF8.self)
    }

    /// Per-message comparisons use these: no `String` is touched.
    static func equals(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        equals(bytes, UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    static func equals(_ bytes: UnsafeRawBufferPointer, _ other: UnsafeRawBufferPointer) -> Bool {
        bytes.count == other.count && (bytes.isEmpty || memcmp(bytes.baseAddress!, other.baseAddress!, bytes.count) == 0)
    }
}
