import Testing

@testable import ChannelsRedis

@Suite struct ShardHealthTests {
    @Test func isIdleUntilSomethingConnects() {
        let health = ShardHealth()
        #expect(health.status(closed: false, connecting: false) == .idle)
        #expect(health.status(closed: false, connecting: true) == .connecting)
        #expect(health.status(closed: true, connecting: true) == .closed)
    }

    @Test func theFirstTimeHealthyStartsProbingWithoutAnOutage() {
        var health = ShardHealth()
        #expect(health.update(healthy: false) == .doNothing)
        #expect(health.update(healthy: true) == .startProbing)
        #expect(health.isHealthy)
        #expect(health.everHealthy)
        #expect(health.update(healthy: true) == .doNothing)
        #expect(health.status(closed: false, connecting: false) == .ready)
    }

    @Test func anOutageStartsOnceAndEndsOnce() {
        var health = ShardHealth()
        _ = health.update(healthy: true)
        #expect(health.update(healthy: false) == .startOutage)
        // Every reconnect attempt re-evaluates; none is another outage.
        for _ in 0..<10 { #expect(health.update(healthy: false) == .doNothing) }
        #expect(health.status(closed: false, connecting: true) == .reconnecting)
        #expect(health.update(healthy: true) == .endOutage)
        #expect(health.update(healthy: true) == .doNothing)
        #expect(health.update(healthy: false) == .startOutage)
    }

    @Test func aFailedFirstConnectShowsAsConnectingUntilHealthy() {
        var health = ShardHealth()
        health.connectFailed()
        #expect(health.status(closed: false, connecting: false) == .connecting)
        #expect(health.update(healthy: false) == .doNothing)
        #expect(health.status(closed: false, connecting: false) == .connecting)
        #expect(health.update(healthy: true) == .startProbing)
        #expect(!health.firstConnectFailed)
        #expect(health.status(closed: false, connecting: false) == .ready)
    }

    @Test func aResetForgetsThatTheShardWasHealthy() {
        // flush(): the subscriber is dropped without an outage; its next connection is a first one.
        var health = ShardHealth()
        _ = health.update(healthy: true)
        health.reset()
        #expect(!health.isHealthy)
        #expect(health.status(closed: false, connecting: false) == .idle)
        #expect(health.update(healthy: false) == .doNothing)
        #expect(health.update(healthy: true) == .startProbing, "not the end of an outage")
        health.reset()
        #expect(health.status(closed: true, connecting: false) == .closed)
    }
}
