import ChannelsRedis
import ChannelsRedisTestSupport

/// Consumes a channel in the background through `layer.messages(from:)`, subscribed when the initializer returns, and
/// keeps what arrives for as long as it lives.
///
/// `Sendable`: what arrives lives in a `Mutex`; the consuming task holds only that, and runs until ``stop()`` or
/// ``cancel()`` (or the end of the sequence), not until the collector is released.
final class MessageCollector: Sendable {
    private struct State: Sendable {
        var received: [ChannelMessage] = []
        /// How many of `received` ``next(within:)`` has handed out.
        var taken = 0
        /// How the sequence ended, if it ended with an error.
        var failure: String?
    }

    let channel: String
    private let state = Mutex(State())
    private let task: Task<Void, Never>

    init(_ layer: RedisPubSubChannelLayer, channel: String) async throws {
        self.channel = channel
        let sequence = try await layer.messages(from: channel)
        let state = self.state
        task = Task {
            do {
                for try await message in sequence { state.withLock { $0.received.append(message) } }
            } catch {
                state.withLock { $0.failure = "\(error)" }
            }
        }
    }

    /// Everything received so far.
    var received: [ChannelMessage] { state.withLock { $0.received } }

    /// The next message after those this returned before.
    ///
    /// - Throws: ``FixtureError`` `.timedOut` when none comes within `timeout`, `.connectionClosed` when the sequence ended
    ///   with an error.
    func next(within timeout: Duration = .seconds(15)) async throws -> ChannelMessage {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (message, failure) = state.withLock { state -> (ChannelMessage?, String?) in
                guard state.taken < state.received.count else { return (nil, state.failure) }
                state.taken += 1
                return (state.received[state.taken - 1], nil)
            }
            if let message { return message }
            if let failure { throw FixtureError(.connectionClosed, "messages(from: \(channel)) ended: \(failure)") }
            if ContinuousClock.now >= deadline { throw FixtureError(.timedOut, "Swift received nothing on \(channel) within \(timeout)") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Stops consuming, without waiting.
    func cancel() {
        task.cancel()
    }

    /// Stops consuming and waits until it has.
    func stop() async {
        task.cancel()
        await task.value
    }
}
