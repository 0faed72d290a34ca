import ChannelsRedis
import Synchronization

/// The events waiting to be sent to the room, in the order they were made, and the one task that
/// sends them.
///
/// Nothing typed is lost to an outage: while Redis is unreachable the outbox holds every event, and
/// sends them, in order, once the connection is back. An event leaves the queue only when Redis has
/// confirmed it, so one whose send timed out or lost its connection is retried first. (A send that
/// lost its connection may have been published all the same, so after an outage a line can, rarely,
/// arrive twice; it never arrives out of order or not at all while the chat runs.)
final class Outbox: Sendable {
    private struct State {
        var pending: [ChannelMessage] = []
        /// Whether Redis is reachable, as far as connection events tell.
        var online = true
        /// No more events come: send what is queued, then stop.
        var finishing = false
        /// Stop now, whatever is queued.
        var abandoned = false
    }

    private enum Step {
        case send(ChannelMessage)
        case wait
        case stop
    }

    private let state = Mutex(State())
    private let wakeUps: AsyncStream<Void>
    private let wakeUp: AsyncStream<Void>.Continuation

    init() {
        (wakeUps, wakeUp) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues an event behind those already waiting.
    func enqueue(_ event: ChannelMessage) {
        state.withLock { $0.pending.append(event) }
        wakeUp.yield()
    }

    /// How many events wait to be sent.
    var count: Int { state.withLock { $0.pending.count } }

    /// Whether every event was sent.
    var isEmpty: Bool { state.withLock { $0.pending.isEmpty } }

    /// Sends again (when `online`) or holds every event until told otherwise.
    func setOnline(_ online: Bool) {
        state.withLock { $0.online = online }
        wakeUp.yield()
    }

    /// Takes no more events: ``run(send:failed:)`` returns once the queue is empty.
    func finish() {
        state.withLock { $0.finishing = true }
        wakeUp.yield()
    }

    /// Gives up on the queue: ``run(send:failed:)`` returns at once; returns how many events were left.
    func abandon() -> Int {
        let left = state.withLock { state in
            state.abandoned = true
            defer { state.pending.removeAll() }
            return state.pending.count
        }
        wakeUp.yield()
        return left
    }

    /// Sends the queued events one at a time, in order, until ``finish()`` and an empty queue, or
    /// ``abandon()``, or cancellation, or the layer closes. Call it once.
    ///
    /// - Parameters:
    ///   - send: Sends one event to the room.
    ///   - failed: Told about an event that can never be sent (too large, say); it is dropped.
    func run(
        send: (ChannelMessage) async throws -> Void,
        failed: (ChannelMessage, ChannelLayerError) -> Void
    ) async {
        var wakeUps = self.wakeUps.makeAsyncIterator()
        while !Task.isCancelled {
            switch nextStep() {
            case .stop:
                return
            case .wait:
                guard await wakeUps.next() != nil else { return }  // nil: cancelled
            case .send(let event):
                do {
                    try await send(event)
                    state.withLock { state in
                        if !state.abandoned { state.pending.removeFirst() }
                    }
                } catch let error as ChannelLayerError {
                    switch error.code {
                    case .layerClosed:
                        return
                    case .timeout, .connectionLost, .connectionFailed:
                        // Redis is away. Connection events normally switch the outbox off until it is
                        // back; this pause only keeps the loop from spinning if they have not yet.
                        try? await Task.sleep(for: .seconds(1))
                    default:
                        state.withLock { state in
                            if !state.abandoned { state.pending.removeFirst() }
                        }
                        failed(event, error)
                    }
                } catch {
                    return  // CancellationError
                }
            }
        }
    }

    private func nextStep() -> Step {
        state.withLock { state in
            if state.abandoned { return .stop }
            if let first = state.pending.first, state.online { return .send(first) }
            return state.finishing && state.pending.isEmpty ? .stop : .wait
        }
    }
}
