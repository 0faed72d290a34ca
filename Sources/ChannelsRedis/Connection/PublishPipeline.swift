import DequeModule

/// The publisher's queues: the publishes waiting for the connection to be ready, and the commands
/// handed to hiredis whose replies are still to come, with how far the send-timeout sweep has
/// looked at them.
///
/// Loop-confined: a stored property of its shard (a value, not an object of its own, so that the
/// message path pays no extra indirection). It holds the waiters, which hold continuations, and
/// fails them; the shard sends the commands and reads the replies.
struct PublishPipeline {
    /// Commands handed to hiredis that end with one reply callback. A batch of PUBLISHes is one
    /// run of `count` commands whose last reply is the run's (`HiredisConnection.publish(channel:batch:)`):
    /// the queue does no work per message (no entry per message, and one Swift callback per run
    /// instead of one per reply).
    struct InFlightRun {
        enum Kind {
            /// AUTH, ROLE or PING of the handshake.
            case handshake
            case publish
            case probe
            /// The ROLE sent beside a liveness probe on a Sentinel endpoint.
            case roleCheck
        }
        var kind: Kind
        var count: Int
        /// `.publish` only. A late reply to a waiter the timeout sweep already failed is ignored.
        var waiter: PublishWaiter?
        var deadline: ContinuousClock.Instant?

        static var handshake: InFlightRun { InFlightRun(kind: .handshake, count: 1) }
        static var probe: InFlightRun { InFlightRun(kind: .probe, count: 1) }
        static var roleCheck: InFlightRun { InFlightRun(kind: .roleCheck, count: 1) }
    }

    struct WaitingPublish {
        var channel: String
        /// A slice of its batch's buffer (which it keeps alive).
        var payload: ArraySlice<UInt8>
        var waiter: PublishWaiter
        var deadline: ContinuousClock.Instant
    }

    enum SendAction {
        /// hiredis queued only part of a run: the run has no reply callback of its own, so the
        /// replies after it would be misattributed. Fail its waiter and the connection.
        case replaceConnection
        case doNothing
    }

    /// Commands handed to hiredis, in order; replies come back in the same order.
    private(set) var inFlight: Deque<InFlightRun> = []
    /// How many runs at the front of `inFlight` the timeout sweep has already looked at.
    private(set) var sweptPrefix = 0
    /// Publishes waiting for the publisher to become ready.
    private(set) var waiting: Deque<WaitingPublish> = []

    init() {}

    /// Whether publishes wait for the connection: a new one must queue behind them, in order.
    var hasWaiting: Bool { !waiting.isEmpty }

    /// Whether the handshake's last reply came: no handshake command is left at the front.
    var isHandshakeFinished: Bool { inFlight.first?.kind != .handshake }

    /// A new connection starts; nothing of the last one can still be in flight.
    mutating func connectionStarted() {
        precondition(inFlight.isEmpty)
        sweptPrefix = 0
    }

    /// AUTH, ROLE or PING of the handshake was sent.
    mutating func handshakeSent() {
        inFlight.append(.handshake)
    }

    /// A liveness probe's PUBLISH was sent.
    mutating func probeSent() {
        inFlight.append(.probe)
    }

    /// The ROLE beside a liveness probe was sent.
    mutating func roleCheckSent() {
        inFlight.append(.roleCheck)
    }

    /// Records a run of which the publisher queued `count` of `total` PUBLISHes.
    mutating func sent(_ count: Int, of total: Int, waiter: PublishWaiter, deadline: ContinuousClock.Instant) -> SendAction {
        guard count > 0 else { return .doNothing }
        inFlight.append(InFlightRun(kind: .publish, count: count, waiter: waiter, deadline: deadline))
        // All or none, says chr_io_publish; a partial run is a connection to start over.
        return count < total ? .replaceConnection : .doNothing
    }

    /// Queues a publish until the connection is ready.
    mutating func wait(channel: String, payload: ArraySlice<UInt8>, waiter: PublishWaiter, deadline: ContinuousClock.Instant) {
        waiting.append(WaitingPublish(channel: channel, payload: payload, waiter: waiter, deadline: deadline))
    }

    /// The oldest waiting publish, to send now that the connection is ready.
    mutating func takeWaiting() -> WaitingPublish? {
        waiting.popFirst()
    }

    /// The run the reply that just came belongs to (replies come in the order of the commands).
    mutating func takeReply() -> InFlightRun? {
        guard let front = inFlight.popFirst() else { return nil }
        if sweptPrefix > 0 { sweptPrefix -= 1 }
        return front
    }

    /// Fails every waiting publish with `error` (a first connect failed, or the shard closed).
    mutating func failWaiting(_ error: ChannelLayerError) {
        while let entry = waiting.popFirst() { entry.waiter.fail(error) }
    }

    /// Fails everything in flight with `error`: the connection is gone and no reply will come.
    mutating func failInFlight(_ error: ChannelLayerError) {
        while let run = inFlight.popFirst() { run.waiter?.fail(error) }
        sweptPrefix = 0
    }

    /// Fails, with `timeoutError()`, every publish whose deadline is not after `now`, and returns
    /// the earliest deadline still to come. Deadlines grow with submission order, so each queue is
    /// scanned from its front only as far as the first live entry; in-flight runs stay queued (their
    /// replies still come) and the sweep remembers how far it looked.
    mutating func expire(at now: ContinuousClock.Instant, with timeoutError: () -> ChannelLayerError) -> ContinuousClock.Instant? {
        var next: ContinuousClock.Instant?
        while let first = waiting.first {
            if first.deadline > now {
                next = first.deadline
                break
            }
            waiting.removeFirst()
            if first.waiter.isPending { first.waiter.fail(timeoutError()) }
        }

        var index = sweptPrefix
        while index < inFlight.count {
            let run = inFlight[index]
            if run.kind == .publish, let deadline = run.deadline {
                if deadline > now {
                    if next == nil || deadline < next! { next = deadline }
                    break
                }
                if let waiter = run.waiter, waiter.isPending { waiter.fail(timeoutError()) }
            }
            index += 1
        }
        sweptPrefix = index
        return next
    }
}
