import CHiredis
import CHiredisIO
import Testing

/// The layer's own hiredis reply objects (CHiredisIO's pooled functions) must be exactly what
/// hiredis's default functions build: hiredis and the layer read them through `redisReply`.
@Suite("hiredis glue: pooled reply objects")
struct HiredisIOTests {
    /// RESP replies of every kind: the pool's small and large strings (the cut is 128 bytes), small
    /// and large arrays (the cut is 4 elements), nesting, nil, empty, integers, status and error.
    static let corpus: [String] = [
        "*3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$5\r\nhello\r\n",
        ":1\r\n",
        ":-9223372036854775808\r\n",
        "+OK\r\n",
        "-ERR unknown command\r\n",
        "$-1\r\n",
        "*-1\r\n",
        "*0\r\n",
        "$0\r\n\r\n",
        "$127\r\n" + String(repeating: "a", count: 127) + "\r\n",
        "$128\r\n" + String(repeating: "b", count: 128) + "\r\n",
        "$4000\r\n" + String(repeating: "c", count: 4000) + "\r\n",
        "*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n",
        "*5\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n",
        "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n",
        "*2\r\n*3\r\n$1\r\nx\r\n$-1\r\n*0\r\n*6\r\n+s\r\n-e\r\n:7\r\n$300\r\n" + String(repeating: "d", count: 300)
            + "\r\n*1\r\n*1\r\n$1\r\ny\r\n$-1\r\n",
    ]

    @Test func repliesMatchHiredisDefaultsWhateverTheSlicing() throws {
        let stream = Array(Self.corpus.joined().utf8)
        let expected = try parse(stream, pooled: false, slice: stream.count)
        #expect(expected.count == Self.corpus.count)
        for slice in [1, 2, 3, 7, 64, stream.count] {
            #expect(try parse(stream, pooled: true, slice: slice) == expected, "fed \(slice) bytes at a time")
        }
        chr_io_release_reply_pool()
    }

    @Test func aProtocolErrorInsideAnArrayFreesThePartialReply() throws {
        // A half-parsed array is abandoned by the reader and freed through our freeObject; under
        // --sanitize=address a wrong free or a leak fails the run.
        let stream = Array("*3\r\n$5\r\nhello\r\n$300\r\n\(String(repeating: "z", count: 300))\r\n!bogus\r\n".utf8)
        for pooled in [false, true] {
            #expect(throws: ReaderError.self) { try parse(stream, pooled: pooled, slice: 5) }
        }
        chr_io_release_reply_pool()
    }

    // MARK: Helpers

    struct ReaderError: Error {
        var message: String
    }

    /// Every complete reply of `bytes`, described, fed `slice` bytes at a time.
    private func parse(_ bytes: [UInt8], pooled: Bool, slice: Int) throws(ReaderError) -> [String] {
        let reader: UnsafeMutablePointer<redisReader> = pooled ? redisReaderCreateWithFunctions(chr_io_reply_functions()) : redisReaderCreate()
        defer { redisReaderFree(reader) }
        var replies: [String] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + slice, bytes.count)
            bytes[offset..<end].withUnsafeBufferPointer { chunk in
                chunk.withMemoryRebound(to: CChar.self) { _ = redisReaderFeed(reader, $0.baseAddress, $0.count) }
            }
            offset = end
            while true {
                var reply: UnsafeMutableRawPointer?
                guard redisReaderGetReply(reader, &reply) == REDIS_OK else {
                    throw ReaderError(message: withUnsafeBytes(of: reader.pointee.errstr) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
                }
                guard let reply else { break }
                replies.append(describe(reply.assumingMemoryBound(to: redisReply.self)))
                reader.pointee.fn.pointee.freeObject(reply)
            }
        }
        return replies
    }

    private func describe(_ reply: UnsafeMutablePointer<redisReply>?) -> String {
        guard let reply else { return "<missing>" }
        let value = reply.pointee
        switch value.type {
        case REDIS_REPLY_STRING, REDIS_REPLY_STATUS, REDIS_REPLY_ERROR:
            let bytes = UnsafeRawBufferPointer(start: value.str, count: value.len)
            let terminated = value.str.map { $0[value.len] == 0 } ?? false
            return "\(value.type):\(value.len):\(String(decoding: bytes, as: UTF8.self)):\(terminated)"
        case REDIS_REPLY_INTEGER:
            return "int:\(value.integer)"
        case REDIS_REPLY_NIL:
            return "nil"
        case REDIS_REPLY_ARRAY:
            let elements = (0..<value.elements).map { describe(value.element[$0]) }
            return "[\(elements.joined(separator: ","))]"
        default:
            return "type \(value.type)"
        }
    }
}
