import ChannelsRedis
import DequeModule
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// The bound of the fanout rows (#13, "fan-out ≥ 0.5× C"): the cheapest hand-off of one message to K consumer tasks a
// Swift fan-out can do, with nothing of the layer in it: no Redis, no loop, no groups, no decoding, no cancellation
// handler. One producer thread (as the layer's loop thread) hands the fanout workload's message value to K consumer
// tasks on the global executor (as the fanout workload's are), each through a mutex, a deque and at most one waiting
// continuation. The C program pushes into K ring buffers in one thread; what this workload measures above that is the
// price of the tasks themselves.

// MARK: - The mailbox

/// What a consumer is handed: the message, or the end of the run (after the producer's last message).
enum FloorDelivery: Sendable {
    case message(ChannelMessage)
    case end
}

/// A delivery taken by a consumer that was waiting for it, to be resumed outside the mailbox's lock once the
/// message went to every member (the layer's `ChannelMailbox.Handoff`, which its engine resumes once per pass).
struct FloorHandoff {
    let continuation: UnsafeContinuation<FloorDelivery, Never>
    let delivery: FloorDelivery

    func resume() { continuation.resume(returning: delivery) }
}

/// One consumer's buffer: a lock, a deque and at most one waiting continuation (one consumer per mailbox).
final class FloorMailbox: Sendable {
    private struct State {
        var queue = Deque<FloorDelivery>()
        /// The consumer, when it found the queue empty. Unsafe, as the layer's waiters are: resumed exactly once, by
        /// whoever takes it out of here under the lock (the producer, through its hand-off).
        var waiter: UnsafeContinuation<FloorDelivery, Never>?
    }

    enum Put {
        case queued
        /// The consumer was waiting: it takes this delivery when the hand-off is resumed.
        case handoff(FloorHandoff)
        /// `limit` deliveries are queued already; nothing was put.
        case full
    }

    private let state = Mutex(State())

    init() {
        state.withLock { $0.queue.reserveCapacity(16) }
    }

    /// The producer's side: hands `delivery` to the waiting consumer, or queues it unless `limit` (> 0) deliveries
    /// are queued already.
    @inline(__always)
    func put(_ delivery: FloorDelivery, limit: Int) -> Put {
        state.withLock { state in
            if let waiter = state.waiter {
                state.waiter = nil
                return .handoff(FloorHandoff(continuation: waiter, delivery: delivery))
            }
            if limit > 0 && state.queue.count >= limit { return .full }
            state.queue.append(delivery)
            return .queued
        }
    }

    /// The consumer's side: the next delivery, waiting for it if the queue is empty (one lock when one is queued, two
    /// when the consumer waits: the empty take and the registration).
    nonisolated(nonsending) func take() async -> FloorDelivery {
        if let delivery = state.withLock({ $0.queue.popFirst() }) { return delivery }
        return await withUnsafeContinuation { (continuation: UnsafeContinuation<FloorDelivery, Never>) in
            let queued = state.withLock { state -> FloorDelivery? in
                if let delivery = state.queue.popFirst() { return delivery }
                state.waiter = continuation
                return nil
            }
            if let queued { continuation.resume(returning: queued) }
        }
    }
}

// MARK: - The producer

/// What the producer did besides delivering: how often a consumer was `window` messages behind.
final class FloorProducerStatistics: Sendable {
    /// Deliveries that found their consumer's queue full and waited.
    let fullWaits = Atomic<Int>(0)
    /// Of those waits' retries, the ones that slept instead of yielding.
    let sleeps = Atomic<Int>(0)
    let done = Event()
}

/// Gives `delivery` to every mailbox, then resumes the consumers that were waiting for it (a consumer `limit`
/// deliveries behind is waited for, with the hand-offs so far resumed first so that none waits on it).
func floorDeliver(
    _ delivery: FloorDelivery,
    to mailboxes: [FloorMailbox],
    limit: Int,
    handoffs: inout [FloorHandoff],
    statistics: FloorProducerStatistics
) {
    for mailbox in mailboxes {
        var retries = 0
        while true {
            switch mailbox.put(delivery, limit: limit) {
            case .queued: break
            case .handoff(let handoff): handoffs.append(handoff)
            case .full:
                if retries == 0 {
                    statistics.fullWaits.add(1, ordering: .relaxed)
                    for handoff in handoffs { handoff.resume() }
                    handoffs.removeAll(keepingCapacity: true)
                }
                retries += 1
                // Yield the core to a consumer's pool thread first; past that the consumer is running elsewhere
                // and spinning would only burn this core (which the CPU figure counts): sleep briefly.
                if retries <= 64 {
                    sched_yield()
                } else {
                    statistics.sleeps.add(1, ordering: .relaxed)
                    var pause = timespec(tv_sec: 0, tv_nsec: 20_000)
                    nanosleep(&pause, nil)
                }
                continue
            }
            break
        }
    }
    for handoff in handoffs { handoff.resume() }
    handoffs.removeAll(keepingCapacity: true)
}

// MARK: - The workload

/// `--workload fanout-floor`: the fanout workload's `count` messages to `members` consumers, through
/// ``FloorMailbox``es from one producer thread staying at most `--window` messages ahead of the slowest consumer.
/// The default window, 8, stands for the fanout workload's 8 awaiting senders; those bound the `PUBLISH`es not yet
/// confirmed, not how far the layer's consumers lag, so `--window 0` (no bound) is the floor for consumers that fall
/// behind and take several messages per wake-up. Clock from the producer's start to the last consumer's `count`-th
/// message; the run fails unless every consumer got exactly `count`.
func fanoutFloor(_ options: Options, progress: Progress, into json: inout JSONLine) async throws {
    let count = options.count
    let memberCount = options.members
    let window = options.window
    let mailboxes = (0..<memberCount).map { _ in FloorMailbox() }
    let warmed = Countdown(memberCount)
    let allReceived = Countdown(memberCount)
    let finished = Countdown(memberCount)
    let delivered = Counter()
    let failure = FirstError()

    progress.enter("fanout-floor: starting \(memberCount) consumers")
    for mailbox in mailboxes {
        startTask(preferring: nil) {
            var received = 0
            var warmedUp = false
            receiving: while true {
                switch await mailbox.take() {
                case .message:
                    if warmedUp {
                        received += 1
                        if received == count { allReceived.arrive() }
                    } else {
                        warmedUp = true
                        warmed.arrive()
                    }
                case .end: break receiving
                }
            }
            if received != count {
                failure.record(BenchError("a consumer got \(received) of \(count) messages"))
                if received < count { allReceived.arrive() }  // the run fails; the clock must not hang on it
            }
            delivered.add(received)
            progress.received.add(received, ordering: .relaxed)
            finished.arrive()
        }
    }

    // The warm-up: one message to every consumer, each taking it, before the clock starts (as the fanout workload).
    progress.enter("fanout-floor: warm-up")
    let message = Payload.message()
    let statistics = FloorProducerStatistics()
    var handoffs: [FloorHandoff] = []
    handoffs.reserveCapacity(memberCount)
    floorDeliver(.message(message), to: mailboxes, limit: 0, handoffs: &handoffs, statistics: statistics)
    await warmed.done.wait()

    progress.enter("fanout-floor")
    let cpuStart = processCPUNs()
    let start = nowNs()
    startThread {
        var handoffs: [FloorHandoff] = []
        handoffs.reserveCapacity(memberCount)
        for index in 0..<count {
            floorDeliver(.message(message), to: mailboxes, limit: window, handoffs: &handoffs, statistics: statistics)
            progress.sent.store(index + 1, ordering: .relaxed)
        }
        floorDeliver(.end, to: mailboxes, limit: 0, handoffs: &handoffs, statistics: statistics)
        statistics.done.fire()
    }
    await allReceived.done.wait()
    let cpu = processCPUNs() - cpuStart
    let seconds = max(Double(allReceived.finishedAt - start) / 1e9, 1e-9)
    await finished.done.wait()
    await statistics.done.wait()
    if let error = failure.first { throw BenchError(error) }
    addFanoutFields(
        members: memberCount,
        count: count,
        senders: 1,
        deliveries: delivered.value,
        seconds: seconds,
        cpuNs: cpu,
        into: &json
    )
    json.add("window", window)
    json.add("producer_full_waits", statistics.fullWaits.load(ordering: .relaxed))
    json.add("producer_sleeps", statistics.sleeps.load(ordering: .relaxed))
}
