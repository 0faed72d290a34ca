import Testing

@testable import ChannelsRedis

@Suite struct SubscribeWaitersTests {
    /// Records which completions ran, with what.
    private final class Log {
        var entries: [String] = []

        func completion(_ name: String) -> SubscribeWaiters.Completion {
            { error in self.entries.append(error.map { "\(name): \($0.code)" } ?? "\(name): ok") }
        }
    }

    private let start = ContinuousClock.now

    private func at(_ seconds: Int) -> ContinuousClock.Instant { start.advanced(by: .seconds(seconds)) }

    @Test func aConfirmationHandsBackEveryWaiterOfItsChannel() {
        let log = Log()
        var waiters = SubscribeWaiters()
        waiters.add(log.completion("a1"), for: "a", deadline: at(5))
        waiters.add(log.completion("b"), for: "b", deadline: at(6))
        waiters.add(log.completion("a2"), for: "a", deadline: at(7))
        #expect(waiters.count == 3)
        for completion in waiters.remove(for: "a") { completion(nil) }
        #expect(log.entries == ["a1: ok", "a2: ok"])
        #expect(waiters.count == 1)
        #expect(waiters.remove(for: "a").isEmpty)
    }

    @Test func theSweepTakesExpiredWaitersInOrderAndStopsAtTheFirstLiveOne() {
        let log = Log()
        var waiters = SubscribeWaiters()
        waiters.add(log.completion("a"), for: "a", deadline: at(1))
        waiters.add(log.completion("b"), for: "b", deadline: at(2))
        waiters.add(log.completion("a-again"), for: "a", deadline: at(3))
        waiters.add(log.completion("c"), for: "c", deadline: at(4))

        let first = waiters.removeExpired(at: at(3))
        #expect(first.expired.map(\.channel) == ["a", "b", "a"])
        for (_, completion) in first.expired { completion(ChannelLayerError(.timeout, "test")) }
        #expect(log.entries == ["a: timeout", "b: timeout", "a-again: timeout"])
        #expect(first.next == at(4))
        #expect(waiters.count == 1)

        let nothing = waiters.removeExpired(at: at(3))
        #expect(nothing.expired.isEmpty)
        #expect(nothing.next == at(4))

        let last = waiters.removeExpired(at: at(10))
        #expect(last.expired.map(\.channel) == ["c"])
        #expect(last.next == nil)
    }

    @Test func confirmedWaitersAreNotSweptLater() {
        let log = Log()
        var waiters = SubscribeWaiters()
        waiters.add(log.completion("a"), for: "a", deadline: at(1))
        waiters.add(log.completion("b"), for: "b", deadline: at(2))
        for completion in waiters.remove(for: "a") { completion(nil) }
        let swept = waiters.removeExpired(at: at(5))
        #expect(swept.expired.map(\.channel) == ["b"])
        #expect(swept.next == nil)
    }

    @Test func noDeadlineIsLeftOnceEveryWaiterIsConfirmed() {
        // Else the sweep would be woken for each of them a timeout later, to find nothing to fail.
        let log = Log()
        var waiters = SubscribeWaiters()
        waiters.add(log.completion("a"), for: "a", deadline: at(1))
        waiters.add(log.completion("b"), for: "b", deadline: at(2))
        for completion in waiters.remove(for: "a") { completion(nil) }
        #expect(waiters.removeExpired(at: start).next == at(2))  // b still waits; a's deadline went with it
        for completion in waiters.remove(for: "b") { completion(nil) }
        #expect(waiters.removeExpired(at: start).next == nil)
        #expect(log.entries == ["a: ok", "b: ok"])
    }

    @Test func confirmationsInOrderKeepOnlyTheUnconfirmedDeadlines() {
        let log = Log()
        var waiters = SubscribeWaiters()
        for index in 0..<100 { waiters.add(log.completion("\(index)"), for: "c\(index)", deadline: at(index + 1)) }
        for index in 0..<60 { _ = waiters.remove(for: "c\(index)") }
        #expect(waiters.deadlineCount == 40)
        // Out of order: c61's deadline stays behind c60's until c60 is confirmed too.
        _ = waiters.remove(for: "c61")
        #expect(waiters.deadlineCount == 40)
        _ = waiters.remove(for: "c60")
        #expect(waiters.deadlineCount == 38)
        let swept = waiters.removeExpired(at: at(63))
        #expect(swept.expired.map(\.channel) == ["c62"])
        #expect(swept.next == at(64))
    }

    @Test func aWaiterAddedAfterAConfirmationKeepsItsOwnDeadline() {
        // The first waiter's deadline entry outlives it; it must not take the second waiter.
        let log = Log()
        var waiters = SubscribeWaiters()
        waiters.add(log.completion("first"), for: "a", deadline: at(1))
        for completion in waiters.remove(for: "a") { completion(nil) }
        waiters.add(log.completion("second"), for: "a", deadline: at(5))
        #expect(waiters.removeExpired(at: at(2)).expired.isEmpty)
        #expect(waiters.count == 1)
        #expect(waiters.removeExpired(at: at(5)).expired.count == 1)
    }

    @Test func removeAllHandsBackEveryone() {
        let log = Log()
        var waiters = SubscribeWaiters()
        waiters.add(log.completion("a"), for: "a", deadline: at(1))
        waiters.add(log.completion("b"), for: "b", deadline: at(2))
        let all = waiters.removeAll()
        #expect(all.count == 2)
        #expect(log.entries.isEmpty, "nothing runs inside the waiters")
        for completion in all { completion(ChannelLayerError.closed()) }
        #expect(Set(log.entries) == ["a: layerClosed", "b: layerClosed"])
        #expect(waiters.count == 0)
        #expect(waiters.removeExpired(at: at(10)).expired.isEmpty)
    }
}
