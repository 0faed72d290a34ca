import CHiredis
import CHiredisIO
import Testing

/// The RESP2 frame scanner of the subscriber's fast path (CHiredisIO's resp_scanner.c, through
/// `chr_io_scan_frame`). It reads untrusted server bytes on every frame, so every verdict is
/// checked here without a server, including frames cut at every byte, as the network cuts them.
@Suite("hiredis glue: RESP2 frame scanner")
struct RESPScannerTests {
    /// What the scanner said about the start of a buffer.
    enum Scan: Equatable, CustomStringConvertible {
        case complete(length: Int)
        case message(length: Int, channel: [UInt8], payload: [UInt8])
        case incomplete
        case malformed

        var description: String {
            switch self {
            case .complete(let length): "complete(\(length))"
            case .message(let length, let channel, let payload):
                "message(\(length), \(String(decoding: channel, as: UTF8.self)), \(payload.count) bytes)"
            case .incomplete: "incomplete"
            case .malformed: "malformed"
            }
        }
    }

    /// Frames the server sends, each complete on its own: every kind of RESP2 value, nesting, nil,
    /// empty, binary bulk strings that hold CR and LF, and the pushes a subscriber sees.
    static let frames: [String] = [
        "+OK\r\n",
        "+\r\n",
        "-ERR unknown command 'FOO'\r\n",
        "-\r\n",
        ":0\r\n",
        ":1\r\n",
        ":-42\r\n",
        ":999999999999999999\r\n",
        "$-1\r\n",
        "*-1\r\n",
        "*0\r\n",
        "$0\r\n\r\n",
        "$5\r\nhello\r\n",
        "$4\r\n\r\n\r\n\r\n",
        "$2\r\n$3\r\n",
        "*2\r\n$-1\r\n*-1\r\n",
        "*3\r\n$9\r\nsubscribe\r\n$4\r\nroom\r\n:1\r\n",
        "*3\r\n$11\r\nunsubscribe\r\n$4\r\nroom\r\n:0\r\n",
        "*4\r\n$8\r\npmessage\r\n$2\r\nr*\r\n$2\r\nra\r\n$1\r\nx\r\n",
        "*2\r\n*3\r\n$1\r\nx\r\n$-1\r\n*0\r\n*6\r\n+s\r\n-e\r\n:7\r\n$3\r\nabc\r\n*1\r\n*1\r\n$1\r\ny\r\n$-1\r\n",
        "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
        // Not message pushes, though they start like one.
        "*3\r\n$7\r\nmessage\r\n$-1\r\n$1\r\nx\r\n",
        "*3\r\n$7\r\nmessage\r\n$1\r\nx\r\n:1\r\n",
        "*3\r\n$7\r\nmessage\r\n*0\r\n$1\r\nx\r\n",
        "*3\r\n$7\r\nMESSAGE\r\n$1\r\nr\r\n$1\r\nx\r\n",
        "*3\r\n+message\r\n$1\r\nr\r\n$1\r\nx\r\n",
        "*4\r\n$7\r\nmessage\r\n$1\r\nr\r\n$1\r\nx\r\n$1\r\ny\r\n",
        "*2\r\n$7\r\nmessage\r\n$1\r\nr\r\n",
    ]

    /// Message pushes: (channel, payload), binary payloads included.
    static let messages: [([UInt8], [UInt8])] = [
        (Array("asgi__group__chat_lobby".utf8), Array("\u{82}\u{a4}type".utf8)),
        (Array("room".utf8), Array("hello".utf8)),
        ([], []),
        (Array("r".utf8), Array("\r\n$5\r\n*3\r\n".utf8)),
        (Array("asgispecific.3f2a".utf8), (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 7) }),
        (Array("big".utf8), [UInt8](repeating: 0x0D, count: 70_000)),
    ]

    static func messageFrame(channel: [UInt8], payload: [UInt8]) -> [UInt8] {
        Array("*3\r\n$7\r\nmessage\r\n$\(channel.count)\r\n".utf8) + channel + Array("\r\n$\(payload.count)\r\n".utf8) + payload
            + Array("\r\n".utf8)
    }

    // MARK: Complete frames

    @Test func everyKindOfFrameIsCompleteAtItsExactLength() {
        for frame in Self.frames.map({ Array($0.utf8) }) {
            #expect(scan(frame) == .complete(length: frame.count), "\(String(decoding: frame, as: UTF8.self).debugDescription)")
            // What follows a frame is the next frame's business.
            for trailer in ["+OK\r\n", "*3\r\n$7\r\nmess", "garbage"] {
                #expect(scan(frame + Array(trailer.utf8)) == .complete(length: frame.count))
            }
        }
    }

    @Test func messagePushesGiveTheirChannelAndPayload() {
        for (channel, payload) in Self.messages {
            let frame = Self.messageFrame(channel: channel, payload: payload)
            let expected = Scan.message(length: frame.count, channel: channel, payload: payload)
            #expect(scan(frame) == expected)
            #expect(scan(frame + Self.messageFrame(channel: Array("next".utf8), payload: [1, 2])) == expected)
        }
    }

    /// hiredis's reader takes exactly the bytes the scanner calls a frame (the fast path feeds it
    /// frame by frame and relies on it holding no part of one afterwards). All frames but the one
    /// nested 9 deep: hiredis refuses more than 7 levels (it gets that frame whole, and disconnects).
    @Test func hiredisTakesExactlyTheFrameTheScannerFinds() throws {
        let frames =
            Self.frames.map { Array($0.utf8) }.filter { !$0.starts(with: Array("*1\r\n*1\r\n*1\r\n*1\r\n".utf8)) }
            + Self.messages.map { Self.messageFrame(channel: $0.0, payload: $0.1) }
        for frame in frames {
            let reader: UnsafeMutablePointer<redisReader> = redisReaderCreate()
            defer { redisReaderFree(reader) }
            frame.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { _ = redisReaderFeed(reader, $0.baseAddress, $0.count) }
            }
            var reply: UnsafeMutableRawPointer?
            #expect(redisReaderGetReply(reader, &reply) == REDIS_OK)
            #expect(reply != nil, "\(String(decoding: frame, as: UTF8.self).debugDescription)")
            #expect(reader.pointee.len - reader.pointee.pos == 0, "hiredis left bytes of the frame unread")
            if let reply { freeReplyObject(reply) }
        }
    }

    // MARK: Cut anywhere

    @Test func aFrameCutAtAnyByteIsIncompleteUntilItsLastByte() {
        let frames = Self.frames.map { Array($0.utf8) } + Self.messages.prefix(5).map { Self.messageFrame(channel: $0.0, payload: $0.1) }
        for frame in frames {
            for cut in 0..<frame.count {
                #expect(scan(Array(frame[..<cut])) == .incomplete, "\(String(decoding: frame, as: UTF8.self).debugDescription) cut at \(cut)")
            }
        }
        // The 70,000-byte payload: a prefix every 997 bytes, and around the end.
        let big = Self.messageFrame(channel: Self.messages[5].0, payload: Self.messages[5].1)
        for cut in Array(stride(from: 0, to: big.count, by: 997)) + Array((big.count - 4)..<big.count) {
            #expect(scan(Array(big[..<cut])) == .incomplete, "cut at \(cut)")
        }
    }

    /// The fast path's loop, with every split of a stream into two reads: it must find the same
    /// frames, in order, wherever the split falls.
    @Test func aStreamSplitAnywhereYieldsTheSameFrames() {
        let parts: [[UInt8]] =
            [Array(Self.frames[16].utf8)] + Self.messages.prefix(4).map { Self.messageFrame(channel: $0.0, payload: $0.1) }
            + [Array(Self.frames[19].utf8), Array(Self.frames[0].utf8)]
        let stream = parts.flatMap { $0 }
        let whole = frames(of: [stream])
        #expect(whole.count == parts.count)
        for split in 0...stream.count {
            #expect(frames(of: [Array(stream[..<split]), Array(stream[split...])]) == whole, "split at \(split)")
        }
    }

    // MARK: Malformed or not yet known

    @Test func emptyInputIsIncomplete() {
        var frame = chr_io_frame(length: 99, is_message: 1, channel_offset: 1, channel_length: 1, payload_offset: 1, payload_length: 1)
        #expect(chr_io_scan_frame(nil, 0, &frame) == CHR_IO_SCAN_INCOMPLETE)
        #expect(frame.length == 0 && frame.is_message == 0 && frame.payload_length == 0)
    }

    @Test(arguments: ["$-2\r\n", "*-2\r\n", "$-9\r\n", "*-1000\r\n", "$-999999999999999999\r\n", "*1\r\n$-5\r\n"])
    func negativeLengthsOtherThanMinusOneAreMalformed(_ frame: String) {
        #expect(scan(Array(frame.utf8)) == .malformed)
    }

    @Test(arguments: [
        "$\r\n", "*\r\n", "$-\r\n", "$a\r\n", "$1a\r\n", "$ 1\r\n", "$+1\r\n", "*1x\r\n", "*0x10\r\n", ":\r\n", ":1.5\r\n", ":abc\r\n",
        "*3\r\n$7\r\nmessage\r\n$x\r\n",
    ])
    func nonDigitLengthsAreMalformed(_ frame: String) {
        #expect(scan(Array(frame.utf8)) == .malformed)
    }

    @Test(arguments: [
        "+OK\rX\r\n", "-ERR\r\r\n", ":1\rx", "$3\r\nabcXY", "$3\r\nabc\rX", "$3\r\nabcd\r\n", "*1\r\n$1\r\nab\r\n",
        "*3\r\n$7\r\nmessage\r\n$1\r\nrX$1\r\nx\r\n", "*3\r\n$7\r\nmessage\r\n$1\r\nr\r\n$1\r\nxy\r\n",
    ])
    func aMissingCRLFIsMalformed(_ frame: String) {
        #expect(scan(Array(frame.utf8)) == .malformed)
    }

    @Test(arguments: ["!x\r\n", "x\r\n", "%1\r\n", "_\r\n", "\r\n", "*1\r\n?\r\n", "*2\r\n:1\r\n#t\r\n"])
    func anUnknownTypeByteIsMalformed(_ frame: String) {
        #expect(scan(Array(frame.utf8)) == .malformed)
    }

    @Test(arguments: ["+OK", "+OK\r", "$3\r\nabc", "$3\r\nabc\r", "$3\r\n", "$3", "*2\r\n:1\r\n", "*3\r\n$7\r\nmess"])
    func aValidStartIsIncomplete(_ frame: String) {
        #expect(scan(Array(frame.utf8)) == .incomplete)
    }

    /// A bulk length the server may announce before the bytes (up to 18 digits) makes a frame wait
    /// for them: nothing is allocated for it, and no sum of lengths overflows. An array count over
    /// INT_MAX is malformed, as hiredis finds it, rather than a frame waiting for its elements.
    @Test func hugeLengthsAreIncompleteAndNeverOverflow() {
        let most = "999999999999999999"  // 18 digits, the scanner's longest
        let mostElements = String(Int32.max)
        for frame in ["$\(most)\r\n", "$\(most)\r\nabc", "*\(mostElements)\r\n", "*\(mostElements)\r\n:1\r\n", "*2\r\n$\(most)\r\nx"] {
            #expect(scan(Array(frame.utf8)) == .incomplete, "\(frame.debugDescription)")
        }
        // Nested arrays whose counts add up past Int32.max many times over: still waiting.
        for depth in [3, 7, 100] {
            let nested = String(repeating: "*\(mostElements)\r\n", count: depth)
            #expect(scan(Array(nested.utf8)) == .incomplete, "\(depth) nested arrays")
            #expect(scan(Array((nested + ":1\r\n$3\r\nabc\r\n").utf8)) == .incomplete, "\(depth) nested arrays and some elements")
        }
        // An array count past INT_MAX (hiredis: "Multi-bulk length out of range"), also nested,
        // and numbers longer than 18 digits: hiredis gets them and parses or refuses them.
        for frame in ["*2147483648\r\n", "*\(most)\r\n", "*1\r\n*\(most)\r\n", "$9999999999999999999\r\n",
                      "*12345678901234567890\r\n", ":9223372036854775807\r\n"] {
            #expect(scan(Array(frame.utf8)) == .malformed, "\(frame.debugDescription)")
        }
    }

    // MARK: Helpers

    /// Scans `bytes` from an allocation of exactly their size, so that a read past the end fails
    /// under --sanitize=address.
    private func scan(_ bytes: [UInt8]) -> Scan {
        let copy = UnsafeMutableBufferPointer<CChar>.allocate(capacity: max(bytes.count, 1))
        defer { copy.deallocate() }
        for (index, byte) in bytes.enumerated() { copy[index] = CChar(bitPattern: byte) }
        var frame = chr_io_frame()
        let status = chr_io_scan_frame(bytes.isEmpty ? nil : copy.baseAddress, bytes.count, &frame)
        switch status {
        case CHR_IO_SCAN_INCOMPLETE:
            #expect(frame.length == 0)
            return .incomplete
        case CHR_IO_SCAN_MALFORMED:
            #expect(frame.length == 0)
            return .malformed
        case CHR_IO_SCAN_COMPLETE:
            #expect(frame.length > 0 && frame.length <= bytes.count)
            guard frame.is_message != 0 else { return .complete(length: frame.length) }
            #expect(frame.channel_offset + frame.channel_length <= frame.payload_offset)
            #expect(frame.payload_offset + frame.payload_length <= frame.length)
            return .message(
                length: frame.length,
                channel: Array(bytes[frame.channel_offset..<(frame.channel_offset + frame.channel_length)]),
                payload: Array(bytes[frame.payload_offset..<(frame.payload_offset + frame.payload_length)])
            )
        default:
            Issue.record("unknown status \(status.rawValue)")
            return .malformed
        }
    }

    /// The frames the fast path finds in `reads`, one after another: what a frame cut by the end of
    /// a read leaves waits for the next read (message_fast_path.c's partial buffer).
    private func frames(of reads: [[UInt8]]) -> [Scan] {
        var found: [Scan] = []
        var pending: [UInt8] = []
        for read in reads {
            pending += read
            var offset = 0
            scanning: while offset < pending.count {
                let result = scan(Array(pending[offset...]))
                switch result {
                case .complete(let length), .message(let length, _, _):
                    found.append(result)
                    offset += length
                case .incomplete:
                    break scanning
                case .malformed:
                    found.append(result)
                    offset = pending.count
                }
            }
            pending.removeFirst(offset)
        }
        if !pending.isEmpty { found.append(.incomplete) }
        return found
    }
}
