import ChannelsRedisTestSupport
import Foundation
import Synchronization
import Testing

@testable import ChannelsRedis

#if canImport(Glibc)
    import Glibc
#endif

/// A slot in the middle of a migration (`CLUSTER SETSLOT … MIGRATING` / `IMPORTING`, no keys to move), what Redis 7.0
/// does with sharded pub/sub then, and the layer's `-ASK` handling (ASKING before the SPUBLISH, in one write).
@Suite(.serialized, .timeLimit(.minutes(4)))
struct ClusterMigrationTests {
    /// Redis 7.0 serves a migrating slot's SPUBLISH and SSUBSCRIBE on the source (channels are not keys: no `-ASK`),
    /// until the slot is assigned; then the source answers `-MOVED` and ends the subscriptions.
    @Test func aMigratingSlotStaysOnItsSourceUntilAssignedThenItsChannelMoves() async throws {
        try await withClusterLayer(replicasPerPrimary: 0) { receiver, cluster in
            let sender = try await staleMapLayer(cluster)
            try await closing(sender) { sender in
                let channel = try await receiver.newChannel()
                let slot = ClusterKeySlot.slot(for: channel)
                let source = try await cluster.ownerPort(ofSlot: slot)
                let target = try #require(try await cluster.primaryPorts().first { $0 != source })
                #expect(try await sender.send(["n": 0], to: channel) == 1)
                #expect(try await receiver.receive(from: channel, timeout: .seconds(10))?["n"]?.intValue == 0)

                try await cluster.openMigration(slot: slot, from: source, to: target)
                // What the server does, checked without the layer: the source serves SPUBLISH (to the receiver's
                // subscription), the importing node redirects it back to the source.
                #expect(try await cluster.command(["SPUBLISH", channel, "not msgpack"], port: source) == .integer(1))
                let fromTarget = try await cluster.command(["SPUBLISH", channel, "x"], port: target)
                #expect(fromTarget.errorMessage?.hasPrefix("MOVED \(slot) ") == true, "\(fromTarget)")
                #expect(try await receiver.receive(from: channel, timeout: .seconds(10)) == nil, "the raw message is skipped")
                for n in 1...5 {
                    #expect(try await sender.send(["n": .int(Int64(n))], to: channel) == 1, "delivered while the slot migrates")
                }
                for n in 1...5 {
                    #expect(try await receiver.receive(from: channel, timeout: .seconds(10))?["n"]?.intValue == n)
                }
                let fresh = try await receiver.newChannel()  // subscriptions keep working on every primary
                #expect(try await sender.send(["fresh": true], to: fresh) == 1)
                #expect(try await receiver.receive(from: fresh, timeout: .seconds(10))?["fresh"] == true)
                #expect(sender.statisticsStorage.cluster.redirectedPublishes.load(ordering: .relaxed) == 0, "no -ASK from Redis 7.0")
                #expect(receiver.isHealthy)

                try await cluster.finishMigration(slot: slot, from: source, to: target)
                try await eventually("the receiver re-homed the channel on the slot's new owner") {
                    try await cluster.node(port: target)!.command(["PUBSUB", "SHARDNUMSUB", channel]).array?.last?.integer == 1
                }
                #expect(try await sender.send(["n": 6], to: channel) == 1, "sent to the old owner, redirected to the new one")
                #expect(sender.statisticsStorage.cluster.redirectedPublishes.load(ordering: .relaxed) == 1)
                #expect(try await receiver.receive(from: channel, timeout: .seconds(10))?["n"]?.intValue == 6)
                #expect(receiver.statistics.clusterRehomedChannels >= 1)
                #expect(receiver.statistics.undecodableMessages == 1, "the raw SPUBLISH above")
            }
        }
    }

    /// Redis 7.0 sends no `-ASK` for SPUBLISH, so this test plays the redirect: it publishes as the layer does after an
    /// `-ASK` to the importing node. Without ASKING that node answers `-MOVED` (followed back to the source); with it, it
    /// serves the SPUBLISH to a subscriber of its own, and ASKING's `+OK` is not taken for the SPUBLISH's reply.
    @Test func aPublishFollowingAskSendsAskingBeforeEachSpublish() async throws {
        try await withClusterLayer(replicasPerPrimary: 0) { layer, cluster in
            let channel = try await layer.newChannel()
            let slot = ClusterKeySlot.slot(for: channel)
            let source = try await cluster.ownerPort(ofSlot: slot)
            let target = try #require(try await cluster.primaryPorts().first { $0 != source })
            try await cluster.openMigration(slot: slot, from: source, to: target)
            let subscriber = try await RawShardSubscriber.open(port: target, channel: channel)
            defer { subscriber.close() }
            let codec = try MessageCodec(configuration: .init())

            let asked = try await Self.publish(layer, codec.encode(["asked": 1]), to: channel, on: target, asking: true)
            #expect(asked == 1, "the importing node's own subscriber, after ASKING")
            #expect(try await subscriber.waitFor(Array("asked".utf8)))
            #expect(layer.statisticsStorage.cluster.redirectedPublishes.load(ordering: .relaxed) == 0)

            var batch = PayloadBatch(capacity: 3)
            for index in 0..<3 { try codec.encode(["batch": .int(Int64(index))], into: &batch) }
            #expect(try await Self.publish(layer, batch: batch, to: channel, on: target, asking: true) == 3, "ASKING before each")
            #expect(try await subscriber.waitFor(Array("batch".utf8), count: 3))

            // Without ASKING: -MOVED back to the source, where the layer's own subscription is.
            let moved = try await Self.publish(layer, codec.encode(["moved": 1]), to: channel, on: target, asking: false)
            #expect(moved == 1)
            #expect(layer.statisticsStorage.cluster.redirectedPublishes.load(ordering: .relaxed) == 1)
            #expect(try await layer.receive(from: channel, timeout: .seconds(10))?["moved"]?.intValue == 1)
            // The publisher's replies still line up.
            for n in 0..<3 { #expect(try await layer.send(["n": .int(Int64(n))], to: channel) == 1) }
            for n in 0..<3 { #expect(try await layer.receive(from: channel, timeout: .seconds(10))?["n"]?.intValue == n) }
            #expect(layer.isHealthy)
        }
    }

    /// Publishes as the engine does after a redirect to the node on `port` (`asking`: after `-ASK`).
    static func publish(_ layer: RedisPubSubChannelLayer, _ payload: [UInt8], to channel: String, on port: Int, asking: Bool) async throws -> Int {
        try await publish(layer, payloads: .one(payload), to: channel, on: port, asking: asking)
    }

    static func publish(_ layer: RedisPubSubChannelLayer, batch: PayloadBatch, to channel: String, on port: Int, asking: Bool) async throws -> Int {
        try await publish(layer, payloads: .batch(batch), to: channel, on: port, asking: asking)
    }

    private static func publish(
        _ layer: RedisPubSubChannelLayer,
        payloads: PubSubEngine.ClusterPayloads,
        to channel: String,
        on port: Int,
        asking: Bool
    ) async throws -> Int {
        let engine = layer.engine
        let receivers = try await LoopContinuation<Int>.withContinuation { continuation in
            let submitted = layer.loop.execute {
                engine.clusterPublish(
                    to: channel,
                    payloads: payloads,
                    continuation: continuation,
                    target: .hostname("127.0.0.1", port: port),
                    asking: asking
                )
            }
            if !submitted { continuation.resume(throwing: ChannelLayerError.closed()) }
        }
        LoopContinuation<Int>.passHandoff()
        return receivers
    }
}

/// A sharded subscriber of the test's own on one node, subscribed after ASKING (so an importing node takes it), that
/// collects the raw bytes of what comes.
final class RawShardSubscriber: Sendable {
    private let fd: Int32
    private let port: Int
    private let received = Mutex<[UInt8]>([])

    private init(fd: Int32, port: Int) {
        self.fd = fd
        self.port = port
    }

    static func open(port: Int, channel: String) async throws -> RawShardSubscriber {
        try await onDedicatedThread {
            let deadline = ContinuousClock.now + .seconds(5)
            let fd = try LoopbackSocket.connect(port: port, deadline: deadline)
            let subscriber = RawShardSubscriber(fd: fd, port: port)
            do {
                try LoopbackSocket.sendAll(
                    fd,
                    RESPClient.encode(["ASKING"]) + RESPClient.encode(["SSUBSCRIBE", channel]),
                    deadline: deadline,
                    port: port
                )
                guard try subscriber.readUntil(deadline: deadline, { bytes in Self.count(of: Array("ssubscribe".utf8), in: bytes) >= 1 }) else {
                    throw FixtureError(
                        .timedOut,
                        "SSUBSCRIBE on \(port) was not confirmed: \(String(decoding: subscriber.received.withLock { $0 }, as: UTF8.self))"
                    )
                }
            } catch {
                subscriber.close()
                throw error
            }
            return subscriber
        }
    }

    /// Whether `marker` arrived at least `count` times within 10 seconds.
    func waitFor(_ marker: [UInt8], count: Int = 1) async throws -> Bool {
        try await onDedicatedThread {
            try self.readUntil(deadline: ContinuousClock.now + .seconds(10)) { bytes in Self.count(of: marker, in: bytes) >= count }
        }
    }

    func close() { Glibc.close(fd) }

    private func readUntil(deadline: ContinuousClock.Instant, _ done: ([UInt8]) -> Bool) throws -> Bool {
        while !received.withLock({ done($0) }) {
            guard try LoopbackSocket.waitFor(fd, events: Int16(POLLIN), deadline: deadline) else { return false }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { throw FixtureError(.connectionClosed, "127.0.0.1:\(port) closed the subscriber") }
            if count < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw FixtureError.systemCall("recv")
            }
            received.withLock { $0.append(contentsOf: buffer[..<count]) }
        }
        return true
    }

    private static func count(of marker: [UInt8], in bytes: [UInt8]) -> Int {
        guard !marker.isEmpty, bytes.count >= marker.count else { return 0 }
        var found = 0
        var index = 0
        while index + marker.count <= bytes.count {
            if bytes[index..<(index + marker.count)].elementsEqual(marker) {
                found += 1
                index += marker.count
            } else {
                index += 1
            }
        }
        return found
    }
}

/// Partial redirects: a batch that Redis redirected in part.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct ClusterPartialRedirectTests {
    /// Big batches from a layer with a stale map while their slot is assigned to another primary: the source answers
    /// the SPUBLISHes it read before the assignment and redirects the rest, and only those are sent again. Every batch
    /// succeeds, the receiver gets each delivered message once and in order, and the receiver counts add up. (Whether
    /// a given batch is split depends on where the assignment lands in it; the count of split runs is printed.)
    @Test func aBatchWhoseSlotIsAssignedMidwaySucceedsWithEveryMessageOnce() async throws {
        try await withClusterLayer(replicasPerPrimary: 0, configure: { $0.capacity = 1_000_000 }) { receiver, cluster in
            let sender = try await staleMapLayer(cluster, sendTimeout: .seconds(20))
            try await closing(sender) { sender in
                let channel = try await receiver.newChannel()
                let slot = ClusterKeySlot.slot(for: channel)
                let source = try await cluster.ownerPort(ofSlot: slot)
                let target = try #require(try await cluster.primaryPorts().first { $0 != source })
                let padding = String(repeating: "p", count: 4_000)
                let batchSize = 300

                @Sendable func batch(_ number: Int) -> [ChannelMessage] {
                    (0..<batchSize).map { ["b": .int(Int64(number)), "i": .int(Int64($0)), "pad": .string(padding)] }
                }
                // While the slot is still the source's.
                var receivers = try await sender.send(contentsOf: batch(0), to: channel)
                #expect(receivers == batchSize)
                try await cluster.openMigration(slot: slot, from: source, to: target)
                // Batches back to back, so that the source is in the middle of one when it gives the slot up.
                let sent = Atomic<Int>(0)
                let stop = Atomic<Bool>(false)
                let sending = Task { [sender] in
                    var results: [Result<Int, ChannelLayerError>] = []
                    var number = 1
                    while !stop.load(ordering: .relaxed) {
                        do {
                            results.append(.success(try await sender.send(contentsOf: batch(number), to: channel)))
                        } catch let error as ChannelLayerError {
                            results.append(.failure(error))
                        } catch {
                            results.append(.failure(ChannelLayerError(.systemFailure, "\(error)")))
                        }
                        number += 1
                        sent.store(number - 1, ordering: .relaxed)
                    }
                    return results
                }
                try await eventually("batches flow") { sent.load(ordering: .relaxed) >= 2 }
                try await cluster.finishMigration(slot: slot, from: source, to: target)
                let assignedAt = sent.load(ordering: .relaxed)
                try await eventually("batches flow after the assignment") { sent.load(ordering: .relaxed) >= assignedAt + 2 }
                stop.store(true, ordering: .relaxed)
                let results = await sending.value
                for result in results {
                    switch result {
                    case .success(let count):
                        #expect(count <= batchSize)
                        receivers += count
                    case .failure(let error): Issue.record("a batch failed: \(error)")
                    }
                }
                #expect(sender.statisticsStorage.cluster.redirectedPublishes.load(ordering: .relaxed) >= 1, "the stale map was redirected")
                // After the re-homing, one more batch arrives whole.
                try await eventually("the receiver re-homed the channel") {
                    try await cluster.node(port: target)!.command(["PUBSUB", "SHARDNUMSUB", channel]).array?.last?.integer == 1
                }
                let last = try await sender.send(contentsOf: batch(results.count + 1), to: channel)
                #expect(last == batchSize)
                receivers += last

                var received: [(Int, Int)] = []
                while let message = try await receiver.receive(from: channel, timeout: .seconds(3)) {
                    received.append((message["b"]?.intValue ?? -1, message["i"]?.intValue ?? -1))
                }
                #expect(received.count == receivers, "every message Redis delivered to the receiver, once")
                let keys = received.map { $0.0 * batchSize + $0.1 }
                #expect(keys == keys.sorted() && Set(keys).count == keys.count, "in order, no duplicates")
                #expect(received.suffix(batchSize).map(\.1) == Array(0..<batchSize), "the last batch whole")
                Swift.print(
                    "partial redirects: \(sender.statisticsStorage.cluster.partiallyRedirectedRuns.load(ordering: .relaxed)) runs split, "
                        + "\(sender.statisticsStorage.cluster.redirectedPublishes.load(ordering: .relaxed)) redirects followed, "
                        + "\(receivers) of \((results.count + 2) * batchSize) delivered to the receiver"
                )
            }
        }
    }
}
