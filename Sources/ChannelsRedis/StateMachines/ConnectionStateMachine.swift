/// The life of one of a shard's hiredis connections, the publisher's or the subscriber's: when to
/// connect, when and after how long to retry, and what a failure means.
///
/// A pure value: no I/O, no logging, no timers. The shard feeds it events and carries out the
/// actions (connect, arm or cancel the reconnect timer, fail what waits).
///
/// Its one policy: until the connection was ready once, a failed connect fails whatever waits for
/// it at once instead of retrying (a wrong port or password should be loud, not retried forever),
/// and the next operation that needs the connection tries again. Once it was ready, every loss is
/// retried forever with the capped exponential backoff of ``RedisPubSubChannelLayer/RetryParameters``,
/// its attempts counted from 1 again each time the connection is ready.
struct ConnectionStateMachine: Sendable {
    enum State: Equatable, Sendable {
        /// No connection: nothing needed one yet, it was reset, or its first connect failed (then
        /// the next operation connects again).
        case idle
        /// A connect, and the handshake after it, is under way. `attempt` is 0 for a connect that
        /// no failure came before, else the number of the retry.
        case connecting(attempt: Int)
        /// Connected and through the handshake.
        case ready
        /// Lost after it was ready once; retry `attempt` (1-based) starts when the delay is over.
        case backingOff(attempt: Int)
        /// Closed for good.
        case closed
    }

    enum ConnectAction: Equatable, Sendable {
        /// Make a new connection (hiredis 0.14.1 cannot reuse a context after an error).
        case connect
        case doNothing
    }

    enum LossAction: Equatable, Sendable {
        /// Arm a timer that calls ``backoffElapsed()`` after `delay`; `attempt` is the retry's number.
        case scheduleReconnect(after: Duration, attempt: Int)
        /// The connection was never ready: fail whatever waits for it now instead of retrying.
        case failWaiting
        case doNothing
    }

    enum StopAction: Equatable, Sendable {
        /// Cancel the timer of the pending reconnect (there is no connection to close).
        case cancelReconnect
        /// Close the connection, which exists or is being made.
        case closeConnection
        case doNothing
    }

    private(set) var state: State = .idle
    /// Whether the connection was ever ready (since the last ``reset()``): from then on losses are
    /// retried, not reported to the waiting operations.
    private(set) var everReady = false
    let retry: RedisPubSubChannelLayer.RetryParameters

    init(retry: RedisPubSubChannelLayer.RetryParameters) {
        self.retry = retry
    }

    var isReady: Bool { state == .ready }

    var isConnecting: Bool {
        if case .connecting = state { return true }
        return false
    }

    /// Something needs the connection: connect if there is none and no reconnect is pending.
    mutating func activate() -> ConnectAction {
        guard state == .idle else { return .doNothing }
        state = .connecting(attempt: 0)
        return .connect
    }

    /// The connection finished its handshake.
    mutating func ready() {
        guard isConnecting else { return }
        state = .ready
        everReady = true
    }

    /// The connection failed to connect or was lost. `generator` draws the backoff's jitter.
    mutating func lost(using generator: inout some RandomNumberGenerator) -> LossAction {
        let attempt: Int
        switch state {
        case .ready:
            attempt = 1
        case .connecting(let previous):
            guard everReady else {
                state = .idle
                return .failWaiting
            }
            attempt = previous + 1
        case .idle, .backingOff, .closed:
            // Nothing was connected: a stale report (the connection was reset or closed meanwhile).
            return .doNothing
        }
        state = .backingOff(attempt: attempt)
        return .scheduleReconnect(after: retry.delay(forAttempt: attempt, using: &generator), attempt: attempt)
    }

    /// The reconnect timer fired.
    mutating func backoffElapsed() -> ConnectAction {
        guard case .backingOff(let attempt) = state else { return .doNothing }
        state = .connecting(attempt: attempt)
        return .connect
    }

    /// Forget the connection and that it was ever ready (`flush()` drops the subscriber): the next
    /// operation connects as if for the first time.
    mutating func reset() -> StopAction {
        guard state != .closed else { return .doNothing }
        everReady = false
        return stop(next: .idle)
    }

    /// Closed for good. Idempotent.
    mutating func close() -> StopAction {
        stop(next: .closed)
    }

    private mutating func stop(next: State) -> StopAction {
        let action: StopAction
        switch state {
        case .connecting, .ready: action = .closeConnection
        case .backingOff: action = .cancelReconnect
        case .idle, .closed: action = .doNothing
        }
        state = next
        return action
    }
}
