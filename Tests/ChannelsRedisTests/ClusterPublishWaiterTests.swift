import Synchronization
import Testing

@testable import ChannelsRedis

/// Cluster mode's publish waiter: the redirected SPUBLISHes of a batch are retried, exactly those and in order, and the
/// publish succeeds only once every payload was confirmed.
@Suite(.timeLimit(.minutes(1)))
struct ClusterPublishWaiterTests {
    /// What the waiter handed to its retry.
    struct Retried: Equatable {
        var redirect: ClusterRedirect
        var payloads: [[UInt8]]
        var receivers: Int
    }

    enum Outcome: Equatable {
        case published(Int)
        case retried(Retried)
        case failed(ChannelLayerError.Code)
    }

    /// A waiter for `payloads`, driven by `body` on this thread; what became of it. A retry resumes the continuation
    /// with -1 (a marker), so that the test can tell a retry from a success.
    private func outcome(of payloads: [[UInt8]], _ body: (ClusterPublishWaiter) -> Void) async -> Outcome {
        let retried = Mutex<Retried?>(nil)
        var batch = PayloadBatch(capacity: payloads.count)
        for payload in payloads { batch.append { $0.append(contentsOf: payload) } }
        let clusterPayloads: PubSubEngine.ClusterPayloads = payloads.count == 1 ? .one(payloads[0]) : .batch(batch)
        do {
            let receivers = try await LoopContinuation<Int>.withContinuation { continuation in
                let waiter = ClusterPublishWaiter(
                    payloads: clusterPayloads,
                    asking: false,
                    receivers: 0,
                    continuation: continuation
                ) { redirect, again, receivers, continuation in
                    let bytes: [[UInt8]] =
                        switch again {
                        case .one(let payload): [payload]
                        case .batch(let batch): batch.map { Array($0) }
                        }
                    retried.withLock { $0 = Retried(redirect: redirect, payloads: bytes, receivers: receivers) }
                    continuation.resume(returning: -1)
                }
                body(waiter)
                waiter.fail(ChannelLayerError(.timeout, "left pending by the test"))
            }
            if receivers == -1, let retried = retried.withLock({ $0 }) { return .retried(retried) }
            return .published(receivers)
        } catch let error as ChannelLayerError {
            return .failed(error.code)
        } catch {
            return .failed(.systemFailure)
        }
    }

    private let moved = ClusterRedirect("MOVED 42 127.0.0.1:7001")!
    private let payloads: [[UInt8]] = (0..<5).map { [UInt8($0)] }

    @Test func aBatchWithoutRedirectsSucceedsWithItsReceivers() async {
        let outcome = await outcome(of: payloads) { waiter in
            waiter.answered(count: 5, receivers: 9, redirectedPositions: [], redirect: nil)
        }
        #expect(outcome == .published(9))
    }

    @Test func onlyTheRedirectedPayloadsOfOneRunAreRetriedInOrder() async {
        let outcome = await outcome(of: payloads) { waiter in
            waiter.answered(count: 5, receivers: 3, redirectedPositions: [1, 4], redirect: moved)
        }
        #expect(outcome == .retried(Retried(redirect: moved, payloads: [[1], [4]], receivers: 3)))
    }

    @Test func runsOfOnePayloadEachMapToTheirPositions() async {
        // A batch that waited for the connection goes out one payload per run.
        let outcome = await outcome(of: payloads) { waiter in
            waiter.answered(count: 1, receivers: 1, redirectedPositions: [], redirect: nil)
            waiter.answered(count: 1, receivers: 0, redirectedPositions: [0], redirect: moved)
            waiter.answered(count: 1, receivers: 1, redirectedPositions: [], redirect: nil)
            waiter.answered(count: 1, receivers: 0, redirectedPositions: [0], redirect: moved)
            #expect(waiter.isPending, "one payload is still unanswered")
            waiter.answered(count: 1, receivers: 1, redirectedPositions: [], redirect: nil)
        }
        #expect(outcome == .retried(Retried(redirect: moved, payloads: [[1], [3]], receivers: 3)))
    }

    @Test func aWholeRedirectRetriesTheSameBatch() async {
        let outcome = await outcome(of: payloads) { waiter in
            waiter.answered(count: 5, receivers: 0, redirectedPositions: Array(0..<5), redirect: moved)
        }
        #expect(outcome == .retried(Retried(redirect: moved, payloads: payloads, receivers: 0)))
    }

    @Test func aFailureEndsItAndLaterRepliesAreIgnored() async {
        let outcome = await outcome(of: payloads) { waiter in
            waiter.fail(ChannelLayerError(.connectionLost, "gone"))
            waiter.answered(count: 5, receivers: 5, redirectedPositions: [], redirect: nil)
        }
        #expect(outcome == .failed(.connectionLost))
    }

    @Test func aSingleRedirectedSendIsRetriedWhole() async {
        let outcome = await outcome(of: [[7, 7]]) { waiter in
            waiter.answered(count: 1, receivers: 0, redirectedPositions: [0], redirect: moved)
        }
        #expect(outcome == .retried(Retried(redirect: moved, payloads: [[7, 7]], receivers: 0)))
    }
}
