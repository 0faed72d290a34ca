import Synchronization
import Testing

@testable import ChannelsRedis

@Suite(.timeLimit(.minutes(1)))
struct PublishPipelineTests {
    /// What became of a waiter.
    enum Outcome: Equatable {
        case published(receivers: Int)
        case failed(ChannelLayerError.Code)
        /// Not resumed by the test's body.
        case pending
    }

    /// Runs `body` with one real `PublishWaiter` per count (each awaited by a task of its own),
    /// and returns what became of each. Waiters the body left pending are failed afterwards and
    /// reported as `.pending`.
    private func outcomes(of counts: [Int], _ body: ([PublishWaiter]) -> Void) async -> [Outcome] {
        final class Continuations: Sendable {
            let byIndex = Mutex<[Int: LoopContinuation<Int>]>([:])
        }
        let continuations = Continuations()
        let leftPending = ChannelLayerError(.systemFailure, "left pending by the test")
        return await withTaskGroup(of: (Int, Outcome).self) { group in
            for index in counts.indices {
                group.addTask {
                    do {
                        let receivers = try await LoopContinuation<Int>.withContinuation { continuation in
                            continuations.byIndex.withLock { $0[index] = continuation }
                        }
                        return (index, .published(receivers: receivers))
                    } catch let error as ChannelLayerError {
                        return (index, error.message == leftPending.message ? .pending : .failed(error.code))
                    } catch {
                        return (index, .failed(.systemFailure))
                    }
                }
            }
            while continuations.byIndex.withLock({ $0.count }) < counts.count { await Task.yield() }
            let waiters = continuations.byIndex.withLock { byIndex in
                counts.indices.map { PublishWaiter(count: counts[$0], continuation: byIndex[$0]!) }
            }
            body(waiters)
            for waiter in waiters { waiter.fail(leftPending) }
            var outcomes = [Outcome](repeating: .pending, count: counts.count)
            for await (index, outcome) in group { outcomes[index] = outcome }
            return outcomes
        }
    }

    private let start = ContinuousClock.now
    private func at(_ seconds: Int) -> ContinuousClock.Instant { start.advanced(by: .seconds(seconds)) }
    private static let timeout = ChannelLayerError(.timeout, "test timeout")
    private let payload: ArraySlice<UInt8> = [1, 2, 3][...]

    @Test func publishesWaitForTheConnectionInOrder() async {
        let outcomes = await outcomes(of: [2, 1]) { waiters in
            var pipeline = PublishPipeline()
            #expect(!pipeline.hasWaiting)
            pipeline.wait(channel: "a", payload: payload, waiter: waiters[0], deadline: at(5))
            pipeline.wait(channel: "a", payload: payload, waiter: waiters[0], deadline: at(5))
            pipeline.wait(channel: "b", payload: payload, waiter: waiters[1], deadline: at(6))
            #expect(pipeline.hasWaiting)
            var sent: [(String, PublishWaiter)] = []
            while let entry = pipeline.takeWaiting() { sent.append((entry.channel, entry.waiter)) }
            #expect(sent.map(\.0) == ["a", "a", "b"])
            #expect(sent[0].1 === waiters[0] && sent[1].1 === waiters[0] && sent[2].1 === waiters[1])
            #expect(!pipeline.hasWaiting)
        }
        #expect(outcomes == [.pending, .pending])
    }

    @Test func theHandshakeFinishesWithItsLastReply() {
        var pipeline = PublishPipeline()
        pipeline.connectionStarted()
        pipeline.handshakeSent()  // AUTH
        pipeline.handshakeSent()  // PING
        #expect(!pipeline.isHandshakeFinished)
        #expect(pipeline.takeReply()?.kind == .handshake)
        #expect(!pipeline.isHandshakeFinished)
        #expect(pipeline.takeReply()?.kind == .handshake)
        #expect(pipeline.isHandshakeFinished)
        #expect(pipeline.takeReply() == nil)
    }

    @Test func repliesBelongToTheRunsInTheOrderTheyWereSent() async {
        let outcomes = await outcomes(of: [1, 3]) { waiters in
            var pipeline = PublishPipeline()
            pipeline.handshakeSent()
            #expect(pipeline.sent(1, of: 1, waiter: waiters[0], deadline: at(5)) == .doNothing)
            pipeline.probeSent()
            #expect(pipeline.sent(3, of: 3, waiter: waiters[1], deadline: at(6)) == .doNothing)
            #expect(pipeline.takeReply()?.kind == .handshake)
            let first = pipeline.takeReply()
            #expect(first?.kind == .publish && first?.count == 1 && first?.waiter === waiters[0])
            #expect(pipeline.takeReply()?.kind == .probe)
            let batch = pipeline.takeReply()
            #expect(batch?.kind == .publish && batch?.count == 3 && batch?.waiter === waiters[1])
            batch?.waiter?.succeeded(count: 3, receivers: 6)
            first?.waiter?.succeeded(count: 1, receivers: 2)
        }
        #expect(outcomes == [.published(receivers: 2), .published(receivers: 6)])
    }

    @Test func aPartialRunReplacesTheConnectionAndNothingSentRecordsNothing() async {
        _ = await outcomes(of: [3, 1]) { waiters in
            var pipeline = PublishPipeline()
            #expect(pipeline.sent(0, of: 1, waiter: waiters[1], deadline: at(5)) == .doNothing)
            #expect(pipeline.inFlight.isEmpty)
            #expect(pipeline.sent(2, of: 3, waiter: waiters[0], deadline: at(5)) == .replaceConnection)
            #expect(pipeline.inFlight.count == 1)
            #expect(pipeline.inFlight.first?.count == 2)
        }
    }

    @Test func theSweepFailsExpiredPublishesInOrderAndStopsAtTheFirstLiveOne() async {
        let outcomes = await outcomes(of: [1, 1, 1, 1, 1, 1]) { waiters in
            var pipeline = PublishPipeline()
            // In flight: deadlines 1, 2, 4 with the handshake and a probe between (no deadline).
            pipeline.handshakeSent()
            _ = pipeline.sent(1, of: 1, waiter: waiters[0], deadline: at(1))
            pipeline.probeSent()
            _ = pipeline.sent(1, of: 1, waiter: waiters[1], deadline: at(2))
            _ = pipeline.sent(1, of: 1, waiter: waiters[2], deadline: at(4))
            // Waiting: deadlines 1, 3, 5.
            pipeline.wait(channel: "a", payload: payload, waiter: waiters[3], deadline: at(1))
            pipeline.wait(channel: "a", payload: payload, waiter: waiters[4], deadline: at(3))
            pipeline.wait(channel: "a", payload: payload, waiter: waiters[5], deadline: at(5))

            var made = 0
            let next = pipeline.expire(at: at(2)) {
                made += 1
                return Self.timeout
            }
            #expect(next == at(3), "the earliest live deadline of either queue")
            #expect(made == 3, "one error per expired waiter, none for the live ones")
            #expect(waiters.map(\.isPending) == [false, false, true, false, true, true])
            // Expired waiting publishes leave the queue; in-flight runs stay until their replies.
            #expect(pipeline.waiting.count == 2)
            #expect(pipeline.inFlight.count == 5)
            #expect(pipeline.sweptPrefix == 4, "the handshake, two expired runs and the probe between")

            // The next sweep starts where this one stopped.
            #expect(pipeline.expire(at: at(2)) { Self.timeout } == at(3))
            #expect(pipeline.expire(at: at(4)) { Self.timeout } == at(5))
            #expect(waiters.map(\.isPending) == [false, false, false, false, false, true])
            #expect(pipeline.sweptPrefix == 5)

            // A reply to a swept run moves the prefix with the queue.
            #expect(pipeline.takeReply()?.kind == .handshake)
            #expect(pipeline.sweptPrefix == 4)
            let late = pipeline.takeReply()
            #expect(late?.waiter === waiters[0] && late?.waiter?.isPending == false, "its reply is ignored")
            #expect(pipeline.sweptPrefix == 3)
            #expect(pipeline.expire(at: at(10)) { Self.timeout } == nil)
        }
        #expect(outcomes == [.failed(.timeout), .failed(.timeout), .failed(.timeout), .failed(.timeout), .failed(.timeout), .failed(.timeout)])
    }

    @Test func aBatchWaitingAsSeveralEntriesFailsOnce() async {
        let outcomes = await outcomes(of: [2]) { waiters in
            var pipeline = PublishPipeline()
            pipeline.wait(channel: "a", payload: payload, waiter: waiters[0], deadline: at(1))
            pipeline.wait(channel: "a", payload: payload, waiter: waiters[0], deadline: at(1))
            var made = 0
            let next = pipeline.expire(at: at(1)) {
                made += 1
                return Self.timeout
            }
            #expect(next == nil)
            #expect(made == 1)
            #expect(!pipeline.hasWaiting)
        }
        #expect(outcomes == [.failed(.timeout)])
    }

    @Test func aLostConnectionFailsEverythingInFlightButNotWhatWaits() async {
        let outcomes = await outcomes(of: [1, 2, 1]) { waiters in
            var pipeline = PublishPipeline()
            pipeline.handshakeSent()
            _ = pipeline.sent(1, of: 1, waiter: waiters[0], deadline: at(1))
            _ = pipeline.sent(2, of: 2, waiter: waiters[1], deadline: at(2))
            pipeline.wait(channel: "a", payload: payload, waiter: waiters[2], deadline: at(3))
            _ = pipeline.expire(at: at(1)) { Self.timeout }
            pipeline.failInFlight(ChannelLayerError(.connectionLost, "test"))
            #expect(pipeline.inFlight.isEmpty)
            #expect(pipeline.sweptPrefix == 0)
            #expect(pipeline.hasWaiting)
            pipeline.connectionStarted()  // a new connection may start now
        }
        #expect(outcomes == [.failed(.timeout), .failed(.connectionLost), .pending])
    }

    @Test func aFailedFirstConnectFailsWhatWaits() async {
        let outcomes = await outcomes(of: [1, 1]) { waiters in
            var pipeline = PublishPipeline()
            pipeline.wait(channel: "a", payload: payload, waiter: waiters[0], deadline: at(1))
            pipeline.wait(channel: "b", payload: payload, waiter: waiters[1], deadline: at(1))
            pipeline.failWaiting(ChannelLayerError(.connectionFailed, "test"))
            #expect(!pipeline.hasWaiting)
        }
        #expect(outcomes == [.failed(.connectionFailed), .failed(.connectionFailed)])
    }

    @Test func aWaiterSumsTheReceiversOfItsRunsAndIgnoresLateReplies() async {
        let outcomes = await outcomes(of: [3, 2]) { waiters in
            waiters[0].succeeded(count: 1, receivers: 1)
            waiters[0].succeeded(count: 2, receivers: 4)
            #expect(!waiters[0].isPending)
            waiters[1].succeeded(count: 1, receivers: 1)
            waiters[1].fail(ChannelLayerError(.commandRefused, "test"))
            waiters[1].succeeded(count: 1, receivers: 1)  // late: ignored
        }
        #expect(outcomes == [.published(receivers: 5), .failed(.commandRefused)])
    }
}
