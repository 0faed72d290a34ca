import CHiredisIO
import Testing

@testable import ChannelsRedis

/// The server-free pieces of cluster routing: the sharded frames the fast path takes past hiredis, redirects, the
/// queue that matches SSUBSCRIBE replies to commands, and the configuration's cluster checks.
@Suite struct ClusterRoutingTests {
    enum Classified: Equatable {
        case other
        case message(channel: String, payload: String)
        case subscribe(channel: String, count: Int64)
        case unsubscribe(channel: String, count: Int64)
        case error(String)
    }

    static func classify(_ text: String) -> Classified {
        let bytes = Array(text.utf8)
        var frame = chr_io_shard_frame()
        bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chr_io_classify_shard_frame($0.baseAddress, $0.count, &frame) }
        }
        func slice(_ offset: Int, _ length: Int) -> String { String(decoding: bytes[offset..<offset + length], as: UTF8.self) }
        switch frame.kind {
        case CHR_IO_SHARD_MESSAGE:
            return .message(channel: slice(frame.channel_offset, frame.channel_length), payload: slice(frame.payload_offset, frame.payload_length))
        case CHR_IO_SHARD_SUBSCRIBE: return .subscribe(channel: slice(frame.channel_offset, frame.channel_length), count: frame.count)
        case CHR_IO_SHARD_UNSUBSCRIBE: return .unsubscribe(channel: slice(frame.channel_offset, frame.channel_length), count: frame.count)
        case CHR_IO_SHARD_ERROR: return .error(slice(frame.channel_offset, frame.channel_length))
        default: return .other
        }
    }

    @Test func classifiesTheFramesRedisSendsForShardedPubSub() {
        #expect(Self.classify("*3\r\n$8\r\nsmessage\r\n$4\r\nroom\r\n$5\r\nhello\r\n") == .message(channel: "room", payload: "hello"))
        #expect(Self.classify("*3\r\n$8\r\nsmessage\r\n$0\r\n\r\n$0\r\n\r\n") == .message(channel: "", payload: ""))
        #expect(Self.classify("*3\r\n$10\r\nssubscribe\r\n$4\r\nroom\r\n:1\r\n") == .subscribe(channel: "room", count: 1))
        #expect(Self.classify("*3\r\n$12\r\nsunsubscribe\r\n$4\r\nroom\r\n:0\r\n") == .unsubscribe(channel: "room", count: 0))
        #expect(Self.classify("-MOVED 3999 127.0.0.1:7002\r\n") == .error("MOVED 3999 127.0.0.1:7002"))
        #expect(
            Self.classify("-CROSSSLOT Keys in request don't hash to the same slot\r\n")
                == .error("CROSSSLOT Keys in request don't hash to the same slot")
        )
    }

    @Test(arguments: [
        "*3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$5\r\nhello\r\n",  // plain pub/sub: the fast path's other branch
        "*3\r\n$9\r\nsubscribe\r\n$4\r\nroom\r\n:1\r\n",
        "*3\r\n$8\r\nsmessage\r\n$4\r\nroom\r\n:5\r\n",  // a payload that is not a bulk string
        "*3\r\n$10\r\nssubscribe\r\n$4\r\nroom\r\n$1\r\n1\r\n",  // a count that is not an integer
        "*4\r\n$8\r\nsmessage\r\n$4\r\nroom\r\n$1\r\nx\r\n$1\r\ny\r\n",
        "*3\r\n$8\r\nSMESSAGE\r\n$4\r\nroom\r\n$1\r\nx\r\n",
        "+OK\r\n", ":1\r\n", "$5\r\nhello\r\n", "*0\r\n",
    ])
    func leavesEveryOtherFrameToHiredis(_ frame: String) {
        #expect(Self.classify(frame) == .other)
    }

    @Test func readsRedirects() {
        let moved = ClusterRedirect("MOVED 3999 127.0.0.1:7002")
        #expect(moved?.isMoved == true && moved?.slot == 3999 && moved?.address == .hostname("127.0.0.1", port: 7002))
        let ask = ClusterRedirect("ASK 0 Node.Local:6379")
        #expect(ask?.isMoved == false && ask?.slot == 0 && ask?.address == .hostname("node.local", port: 6379))
        #expect(ClusterRedirect("MOVED 1 [::1]:7000")?.address == .hostname("::1", port: 7000))
        for text in ["MOVED", "MOVED 16384 h:1", "MOVED 1 h", "MOVED 1 h:0", "ERR MOVED 1 h:1", "CROSSSLOT Keys", "MOVED x h:1"] {
            #expect(ClusterRedirect(text) == nil, "\(text)")
        }
    }

    @Test func theCommandQueueMatchesConfirmationsAndErrorsToCommands() {
        var queue = ShardedCommandQueue()
        queue.sent(subscribe: true, channels: ["a", "b"], generation: 1)
        queue.sent(subscribe: false, channels: ["c"], generation: 1)
        queue.sent(subscribe: true, channels: ["d"], generation: 1)
        let first = queue.confirmed("b", subscribe: true, generation: 1)
        let serverPush = queue.confirmed("c", subscribe: false, generation: 1)
        let second = queue.confirmed("a", subscribe: true, generation: 1)
        let third = queue.confirmed("c", subscribe: false, generation: 1)
        #expect(first && second && third)
        #expect(!serverPush, "c's SUNSUBSCRIBE is not the front command yet: a push then is the server's own")
        let refused = queue.refused(generation: 1)
        #expect(refused == ShardedCommandQueue.Command(subscribe: true, pending: ["d"]))
        let none = queue.refused(generation: 1)
        #expect(none == nil)
        queue.sent(subscribe: true, channels: ["e"], generation: 1)
        let afterReconnect = queue.refused(generation: 2)
        #expect(afterReconnect == nil, "a new connection starts empty")
    }

    @Test func aClusterURLIsTheOnlyHostAndTheOtherSettingsAreStillChecked() throws {
        let cluster = try RedisPubSubChannelLayer.Configuration(hosts: ["redis-cluster://127.0.0.1:7000,127.0.0.1:7001"]).validatedCluster()
        #expect(cluster?.seeds.count == 2)
        #expect(try RedisPubSubChannelLayer.Configuration(hosts: ["redis://127.0.0.1"]).validatedCluster() == nil)
        #expect(throws: ChannelLayerError.self) {
            try RedisPubSubChannelLayer.Configuration(hosts: ["redis-cluster://127.0.0.1:7000", "redis://127.0.0.1"]).validatedCluster()
        }
        #expect(throws: ChannelLayerError.self) {
            try RedisPubSubChannelLayer.Configuration(hosts: ["redis-cluster://127.0.0.1:7000"], capacity: 0).validatedCluster()
        }
        #expect(throws: ChannelLayerError.self) {
            try RedisPubSubChannelLayer(configuration: .init(hosts: ["redis-cluster://127.0.0.1:7000/3"]))
        }
    }
}
