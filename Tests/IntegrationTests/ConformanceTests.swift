import Testing

@testable import ChannelsRedis

/// The layers the conformance suite runs against.
enum LayerKind: String, Sendable, CaseIterable, CustomTestStringConvertible {
    case inMemory
    case redis

    var testDescription: String { rawValue }
}

/// A layer under test, with what the suite reads of it that ``ChannelLayer`` does not offer.
struct LayerUnderTest: Sendable {
    let kind: LayerKind
    let layer: any ChannelLayer
    /// Messages put into channel buffers so far.
    let delivered: @Sendable () -> Int
    /// Messages dropped from full buffers so far.
    let dropped: @Sendable () -> Int

    /// What `groupSend` returns for a group with `members` channels of this layer: the in-memory
    /// layer counts member channels, Redis subscriber connections (one per process with a member).
    func groupReceivers(members: Int) -> Int {
        switch kind {
        case .inMemory: members
        case .redis: members > 0 ? 1 : 0
        }
    }
}

/// A layer of `kind` (on a server of its own for `.redis`, through `withLayer`), closed afterwards.
private func withLayer<Result>(
    _ kind: LayerKind,
    capacity: Int? = nil,
    _ body: (LayerUnderTest) async throws -> Result
) async throws -> Result {
    switch kind {
    case .redis:
        return try await withLayer(configure: { if let capacity { $0.capacity = capacity } }) { layer, _ in
            try await body(
                LayerUnderTest(
                    kind: kind,
                    layer: layer,
                    delivered: { layer.statistics.delivered },
                    dropped: { layer.statistics.droppedMessages }
                )
            )
        }
    case .inMemory:
        let layer = try InMemoryChannelLayer(configuration: .init(capacity: capacity ?? 10_000))
        return try await closing(layer) { layer in
            try await body(
                LayerUnderTest(
                    kind: kind,
                    layer: layer,
                    delivered: { layer.statistics.delivered },
                    dropped: { layer.statistics.droppedMessages }
                )
            )
        }
    }
}

/// Runs `operation` and returns the code of the `ChannelLayerError` it threw; records an issue if it
/// threw nothing or something else.
private func errorCode(
    sourceLocation: SourceLocation = #_sourceLocation,
    _ operation: () async throws -> Void
) async -> ChannelLayerError.Code? {
    do {
        try await operation()
        Issue.record("no error was thrown", sourceLocation: sourceLocation)
    } catch let error as ChannelLayerError {
        return error.code
    } catch {
        Issue.record("\(error) is not a ChannelLayerError", sourceLocation: sourceLocation)
    }
    return nil
}

/// The error a consumer task ended with, `nil` if it ended without one.
private func endingError(of task: Task<Void, any Error>) async -> ChannelLayerError.Code? {
    switch await task.result {
    case .success:
        return nil
    case .failure(let error as ChannelLayerError):
        return error.code
    case .failure(let error):
        Issue.record("the consumer threw \(error)")
        return nil
    }
}

private struct Boom: Error {}

/// The same behavioural tests against every ``ChannelLayer``: what one layer does, the other must.
@Suite("Channel layer conformance", .timeLimit(.minutes(3)))
struct ConformanceTests {
    // MARK: Names

    @Test(arguments: LayerKind.allCases)
    func newChannelNamesFollowPythonsFormat(_ kind: LayerKind) async throws {
        try await withLayer(kind) { subject in
            let plain = try await subject.layer.newChannel()
            let chat = try await subject.layer.newChannel(prefix: "chat.")
            #expect(plain.hasPrefix("asgispecific.") && plain.count == "asgispecific.".count + 32)
            #expect(chat.hasPrefix("asgichat.") && chat.count == "asgichat.".count + 32)
            #expect(plain.dropFirst("asgispecific.".count).allSatisfy { $0.isHexDigit && !$0.isUppercase })
            #expect(plain != (try await subject.layer.newChannel()))
        }
    }

    @Test(arguments: LayerKind.allCases)
    func invalidNamesAreRejected(_ kind: LayerKind) async throws {
        try await withLayer(kind) { subject in
            let layer = subject.layer
            let channel = try await layer.newChannel()
            let tooLong = String(repeating: "a", count: 100)
            for name in ["has space", "", "bad/char", tooLong, "é", "!local", "a!b!c", "line\n"] {
                #expect(await errorCode { try await layer.send(["type": "x"], to: name) } == .invalidName, "\(name)")
                #expect(await errorCode { _ = try await layer.receive(from: name) } == .invalidName)
                #expect(await errorCode { _ = try await layer.receive(from: name, timeout: .seconds(1)) } == .invalidName)
                #expect(await errorCode { _ = try await layer.messages(from: name) } == .invalidName)
                #expect(await errorCode { try await layer.discard(channel: name) } == .invalidName)
                #expect(await errorCode { try await layer.groupAdd("room", channel: name) } == .invalidName)
                #expect(await errorCode { try await layer.groupDiscard("room", channel: name) } == .invalidName)
            }
            for group in ["a!b", "has space", "", tooLong, "é"] {
                #expect(await errorCode { try await layer.groupAdd(group, channel: channel) } == .invalidName, "\(group)")
                #expect(await errorCode { try await layer.groupDiscard(group, channel: channel) } == .invalidName)
                #expect(await errorCode { try await layer.groupSend(["type": "x"], to: group) } == .invalidName)
            }
            #expect(await errorCode { _ = try await layer.newChannel(prefix: "bad prefix") } == .invalidName)
            #expect(await errorCode { _ = try await layer.newChannel(prefix: String(repeating: "p", count: 70)) } == .invalidName)
            // A process-local name with one "!" is valid; nobody receives it.
            #expect(try await layer.send(["type": "x"], to: "asgispecific.abc!def") == 0)
        }
    }

    // MARK: Channels

    @Test(arguments: LayerKind.allCases)
    func sendAndReceiveAreFIFO(_ kind: LayerKind) async throws {
        try await withLayer(kind) { subject in
            let layer = subject.layer
            let channel = try await layer.newChannel()
            let message: ChannelMessage = ["type": "test.message", "text": "Ahoy-hoy!", "blob": .binary([0, 1, 255]), "n": 1.5]
            #expect(try await layer.send(message, to: channel) == 1)
            #expect(try await layer.receive(from: channel) == message)
            for index in 0..<20 { try await layer.send(["n": .int(Int64(index))], to: channel) }
            for index in 0..<20 { #expect(try await layer.receive(from: channel)["n"]?.intValue == index) }
        }
    }

    @Test(arguments: LayerKind.allCases)
    func sendReturnsOneForAChannelThatExistsAndZeroOtherwise(_ kind: LayerKind) async throws {
        try await withLayer(kind) { subject in
            let layer = subject.layer
            let channel = try await layer.newChannel()
            #expect(try await layer.send(["type": "x"], to: channel) == 1)
            #expect(try await layer.send(["type": "x"], to: "asgispecific.nobody") == 0)
            // A general channel exists once somebody receives from it.
            _ = try await layer.messages(from: "conformance.general")
            #expect(try await layer.send(["type": "x"], to: "conformance.general") == 1)
            #expect(try await layer.receive(from: "conformance.general")["type"] == "x")
        }
    }

    @Test(arguments: LayerKind.allCases)
    func severalConsumersShareOneChannelsBuffer(_ kind: LayerKind) async throws {
        try await withLayer(kind) { subject in
            let layer = subject.layer
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
            try await Task.sleep(for: .milliseconds(50))  // (to let some consumers wait first; not required)
            for index in 0..<6 { #expect(try await layer.send(["n": .int(Int64(index))], to: channel) == 1) }
            let iterated = try await iterating.value
            #expect(iterated == iterated.sorted())  // one FIFO buffer: each consumer's share is in order
            var all = iterated
            for receiver in receivers { all.append(try await receiver.value["n"]!.intValue!) }
            #expect(all.sorted() == Array(0..<6))  // each message went to exactly one consumer
        }
    }

    @Test(arguments: LayerKind.allCases)
    func aFullBufferDropsTheOldestAndCountsIt(_ kind: LayerKind) async throws {
        try await withLayer(kind, capacity: 3) { subject in
            let layer = subject.layer
            let channel = try await layer.newChannel()
            for index in 0..<5 { #expect(try await layer.send(["n": .int(Int64(index))], to: channel) == 1) }
            try await eventually { subject.delivered() == 5 }
            #expect(subject.dropped() == 2)
            for index in 2..<5 { #expect(try await layer.receive(from: channel)["n"]?.intValue == index) }
            #expect(try await layer.receive(from: channel, timeout: .milliseconds(100)) == nil)
        }
    }

    // MARK: Groups

    @Test(arguments: LayerKind.allCases)
    func groupSendReachesMembersUntilTheyLeave(_ kind: LayerKind) async throws {
        try await withLayer(kind) { subject in
            let layer = subject.layer
            let channels = [try await layer.newChannel(), try await layer.newChannel(), try await layer.newChannel()]
            for channel in channels { try await layer.groupAdd("test-group", channel: channel) }
            try await layer.groupAdd("test-group", channel: channels[0])  // again: still one member
            #expect(try await layer.groupSend(["type": "message.1"], to: "test-group") == subject.groupReceivers(members: 3))
            for channel in channels { #expect(try await layer.receive(from: channel)["type"] == "message.1") }

            try await layer.groupDiscard("test-group", channel: channels[2])
            try await layer.groupDiscard("test-group", channel: channels[2])  // not a member: a no-op
            try await layer.groupDiscard("other-group", channel: channels[2])
            #expect(try await layer.groupSend(["type": "message.2"], to: "test-group") == subject.groupReceivers(members: 2))
            #expect(try await layer.receive(from: channels[0])["type"] == "message.2")
            #expect(try await layer.receive(from: channels[1])["type"] == "message.2")
            #expect(try await layer.receive(from: channels[2], timeout: .milliseconds(200)) == nil)

            #expect(try await layer.groupSend(["type": "x"], to: "empty-group") == 0)
        }
    }

    @Test(arguments: LayerKind.allCases)
    func aChannelInTwoGroupsGetsBothUntilItLeavesOne(_ kind: LayerKind) async throws {
        try await withLayer(kind) { subject in
            let layer = subject.layer
            let channel = try await layer.newChannel()
            try await layer.groupAdd("first", channel: channel)
            try await layer.groupAdd("second", channel: channel)
            try await layer.groupSend(["from": "first"], to: "first")
            try await layer.groupSend(["from": "second"], to: "second")
            #expect(try await layer.receive(from: channel)["from"] == "first")
            #expect(try await layer.receive(from: channel)["from"] == "second")

            try await layer.groupDiscard("first", channel: channel)
            try await layer.groupSend(["from": "first"], to: "first")  // no longer a member
            try await layer.groupSend(["from": "second"], to: "second")
            #expect(try await layer.receive(from: channel)["from"] == "second")
            #expect(try await layer.receive(from: channel, timeout: .milliseconds(200)) == nil)
            try await eventually { try await layer.groupSend(["from": "first"], to: "first") == 0 }
        }
    }

    @Test(arguments: LayerKind.allCases)
    func groupAddOfAnUnknownChannelIsNotAMember(_ kind: LayerKind) async throws {
        try await withLayer(kind) { subject in
            let layer = subject.layer
            #expect(await errorCode { try await layer.groupAdd("room", channel: "asgispecific.notmine") } == .notAMember)
            let discarded = try await layer.newChannel()
            try await layer.discard(channel: discarded)
            #expect(await errorCode { try await layer.groupAdd("room", channel: discarded) } == .notAMember)
            // A general channel being received from can join.
            _ = try await layer.messages(from: "conformance.worker")
            try await layer.groupAdd("room", channel: "conformance.worker")
            #expect(try await layer.groupSend(["type": "job"], to: "room") == 1)
            #expect(try await layer.receive(from: "conformance.worker")["type"] == "job")
        }
    }

    // MARK: A wait that ends leaves the channel

    @Test(arguments: LayerKind.allCases)
    func aTimedOutReceiveReturnsNilAndLeavesTheChannelAndItsGroups(_ kind: LayerKind) async throws {
        try await withLayer(kind) { subject in
            let layer = subject.layer
            let channel = try await layer.newChannel()
            try await layer.groupAdd("lobby", channel: channel)
            #expect(try await layer.receive(from: channel, timeout: .milliseconds(150)) == nil)
            #expect(try await layer.send(["n": "direct"], to: channel) == 1)
            #expect(try await layer.groupSend(["n": "group"], to: "lobby") == 1)
            #expect(try await layer.receive(from: channel, timeout: .seconds(5))?["n"] == "direct")
            #expect(try await layer.receive(from: channel, timeout: .seconds(5))?["n"] == "group")
        }
    }

    @Test(arguments: LayerKind.allCases)
    func aCancelledReceiveThrowsCancellationAndLeavesTheChannel(_ kind: LayerKind) async throws {
        try await withLayer(kind) { subject in
            let layer = subject.layer
            for channel in [try await layer.newChannel(), "conformance.general"] {
                let waiting = Task { try await layer.receive(from: channel) }
                try await Task.sleep(for: .milliseconds(50))
                waiting.cancel()
                await #expect(throws: CancellationError.self) { try await waiting.value }
                #expect(try await layer.send(["type": "after"], to: channel) == 1)
                #expect(try await layer.receive(from: channel, timeout: .seconds(5))?["type"] == "after")
            }
        }
    }

    @Test(arguments: LayerKind.allCases)
    func breakingOutOfMessagesLeavesTheChannelAndWhatItBuffered(_ kind: LayerKind) async throws {
        try await withLayer(kind) { subject in
            let layer = subject.layer
            let channel = try await layer.newChannel()
            try await layer.send(["n": 1], to: channel)
            try await layer.send(["n": 2], to: channel)
            for try await message in try await layer.messages(from: channel) {
                #expect(message["n"] == 1)
                break
            }
            #expect(try await layer.send(["n": 3], to: channel) == 1)
            #expect(try await layer.receive(from: channel)["n"] == 2)
            #expect(try await layer.receive(from: channel)["n"] == 3)
        }
    }

    // MARK: Scopes

    @Test(arguments: LayerKind.allCases)
    func withChannelDiscardsWhenItsBodyReturns(_ kind: LayerKind) async throws {
        try await withLayer(kind) { subject in
            let layer = subject.layer
            let channel = try await layer.withChannel { channel, messages in
                try await layer.groupAdd("scoped", channel: channel)
                #expect(try await layer.send(["type": "one"], to: channel) == 1)
                var iterator = messages.makeAsyncIterator()
                #expect(try await iterator.next()?["type"] == "one")
                return channel
            }
            try await eventually("\(channel) discarded") { try await layer.send(["type": "late"], to: channel) == 0 }
            try await eventually("out of its group") { try await layer.groupSend(["type": "late"], to: "scoped") == 0 }
            #expect(await errorCode { try await layer.groupAdd("scoped", channel: channel) } == .notAMember)
        }
    }

    @Test(arguments: LayerKind.allCases)
    func withChannelDiscardsWhenItsBodyThrows(_ kind: LayerKind) async throws {
        try await withLayer(kind) { subject in
            let layer = subject.layer
            var made: String?
            do {
                try await layer.withChannel { channel, _ in
                    made = channel
                    throw Boom()
                }
                Issue.record("withChannel did not rethrow")
            } catch is Boom {}
            let channel = try #require(made)
            try await eventually("\(channel) discarded") { try await layer.send(["type": "late"], to: channel) == 0 }
        }
    }

    @Test(arguments: LayerKind.allCases)
    func withChannelDiscardsWhenItsTaskIsCancelled(_ kind: LayerKind) async throws {
        try await withLayer(kind) { subject in
            let layer = subject.layer
            let (names, continuation) = AsyncStream.makeStream(of: String.self)
            let consumer = Task {
                try await layer.withChannel { channel, messages in
                    continuation.yield(channel)
                    for try await _ in messages {}  // ends (nil) when the task is cancelled
                }
            }
            var iterator = names.makeAsyncIterator()
            let channel = try #require(await iterator.next())
            #expect(try await layer.send(["type": "seen"], to: channel) == 1)
            consumer.cancel()
            try await consumer.value
            try await eventually("\(channel) discarded") { try await layer.send(["type": "late"], to: channel) == 0 }
        }
    }

    @Test(arguments: LayerKind.allCases)
    func withMessagesDiscardsAChannelItDidNotMake(_ kind: LayerKind) async throws {
        try await withLayer(kind) { subject in
            let layer = subject.layer
            let type = try await layer.withMessages(from: "conformance.scoped") { messages in
                #expect(try await layer.send(["type": "one"], to: "conformance.scoped") == 1)
                var iterator = messages.makeAsyncIterator()
                return try await iterator.next()?["type"]?.stringValue
            }
            #expect(type == "one")
            try await eventually { try await layer.send(["type": "late"], to: "conformance.scoped") == 0 }
        }
    }

    // MARK: Ending channels

    @Test(arguments: LayerKind.allCases)
    func discardIsIdempotentAndEndsConsumersWithChannelClosed(_ kind: LayerKind) async throws {
        try await withLayer(kind) { subject in
            let layer = subject.layer
            let channel = try await layer.newChannel()
            try await layer.groupAdd("room", channel: channel)
            let messages = try await layer.messages(from: channel)
            let receiving = Task<Void, any Error> { _ = try await layer.receive(from: channel) }
            let iterating = Task<Void, any Error> { for try await _ in messages {} }
            try await Task.sleep(for: .milliseconds(50))
            try await layer.discard(channel: channel)
            #expect(await endingError(of: receiving) == .channelClosed)
            #expect(await endingError(of: iterating) == .channelClosed)
            // A consumer that comes to the old sequence later is told too.
            var iterator = messages.makeAsyncIterator()
            #expect(await errorCode { _ = try await iterator.next() } == .channelClosed)
            try await layer.discard(channel: channel)
            try await layer.discard(channel: "asgispecific.never-made")
            try await eventually { try await layer.send(["type": "late"], to: channel) == 0 }
            try await eventually { try await layer.groupSend(["type": "late"], to: "room") == 0 }
        }
    }

    @Test(arguments: LayerKind.allCases)
    func flushEndsConsumersWithChannelClosedAndLeavesTheLayerUsable(_ kind: LayerKind) async throws {
        try await withLayer(kind) { subject in
            let layer = subject.layer
            let channel = try await layer.newChannel()
            try await layer.groupAdd("room", channel: channel)
            let messages = try await layer.messages(from: "conformance.general")
            let receiving = Task<Void, any Error> { _ = try await layer.receive(from: channel) }
            let iterating = Task<Void, any Error> { for try await _ in messages {} }
            try await Task.sleep(for: .milliseconds(50))
            try await layer.flush()
            #expect(await endingError(of: receiving) == .channelClosed)
            #expect(await endingError(of: iterating) == .channelClosed)
            try await eventually { try await layer.send(["type": "late"], to: channel) == 0 }
            try await eventually { try await layer.groupSend(["type": "late"], to: "room") == 0 }
            #expect(await errorCode { try await layer.groupAdd("room", channel: channel) } == .notAMember)
            let fresh = try await layer.newChannel()
            #expect(try await layer.send(["type": "x"], to: fresh) == 1)
            #expect(try await layer.receive(from: fresh)["type"] == "x")
        }
    }

    @Test(arguments: LayerKind.allCases)
    func closeEndsConsumersWithLayerClosedAndLaterCallsThrowIt(_ kind: LayerKind) async throws {
        try await withLayer(kind) { subject in
            let layer = subject.layer
            let channel = try await layer.newChannel()
            try await layer.groupAdd("room", channel: channel)
            let messages = try await layer.messages(from: channel)
            let receiving = Task<Void, any Error> { _ = try await layer.receive(from: channel) }
            let iterating = Task<Void, any Error> { for try await _ in messages {} }
            try await Task.sleep(for: .milliseconds(50))
            await layer.close()
            await layer.close()  // idempotent
            #expect(await endingError(of: receiving) == .layerClosed)
            #expect(await endingError(of: iterating) == .layerClosed)
            #expect(await errorCode { _ = try await layer.newChannel() } == .layerClosed)
            #expect(await errorCode { try await layer.send(["type": "x"], to: channel) } == .layerClosed)
            #expect(await errorCode { _ = try await layer.receive(from: channel) } == .layerClosed)
            #expect(await errorCode { _ = try await layer.receive(from: channel, timeout: .seconds(1)) } == .layerClosed)
            #expect(await errorCode { _ = try await layer.messages(from: channel) } == .layerClosed)
            #expect(await errorCode { try await layer.discard(channel: channel) } == .layerClosed)
            #expect(await errorCode { try await layer.groupAdd("room", channel: channel) } == .layerClosed)
            #expect(await errorCode { try await layer.groupDiscard("room", channel: channel) } == .layerClosed)
            #expect(await errorCode { try await layer.groupSend(["type": "x"], to: "room") } == .layerClosed)
            #expect(await errorCode { try await layer.flush() } == .layerClosed)
            #expect(await errorCode { _ = try await layer.withChannel { _, _ in } } == .layerClosed)
            // The name is still checked first.
            #expect(await errorCode { try await layer.send(["type": "x"], to: "bad name") } == .invalidName)
        }
    }
}
