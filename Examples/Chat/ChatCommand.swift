// A terminal chat on ChannelsRedis that shares rooms with the Django Channels tutorial's chat.
//
//   swift run chat --redis redis://127.0.0.1:6379 --room lobby --name alice
//
// See `chat --help`, and ChatEvent.swift for the wire format.
import ArgumentParser
import ChannelsRedis
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

@main
struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "A terminal chat room on Redis that talks to the Django Channels tutorial's chat.",
        discussion: """
            Joins the Channels group chat_<room> and sends every line you type as {"type": "chat.message", \
            "message": <line>}, the Django Channels tutorial's format, so terminals and the tutorial's web page \
            share rooms. Each line shows its time and sender; your own lines are not repeated (you typed them). \
            Lines from the web page have no sender and show as "(web)". Notices (joins, leaves, renames, /who, \
            the connection to Redis) start with "***".

            Commands: /nick NEW (change your name), /who (list who is here: everyone answers within a second), \
            /quit. /quit, Ctrl-C and end of input (Ctrl-D) leave the room cleanly, telling the others. A line \
            starting with / is a command; start it with // to send it as text.

            If Redis goes away the chat says so once, keeps running and reconnects by itself. Lines you type \
            meanwhile are queued and sent, in order, once it is back; what others said meanwhile is lost (Redis \
            pub/sub does not keep messages).

            Invalid options exit with status 2, before connecting.
            """
    )

    @Option(help: ArgumentHelp("The Redis server: redis://[[user]:password@]host[:port][/db] or unix:///path.", valueName: "url"))
    var redis = "redis://127.0.0.1:6379"

    @Option(
        help: ArgumentHelp(
            "The room to join; its Channels group is chat_<room>, so ASCII letters, digits, '-', '_' and '.' only, at most \(ChatNames.maximumRoomLength).",
            valueName: "name"
        )
    )
    var room = "lobby"

    @Option(
        help: ArgumentHelp(
            "Your name in the room: one line of text, at most \(ChatNames.maximumNameLength) characters. (default: $USER, or guest)",
            valueName: "name"
        )
    )
    var name: String?

    @Flag(help: "Be a bot instead of reading the terminal: answer every message once, with what it heard (the demo script starts one).")
    var bot = false

    /// `--name`, or `$USER`, or `guest`.
    var participantName: String {
        if let name { return name }
        if let user = ProcessInfo.processInfo.environment["USER"], ChatNames.problem(withName: user) == nil { return user }
        return "guest"
    }

    func validate() throws {
        if let problem = ChatNames.problem(withRoom: room) {
            throw ValidationError("invalid --room: \(problem)")
        }
        if let problem = ChatNames.problem(withName: participantName) {
            throw ValidationError("invalid --name: \(problem)")
        }
    }

    /// ArgumentParser's own `main()`, except that a usage error exits with status 2, as getopt-style
    /// tools and Python's argparse do (ArgumentParser would use 64, `EX_USAGE`).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }

    func run() async throws {
        // A chat whose reader went away should not die of SIGPIPE in the middle of leaving.
        signal(SIGPIPE, SIG_IGN)
        // The layer logs an outage as a warning (and a reconnect); chat lines alone go to stdout.
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        var configuration = RedisPubSubChannelLayer.Configuration(hosts: [redis])
        configuration.retry.maximumBackoff = ChatSession.reconnectBackoff
        let layer: RedisPubSubChannelLayer
        do {
            layer = try RedisPubSubChannelLayer(configuration: configuration, logger: Logger(label: "chat"))
        } catch let error as ChannelLayerError {
            throw ValidationError("invalid --redis: \(error.message)")
        }
        let terminal = Terminal()
        let leaveRequests = LeaveRequests()
        let name = participantName
        let events = layer.connectionEvents()
        do {
            try await layer.withChannel { channel, messages in
                let session = ChatSession(
                    layer: layer,
                    room: room,
                    name: name,
                    channel: channel,
                    isBot: bot,
                    terminal: terminal,
                    leaveRequests: leaveRequests
                )
                try await session.join()
                leaveRequests.catchSignals()
                await session.run(messages: messages, events: events, input: bot ? nil : InputLines.standardInput())
            }
        } catch {
            await layer.close()
            let reason = (error as? ChannelLayerError)?.message ?? "\(error)"
            FileHandle.standardError.write(Data("chat: could not join #\(room) on \(redis): \(reason)\n".utf8))
            throw ExitCode.failure
        }
        await layer.close()
    }
}
