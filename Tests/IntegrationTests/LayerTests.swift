import ChannelsRedisTestSupport
import Foundation
import Logging
import Synchronization
import Testing

@testable import ChannelsRedis

/// A user-defined wire format: JSON text with a one-byte version prefix.
struct PrefixedJSONSerializer: ChannelMessageSerializer {
    func serialize(_ message: ChannelMessage) throws(ChannelLayerError) -> [UInt8] {
        [0x01] + (try JSONSerializer().serialize(message))
    }

    func deserialize(_ bytes: UnsafeRawBufferPointer) throws(ChannelLayerError) -> ChannelMessage {
        guard bytes.first == 0x01 else { throw ChannelLayerError(.decodingFailed, "unknown version") }
        return try JSONSerializer().deserialize(UnsafeRawBufferPointer(rebasing: bytes.dropFirst()))
    }
}

@Suite("Channel layer", .timeLimit(.minutes(3)))
struct LayerTests {
    @Test func sendsAndReceives() async throws {
        try await withLayer { layer, _ in
            let channel = try await layer.newChannel()
            try await layer.send(["type": "test.message", "text": "Ahoy-hoy!"], to: channel)
            let message = try await layer.receive(from: channel)
            #expect(message["type"]?.stringValue == "test.message")
            #expect(message["text"]?.stringValue == "Ahoy-hoy!")
            #expect(message == ["type": "test.message", "text": "Ahoy-hoy!"])
        }
    }

    @Test func receivesThreeInOrder() async throws {
        try await withLayer { layer, _ in
            let channel = try await layer.newChannel()
            for index in 1...3 { try await layer.send(["type": "test.message", "n": .int(Int64(index))], to: channel) }
            for index in 1...3 {
                #expect(try await layer.receive(from: channel)["n"]?.intValue == index)
            }
        }
    }

    @Test func severalConsumersOfOneChannelShareItsBufferInOrder() async throws {
        try await withLayer { layer, _ in
            let channel = try await layer.newChannel()
            let receivers = (0..<3).map { _ in Task { try await layer.receive(from: channel) } }
            let sequence = try await layer.messages(from: channel)
            let iterating = Task {
                var seen: [Int] = []
                for try await message in sequence {
                    seen.append(message["n"]!.intValue!)
                    if seen.count == 3 { break }
                }
                return seen
            }
            try await Task.sleep(for: .milliseconds(100))
            for index in 0..<6 { try await layer.send(["n": .int(Int64(index))], to: channel) }
            let iterated: [Int] = try await iterating.value
            // One buffer, taken in FIFO order: each consumer sees its share in send order.
            #expect(iterated == iterated.sorted())
            var all = iterated
            for receiver in receivers { all.append(try await receiver.value["n"]!.intValue!) }
            // Every message went to exactly one consumer.
            #expect(all.sorted() == Array(0..<6))
        }
    }

    @Test func newChannelNamesFollowPythonsFormat() async throws {
        try await withLayer { layer, _ in
            let plain = try await layer.newChannel()
            let chat = try await layer.newChannel(prefix: "chat.")
            #expect(plain.hasPrefix("asgispecific.") && plain.count == "asgispecific.".count + 32)
            #expect(chat.hasPrefix("asgichat.") && chat.count == "asgichat.".count + 32)
            let hex = plain.dropFirst("asgispecific.".count)
            #expect(hex.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        }
    }

    @Test func channelNamesAreUnique() async throws {
        try await withLayer { layer, _ in
            var names = Set<String>()
            for _ in 0..<500 { names.insert(try await layer.newChannel()) }
            #expect(names.count == 500)
        }
    }

    @Test func channelsWithTheSamePrefixAreIndependent() async throws {
        try await withLayer { layer, _ in
            let first = try await layer.newChannel(prefix: "same.")
            let second = try await layer.newChannel(prefix: "same.")
            #expect(first != second)
            try await layer.send(["type": "to.first"], to: first)
            try await layer.send(["type": "to.second"], to: second)
            #expect(try await layer.receive(from: second)["type"]?.stringValue == "to.second")
            #expect(try await layer.receive(from: first)["type"]?.stringValue == "to.first")
        }
    }

    @Test func groupSendReachesMembersButNotDiscardedOnes() async throws {
        try await withLayer { layer, _ in
            let channels = [try await layer.newChannel(), try await layer.newChannel(), try await layer.newChannel()]
            for channel in channels { try await layer.groupAdd("test-group", channel: channel) }
            try await layer.groupDiscard("test-group", channel: channels[2])
            try await layer.groupSend(["type": "message.1"], to: "test-group")
            #expect(try await layer.receive(from: channels[0])["type"]?.stringValue == "message.1")
            #expect(try await layer.receive(from: channels[1])["type"]?.stringValue == "message.1")
            #expect(try await receive(layer, from: channels[2], within: .seconds(1)) == nil)
        }
    }

    @Test func groupDiscardBeforeGroupAddIsANoOp() async throws {
        try await withLayer { layer, _ in
            let channel = try await layer.newChannel()
            try await layer.groupDiscard("test-group", channel: channel)
            try await layer.groupAdd("test-group", channel: channel)
            try await layer.groupSend(["type": "hello"], to: "test-group")
            #expect(try await layer.receive(from: channel)["type"]?.stringValue == "hello")
        }
    }

    @Test func groupIsUnsubscribedWhenItsLastMemberLeaves() async throws {
        try await withLayer { layer, server in
            let first = try await layer.newChannel()
            let second = try await layer.newChannel()
            try await layer.groupAdd("room", channel: first)
            try await layer.groupAdd("room", channel: second)
            #expect(try await subscriberCount(server, "asgi__group__room") == 1)  // one subscription per process
            try await layer.groupDiscard("room", channel: first)
            #expect(try await subscriberCount(server, "asgi__group__room") == 1)
            try await layer.groupDiscard("room", channel: second)
            try await eventually { try await subscriberCount(server, "asgi__group__room") == 0 }
        }
    }

    @Test func groupAddOfAForeignChannelIsAnError() async throws {
        try await withLayer { layer, _ in
            await #expect(throws: ChannelLayerError.self) { try await layer.groupAdd("room", channel: "asgispecific.notmine") }
            do {
                try await layer.groupAdd("room", channel: "asgispecific.notmine")
            } catch let error as ChannelLayerError {
                #expect(error.code == .notAMember)
            }
        }
    }

    @Test func receivesOnAGeneralChannelOwnedByAnotherLayer() async throws {
        try await withLayer { layer, server in
            let other = try RedisPubSubChannelLayer(hosts: [server.url])
            defer { Task { await other.close() } }
            let receiving = Task { try await other.receive(from: "test-channel") }
            try await eventually { try await subscriberCount(server, "test-channel") == 1 }
            try await layer.send("message.1", to: "test-channel")
            #expect(try await receiving.value == "message.1")
            await other.close()
        }
    }

    @Test func twoLayersTalkThroughOneServer() async throws {
        try await withLayer { first, server in
            let second = try RedisPubSubChannelLayer(hosts: [server.url])
            let a = try await first.newChannel()
            let b = try await second.newChannel()
            try await first.send(["type": "to.b"], to: b)
            try await second.send(["type": "to.a"], to: a)
            #expect(try await second.receive(from: b)["type"]?.stringValue == "to.b")
            #expect(try await first.receive(from: a)["type"]?.stringValue == "to.a")
            try await second.groupAdd("shared", channel: b)
            try await first.groupAdd("shared", channel: a)
            try await first.groupSend(["type": "all"], to: "shared")
            #expect(try await second.receive(from: b)["type"]?.stringValue == "all")
            #expect(try await first.receive(from: a)["type"]?.stringValue == "all")
            await second.close()
        }
    }

    @Test func manyConcurrentSendersAndReceivers() async throws {
        try await withLayer { layer, _ in
            let channelCount = 16
            let perSender = 200
            var channels: [String] = []
            for _ in 0..<channelCount { channels.append(try await layer.newChannel()) }
            let received = try await withThrowingTaskGroup(of: [Int].self) { group in
                for channel in channels {
                    group.addTask {
                        var seen: [Int] = []
                        for _ in 0..<perSender { seen.append(try await layer.receive(from: channel)["n"]!.intValue!) }
                        return seen
                    }
                    group.addTask {
                        for index in 0..<perSender { try await layer.send(["type": "m", "n": .int(Int64(index))], to: channel) }
                        return []
                    }
                }
                var all: [[Int]] = []
                for try await seen in group where !seen.isEmpty { all.append(seen) }
                return all
            }
            #expect(received.count == channelCount)
            for seen in received { #expect(seen == Array(0..<perSender)) }
        }
    }

    @Test func tenThousandMessagesArriveInOrder() async throws {
        try await withLayer { layer, _ in
            let channel = try await layer.newChannel()
            let count = 10_000
            let messages = try await layer.messages(from: channel)
            let reader = Task {
                var next = 0
                for try await message in messages {
                    guard message["n"]?.intValue == next else { return next }
                    next += 1
                    if next == count { break }
                }
                return next
            }
            // Several sends in flight at once, each window in order: as fast as the layer goes.
            var index = 0
            while index < count {
                let window = min(64, count - index)
                let start = index
                try await withThrowingTaskGroup(of: Void.self) { group in
                    // Pipelined sends keep their order because one task issues them back to back.
                    group.addTask {
                        for offset in 0..<window { try await layer.send(["type": "m", "n": .int(Int64(start + offset))], to: channel) }
                    }
                    try await group.waitForAll()
                }
                index += window
            }
            #expect(try await reader.value == count)
            #expect(layer.statistics.droppedMessages == 0)
        }
    }

    @Test func batchSendsArriveInOrderAndComplete() async throws {
        try await withLayer { layer, _ in
            let channel = try await layer.newChannel()
            try await layer.groupAdd("batch-room", channel: channel)
            let messages = try await layer.messages(from: channel)
            try await layer.send(contentsOf: (0..<2_000).map { ["n": .int(Int64($0))] as ChannelMessage }, to: channel)
            try await layer.groupSend(contentsOf: (2_000..<2_500).map { ["n": .int(Int64($0))] as ChannelMessage }, to: "batch-room")
            try await layer.send(contentsOf: [ChannelMessage](), to: channel)  // empty: returns at once
            var expected = 0
            for try await message in messages {
                #expect(message["n"]?.intValue == expected)
                expected += 1
                if expected == 2_500 { break }
            }
            #expect(layer.statistics.published == 2_500)
            await #expect(throws: ChannelLayerError.self) { try await layer.send(contentsOf: [["n": 1]], to: "bad name") }
        }
    }

    @Test func aBurstOfManyReadsArrivesWholeAndInOrder() async throws {
        // 6 MB published at once: the subscriber's socket holds far more than one read (64 KiB);
        // replies cross read and 2 KiB feed boundaries, and the payloads
        // are on both sides of the reply pool's 128-byte cut.
        try await withLayer { layer, _ in
            let channel = try await layer.newChannel()
            let messages = try await layer.messages(from: channel)
            let count = 6_000
            func text(_ index: Int) -> String { String(repeating: "x", count: [10, 120, 127, 128, 700, 3_000][index % 6]) }
            let batch = (0..<count).map { ["n": .int(Int64($0)), "text": .string(text($0))] as ChannelMessage }
            try await layer.send(contentsOf: batch, to: channel)
            var next = 0
            for try await message in messages {
                #expect(message["n"]?.intValue == next)
                #expect(message["text"]?.stringValue == text(next))
                next += 1
                if next == count { break }
            }
            #expect(next == count)
            #expect(layer.statistics.droppedMessages == 0)
        }
    }

    @Test func messagesCutAnywhereByTheNetworkArriveWholeAndInOrder() async throws {
        // The subscriber reads through a proxy that passes 1-17 bytes at a time: its reads end
        // inside message frames (which the layer parses itself) and inside subscribe and
        // unsubscribe confirmations (which it leaves to hiredis), at every kind of place.
        let server = try await RedisServer.start()
        defer { server.stop() }
        let proxy = try TCPProxy(targetPort: server.port, trickle: true)
        proxy.start()
        defer { proxy.stop() }
        var slow = RedisPubSubChannelLayer.Configuration(hosts: [proxy.url])
        slow.sendTimeout = .seconds(60)  // everything it receives trickles (and crawls under TSan)
        let receiver = try RedisPubSubChannelLayer(configuration: slow)
        let sender = try RedisPubSubChannelLayer(hosts: [server.url])
        let channel = try await receiver.newChannel()
        try await receiver.groupAdd("room", channel: channel)
        var expected: [ChannelMessage] = []
        for (index, length) in [0, 1, 2, 13, 50, 127, 128, 255, 256, 1_000, 3_000, 9_000, 5, 0].enumerated() {
            let message: ChannelMessage = ["type": "cut", "n": .int(Int64(index)), "text": .string(String(repeating: "x", count: length))]
            if index.isMultiple(of: 2) {
                try await sender.send(message, to: channel)
            } else {
                try await sender.groupSend(message, to: "room")
            }
            expected.append(message)
            // Confirmations between the messages: a group joined and left again.
            try await receiver.groupAdd("other\(index)", channel: channel)
            try await receiver.groupDiscard("other\(index)", channel: channel)
        }
        var received: [ChannelMessage] = []
        while received.count < expected.count, let message = try await receive(receiver, from: channel, within: .seconds(30)) {
            received.append(message)
        }
        #expect(received.count == expected.count)
        #expect(zip(received, expected).allSatisfy { $0 == $1 }, "a message arrived changed")
        // ... parsed by the layer, not by hiredis (the liveness probes come the same way).
        #expect(receiver.statisticsStorage.receivedDirectly.load(ordering: .relaxed) >= expected.count)
        #expect(receiver.statistics.undecodableMessages == 0)
        #expect(receiver.statistics.reconnects == 0)
        await receiver.close()
        await sender.close()
    }

    @Test func publishersInTheSameProcessDoNotOutrunTheirSubscriber() async throws {
        // Senders get PUBLISH replies long before their subscriber has read the messages; if one
        // loop pass writes more than it reads, Redis's output buffer for the subscriber grows until
        // Redis drops the connection (its pub/sub limit, made small here) and messages are lost.
        let limit = "pubsub 8mb 0 0"
        try await withLayer(
            configure: { $0.capacity = 100_000 },
            serverArguments: ["--client-output-buffer-limit", limit]
        ) { layer, _ in
            let channel = try await layer.newChannel()
            let messages = try await layer.messages(from: channel)
            let senders = 4
            let batches = 64
            let batchSize = 32  // 4 x 32 messages of ~16 KB in flight: ~2 MB
            let text = String(repeating: "y", count: 16_000)
            let count = senders * batches * batchSize
            let received = Mutex(0)
            let consumer = Task {
                for try await _ in messages {
                    received.withLock { $0 += 1 }
                }
            }
            defer { consumer.cancel() }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for sender in 0..<senders {
                    group.addTask {
                        for batch in 0..<batches {
                            let messages = (0..<batchSize).map { index in
                                ["s": .int(Int64(sender)), "n": .int(Int64(batch * batchSize + index)), "text": .string(text)]
                                    as ChannelMessage
                            }
                            try await layer.send(contentsOf: messages, to: channel)
                        }
                    }
                }
                try await group.waitForAll()
            }
            // Fails fast instead of waiting for messages that were lost with a dropped connection.
            try await eventually(timeout: .seconds(60), "every message arrived, or the subscriber was dropped") {
                received.withLock { $0 } == count || layer.statistics.reconnects > 0
            }
            #expect(layer.statistics.reconnects == 0)
            #expect(received.withLock { $0 } == count)
            #expect(layer.statistics.droppedMessages == 0)
        }
    }

    @Test func aBatchRedisRefusesFailsWithItsCountAndTheNextBatchIsNotBlamed() async throws {
        // Only the last PUBLISH of a batch calls back into Swift; the replies before it are checked
        // in C. A user whose ACL allows only some channels sees every refusal of a batch counted,
        // and a batch after it (on an allowed channel) succeeds.
        let server = try await RedisServer.start()
        defer { server.stop() }
        _ = try await server.command([
            "ACL", "SETUSER", "limited", "on", ">pw", "~*", "+@all", "resetchannels",
            "&asgiok.*", "&asgi__group__ok*", "&asgi__channels_redis_swift__*",
        ])
        let limited = try RedisPubSubChannelLayer(
            configuration: .init(hosts: ["redis://limited:pw@127.0.0.1:\(server.port)"])
        )
        do {
            let channel = try await limited.newChannel(prefix: "ok.")
            let batch = (0..<50).map { ["n": .int(Int64($0))] as ChannelMessage }
            let error = await #expect(throws: ChannelLayerError.self) {
                try await limited.send(contentsOf: batch, to: "asginot.allowed")
            }
            #expect(error?.message.contains("50 of 50 in one batch") == true, "\(String(describing: error))")
            #expect(error?.message.contains("NOPERM") == true, "\(String(describing: error))")
            #expect(error?.code == .commandRefused)
            let singleError = await #expect(throws: ChannelLayerError.self) {
                try await limited.send(["n": 1], to: "asginot.allowed")
            }
            #expect(singleError?.message.contains("NOPERM") == true, "\(String(describing: singleError))")
            #expect(singleError?.message.contains("in one batch") == false, "\(String(describing: singleError))")
            #expect(singleError?.code == .commandRefused)

            try await limited.send(contentsOf: batch, to: channel)
            for index in 0..<50 {
                #expect(try await limited.receive(from: channel)["n"]?.intValue == index)
            }
            #expect(limited.statistics.published == 50)
            await limited.close()
        } catch {
            await limited.close()
            throw error
        }
    }

    @Test func routingFollowsEveryMembershipChange() async throws {
        // The engine remembers the route of the last Redis channel a message came on; every change
        // of channels or groups must be seen by the very next message on that Redis channel.
        try await withLayer { layer, server in
            let first = try await layer.newChannel()
            let second = try await layer.newChannel()
            try await layer.groupAdd("route", channel: first)
            try await layer.groupSend(["n": 1], to: "route")
            #expect(try await layer.receive(from: first)["n"]?.intValue == 1)

            try await layer.groupAdd("route", channel: second)  // a member joins
            try await layer.groupSend(["n": 2], to: "route")
            #expect(try await layer.receive(from: first)["n"]?.intValue == 2)
            #expect(try await layer.receive(from: second)["n"]?.intValue == 2)

            try await layer.groupDiscard("route", channel: first)  // a member leaves
            try await layer.groupSend(["n": 3], to: "route")
            #expect(try await layer.receive(from: second)["n"]?.intValue == 3)
            try await layer.send(["n": 33], to: first)
            #expect(try await layer.receive(from: first)["n"]?.intValue == 33)

            try await layer.groupAdd("route", channel: first)  // and comes back
            try await layer.groupSend(["n": 4], to: "route")
            #expect(try await layer.receive(from: first)["n"]?.intValue == 4)
            #expect(try await layer.receive(from: second)["n"]?.intValue == 4)

            // A general channel is discarded, then received from again: its messages go to the new
            // mailbox, not the finished one.
            let general = "specific.route!general"
            #expect(try await layer.receive(from: general, timeout: .milliseconds(100)) == nil)
            try await layer.discard(channel: general)
            try await eventually { try await subscriberCount(server, general) == 0 }
            let again = Task { try await layer.receive(from: general) }
            try await eventually { try await subscriberCount(server, general) == 1 }
            try await layer.send(["n": 5], to: general)
            #expect(try await again.value["n"]?.intValue == 5)
        }
    }

    @Test func tasksPreferringTheLayersExecutorRunOnItsLoop() async throws {
        try await withLayer { layer, _ in
            let channel = try await layer.newChannel()
            let messages = try await layer.messages(from: channel)
            let (received, onLoopThroughout) = try await withTaskExecutorPreference(layer.taskExecutor) {
                var iterator = messages.makeAsyncIterator()
                var count = 0
                var onLoop = layer.loop.inLoop
                for index in 0..<200 {
                    try await layer.send(["n": .int(Int64(index))], to: channel)
                    if try await iterator.next()?["n"]?.intValue == index { count += 1 }
                    onLoop = onLoop && layer.loop.inLoop  // resumed on the loop thread every time
                }
                return (count, onLoop)
            }
            #expect(received == 200)
            #expect(onLoopThroughout)
            #expect(!layer.loop.inLoop)  // and the test's own task is not
            // A task waiting on the loop when the layer closes still ends.
            let waiting = Task(executorPreference: layer.taskExecutor) { try await layer.receive(from: channel) }
            try await Task.sleep(for: .milliseconds(50))
            await layer.close()
            do {
                _ = try await waiting.value
                Issue.record("receive returned after close")
            } catch let error as ChannelLayerError {
                #expect(error.code == .layerClosed)
            }
        }
    }

    @Test func aBusyPollingLoopDeliversRunsItsTimersAndSleepsWhenIdle() async throws {
        let server = try await RedisServer.start()
        defer {
            server.resume()
            server.stop()
        }
        var configuration = faultConfiguration(server.url)
        configuration.busyPoll = .microseconds(200)
        let subscribed = try await SubscribedLayer(configuration)
        let (layer, channel, collector) = (subscribed.layer, subscribed.channel, subscribed.collector)

        // Round trips with the consumer on the loop: the replies come while it polls.
        let own = try await layer.newChannel()
        let echoed = try await withTaskExecutorPreference(layer.taskExecutor) {
            var echoed = 0
            for index in 0..<200 {
                try await layer.send(["n": .int(Int64(index))], to: own)
                if try await layer.receive(from: own)["n"]?.intValue == index { echoed += 1 }
            }
            return echoed
        }
        #expect(echoed == 200)
        try await expectDelivery(layer, to: collector, channel: channel, group: "room")

        try await expectTheLoopSleepsWithoutSendsAndStillRuns(subscribed, server: server)
    }

    @Test func aCustomSerializerIsUsedOnTheWire() async throws {
        try await withLayer(configure: { $0.serializer = .custom(PrefixedJSONSerializer()) }) { layer, server in
            let channel = try await layer.newChannel()
            try await layer.send(["type": "custom", "n": 1], to: channel)
            #expect(try await layer.receive(from: channel) == ["type": "custom", "n": 1])
            // Bytes in another format are counted and skipped, and the channel goes on.
            _ = try await server.command([Array("PUBLISH".utf8), Array(channel.utf8), Array("{}".utf8)])
            _ = try await server.command([Array("PUBLISH".utf8), Array(channel.utf8), [0x01] + Array("{\"type\": \"raw\"}".utf8)])
            #expect(try await layer.receive(from: channel)["type"]?.stringValue == "raw")
            #expect(layer.statistics.undecodableMessages == 1)
        }
    }

    @Test func goldenMsgpackBytesArriveDecoded() async throws {
        try await withLayer { layer, server in
            let channel = try await layer.newChannel()
            let golden: [UInt8] = [0x83, 0xA1, 0x61, 0xC3, 0xA1, 0x62, 0xC0, 0xA1, 0x63, 0x81, 0xA1, 0x64, 0x90]
            _ = try await server.command([Array("PUBLISH".utf8), Array(channel.utf8), golden])
            let message = try await layer.receive(from: channel)
            #expect(message == ["a": true, "b": nil, "c": ["d": []]])
        }
    }

    @Test func undecodablePayloadIsCountedAndSkipped() async throws {
        try await withLayer { layer, server in
            let channel = try await layer.newChannel()
            _ = try await server.command([Array("PUBLISH".utf8), Array(channel.utf8), [0xC1, 0xFF, 0x00]])
            try await layer.send(["type": "after"], to: channel)
            #expect(try await layer.receive(from: channel)["type"]?.stringValue == "after")
            #expect(layer.statistics.undecodableMessages == 1)
        }
    }

    @Test func fullBufferDropsTheOldestAndCountsIt() async throws {
        try await withLayer(configure: { $0.capacity = 10 }) { layer, _ in
            let channel = try await layer.newChannel()
            for index in 0..<50 { try await layer.send(["n": .int(Int64(index))], to: channel) }
            try await eventually { layer.statistics.delivered == 50 }
            #expect(layer.statistics.droppedMessages == 40)
            #expect(try await layer.receive(from: channel)["n"]?.intValue == 40)
        }
    }

    @Test func oversizedMessageIsATypedError() async throws {
        try await withLayer(configure: { $0.maximumMessageSize = 1_000 }) { layer, _ in
            let channel = try await layer.newChannel()
            do {
                try await layer.send(["blob": .binary([UInt8](repeating: 7, count: 2_000))], to: channel)
                Issue.record("an oversized message was sent")
            } catch let error as ChannelLayerError {
                #expect(error.code == .messageTooLarge)
            }
            try await layer.send(["blob": .binary([UInt8](repeating: 7, count: 500))], to: channel)
            #expect(try await layer.receive(from: channel)["blob"]?.bytesValue?.count == 500)
        }
    }

    @Test(arguments: ["msgpack", "json", "msgpack+fernet"])
    func batchSendsEncodeWithTheConfiguredCodecAndLimit(_ codec: String) async throws {
        // Plain msgpack is encoded straight into the batch buffer; the other codecs go through
        // the serializer (and Fernet). Both must put the same messages on the wire, and a batch
        // with one oversized message fails before anything of it is published.
        try await withLayer(configure: { configuration in
            configuration.maximumMessageSize = 1_000
            if codec == "json" { configuration.serializer = .json }
            if codec.hasSuffix("fernet") { configuration.symmetricEncryptionKeys = ["batch-secret"] }
        }) { layer, _ in
            let channel = try await layer.newChannel()
            let messages = try await layer.messages(from: channel)
            let tooLarge: ChannelMessage = ["n": -1, "text": .string(String(repeating: "x", count: 2_000))]
            await #expect(throws: ChannelLayerError.self) {
                try await layer.send(contentsOf: [["n": -2], tooLarge, ["n": -3]], to: channel)
            }
            #expect(layer.statistics.published == 0)
            let batch = (0..<300).map { ["n": .int(Int64($0)), "text": .string(String(repeating: "é", count: $0 % 100))] as ChannelMessage }
            try await layer.send(contentsOf: batch, to: channel)
            var received: [ChannelMessage] = []
            for try await message in messages {
                received.append(message)
                if received.count == batch.count { break }
            }
            #expect(received == batch)  // in order, and nothing of the failed batch
        }
    }

    @Test func oneMegabyteMessagesGoThrough() async throws {
        try await withLayer { layer, _ in
            let channel = try await layer.newChannel()
            let blob = (0..<1_048_576).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            try await layer.send(["type": "big", "blob": .binary(blob)], to: channel)
            #expect(try await layer.receive(from: channel)["blob"]?.bytesValue == blob)
        }
    }

    @Test func invalidNamesAreRejectedBeforeRedis() async throws {
        try await withLayer { layer, _ in
            let tooLong = String(repeating: "a", count: 100)
            for name in ["has space", "", "bad/char", tooLong, "é"] {
                await #expect(throws: ChannelLayerError.self) { try await layer.send(["type": "x"], to: name) }
                do { _ = try await layer.receive(from: name) } catch let error as ChannelLayerError { #expect(error.code == .invalidName) }
            }
            let channel = try await layer.newChannel()
            for group in ["a!b", "has space", tooLong] {
                do {
                    try await layer.groupAdd(group, channel: channel)
                    Issue.record("invalid group \(group) accepted")
                } catch let error as ChannelLayerError {
                    #expect(error.code == .invalidName)
                }
            }
            // A process-local channel name with one "!" is valid.
            try await layer.send(["type": "x"], to: "asgispecific.abc!def")
        }
    }

    @Test func flushEndsConsumersAndUnsubscribes() async throws {
        try await withLayer { layer, server in
            let channel = try await layer.newChannel()
            try await layer.groupAdd("room", channel: channel)
            let pending = Task { try await layer.receive(from: channel) }
            try await Task.sleep(for: .milliseconds(100))
            try await layer.flush()
            do {
                _ = try await pending.value
                Issue.record("receive returned after flush")
            } catch let error as ChannelLayerError {
                #expect(error.code == .channelClosed)
            }
            try await eventually { try await subscriberCount(server, channel) == 0 }
            #expect(try await subscriberCount(server, "asgi__group__room") == 0)
            // Usable again, like new.
            let fresh = try await layer.newChannel()
            try await layer.send(["type": "x"], to: fresh)
            #expect(try await layer.receive(from: fresh)["type"]?.stringValue == "x")
        }
    }

    @Test func callsAfterCloseThrowLayerClosed() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let layer = try RedisPubSubChannelLayer(hosts: [server.url])
        let channel = try await layer.newChannel()
        let messages = try await layer.messages(from: channel)
        let consumer = Task { () -> ChannelLayerError? in
            do {
                for try await _ in messages {}
                return nil
            } catch let error as ChannelLayerError {
                return error
            } catch {
                return nil
            }
        }
        await layer.close()
        await layer.close()  // idempotent
        #expect(await consumer.value?.code == .layerClosed)
        for operation in [
            { try await layer.send(["type": "x"], to: channel) },
            { _ = try await layer.newChannel() },
            { _ = try await layer.receive(from: channel) },
            { try await layer.groupAdd("g", channel: channel) },
        ] as [@Sendable () async throws -> Void] {
            do {
                try await operation()
                Issue.record("an operation succeeded after close")
            } catch let error as ChannelLayerError {
                #expect(error.code == .layerClosed)
            }
        }
    }

    @Test func passwordFromTheURLIsSent() async throws {
        let server = try await RedisServer.start(arguments: ["--requirepass", "s3cret"])
        defer { server.stop() }
        let layer = try RedisPubSubChannelLayer(hosts: [server.url(password: "s3cret")])
        let channel = try await layer.newChannel()
        try await layer.send(["type": "authed"], to: channel)
        #expect(try await layer.receive(from: channel)["type"]?.stringValue == "authed")
        await layer.close()

        var configuration = RedisPubSubChannelLayer.Configuration(hosts: [server.url(password: "wrong")])
        configuration.connectTimeout = .seconds(2)
        let wrong = try RedisPubSubChannelLayer(configuration: configuration)
        do {
            try await wrong.send(["type": "x"], to: channel)
            Issue.record("sent with a wrong password")
        } catch let error as ChannelLayerError {
            #expect(error.code == .connectionFailed)
            #expect(error.message.contains("AUTH") || error.message.contains("WRONGPASS") || error.message.contains("handshake"))
        }
        await wrong.close()
    }

    /// A password with every character a URL gives a meaning to, given as an endpoint's part: its
    /// `url` encodes it so that the layer sends exactly it, over TCP and over a Unix socket.
    @Test func anEndpointBuiltFromPartsCarriesAnyPassword() async throws {
        let password = "p@ss:w/rd?#%41 é"
        let socket = FileManager.default.temporaryDirectory.appendingPathComponent("cr-\(UUID().uuidString.prefix(8)).sock").path
        let server = try await RedisServer.start(arguments: ["--requirepass", password, "--unixsocket", socket, "--unixsocketperm", "700"])
        defer { server.stop() }
        for address in [RedisEndpoint.Address.hostname("127.0.0.1", port: server.port), .unixDomainSocket(path: socket)] {
            let endpoint = RedisEndpoint(address: address, password: password)
            #expect(!endpoint.description.contains("p@ss"))
            let layer = try RedisPubSubChannelLayer(hosts: [endpoint.url])
            let channel = try await layer.newChannel()
            try await layer.send(["type": "authed"], to: channel)
            #expect(try await layer.receive(from: channel)["type"]?.stringValue == "authed", "\(address)")
            await layer.close()
        }
    }

    /// An address the URL parser would refuse is refused when built from parts too, when the layer
    /// is created.
    @Test func anInvalidEndpointFromPartsIsRefusedAtCreation() {
        for address in [RedisEndpoint.Address.hostname(""), .hostname("a b"), .hostname("h", port: 0), .hostname("h", port: 70_000),
                        .unixDomainSocket(path: "relative.sock"), .unixDomainSocket(path: "")] {
            #expect {
                _ = try RedisPubSubChannelLayer(hosts: [RedisEndpoint(address: address).url])
            } throws: { ($0 as? ChannelLayerError)?.code == .invalidConfiguration }
        }
    }

    @Test func unixSocketHostsWork() async throws {
        let socket = FileManager.default.temporaryDirectory.appendingPathComponent("cr-\(UUID().uuidString.prefix(8)).sock").path
        let server = try await RedisServer.start(arguments: ["--unixsocket", socket, "--unixsocketperm", "700"])
        defer { server.stop() }
        let layer = try RedisPubSubChannelLayer(hosts: ["unix://\(socket)"])
        let channel = try await layer.newChannel()
        try await layer.send(["type": "over.unix"], to: channel)
        #expect(try await layer.receive(from: channel)["type"]?.stringValue == "over.unix")
        await layer.close()
    }

    @Test func unreachableHostFailsWithinTheConnectTimeout() async throws {
        let port = TCPProxy.unusedPort()
        var configuration = RedisPubSubChannelLayer.Configuration(hosts: ["redis://127.0.0.1:\(port)"])
        configuration.connectTimeout = .seconds(2)
        // A send that waited for the server would take all of sendTimeout: make that far longer
        // than the bound below, which in turn leaves room for a sanitizer build of the whole suite
        // starting at once on 2 cores (stalls of 5 s and more were seen).
        configuration.sendTimeout = .seconds(60)
        let layer = try RedisPubSubChannelLayer(configuration: configuration)
        let start = ContinuousClock.now
        do {
            _ = try await layer.newChannel()
            Issue.record("subscribed to an unreachable host")
        } catch let error as ChannelLayerError {
            #expect(error.code == .connectionFailed)
            #expect(error.message.contains("127.0.0.1:\(port)"))
        }
        do {
            try await layer.send(["type": "x"], to: "somewhere")
            Issue.record("sent to an unreachable host")
        } catch let error as ChannelLayerError {
            #expect(error.code == .connectionFailed)
        }
        #expect(ContinuousClock.now - start < .seconds(30))
        await layer.close()
    }

    @Test func badURLsAreConfigurationErrors() throws {
        let urls = [
            "rediss://127.0.0.1:6379?ssl_ca_certs=/nonexistent/ca.crt", "http://127.0.0.1", "redis://127.0.0.1:notaport", "127.0.0.1:6379",
            "redis://:70000",
        ]
        for url in urls {
            do {
                _ = try RedisPubSubChannelLayer(hosts: [url])
                Issue.record("accepted \(url)")
            } catch let error as ChannelLayerError {
                #expect(error.code == .invalidConfiguration)
            }
        }
        #expect(throws: ChannelLayerError.self) { try RedisPubSubChannelLayer(hosts: []) }
    }

    @Test func theDefaultReplyPollingDeliversAndSleepsOnceTheSendsStop() async throws {
        let server = try await RedisServer.start()
        defer {
            server.resume()
            server.stop()
        }
        var configuration = faultConfiguration(server.url)
        #expect(configuration.replyPoll == .microseconds(50))
        configuration.replyPoll = .milliseconds(1)  // longer than the default, so a loop that kept polling shows
        let subscribed = try await SubscribedLayer(configuration)
        let (layer, channel, collector) = (subscribed.layer, subscribed.channel, subscribed.collector)

        // Awaited sends from the global executor: the loop polls while their replies are due.
        let own = try await layer.newChannel()
        var echoed = 0
        for index in 0..<200 {
            try await layer.send(["n": .int(Int64(index))], to: own)
            if try await layer.receive(from: own)["n"]?.intValue == index { echoed += 1 }
        }
        #expect(echoed == 200)
        try await expectDelivery(layer, to: collector, channel: channel, group: "room")

        try await expectTheLoopSleepsWithoutSendsAndStillRuns(subscribed, server: server)
    }

    /// After traffic, the loop thread goes back to sleep (liveness probes every 200 ms cost it a few polls each, where a
    /// loop that kept polling would use the whole half second), a message still wakes it, and its timers still run:
    /// liveness notices a stopped server and the layer recovers. Closes the layer.
    private func expectTheLoopSleepsWithoutSendsAndStillRuns(_ subscribed: SubscribedLayer, server: RedisServer) async throws {
        let (layer, events, channel, collector) = (subscribed.layer, subscribed.events, subscribed.channel, subscribed.collector)
        try await Task.sleep(for: .milliseconds(100))
        let before = try #require(layer.loop.threadCPUTime())
        try await Task.sleep(for: .milliseconds(500))
        let used = try #require(layer.loop.threadCPUTime()) - before
        #expect(used < .milliseconds(150), "the loop thread used \(used) of CPU in 500 ms without sends")
        try await expectDelivery(layer, to: collector, channel: channel, group: nil)

        server.pause()
        try await eventually(timeout: .seconds(5)) { events.disconnects >= 1 }
        server.resume()
        try await eventually(timeout: .seconds(10)) { events.reconnects >= 1 }
        try await expectDelivery(layer, to: collector, channel: channel, group: "room")
        await collector.stop()
        await layer.close()
    }

    @Test func replyPollOutsideZeroToOneSecondIsAConfigurationError() {
        expectRefused(\.replyPoll, named: "replyPoll", [.microseconds(-1), .seconds(1) + .nanoseconds(1)])
    }

    @Test func aClusterSlotMapRefreshIntervalUnder100MillisecondsIsAConfigurationError() {
        expectRefused(\.clusterSlotMapRefreshInterval, named: "clusterSlotMapRefreshInterval", [.zero, .milliseconds(99)])
    }

    @Test func busyPollOutsideZeroToOneSecondIsAConfigurationError() {
        expectRefused(\.busyPoll, named: "busyPoll", [.microseconds(-1), .seconds(1) + .nanoseconds(1)])
    }

    /// Each of `values` set at `setting` makes the layer's initialiser throw `invalidConfiguration`
    /// naming `name`.
    private func expectRefused(
        _ setting: WritableKeyPath<RedisPubSubChannelLayer.Configuration, Duration>,
        named name: String,
        _ values: [Duration],
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        for value in values {
            var configuration = RedisPubSubChannelLayer.Configuration()
            configuration[keyPath: setting] = value
            do {
                _ = try RedisPubSubChannelLayer(configuration: configuration)
                Issue.record("accepted \(name) \(value)", sourceLocation: sourceLocation)
            } catch let error as ChannelLayerError {
                #expect(error.code == .invalidConfiguration, sourceLocation: sourceLocation)
                #expect(error.message.contains(name), sourceLocation: sourceLocation)
            } catch {
                Issue.record("\(name) \(value): \(error)", sourceLocation: sourceLocation)
            }
        }
    }

    @Test func shardsOverSeveralHostsWithThePythonHash() async throws {
        let servers = [try await RedisServer.start(), try await RedisServer.start(), try await RedisServer.start()]
        defer { for server in servers { server.stop() } }
        let layer = try RedisPubSubChannelLayer(hosts: servers.map(\.url))
        var channels: [String] = []
        for _ in 0..<30 { channels.append(try await layer.newChannel()) }
        for group in ["alpha", "beta", "gamma", "delta"] { try await layer.groupAdd(group, channel: channels[0]) }
        var perServer: [Set<String>] = []
        for server in servers {
            let reply = try await server.command(["PUBSUB", "CHANNELS", "asgi*"])
            perServer.append(Set((reply.array ?? []).compactMap(\.string).filter { !$0.contains("__channels_redis_swift__") }))
        }
        // Every name lives on exactly the server the hash names, and more than one server is used.
        for name in channels + ["alpha", "beta", "gamma", "delta"].map({ "asgi__group__\($0)" }) {
            let holders = perServer.indices.filter { perServer[$0].contains(name) }
            #expect(holders == [ConsistentHash.shardIndex(for: name, shardCount: 3)], "\(name) is on \(holders)")
        }
        #expect(perServer.filter { !$0.isEmpty }.count > 1)
        for channel in channels.prefix(5) {
            try await layer.send(["type": "sharded"], to: channel)
            #expect(try await layer.receive(from: channel)["type"]?.stringValue == "sharded")
        }
        try await layer.groupSend(["type": "group.sharded"], to: "gamma")
        #expect(try await layer.receive(from: channels[0])["type"]?.stringValue == "group.sharded")
        await layer.close()
    }
}
