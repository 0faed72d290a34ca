/// The liveness check of a healthy shard, end to end: every `interval` the publisher PUBLISHes a
/// random id to the subscriber's internal channel, and within `timeout` Redis must have answered
/// the PUBLISH and the subscriber must have received the id. hiredis 0.14.1 never answers PING on
/// a subscribed context (the reply is misrouted), so the subscriber cannot be pinged itself.
///
/// A pure value: no I/O, no timers. The shard owns the one timer, sends the probe and replaces the
/// connections the actions name.
struct LivenessProbe: Sendable {
    enum State: Equatable, Sendable {
        /// Not probing: the shard is not healthy, or probes are off (`interval` is zero).
        case stopped
        /// Waiting `interval` before the next probe.
        case scheduled
        /// Sent; waiting for the reply and the message.
        case inFlight(id: String, replied: Bool, received: Bool)
    }

    enum Action: Equatable, Sendable {
        /// Arm the timer to send a probe (``sent(id:)``) after `delay`.
        case sendProbe(after: Duration)
        /// Arm the timer to judge the probe (``deadlinePassed()``) after `delay`.
        case checkProbe(after: Duration)
        /// The probe failed: count one liveness failure and replace the connections that did not
        /// answer (the publisher first).
        case replaceConnections(publisher: Bool, subscriber: Bool)
        case doNothing
    }

    private(set) var state: State = .stopped
    let interval: Duration
    let timeout: Duration

    init(interval: Duration, timeout: Duration) {
        self.interval = interval
        self.timeout = timeout
    }

    /// The shard became healthy: probe after `interval`, dropping any probe before.
    mutating func start() -> Action {
        guard interval > .zero else {
            state = .stopped
            return .doNothing
        }
        state = .scheduled
        return .sendProbe(after: interval)
    }

    /// The probe with `id` was handed to the publisher.
    mutating func sent(id: String) -> Action {
        guard state == .scheduled else { return .doNothing }
        state = .inFlight(id: id, replied: false, received: false)
        return .checkProbe(after: timeout)
    }

    /// Redis answered the probe's PUBLISH.
    mutating func publisherReplied() {
        guard case .inFlight(let id, _, let received) = state else { return }
        state = .inFlight(id: id, replied: true, received: received)
    }

    /// A message came on the internal channel; it counts if it carries the probe's id.
    mutating func received(_ payload: UnsafeRawBufferPointer) {
        guard case .inFlight(let id, let replied, _) = state, payload.elementsEqual(id.utf8) else { return }
        state = .inFlight(id: id, replied: replied, received: true)
    }

    /// The probe's timeout passed: probe again if both answered, else replace who did not.
    mutating func deadlinePassed() -> Action {
        guard case .inFlight(_, let replied, let received) = state else { return .doNothing }
        state = .stopped
        guard replied, received else { return .replaceConnections(publisher: !replied, subscriber: !received) }
        return start()
    }

    /// Stop probing (a connection is gone, the shard is not healthy).
    mutating func stop() {
        state = .stopped
    }
}
