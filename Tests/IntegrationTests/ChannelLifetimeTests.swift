import ChannelsRedisTestSupport
import Foundation
import Logging
import Testing

@testable import ChannelsRedis

/// The channel-lifetime rules: cancelling or timing out a wait ends only that wait; a channel ends
/// by `discard(channel:)`, a scope's end, `flush()` or `close()`. Checked against Redis itself
/// (`PUBSUB NUMSUB`), not only through the layer.
@Suite("Channel lifetime", .timeLimit(.minutes(3)))
struct ChannelLifetimeTests {
    /// A channel of this layer in group `group`, both subscribed.
    private func member(of group: String, _ layer: RedisPubSubChannelLayer, _ server: RedisServer) async throws -> String {
        let channel = try await layer.newChannel()
        try await layer.groupAdd(group, channel: channel)
        #expect(try await subscriberCount(server, channel) == 1)
        #expect(try await subscriberCount(server, "asgi__group__\(group)") == 1)
        return channel
    }

    /// Both still subscribed, and a message to the channel and one to its group both arrive.
    private func expectAlive(_ channel: String, in group: String, _ layer: RedisPubSubChannelLayer, _ server: RedisServer) async throws {
        #expect(try await subscriberCount(server, channel) == 1)
        #expect(try await subscriberCount(server, "asgi__group__\(group)") == 1)
        #expect(try await layer.send(["n": "direct"], to: channel) == 1)
        #expect(try await layer.groupSend(["n": "group"], to: group) == 1)
        #expect(try await layer.receive(from: channel, timeout: .seconds(5))?["n"] == "direct")
        #expect(try await layer.receive(from: channel, timeout: .seconds(5))?["n"] == "group")
    }

    private func expectGone(_ channel: String, from groups: [String], _ layer: RedisPubSubChannelLayer, _ server: RedisServer) async throws {
        try await eventually("\(channel) unsubscribed") { try await subscriberCount(server, channel) == 0 }
        for group in groups {
            try await eventually("group \(group) unsubscribed") { try await subscriberCount(server, "asgi__group__\(group)") == 0 }
            #expect(try await layer.groupSend(["n": "late"], to: group) == 0)
        }
        #expect(try await layer.send(["n": "late"], to: channel) == 0)
    }

    // MARK: A wait that ends leaves the channel

    @Test func aTimedOutReceiveChangesNothing() async throws {
        try await withLayer { layer, server in
            let channel = try await member(of: "lobby", layer, server)
            #expect(try await layer.receive(from: channel, timeout: .milliseconds(150)) == nil)
            try await expectAlive(channel, in: "lobby", layer, server)
        }
    }

    @Test func aReceiveRacedAgainstSleepInATaskGroupChangesNothing() async throws {
        // The ordinary Swift timeout pattern, which used to unsubscribe the channel.
        try await withLayer { layer, server in
            let channel = try await member(of: "lobby", layer, server)
            #expect(try await receiveRacingSleep(layer, from: channel, within: .milliseconds(150)) == nil)
            try await expectAlive(channel, in: "lobby", layer, server)
        }
    }

    @Test func aCancelledReceiveThrowsCancellationAndTheNextMessageWaitsForTheNextConsumer() async throws {
        try await withLayer { layer, server in
            let channel = try await member(of: "lobby", layer, server)
            let waiting = Task { try await layer.receive(from: channel) }
            try await Task.sleep(for: .milliseconds(100))
            waiting.cancel()
            await #expect(throws: CancellationError.self) { try await waiting.value }
            // Sent after the cancellation, with no consumer waiting: kept in the buffer.
            #expect(try await layer.send(["n": 1], to: channel) == 1)
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await layer.receive(from: channel)["n"] == 1)
            try await expectAlive(channel, in: "lobby", layer, server)
        }
    }

    @Test func breakingOutOfMessagesKeepsTheChannelAndWhatItBuffered() async throws {
        try await withLayer { layer, server in
            let channel = try await member(of: "lobby", layer, server)
            for n in 1...3 { try await layer.send(["n": .int(Int64(n))], to: channel) }
            for try await message in try await layer.messages(from: channel) {
                #expect(message["n"] == 1)
                break
            }
            var rest: [ChannelMessage] = []
            for try await message in try await layer.messages(from: channel) {
                rest.append(message)
                if rest.count == 2 { break }
            }
            #expect(rest.map { $0["n"] } == [2, 3])
            try await expectAlive(channel, in: "lobby", layer, server)
        }
    }

    @Test func aDroppedSequenceAndACancelledIterationKeepTheChannel() async throws {
        try await withLayer { layer, server in
            let channel = try await member(of: "lobby", layer, server)
            do { _ = try await layer.messages(from: channel) }  // made and dropped at once
            let iterating = Task { () -> Int in
                var count = 0
                for try await _ in try await layer.messages(from: channel) { count += 1 }
                return count  // the iteration ends with nil when its task is cancelled
            }
            try await Task.sleep(for: .milliseconds(100))
            iterating.cancel()
            #expect(try await iterating.value == 0)
            try await Task.sleep(for: .milliseconds(100))  // a cleanup, if there were one, would have run
            try await expectAlive(channel, in: "lobby", layer, server)
        }
    }

    @Test func nothingRedisDeliveredIsLostToWaitsThatTimeOutOrAreCancelled() async throws {
        // Consumers that keep timing out after random short waits, and others cancelled at random,
        // race a sender: every message arrives exactly once, in order.
        try await withLayer { layer, _ in
            let channel = try await layer.newChannel()
            let count = 400
            let sender = Task {
                for n in 0..<count {
                    try await layer.send(["n": .int(Int64(n))], to: channel)
                    if n % 7 == 0 { try await Task.sleep(for: .microseconds(Int.random(in: 0...300))) }
                }
            }
            var received: [Int] = []
            while received.count < count {
                if Bool.random() {
                    if let message = try await layer.receive(from: channel, timeout: .microseconds(Int.random(in: 1...400))) {
                        received.append(try #require(message["n"]?.intValue))
                    }
                } else {
                    let consumer = Task { try await layer.receive(from: channel) }
                    try await Task.sleep(for: .microseconds(Int.random(in: 0...300)))
                    consumer.cancel()
                    if let message = try? await consumer.value { received.append(try #require(message["n"]?.intValue)) }
                }
            }
            try await sender.value
            #expect(received == Array(0..<count))
        }
    }

    // MARK: A channel ends only explicitly

    @Test func discardUnsubscribesLeavesItsGroupsAndEndsItsConsumers() async throws {
        try await withLayer { layer, server in
            let channel = try await member(of: "lobby", layer, server)
            try await layer.groupAdd("kitchen", channel: channel)
            let other = try await member(of: "kitchen", layer, server)  // keeps "kitchen" subscribed
            let receiving = Task { try await layer.receive(from: channel) }
            let iterating = Task { () throws(ChannelLayerError) -> Int in
                var count = 0
                for try await _ in try await messagesThrowingTyped(layer, channel) { count += 1 }
                return count
            }
            try await Task.sleep(for: .milliseconds(100))
            try await layer.discard(channel: channel)
            await #expect { try await receiving.value } throws: { ($0 as? ChannelLayerError)?.code == .channelClosed }
            await #expect { try await iterating.value } throws: { ($0 as? ChannelLayerError)?.code == .channelClosed }
            try await expectGone(channel, from: ["lobby"], layer, server)
            // The other member of "kitchen" still gets its messages, and only it.
            #expect(try await layer.groupSend(["n": "kitchen"], to: "kitchen") == 1)
            #expect(try await layer.receive(from: other, timeout: .seconds(5))?["n"] == "kitchen")
            // Idempotent; and a name that was never local is fine too.
            try await layer.discard(channel: channel)
            try await layer.discard(channel: "asgispecific.never-made")
            await #expect { try await layer.discard(channel: "not a valid name") } throws: {
                ($0 as? ChannelLayerError)?.code == .invalidName
            }
        }
    }

    @Test func withChannelDiscardsOnReturn() async throws {
        try await withLayer { layer, server in
            let channel = try await layer.withChannel { channel, messages in
                try await layer.groupAdd("lobby", channel: channel)
                #expect(try await subscriberCount(server, channel) == 1)
                #expect(try await layer.groupSend(["n": 1], to: "lobby") == 1)
                var iterator = messages.makeAsyncIterator()
                #expect(try await iterator.next()?["n"] == 1)
                return channel
            }
            #expect(channel.hasPrefix("asgispecific."))
            try await expectGone(channel, from: ["lobby"], layer, server)
        }
    }

    @Test func withChannelDiscardsWhenTheBodyThrows() async throws {
        struct Boom: Error {}
        try await withLayer { layer, server in
            let made = Mutex<String?>(nil)
            await #expect(throws: Boom.self) {
                try await layer.withChannel(prefix: "chat.") { channel, _ in
                    made.withLock { $0 = channel }
                    try await layer.groupAdd("lobby", channel: channel)
                    throw Boom()
                }
            }
            let channel = try #require(made.withLock { $0 })
            #expect(channel.hasPrefix("asgichat."))
            try await expectGone(channel, from: ["lobby"], layer, server)
        }
    }

    @Test func cancellingTheTaskRunningWithChannelDiscardsIt() async throws {
        try await withLayer { layer, server in
            let made = Mutex<String?>(nil)
            let consumer = Task {
                try await layer.withChannel { channel, messages in
                    try await layer.groupAdd("lobby", channel: channel)
                    made.withLock { $0 = channel }
                    for try await _ in messages {}
                }
            }
            let channel = try await eventuallyValue("withChannel made its channel") { made.withLock { $0 } }
            try await eventually { try await subscriberCount(server, "asgi__group__lobby") == 1 }
            consumer.cancel()
            try await consumer.value  // the loop ended with nil; the scope returned normally
            try await expectGone(channel, from: ["lobby"], layer, server)
        }
    }

    @Test func withMessagesDiscardsAChannelItDidNotMake() async throws {
        try await withLayer { layer, server in
            let general = "worker.thumbnails"
            try await layer.withMessages(from: general) { messages in
                #expect(try await subscriberCount(server, general) == 1)
                try await layer.send(["job": 1], to: general)
                var iterator = messages.makeAsyncIterator()
                #expect(try await iterator.next()?["job"] == 1)
            }
            try await expectGone(general, from: [], layer, server)
        }
    }

    @Test func flushAndCloseEndConsumersWithTheirOwnCodes() async throws {
        try await withLayer { layer, server in
            let channel = try await member(of: "lobby", layer, server)
            let receiving = Task { try await layer.receive(from: channel) }
            try await Task.sleep(for: .milliseconds(50))
            try await layer.flush()
            await #expect { try await receiving.value } throws: { ($0 as? ChannelLayerError)?.code == .channelClosed }
            try await expectGone(channel, from: ["lobby"], layer, server)

            let next = try await layer.newChannel()
            let iterating = Task { () throws(ChannelLayerError) -> Int in
                var count = 0
                for try await _ in try await messagesThrowingTyped(layer, next) { count += 1 }
                return count
            }
            try await Task.sleep(for: .milliseconds(50))
            await layer.close()
            await #expect { try await iterating.value } throws: { ($0 as? ChannelLayerError)?.code == .layerClosed }
            await #expect { try await layer.discard(channel: next) } throws: { ($0 as? ChannelLayerError)?.code == .layerClosed }
        }
    }

    // MARK: Receiver counts

    @Test func sendsReturnTheReceiverCountRedisReports() async throws {
        try await withLayer { layer, server in
            let second = try RedisPubSubChannelLayer(hosts: [server.url])
            defer { Task { await second.close() } }
            let a = try await layer.newChannel()
            let b = try await second.newChannel()
            let a2 = try await layer.newChannel()
            for channel in [a, a2] { try await layer.groupAdd("room", channel: channel) }
            try await second.groupAdd("room", channel: b)
            let numsub = try await subscriberCount(server, "asgi__group__room")
            #expect(numsub == 2)  // one subscription per process, however many local members
            #expect(try await layer.groupSend(["n": 1], to: "room") == numsub)
            #expect(try await second.send(["n": 1], to: a) == 1)
            #expect(try await layer.send(["n": 1], to: "asgispecific.nobody") == 0)
            #expect(try await layer.groupSend(["n": 1], to: "empty") == 0)
            // Batches: the sum over the messages.
            #expect(try await layer.groupSend(contentsOf: Array(repeating: ["n": 2], count: 5), to: "room") == 10)
            #expect(try await layer.send(contentsOf: Array(repeating: ["n": 3], count: 4), to: b) == 4)
            #expect(try await layer.send(contentsOf: Array(repeating: ["n": 3], count: 4), to: "asgispecific.nobody") == 0)
            #expect(try await layer.send(contentsOf: [], to: b) == 0)
            await second.close()
        }
    }

    // MARK: Forgotten channels are visible

    @Test func aChannelNobodyConsumesIsCountedAndNamedInTheLog() async throws {
        let (logger, records) = RecordingLogHandler.logger()
        let server = try await RedisServer.start()
        defer { server.stop() }
        var configuration = RedisPubSubChannelLayer.Configuration(hosts: [server.url])
        configuration.unconsumedChannelThreshold = .milliseconds(200)
        let layer = try RedisPubSubChannelLayer(configuration: configuration, logger: logger)
        do {
            let forgotten = try await layer.newChannel()
            let busy = try await layer.newChannel()
            let waiting = Task { try await layer.receive(from: busy) }  // a waiting consumer: not unconsumed
            try await layer.send(["n": 1], to: forgotten)
            try await eventually("the forgotten channel is counted") { layer.statistics.unconsumedChannels == 1 }
            let infos = records.at(.info).filter { $0.metadata[LogKey.channel] == "\(forgotten)" }
            #expect(infos.count == 1, "info logs: \(records.at(.info).map(\.message))")
            #expect(records.all.allSatisfy { $0.level < .warning })
            // Taking its message makes it an ordinary channel again.
            #expect(try await layer.receive(from: forgotten)["n"] == 1)
            try await eventually("no unconsumed channel left") { layer.statistics.unconsumedChannels == 0 }
            waiting.cancel()
            await layer.close()
        } catch {
            await layer.close()
            throw error
        }
    }

    @Test func aNonPositiveUnconsumedThresholdIsAConfigurationError() {
        var configuration = RedisPubSubChannelLayer.Configuration()
        configuration.unconsumedChannelThreshold = .zero
        #expect { try RedisPubSubChannelLayer(configuration: configuration) } throws: {
            ($0 as? ChannelLayerError)?.code == .invalidConfiguration
        }
    }
}

/// The sequence's typed-throws iteration, in a closure whose error type is `ChannelLayerError`.
private func messagesThrowingTyped(_ layer: RedisPubSubChannelLayer, _ channel: String) async throws(ChannelLayerError) -> ChannelMessageSequence {
    do {
        return try await layer.messages(from: channel)
    } catch let error as ChannelLayerError {
        throw error
    } catch {
        throw ChannelLayerError(.connectionFailed, "\(error)")
    }
}
