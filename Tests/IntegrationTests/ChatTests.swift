import ChannelsRedis
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

// MARK: - Running the chat

/// The `chat` binary that `swift build --build-tests` put next to the test bundle.
enum ChatBinary {
    /// - Throws: ``FixtureError`` `.notFound`, naming the folders it looked in.
    static func path() throws -> String {
        var folders: [String] = []
        if let override = ProcessInfo.processInfo.environment["CHAT_BINARY"] {
            guard access(override, X_OK) == 0 else {
                throw FixtureError(.notFound, "CHAT_BINARY=\(override) is not an executable file")
            }
            return override
        }
        // The test bundle is `<scratch>/<triple>/debug/<package>PackageTests.xctest` (a file on Linux, a folder on macOS,
        // where Bundle.main is the xctest runner): the chat is its sibling.
        // (Not `Bundle.allBundles`: Foundation leaks what it builds for it, which LeakSanitizer reports.)
        let candidates = [Bundle.main.executablePath, CommandLine.arguments.first, "/proc/self/exe"].compactMap { $0 }
        for candidate in candidates {
            guard let resolved = realpath(candidate, nil) else { continue }
            var folder = URL(fileURLWithPath: String(cString: resolved)).deletingLastPathComponent()
            free(resolved)
            if folder.lastPathComponent == "MacOS" {  // inside an .xctest bundle
                folder = folder.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            }
            let path = folder.appendingPathComponent("chat").path
            if access(path, X_OK) == 0 {
                return path
            }
            if !folders.contains(folder.path) { folders.append(folder.path) }
        }
        throw FixtureError(
            .notFound,
            "the chat binary is not next to the test bundle (looked in \(folders.joined(separator: ", "))): build it with "
                + "`swift build --build-tests` using the same --scratch-path as `swift test`, or set CHAT_BINARY"
        )
    }
}

/// A running `chat`: lines in on its stdin, its stdout collected line by line.
///
/// `.pipes` gives it Unix socket pairs for stdin, stdout and stderr; `.terminal` a pseudo-terminal for all three, as a
/// terminal emulator would (so the terminal's own echo of typed lines shows up in ``transcript`` too, but never as a
/// time-stamped chat line). `Sendable`: the child is a ``ChildProcess``, the input descriptor and the output live in
/// `Mutex`es.
final class ChatProcess: Sendable {
    enum Connection: Sendable {
        case pipes, terminal
    }

    enum Input: Sendable {
        /// A descriptor the test writes to.
        case interactive
        /// `/dev/null` (pipes only), as the demo script starts its bot.
        case null
    }

    let connection: Connection
    private let child: ChildProcess
    private let input: Mutex<Int32>
    private let output = ChatOutput()

    static func start(redis: String, room: String, name: String, via connection: Connection) throws -> ChatProcess {
        try start(arguments: ["--redis", redis, "--room", room, "--name", name], via: connection)
    }

    static func start(arguments: [String], via connection: Connection, input: Input = .interactive) throws -> ChatProcess {
        try ChatProcess(executable: try ChatBinary.path(), arguments: arguments, connection: connection, input: input)
    }

    private init(executable: String, arguments: [String], connection: Connection, input: Input) throws {
        self.connection = connection
        switch connection {
        case .pipes:
            let stdinPair = try Self.socketPair()
            let stdoutPair = try Self.socketPair()
            let stderrPair = try Self.socketPair()
            defer { Self.closeAll([stdinPair[1], stdoutPair[1], stderrPair[1]]) }
            do {
                child = try ChildProcess.spawn(
                    executable: executable,
                    arguments: arguments,
                    standardInput: input == .null ? .null : .descriptor(stdinPair[1]),
                    standardOutput: .descriptor(stdoutPair[1]),
                    standardError: .descriptor(stderrPair[1])
                )
            } catch {
                Self.closeAll([stdinPair[0], stdoutPair[0], stderrPair[0]])
                throw error
            }
            if input == .null { close(stdinPair[0]) }
            self.input = Mutex(input == .null ? -1 : stdinPair[0])
            ChatOutput.startReading(stdoutPair[0], into: output, stream: .stdout)
            ChatOutput.startReading(stderrPair[0], into: output, stream: .stderr)
        case .terminal:
            let (controller, terminal) = try Self.pseudoTerminal()
            defer { close(terminal) }
            let reader = dup(controller)
            guard reader >= 0 else {
                let error = FixtureError.systemCall("dup")
                close(controller)
                throw error
            }
            _ = fcntl(reader, F_SETFD, FD_CLOEXEC)
            do {
                child = try ChildProcess.spawn(
                    executable: executable,
                    arguments: arguments,
                    standardInput: .descriptor(terminal),
                    standardOutput: .descriptor(terminal),
                    standardError: .descriptor(terminal)
                )
            } catch {
                Self.closeAll([controller, reader])
                throw error
            }
            self.input = Mutex(controller)
            // Reads end with EIO once the chat, the only holder of the terminal side left, has exited.
            ChatOutput.startReading(reader, into: output, stream: .stdout)
            output.end(.stderr)
        }
    }

    deinit {
        child.kill()
        closeInput()
    }

    /// A controller and terminal pair from `posix_openpt`, both close-on-exec, the terminal in its default modes
    /// (canonical input, echo, `\n` written as `\r\n`).
    private static func pseudoTerminal() throws -> (controller: Int32, terminal: Int32) {
        let controller = PseudoTerminalCalls.openController(O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard controller >= 0 else { throw FixtureError.systemCall("posix_openpt") }
        var name = [CChar](repeating: 0, count: 128)
        guard PseudoTerminalCalls.grant(controller) == 0, PseudoTerminalCalls.unlock(controller) == 0,
            PseudoTerminalCalls.name(controller, &name, name.count) == 0
        else {
            let error = FixtureError.systemCall("grantpt/unlockpt/ptsname_r")
            close(controller)
            throw error
        }
        let path = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let terminal = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard terminal >= 0 else {
            let error = FixtureError.systemCall("open(\(path))")
            close(controller)
            throw error
        }
        return (controller, terminal)
    }

    /// Two connected close-on-exec Unix stream sockets: [ours, the child's] (see ``PythonProcess``).
    private static func socketPair() throws -> [Int32] {
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw FixtureError.systemCall("socketpair")
        }
        return pair
    }

    private static func closeAll(_ descriptors: [Int32]) {
        for fd in descriptors { close(fd) }
    }

    var isRunning: Bool { child.isRunning }

    /// The chat's time-stamped lines so far, without the `HH:MM:SS ` stamp.
    var lines: [String] { output.stampedLines() }

    /// Everything on stdout (on a terminal: everything, echo included) so far.
    var transcript: String { output.text(.stdout) + output.text(.stderr) }

    /// Everything on stderr so far (pipes only).
    var standardError: String { output.text(.stderr) }

    /// Waits for a line, after those matched before, that reads `text` after its time stamp.
    ///
    /// - Throws: ``FixtureError`` `.timedOut` (with the transcript) when none comes within `timeout`.
    func expectLine(_ text: String, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await expectLine(timeout: timeout, describedAs: "'\(text)'", sourceLocation: sourceLocation) { $0 == text }
    }

    /// Waits for a line, after those matched before, whose text after its time stamp starts with `prefix`.
    func expectLine(prefix: String, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await expectLine(timeout: timeout, describedAs: "starting with '\(prefix)'", sourceLocation: sourceLocation) { $0.hasPrefix(prefix) }
    }

    private func expectLine(
        timeout: Duration,
        describedAs description: String,
        sourceLocation: SourceLocation,
        _ matches: @Sendable (String) -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while !output.consumeLine(where: matches) {
            if ContinuousClock.now >= deadline {
                let error = FixtureError(.timedOut, "no line \(description) within \(timeout); the chat printed:\n\(transcript)")
                Issue.record(error, sourceLocation: sourceLocation)
                throw error
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Types `line` and a line break.
    func type(_ line: String) throws {
        try write(Array(line.utf8) + [UInt8(ascii: "\n")])
    }

    /// Ends the chat's input: closes the pipe, or types Ctrl-D on the terminal.
    func endInput() throws {
        switch connection {
        case .pipes: closeInput()
        case .terminal: try write([0x04])
        }
    }

    func send(_ signal: Int32) {
        child.send(signal)
    }

    /// Waits for the chat to exit and for its output to be read to the end; `nil` if it still runs after `timeout`.
    func waitForExit(timeout: Duration = .seconds(15)) async throws -> ChildProcess.Termination? {
        guard let termination = try await child.waitForExit(timeout: timeout) else { return nil }
        let deadline = ContinuousClock.now + .seconds(2)
        while !output.isComplete && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        return termination
    }

    private func write(_ bytes: [UInt8]) throws {
        try input.withLock { fd in
            guard fd >= 0 else { throw FixtureError(.connectionClosed, "the chat's input is closed") }
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { buffer in
                    connection == .pipes
                        ? Glibc.send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL))
                        : Glibc.write(fd, buffer.baseAddress, buffer.count)
                }
                if written > 0 {
                    offset += written
                } else if errno != EINTR {
                    throw FixtureError(.connectionClosed, "the chat does not read its input: \(FixtureError.systemCall("write"))")
                }
            }
        }
    }

    private func closeInput() {
        input.withLock { fd in
            if fd >= 0 {
                close(fd)
                fd = -1
            }
        }
    }
}

/// A chat's stdout and stderr as reader threads collect them.
private final class ChatOutput: Sendable {
    enum Stream: Sendable {
        case stdout, stderr
    }

    private struct State: Sendable {
        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        /// How many of the stamped lines ``consumeLine(where:)`` has gone past.
        var consumed = 0
        var stdoutEnded = false
        var stderrEnded = false
    }

    private let state = Mutex(State())

    /// Reads `fd` to its end (or EIO, a pseudo-terminal whose other side is gone) on a thread of its own, then closes it.
    static func startReading(_ fd: Int32, into output: ChatOutput, stream: Stream) {
        let thread = Thread {
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = read(fd, &chunk, chunk.count)
                if count > 0 {
                    output.append(chunk.prefix(count), to: stream)
                } else if count == 0 || errno != EINTR {
                    break
                }
            }
            close(fd)
            output.end(stream)
        }
        thread.name = "fixture-chat-\(stream)"
        thread.start()
    }

    var isComplete: Bool { state.withLock { $0.stdoutEnded && $0.stderrEnded } }

    func text(_ stream: Stream) -> String {
        state.withLock { String(decoding: stream == .stdout ? $0.stdout : $0.stderr, as: UTF8.self) }
    }

    func end(_ stream: Stream) {
        state.withLock { state in
            if stream == .stdout { state.stdoutEnded = true } else { state.stderrEnded = true }
        }
    }

    /// The complete lines of stdout that start with an `HH:MM:SS ` stamp, without it.
    func stampedLines() -> [String] {
        state.withLock { Self.stampedLines(in: $0.stdout) }
    }

    /// Moves past the first stamped line after those already passed that `matches`; false if there is none yet.
    func consumeLine(where matches: (String) -> Bool) -> Bool {
        state.withLock { state in
            let lines = Self.stampedLines(in: state.stdout)
            guard let index = lines[state.consumed...].firstIndex(where: matches) else { return false }
            state.consumed = index + 1
            return true
        }
    }

    private func append(_ bytes: ArraySlice<UInt8>, to stream: Stream) {
        state.withLock { state in
            if stream == .stdout { state.stdout += bytes } else { state.stderr += bytes }
        }
    }

    private static func stampedLines(in bytes: [UInt8]) -> [String] {
        var lines: [String] = []
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast() {
            let text = String(decoding: line.last == UInt8(ascii: "\r") ? line.dropLast() : line, as: UTF8.self)
            let stamp = Array(text.utf8.prefix(9))
            let digits = [0, 1, 3, 4, 6, 7].allSatisfy { stamp.count == 9 && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(stamp[$0]) }
            guard digits, stamp[2] == UInt8(ascii: ":"), stamp[5] == UInt8(ascii: ":"), stamp[8] == UInt8(ascii: " ") else { continue }
            lines.append(String(text.dropFirst(9)))
        }
        return lines
    }
}

/// `posix_openpt`, `grantpt`, `unlockpt` and `ptsname_r`, looked up at run time: Swift's Glibc module does not see them
/// (glibc declares them only for `_XOPEN_SOURCE`/`_GNU_SOURCE`), as ``ChildProcess`` does for `posix_spawn`'s closefrom.
private enum PseudoTerminalCalls {
    private typealias Open = @convention(c) (Int32) -> Int32
    private typealias OnDescriptor = @convention(c) (Int32) -> Int32
    private typealias Name = @convention(c) (Int32, UnsafeMutablePointer<CChar>?, Int) -> Int32

    private static func function<Function>(_ name: String, as type: Function.Type) -> Function {
        guard let symbol = dlsym(nil, name) else { preconditionFailure("libc has no \(name)") }
        return unsafeBitCast(symbol, to: type)
    }

    static func openController(_ flags: Int32) -> Int32 { function("posix_openpt", as: Open.self)(flags) }
    static func grant(_ fd: Int32) -> Int32 { function("grantpt", as: OnDescriptor.self)(fd) }
    static func unlock(_ fd: Int32) -> Int32 { function("unlockpt", as: OnDescriptor.self)(fd) }
    static func name(_ fd: Int32, _ buffer: UnsafeMutablePointer<CChar>, _ length: Int) -> Int32 {
        function("ptsname_r", as: Name.self)(fd, buffer, length)
    }
}
