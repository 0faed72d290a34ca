import Synchronization
import Testing

@testable import ChannelsRedis

/// The mailbox's hand-off races, made deterministic: `deliver` takes a waiting consumer's message
/// under the lock, but the consumer is resumed later (at the end of the loop pass), so a
/// cancellation or a timeout can land in between.
@Suite("Channel mailbox")
struct ChannelMailboxTests {
    private final class Owner: ChannelMailboxOwner {
        func decode(_ bytes: [UInt8], forChannel channel: String) -> ChannelMessage? { .string(String(decoding: bytes, as: UTF8.self)) }
    }

    /// Decodes nothing: every `.encoded` entry is skipped.
    private final class RefusingOwner: ChannelMailboxOwner {
        func decode(_ bytes: [UInt8], forChannel channel: String) -> ChannelMessage? { nil }
    }

    /// Records the give-backs the mailbox reports.
    private final class GiveBackRecorder: ChannelMailboxOwner {
        let reports = Mutex<[String]>([])
        func decode(_ bytes: [UInt8], forChannel channel: String) -> ChannelMessage? { nil }
        func mailboxHoldsMessagesAgain(channel: String, id: UInt64) { reports.withLock { $0.append("\(channel) \(id)") } }
    }

    private func makeMailbox(capacity: Int = 10) -> ChannelMailbox {
        ChannelMailbox(capacity: capacity, channel: "test", id: 1, owner: Owner())
    }

    /// Undecodable bytes arriving more often than the timeout do not keep a timed wait alive: it
    /// ends (the timeout covers the whole wait, not each try). Before, each skipped entry started
    /// the timeout again, and this wait never ended.
    @Test func undecodableBytesDoNotRestartATimedWait() async throws {
        let mailbox = ChannelMailbox(capacity: 10, channel: "test", id: 1, owner: RefusingOwner())
        let feeder = Task {
            while !Task.isCancelled {
                var handoffs: [ChannelMailbox.Handoff] = []
                _ = mailbox.deliver([.encoded([0xC1])], handoffs: &handoffs)
                for handoff in handoffs { handoff.resume() }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        defer { feeder.cancel() }
        let waiter = Task { await mailbox.next(timeout: .milliseconds(200)) }
        let watchdog = Task {
            try await Task.sleep(for: .seconds(30))
            waiter.cancel()
        }
        defer { watchdog.cancel() }
        guard case .timedOut = await waiter.value else {
            Issue.record("the timed wait did not time out while undecodable bytes kept arriving")
            return
        }
    }

    private func entry(_ text: String) -> ChannelMailbox.Entry { .message(ChannelMailbox.Shared(.string(text))) }

    private func waitUntilWaiting(_ mailbox: ChannelMailbox, _ count: Int = 1) async {
        while mailbox.waitingCounts.waiters < count { await Task.yield() }
    }

    @Test func aMessageHandedToAConsumerCancelledBeforeItResumedGoesToTheNextConsumer() async throws {
        let mailbox = makeMailbox()
        let consumer = Task { await mailbox.next() }
        await waitUntilWaiting(mailbox)
        var handoffs: [ChannelMailbox.Handoff] = []
        _ = mailbox.deliver([entry("one")], handoffs: &handoffs)
        #expect(handoffs.count == 1)  // taken by the waiting consumer, not resumed yet
        consumer.cancel()
        for handoff in handoffs { handoff.resume() }
        guard case .cancelled = await consumer.value else {
            Issue.record("a cancelled consumer returned a message its caller will not see")
            return
        }
        guard case .message(let message) = await mailbox.next() else {
            Issue.record("the message was lost")
            return
        }
        #expect(message == "one")
        #expect(mailbox.waitingCounts == (0, 0))
    }

    @Test func aMessageGivenBackToTheBufferIsReportedToTheOwner() async throws {
        // The engine's unconsumed-channel sweep looks only at mailboxes it knows to hold messages.
        let owner = GiveBackRecorder()
        let mailbox = ChannelMailbox(capacity: 10, channel: "test", id: 7, owner: owner)
        let consumer = Task { await mailbox.next() }
        await waitUntilWaiting(mailbox)
        var handoffs: [ChannelMailbox.Handoff] = []
        _ = mailbox.deliver([entry("one")], handoffs: &handoffs)
        #expect(mailbox.unconsumedSince(now: .now) == nil)  // handed over: the buffer is empty
        consumer.cancel()
        for handoff in handoffs { handoff.resume() }
        guard case .cancelled = await consumer.value else {
            Issue.record("expected .cancelled")
            return
        }
        #expect(owner.reports.withLock { $0 } == ["test 7"])
        let now = ContinuousClock.now
        #expect(mailbox.unconsumedSince(now: now) == now)
    }

    @Test func mailboxesSharingALockStayIndependent() async throws {
        // Ids 1 and 1 + MailboxLockPool.count take the same pooled lock.
        #expect(MailboxLockPool.lock(for: 1) == MailboxLockPool.lock(for: 1 + UInt64(MailboxLockPool.count)))
        #expect(MailboxLockPool.lock(for: 1) != MailboxLockPool.lock(for: 2))
        let first = ChannelMailbox(capacity: 10, channel: "first", id: 1, owner: Owner())
        let second = ChannelMailbox(capacity: 10, channel: "second", id: 1 + UInt64(MailboxLockPool.count), owner: Owner())
        let consumer = Task { await first.next() }
        await waitUntilWaiting(first)
        var handoffs: [ChannelMailbox.Handoff] = []
        _ = second.deliver([entry("for second")], handoffs: &handoffs)
        #expect(handoffs.isEmpty)  // buffered in `second`: its waiter list is its own
        _ = first.deliver([entry("for first")], handoffs: &handoffs)
        for handoff in handoffs { handoff.resume() }
        guard case .message(let one) = await consumer.value, case .message(let two) = await second.next() else {
            Issue.record("a message went astray between mailboxes sharing a lock")
            return
        }
        #expect(one == "for first")
        #expect(two == "for second")
    }

    @Test func aGivenBackMessageGoesStraightToAConsumerWaitingMeanwhile() async throws {
        let mailbox = makeMailbox()
        let first = Task { await mailbox.next() }
        await waitUntilWaiting(mailbox)
        var handoffs: [ChannelMailbox.Handoff] = []
        _ = mailbox.deliver([entry("one")], handoffs: &handoffs)
        let second = Task { await mailbox.next() }
        await waitUntilWaiting(mailbox)
        first.cancel()
        for handoff in handoffs { handoff.resume() }
        guard case .cancelled = await first.value, case .message(let message) = await second.value else {
            Issue.record("the message did not reach the second consumer")
            return
        }
        #expect(message == "one")
    }

    @Test func aTimeoutThatFiresAfterTheHandOffStillDeliversAndLeavesNothingBehind() async throws {
        let mailbox = makeMailbox()
        let consumer = Task { await mailbox.next(timeout: .milliseconds(50)) }
        await waitUntilWaiting(mailbox)
        var handoffs: [ChannelMailbox.Handoff] = []
        _ = mailbox.deliver([entry("one")], handoffs: &handoffs)
        try await Task.sleep(for: .milliseconds(150))  // the timer fires and finds no waiter to withdraw
        for handoff in handoffs { handoff.resume() }
        guard case .message(let message) = await consumer.value else {
            Issue.record("a message taken before the timeout was not returned")
            return
        }
        #expect(message == "one")
        #expect(mailbox.waitingCounts == (0, 0))
    }

    @Test func aTimedOutWaitLeavesTheMailboxAsItWas() async throws {
        let mailbox = makeMailbox()
        guard case .timedOut = await mailbox.next(timeout: .milliseconds(20)) else {
            Issue.record("expected a time-out")
            return
        }
        #expect(mailbox.waitingCounts == (0, 0))
        var handoffs: [ChannelMailbox.Handoff] = []
        _ = mailbox.deliver([entry("later")], handoffs: &handoffs)
        #expect(handoffs.isEmpty)
        guard case .message(let message) = await mailbox.next(timeout: .seconds(1)) else {
            Issue.record("the later message was lost")
            return
        }
        #expect(message == "later")
    }

    @Test func finishingTellsWaitersWhy() async throws {
        let mailbox = makeMailbox()
        let consumer = Task { await mailbox.next() }
        await waitUntilWaiting(mailbox)
        mailbox.finish(.discarded)
        mailbox.finish(.closed)  // the first reason stays
        guard case .finished(.discarded) = await consumer.value, case .finished(.discarded) = await mailbox.next() else {
            Issue.record("expected .finished(.discarded)")
            return
        }
    }

    @Test func unconsumedSinceStartsWhenMessagesWaitWithNobodyTakingThem() async throws {
        let mailbox = makeMailbox()
        let start = ContinuousClock.now
        #expect(mailbox.unconsumedSince(now: start) == nil)  // empty
        var handoffs: [ChannelMailbox.Handoff] = []
        _ = mailbox.deliver([entry("one"), entry("two")], handoffs: &handoffs)
        let later = start.advanced(by: .seconds(1))
        #expect(mailbox.unconsumedSince(now: later) == later)
        #expect(mailbox.unconsumedSince(now: later.advanced(by: .seconds(1))) == later)  // still nobody
        guard case .message = await mailbox.next() else { return }
        let afterTake = later.advanced(by: .seconds(2))
        #expect(mailbox.unconsumedSince(now: afterTake) == afterTake)  // a consumer took one: counts anew
    }
}
