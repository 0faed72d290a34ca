import Testing

@testable import ChannelsRedis

@Suite struct LivenessProbeTests {
    private func makeProbe() -> LivenessProbe {
        LivenessProbe(interval: .seconds(5), timeout: .seconds(3))
    }

    private func receive(_ probe: inout LivenessProbe, _ text: String) {
        Array(text.utf8).withUnsafeBytes { probe.received($0) }
    }

    /// A probe sent with id "probe-1", waiting for its answers.
    private func probeInFlight() -> LivenessProbe {
        var probe = makeProbe()
        _ = probe.start()
        _ = probe.sent(id: "probe-1")
        return probe
    }

    @Test func startsAfterTheIntervalAndWaitsForTheTimeout() {
        var probe = makeProbe()
        #expect(probe.state == .stopped)
        #expect(probe.start() == .sendProbe(after: .seconds(5)))
        #expect(probe.state == .scheduled)
        #expect(probe.sent(id: "probe-1") == .checkProbe(after: .seconds(3)))
        #expect(probe.state == .inFlight(id: "probe-1", replied: false, received: false))
    }

    @Test func aZeroIntervalTurnsProbesOff() {
        var probe = LivenessProbe(interval: .zero, timeout: .seconds(3))
        #expect(probe.start() == .doNothing)
        #expect(probe.state == .stopped)
        #expect(probe.sent(id: "probe-1") == .doNothing)
    }

    @Test func repliedAndReceivedSchedulesTheNextProbe() {
        var probe = probeInFlight()
        probe.publisherReplied()
        receive(&probe, "probe-1")
        #expect(probe.state == .inFlight(id: "probe-1", replied: true, received: true))
        #expect(probe.deadlinePassed() == .sendProbe(after: .seconds(5)))
        #expect(probe.state == .scheduled)
    }

    @Test func theOrderOfTheAnswersDoesNotMatter() {
        var probe = probeInFlight()
        receive(&probe, "probe-1")
        probe.publisherReplied()
        #expect(probe.deadlinePassed() == .sendProbe(after: .seconds(5)))
    }

    @Test func noReplyReplacesThePublisher() {
        var probe = probeInFlight()
        receive(&probe, "probe-1")
        #expect(probe.deadlinePassed() == .replaceConnections(publisher: true, subscriber: false))
        #expect(probe.state == .stopped)
    }

    @Test func aReplyWithoutTheMessageReplacesTheSubscriber() {
        var probe = probeInFlight()
        probe.publisherReplied()
        #expect(probe.deadlinePassed() == .replaceConnections(publisher: false, subscriber: true))
    }

    @Test func neitherReplacesBoth() {
        var probe = probeInFlight()
        #expect(probe.deadlinePassed() == .replaceConnections(publisher: true, subscriber: true))
    }

    @Test func onlyTheProbesOwnIdCounts() {
        var probe = probeInFlight()
        probe.publisherReplied()
        receive(&probe, "probe-0")  // an older probe's, arriving late
        receive(&probe, "")
        #expect(probe.deadlinePassed() == .replaceConnections(publisher: false, subscriber: true))
    }

    @Test func answersOutsideAProbeChangeNothing() {
        var probe = makeProbe()
        probe.publisherReplied()
        receive(&probe, "probe-1")
        #expect(probe.state == .stopped)
        #expect(probe.deadlinePassed() == .doNothing)
        _ = probe.start()
        probe.publisherReplied()
        #expect(probe.state == .scheduled)
        #expect(probe.deadlinePassed() == .doNothing)
    }

    @Test func stoppingDropsTheProbeInFlight() {
        // A connection is gone: a probe in flight says nothing any more, and its timer is ignored.
        var probe = probeInFlight()
        probe.publisherReplied()
        probe.stop()
        #expect(probe.state == .stopped)
        receive(&probe, "probe-1")
        #expect(probe.deadlinePassed() == .doNothing)
        #expect(probe.sent(id: "probe-2") == .doNothing, "only a scheduled probe is sent")
    }

    @Test func startingAgainDropsTheProbeBefore() {
        var probe = probeInFlight()
        #expect(probe.start() == .sendProbe(after: .seconds(5)))
        #expect(probe.state == .scheduled)
    }
}
