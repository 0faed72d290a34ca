import Testing

@testable import ChannelsRedis

/// What only the in-memory layer does; the behaviour it shares with the Redis layer is checked
/// against both by the integration target's conformance suite.
@Suite("In-memory channel layer", .timeLimit(.minutes(1)))
struct InMemoryChannelLayerTests {
    private static func code(of operation: () throws -> Void) -> ChannelLayerError.Code? {
        do {
            try operation()
        } catch let error as ChannelLayerError {
            return error.code
        } catch {}
        return nil
    }

    @Test func defaultsMatchTheRedisLayers() {
        let layer = InMemoryChannelLayer()
        let redis = RedisPubSubChannelLayer.Configuration()
        #expect(layer.configuration.prefix == redis.prefix)
        #expect(layer.configuration.capacity == redis.capacity)
        #expect(layer.statistics == .init(published: 0, delivered: 0, droppedMessages: 0))
    }

    @Test func configurationIsValidatedAsTheRedisLayersIs() {
        for configuration in [
            InMemoryChannelLayer.Configuration(capacity: 0),
            InMemoryChannelLayer.Configuration(capacity: -1),
            InMemoryChannelLayer.Configuration(prefix: "has space"),
            InMemoryChannelLayer.Configuration(prefix: "é"),
            InMemoryChannelLayer.Configuration(prefix: "tab\t"),
        ] {
            #expect(Self.code { _ = try InMemoryChannelLayer(configuration: configuration) } == .invalidConfiguration)
        }
        #expect(Self.code { _ = try InMemoryChannelLayer(configuration: .init(prefix: "", capacity: 1)) } == nil)
    }

    @Test func theConfiguredPrefixNamesNewChannels() async throws {
        let layer = try InMemoryChannelLayer(configuration: .init(prefix: "test"))
        #expect(try await layer.newChannel(prefix: "chat.").hasPrefix("testchat."))
        #expect(try await layer.newChannel().hasPrefix("testspecific."))
    }

    @Test func groupSendCountsMemberChannels() async throws {
        let layer = InMemoryChannelLayer()
        var members: [String] = []
        for _ in 0..<5 {
            let channel = try await layer.newChannel()
            try await layer.groupAdd("room", channel: channel)
            members.append(channel)
        }
        #expect(try await layer.groupSend(["type": "one"], to: "room") == 5)
        try await layer.groupDiscard("room", channel: members[0])
        try await layer.discard(channel: members[1])
        #expect(try await layer.groupSend(["type": "two"], to: "room") == 3)
        #expect(try await layer.groupSend(contentsOf: [["type": "a"], ["type": "b"]], to: "room") == 6)
        #expect(try await layer.receive(from: members[0])["type"] == "one")
        for member in members[2...] {
            for expected in ["one", "two", "a", "b"] { #expect(try await layer.receive(from: member)["type"]?.stringValue == expected) }
        }
        try await layer.flush()
        #expect(try await layer.groupSend(["type": "three"], to: "room") == 0)
    }

    @Test func changesTakeEffectBeforeTheCallReturns() async throws {
        // No background unsubscribe as with Redis: counts are exact the moment a call returns.
        let layer = InMemoryChannelLayer()
        let channel = try await layer.newChannel()
        try await layer.groupAdd("room", channel: channel)
        #expect(try await layer.send(["type": "x"], to: channel) == 1)
        #expect(layer.statistics.delivered == 1)
        try await layer.discard(channel: channel)
        #expect(try await layer.send(["type": "x"], to: channel) == 0)
        #expect(try await layer.groupSend(["type": "x"], to: "room") == 0)
        #expect(layer.statistics == .init(published: 3, delivered: 1, droppedMessages: 0))
    }

    @Test func batchSendsArriveInOrderAndCountEachMessage() async throws {
        let layer = try InMemoryChannelLayer(configuration: .init(capacity: 4))
        let channel = try await layer.newChannel()
        #expect(try await layer.send(contentsOf: (0..<6).map { ["n": .int(Int64($0))] as ChannelMessage }, to: channel) == 6)
        #expect(try await layer.send(contentsOf: [["n": 0]], to: "asgispecific.nobody") == 0)
        #expect(layer.statistics == .init(published: 7, delivered: 6, droppedMessages: 2))
        for index in 2..<6 { #expect(try await layer.receive(from: channel)["n"]?.intValue == index) }
    }

    @Test func messagesAreHandedOverAsTheyAreNotSerialized() async throws {
        // Values the Redis layer's codecs would change or refuse: `.uint` that fits Int64 comes
        // back from msgpack as `.int`; nesting past msgpack's decoding depth fails there; a
        // top-level non-map is fine for both.
        let layer = InMemoryChannelLayer()
        let channel = try await layer.newChannel()
        var deep: ChannelMessage = ["leaf": true]
        for _ in 0..<(MessagePack.maximumDepth + 10) { deep = ["inner": deep] }
        for message: ChannelMessage in [["n": .uint(5)], deep, "just a string", ["nan": .double(.nan)]] {
            try await layer.send(message, to: channel)
            let received = try await layer.receive(from: channel)
            #expect(String(describing: received) == String(describing: message))
        }
        try await layer.send(["n": .uint(5)], to: channel)
        let n = try await layer.receive(from: channel)["n"]
        guard case .uint(5)? = n else {
            Issue.record("the message was changed on the way: \(String(describing: n))")
            return
        }
    }

    @Test func twoLayersDoNotShareChannels() async throws {
        let first = InMemoryChannelLayer()
        let second = InMemoryChannelLayer()
        let channel = try await first.newChannel()
        #expect(try await second.send(["type": "x"], to: channel) == 0)
        #expect(try await first.send(["type": "x"], to: channel) == 1)
    }

    @Test func aDroppedLayerEndsItsConsumersWithLayerClosed() async throws {
        var layer: InMemoryChannelLayer? = InMemoryChannelLayer()
        let messages = try await layer!.messages(from: "worker")
        let consumer = Task { () -> ChannelLayerError.Code? in
            do {
                for try await _ in messages {}
            } catch let error as ChannelLayerError {
                return error.code
            } catch {}
            return nil
        }
        try await Task.sleep(for: .milliseconds(20))
        layer = nil
        #expect(await consumer.value == .layerClosed)
    }

    @Test func aFullBufferKeepsTheNewest() async throws {
        let layer = try InMemoryChannelLayer(configuration: .init(capacity: 1))
        let channel = try await layer.newChannel()
        for index in 0..<100 { try await layer.send(["n": .int(Int64(index))], to: channel) }
        #expect(layer.statistics.droppedMessages == 99)
        #expect(try await layer.receive(from: channel)["n"]?.intValue == 99)
    }

    @Test func manyConcurrentSendersAndReceiversLoseNothing() async throws {
        let layer = InMemoryChannelLayer()
        let channels = try await (0..<8).asyncMap { _ in try await layer.newChannel() }
        for channel in channels { try await layer.groupAdd("all", channel: channel) }
        let perSender = 500
        let received = try await withThrowingTaskGroup(of: Int.self) { group in
            for channel in channels {
                group.addTask {
                    var count = 0
                    var lastPerSender: [Int: Int] = [:]
                    for try await message in try await layer.messages(from: channel) {
                        let sender = message["s"]!.intValue!
                        let n = message["n"]!.intValue!
                        #expect(n > lastPerSender[sender, default: -1], "FIFO per sender")
                        lastPerSender[sender] = n
                        count += 1
                        if count == 2 * perSender { break }
                    }
                    return count
                }
            }
            for (index, channel) in channels.enumerated() {
                group.addTask {
                    for n in 0..<perSender {
                        let receivers = try await layer.send(["s": .int(Int64(index)), "n": .int(Int64(n))], to: channel)
                        #expect(receivers == 1)
                        if n % 8 == index {
                            let members = try await layer.groupSend(["s": .int(Int64(100 + index)), "n": .int(Int64(n))], to: "all")
                            #expect(members == channels.count)
                        }
                    }
                    return 0
                }
            }
            return try await group.reduce(0, +)
        }
        // Each channel got its own 500 and the senders' 500 group messages (every n from one sender).
        #expect(received == channels.count * 2 * perSender)
        #expect(layer.statistics.delivered == channels.count * 2 * perSender)
        #expect(layer.statistics.droppedMessages == 0)
        await layer.close()
    }
}

extension Sequence {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
