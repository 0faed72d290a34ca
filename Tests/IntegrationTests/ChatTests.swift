import ChannelsRedis
import ChannelsRedisTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The example terminal chat (`Examples/Chat`, product `chat`), run as child processes of the built binary: one
/// driven through pipes, as a script would, and one through a pseudo-terminal, as a person would.
///
/// The binary is the one next to the test bundle, so build it first: `swift build --build-tests` (with the same
/// `--scratch-path` as `swift test`).
@Suite("Terminal chat", .timeLimit(.minutes(3)))
struct ChatTests {
    @Test func twoChatsTalkThroughOneRedis() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let alice = try ChatProcess.start(redis: server.url, room: "garden", name: "alice", via: .pipes)
        try await alice.expectLine("*** you joined #garden as alice; type a line to send it, /help for commands")
        // That line came through the pipe while the chat is still running: its output is not held in a buffer.
        #expect(alice.isRunning)
        let bob = try ChatProcess.start(redis: server.url, room: "garden", name: "bob", via: .terminal)
        try await bob.expectLine(prefix: "*** you joined #garden as bob")
        try await alice.expectLine("*** bob joined")

        try alice.type("hello from a pipe")
        try await bob.expectLine("alice: hello from a pipe")
        try bob.type("hello from a terminal")
        try await alice.expectLine("bob: hello from a terminal")

        try bob.type("/nick robert")
        try await bob.expectLine("*** bob is now known as robert")
        try await alice.expectLine("*** bob is now known as robert")
        try bob.type("said as robert")
        try await alice.expectLine("robert: said as robert")

        try alice.type("/who")
        try await alice.expectLine("*** 2 here in #garden: alice (you), robert")
        try bob.type("/who")
        try await bob.expectLine("*** 2 here in #garden: robert (you), alice")

        try alice.endInput()  // end of input on the pipe
        try await bob.expectLine("*** alice left")
        #expect(try await alice.waitForExit() == .exited(0), "\(alice.transcript)")
        #expect(alice.lines.contains("*** you left #garden"))
        try bob.endInput()  // Ctrl-D on the terminal
        #expect(try await bob.waitForExit() == .exited(0), "\(bob.transcript)")

        // A chat does not print the echo of its own lines: the person typed them.
        #expect(!alice.lines.contains("alice: hello from a pipe"))
        #expect(!bob.lines.contains("bob: hello from a terminal"))
        #expect(alice.lines.filter { $0 == "*** bob joined" }.count == 1)
    }

    @Test func outageShowsOneNoticeAndSendsQueuedLinesAfterRecovery() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let alice = try ChatProcess.start(redis: server.url, room: "outage", name: "alice", via: .pipes)
        try await alice.expectLine(prefix: "*** you joined #outage")
        let bob = try ChatProcess.start(redis: server.url, room: "outage", name: "bob", via: .terminal)
        try await bob.expectLine(prefix: "*** you joined #outage")
        try await alice.expectLine("*** bob joined")
        try alice.type("before the outage")
        try await bob.expectLine("alice: before the outage")

        server.kill9()
        let lost = "*** connection to Redis lost; reconnecting… (lines you type are queued and sent once it is back)"
        try await alice.expectLine(lost)
        try await bob.expectLine(lost)
        try alice.type("typed during the outage")
        try alice.type("typed during the outage, second")
        try await Task.sleep(for: .seconds(1))  // the chats keep retrying meanwhile
        #expect(alice.isRunning && bob.isRunning)

        try await server.restart()
        try await alice.expectLine("*** connection to Redis is back; sending the 2 queued lines; messages sent by others meanwhile were missed")
        try await bob.expectLine(prefix: "*** connection to Redis is back")
        try await bob.expectLine("alice: typed during the outage", timeout: .seconds(20))
        try await bob.expectLine("alice: typed during the outage, second")
        try bob.type("after the outage")
        try await alice.expectLine("bob: after the outage")

        #expect(alice.isRunning && bob.isRunning, "a chat exited because Redis went away")
        #expect(alice.lines.filter { $0.hasPrefix("*** connection to Redis lost") }.count == 1, "\(alice.transcript)")
        #expect(bob.lines.filter { $0.hasPrefix("*** connection to Redis lost") }.count == 1, "\(bob.transcript)")
        #expect(bob.lines.filter { $0 == "alice: typed during the outage" }.count == 1)

        try alice.type("/quit")
        try await bob.expectLine("*** alice left")
        #expect(try await alice.waitForExit() == .exited(0), "\(alice.transcript)")
    }

    @Test(
        arguments: [
            (["--room", ""], "invalid --room: the room must not be empty"),
            (["--room", "two words"], "invalid --room: the room 'two words' contains ' ' (U+0020)"),
            (["--room", String(repeating: "r", count: 95)], "invalid --room: the room is 95 characters long; at most 94"),
            (["--name", ""], "invalid --name: the name must not be empty"),
            (["--name", "two\nlines"], "invalid --name: the name 'two\\nlines' contains '\\n' (U+000A)"),
            (["--name", String(repeating: "n", count: 33)], "invalid --name: the name is 33 characters long"),
        ]
    )
    func invalidOptionsExitWithStatusTwoBeforeConnecting(options: [String], complaint: String) async throws {
        let listener = try SilentListener()  // counts connections: there must be none
        defer { listener.stop() }
        var arguments = ["--redis", listener.url, "--room", "lobby", "--name", "alice"]
        arguments += options  // a repeated option: the last one counts
        let chat = try ChatProcess.start(arguments: arguments, via: .pipes)
        #expect(try await chat.waitForExit() == .exited(2), "\(chat.transcript)")
        #expect(chat.standardError.contains("Error: \(complaint)"), "\(chat.transcript)")
        #expect(chat.lines.isEmpty)
        #expect(listener.acceptedConnections == 0)
    }

    @Test func interruptSendsLeaveNoticeAndExitsZero() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let alice = try ChatProcess.start(redis: server.url, room: "signals", name: "alice", via: .pipes)
        try await alice.expectLine(prefix: "*** you joined #signals")
        let bob = try ChatProcess.start(redis: server.url, room: "signals", name: "bob", via: .terminal)
        try await bob.expectLine(prefix: "*** you joined #signals")
        try await alice.expectLine("*** bob joined")

        bob.send(SIGINT)
        try await alice.expectLine("*** bob left")
        #expect(try await bob.waitForExit() == .exited(0), "\(bob.transcript)")
        #expect(bob.lines.contains("*** you left #signals"))
        #expect(alice.isRunning)

        alice.send(SIGINT)  // through pipes as well
        #expect(try await alice.waitForExit() == .exited(0), "\(alice.transcript)")
        #expect(alice.lines.contains("*** you left #signals"))
    }

    @Test func speaksTheDjangoTutorialWireFormat() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        // The test plays a Django consumer of the tutorial: a member of chat_<room> that sends chat.message events.
        let django = try RedisPubSubChannelLayer(hosts: [server.url])
        let group = "chat_wire"
        try await django.withChannel { channel, _ in
            try await django.groupAdd(group, channel: channel)
            /// The next event the chat sent: the echo of the test's own group sends is skipped.
            func nextFromChat() async throws -> ChannelMessage {
                while true {
                    let event = try #require(try await django.receive(from: channel, timeout: .seconds(10)), "the chat sent nothing")
                    guard event["kind"] != nil, event["sender"] != "django" else { continue }
                    #expect(event.type == "chat.message", "the chat sent a type a Django consumer has no handler for: \(event)")
                    return event
                }
            }

            let chat = try ChatProcess.start(redis: server.url, room: "wire", name: "alice", via: .pipes)
            try await chat.expectLine(prefix: "*** you joined #wire")
            let join = try await nextFromChat()
            #expect(join["message"] == "alice joined" && join["kind"] == "join" && join["sender"] == "alice")
            let chatChannel = try #require(join["reply_to"]?.stringValue)

            try chat.type("hello, Django")
            let line = try await nextFromChat()
            #expect(line["message"] == "hello, Django" && line["kind"] == "message" && line["sender"] == "alice", "\(line)")
            #expect(line["reply_to"]?.stringValue == chatChannel)

            // What the tutorial's page sends: no sender, no kind.
            try await django.groupSend(["type": "chat.message", "message": "from the web page"], to: group)
            try await chat.expectLine("(web): from the web page")
            // A message that is not a string is shown, not dropped.
            try await django.groupSend(["type": "chat.message", "message": 42, "sender": "numbers"], to: group)
            try await chat.expectLine("numbers: 42")
            // Another type, or a message that is not a map, is ignored, and the chat carries on.
            try await django.groupSend(["type": "other.event", "message": "not for the chat"], to: group)
            try await django.groupSend("not a map", to: group)
            try await django.groupSend(["type": "chat.message", "message": "line\nbreak\u{1B}[2J"], to: group)
            try await chat.expectLine("(web): line\\nbreak\\u{1B}[2J")  // control characters escaped: one line, no escapes
            #expect(!chat.transcript.contains("not for the chat"))

            try chat.type("/nick ali")
            let nick = try await nextFromChat()
            #expect(nick["message"] == "alice is now known as ali" && nick["kind"] == "nick" && nick["sender"] == "ali", "\(nick)")

            // /who: the asker's request goes to the group; each participant answers on the asker's own channel.
            try chat.type("/who")
            let who = try await nextFromChat()
            #expect(who["kind"] == "who" && who["sender"] == "ali" && who["message"]?.stringValue != nil, "\(who)")
            let replyTo = try #require(who["reply_to"]?.stringValue)
            #expect(replyTo == chatChannel)
            try await django.send(["type": "chat.message", "kind": "here", "sender": "django", "message": "django is here"], to: replyTo)
            try await chat.expectLine("*** 2 here in #wire: ali (you), django")

            // And the chat answers another participant's /who on that participant's channel.
            try await django.groupSend(
                ["type": "chat.message", "kind": "who", "sender": "django", "message": "django asked who is here", "reply_to": .string(channel)],
                to: group
            )
            let here = try await nextFromChat()
            #expect(here == ["type": "chat.message", "message": "ali is here", "kind": "here", "sender": "ali"])

            try chat.endInput()
            let leave = try await nextFromChat()
            #expect(leave["message"] == "ali left" && leave["kind"] == "leave" && leave["sender"] == "ali", "\(leave)")
            #expect(try await chat.waitForExit() == .exited(0), "\(chat.transcript)")
        }
        await django.close()
    }

    @Test func botAnswersEveryMessageOnce() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let bot = try ChatProcess.start(
            arguments: ["--redis", server.url, "--room", "bots", "--name", "bot", "--bot"],
            via: .pipes,
            input: .null
        )
        try await bot.expectLine("*** bot (a bot) joined #bots; it answers every message once")
        let alice = try ChatProcess.start(redis: server.url, room: "bots", name: "alice", via: .pipes)
        try await alice.expectLine(prefix: "*** you joined #bots")
        try await bot.expectLine("*** alice joined")
        try alice.type("ping")
        try await alice.expectLine("bot: I heard \"ping\"")
        try alice.type("pong")
        try await alice.expectLine("bot: I heard \"pong\"")
        #expect(alice.lines.filter { $0.hasPrefix("bot: ") }.count == 2, "\(alice.transcript)")
        #expect(bot.lines.filter { $0.hasPrefix("bot: ") }.isEmpty, "the bot answered itself: \(bot.transcript)")

        bot.send(SIGTERM)
        try await alice.expectLine("*** bot left")
        #expect(try await bot.waitForExit() == .exited(0), "\(bot.transcript)")
    }

    @Test func helpExplainsEveryOption() async throws {
        let chat = try ChatProcess.start(arguments: ["--help"], via: .pipes)
        #expect(try await chat.waitForExit() == .exited(0))
        let help = chat.transcript
        for expected in [
            "--redis <url>", "(default: redis://127.0.0.1:6379)", "--room <name>", "(default: lobby)", "--name <name>",
            "(default: $USER, or guest)", "--bot", "/nick NEW", "/who", "/quit", "queued", "status 2",
        ] {
            #expect(help.contains(expected), "--help does not mention \(expected):\n\(help)")
        }
    }
}
