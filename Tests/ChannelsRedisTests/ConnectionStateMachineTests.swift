import Testing

@testable import ChannelsRedis

@Suite struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine

    /// No jitter: delays are exact. 50 ms doubling up to 400 ms.
    static let retry = RedisPubSubChannelLayer.RetryParameters(
        initialBackoff: .milliseconds(50),
        maximumBackoff: .milliseconds(400),
        multiplier: 2,
        jitter: 0
    )

    /// Always the same number, so always the same jitter.
    struct FixedGenerator: RandomNumberGenerator {
        var value: UInt64
        mutating func next() -> UInt64 { value }
    }

    /// The connection was lost (no jitter is drawn: the tests' retry parameters have none).
    private func lose(_ machine: inout Machine) -> Machine.LossAction {
        var generator = FixedGenerator(value: 0)
        return machine.lost(using: &generator)
    }

    /// A machine whose connection was ready once.
    private func readyMachine(retry: RedisPubSubChannelLayer.RetryParameters = Self.retry) -> Machine {
        var machine = Machine(retry: retry)
        _ = machine.activate()
        machine.ready()
        return machine
    }

    @Test func startsIdleAndConnectsOnceWhenActivated() {
        var machine = Machine(retry: Self.retry)
        #expect(machine.state == .idle)
        #expect(!machine.everReady)
        #expect(machine.activate() == .connect)
        #expect(machine.state == .connecting(attempt: 0))
        #expect(machine.isConnecting)
        #expect(machine.activate() == .doNothing)  // already connecting
        machine.ready()
        #expect(machine.state == .ready)
        #expect(machine.isReady)
        #expect(machine.everReady)
        #expect(machine.activate() == .doNothing)  // already connected
    }

    @Test func aFailedFirstConnectFailsTheWaitingCallsInsteadOfRetrying() {
        var machine = Machine(retry: Self.retry)
        _ = machine.activate()
        #expect(lose(&machine) == .failWaiting)
        #expect(machine.state == .idle)
        #expect(!machine.everReady)
        // No timer: the next operation connects again, at once, and fails at once again.
        #expect(machine.activate() == .connect)
        #expect(machine.state == .connecting(attempt: 0))
        #expect(lose(&machine) == .failWaiting)
        #expect(machine.activate() == .connect)
        machine.ready()
        #expect(machine.isReady)
    }

    @Test func aLossAfterReadyIsRetriedWithGrowingCappedBackoff() {
        var machine = readyMachine()
        let expected: [Duration] = [.milliseconds(50), .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(400)]
        for (index, delay) in expected.enumerated() {
            let attempt = index + 1
            #expect(lose(&machine) == .scheduleReconnect(after: delay, attempt: attempt))
            #expect(machine.state == .backingOff(attempt: attempt))
            #expect(machine.activate() == .doNothing, "a pending reconnect is not hurried")
            #expect(machine.backoffElapsed() == .connect)
            #expect(machine.state == .connecting(attempt: attempt))
        }
    }

    @Test func lossesAfterReadyAreRetriedForever() {
        var machine = readyMachine()
        for attempt in 1...1_000 {
            let delay = Duration.milliseconds(min(50 << min(attempt - 1, 10), 400))
            #expect(lose(&machine) == .scheduleReconnect(after: delay, attempt: attempt))
            #expect(machine.backoffElapsed() == .connect)
        }
        #expect(machine.everReady)
    }

    @Test func theBackoffStartsOverOnceReadyAgain() {
        var machine = readyMachine()
        for _ in 1...3 {
            _ = lose(&machine)
            _ = machine.backoffElapsed()
        }
        #expect(machine.state == .connecting(attempt: 3))
        machine.ready()
        #expect(machine.state == .ready)
        #expect(lose(&machine) == .scheduleReconnect(after: .milliseconds(50), attempt: 1))
    }

    @Test func aLostFirstConnectAfterAResetFailsTheWaitingCallsAgain() {
        // flush() drops the subscriber: the next connection is a first connection again.
        var machine = readyMachine()
        #expect(machine.reset() == .closeConnection)
        #expect(machine.state == .idle)
        #expect(!machine.everReady)
        #expect(machine.activate() == .connect)
        #expect(lose(&machine) == .failWaiting)
    }

    @Test func resetFromEveryState() {
        var idle = Machine(retry: Self.retry)
        #expect(idle.reset() == .doNothing)
        #expect(idle.state == .idle)

        var connecting = Machine(retry: Self.retry)
        _ = connecting.activate()
        #expect(connecting.reset() == .closeConnection)
        #expect(connecting.state == .idle)

        var ready = readyMachine()
        #expect(ready.reset() == .closeConnection)
        #expect(ready.state == .idle)

        var backingOff = readyMachine()
        _ = lose(&backingOff)
        #expect(backingOff.reset() == .cancelReconnect)
        #expect(backingOff.state == .idle)
        #expect(!backingOff.everReady)
        #expect(backingOff.backoffElapsed() == .doNothing, "a cancelled timer that fired anyway connects nothing")

        var closed = readyMachine()
        _ = closed.close()
        #expect(closed.reset() == .doNothing)
        #expect(closed.state == .closed)
    }

    @Test func closeFromEveryState() {
        var idle = Machine(retry: Self.retry)
        #expect(idle.close() == .doNothing)
        #expect(idle.state == .closed)

        var connecting = Machine(retry: Self.retry)
        _ = connecting.activate()
        #expect(connecting.close() == .closeConnection)
        #expect(connecting.state == .closed)

        var reconnecting = readyMachine()
        _ = lose(&reconnecting)
        _ = reconnecting.backoffElapsed()
        #expect(reconnecting.close() == .closeConnection)

        var ready = readyMachine()
        #expect(ready.close() == .closeConnection)
        #expect(ready.state == .closed)

        var backingOff = readyMachine()
        _ = lose(&backingOff)
        #expect(backingOff.close() == .cancelReconnect)
        #expect(backingOff.state == .closed)

        // Idempotent, and nothing brings a closed connection back.
        #expect(ready.close() == .doNothing)
        #expect(ready.activate() == .doNothing)
        #expect(lose(&ready) == .doNothing)
        #expect(ready.backoffElapsed() == .doNothing)
        ready.ready()
        #expect(ready.state == .closed)
    }

    @Test func staleEventsChangeNothing() {
        // A loss reported for a connection that was reset meanwhile, a timer that fired late.
        var idle = Machine(retry: Self.retry)
        #expect(lose(&idle) == .doNothing)
        #expect(idle.backoffElapsed() == .doNothing)
        idle.ready()
        #expect(idle.state == .idle)

        var ready = readyMachine()
        #expect(ready.backoffElapsed() == .doNothing)
        #expect(ready.state == .ready)

        var backingOff = readyMachine()
        _ = lose(&backingOff)
        #expect(lose(&backingOff) == .doNothing)
        backingOff.ready()
        #expect(backingOff.state == .backingOff(attempt: 1))
    }

    @Test func theJitterComesFromTheGenerator() {
        var retry = Self.retry
        retry.jitter = 0.5
        var machine = readyMachine(retry: retry)
        // (Not 0: the standard library's bounded draw rejects a generator that only gives 0.)
        var highest = FixedGenerator(value: .max)
        guard case .scheduleReconnect(let delay, 1) = machine.lost(using: &highest) else {
            Issue.record("a loss after ready was not retried")
            return
        }
        #expect(abs((delay - .milliseconds(75)).seconds) < 1e-6, "\(delay)")

        var seeded = SplitMix64(state: 42)
        var delays: Set<Duration> = []
        for _ in 0..<100 {
            var machine = readyMachine(retry: retry)
            guard case .scheduleReconnect(let delay, _) = machine.lost(using: &seeded) else { continue }
            #expect(delay >= .milliseconds(25) && delay <= .milliseconds(75), "\(delay)")
            delays.insert(delay)
        }
        #expect(delays.count > 50, "the delays spread")
    }
}
