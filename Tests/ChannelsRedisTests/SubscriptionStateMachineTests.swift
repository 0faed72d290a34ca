import Testing

@testable import ChannelsRedis

@Suite struct SubscriptionStateMachineTests {
    @Test func wantingWhileDisconnectedWaitsForTheConnection() {
        var machine = SubscriptionStateMachine()
        #expect(machine.want("a") == .doNothing)
        #expect(machine.want("b") == .doNothing)
        guard case .subscribe(let channels) = machine.connected() else {
            Issue.record("connected() did not subscribe what was wanted")
            return
        }
        #expect(Set(channels) == ["a", "b"])
        #expect(machine.subscribeConfirmed("a") == .confirmed("a"))
        #expect(machine.isSubscribed("a"))
        #expect(!machine.isSubscribed("b"))
    }

    @Test func wantingWhileConnectedSubscribesOnceAndConfirmsLaterWanters() {
        var machine = SubscriptionStateMachine()
        _ = machine.connected()
        #expect(machine.want("a") == .subscribe(["a"]))
        #expect(machine.want("a") == .doNothing)  // pending: the confirmation answers both
        #expect(machine.subscribeConfirmed("a") == .confirmed("a"))
        #expect(machine.want("a") == .confirmed("a"))  // already subscribed
    }

    @Test func onlyConfirmedSubscriptionsAreUnsubscribed() {
        // hiredis 0.14.1 can abort on UNSUBSCRIBE of a channel it does not know.
        var machine = SubscriptionStateMachine()
        _ = machine.connected()
        #expect(machine.want("a") == .subscribe(["a"]))
        #expect(machine.unwant("a") == .doNothing)  // SUBSCRIBE not confirmed yet
        #expect(machine.subscribeConfirmed("a") == .unsubscribe(["a"]))  // undone on confirmation
        #expect(machine.unsubscribeConfirmed("a") == .doNothing)
        #expect(machine.status["a"] == nil)
        #expect(machine.unwant("never-wanted") == .doNothing)
    }

    @Test func resubscribingWaitsForTheUnsubscribeConfirmation() {
        // A late UNSUBSCRIBE reply would delete the callback of a new SUBSCRIBE in hiredis 0.14.1.
        var machine = SubscriptionStateMachine()
        _ = machine.connected()
        _ = machine.want("a")
        _ = machine.subscribeConfirmed("a")
        #expect(machine.unwant("a") == .unsubscribe(["a"]))
        #expect(machine.want("a") == .doNothing)
        #expect(machine.unsubscribeConfirmed("a") == .subscribe(["a"]))
        #expect(machine.subscribeConfirmed("a") == .confirmed("a"))
        #expect(machine.isSubscribed("a"))
    }

    @Test func aDisconnectForgetsWhatIsSubscribedButKeepsWhatIsWanted() {
        var machine = SubscriptionStateMachine()
        _ = machine.connected()
        _ = machine.want("a")
        _ = machine.subscribeConfirmed("a")
        _ = machine.want("b")
        machine.disconnected()
        #expect(!machine.isConnected)
        #expect(machine.status.isEmpty)
        #expect(machine.wanted == ["a", "b"])
        // Confirmations from the old connection mean nothing now.
        #expect(machine.subscribeConfirmed("b") == .doNothing)
        guard case .subscribe(let channels) = machine.connected() else {
            Issue.record("reconnect did not resubscribe")
            return
        }
        #expect(Set(channels) == ["a", "b"])
    }

    @Test func resetForgetsEverything() {
        var machine = SubscriptionStateMachine()
        _ = machine.connected()
        _ = machine.want("a")
        machine.reset()
        #expect(machine.wanted.isEmpty)
        #expect(machine.connected() == .doNothing)
    }
}
