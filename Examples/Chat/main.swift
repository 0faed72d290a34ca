// A terminal chat on ChannelsRedis, speaking the Django Channels tutorial's wire format:
// every participant joins group `chat_<room>` and sends `{"type": "chat.message", "message": text}`
// there, so it can share a room with the tutorial's Django consumers.
//
//   swift run chat --redis redis://127.0.0.1:6379 --room lobby --name alice
//
// Type a line to send it; an empty line or end of input leaves. `--bot` answers every message
// once instead of reading the terminal (the demo script starts one so you are not alone).
import ChannelsRedis
import Foundation
import Logging

struct Options {
    var redis = "redis://127.0.0.1:6379"
    var room = "lobby"
    var name = ProcessInfo.processInfo.environment["USER"] ?? "guest"
    var bot = false

    static func parse(_ arguments: [String]) -> Options {
        var options = Options()
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--redis": options.redis = iterator.next() ?? options.redis
            case "--room": options.room = iterator.next() ?? options.room
            case "--name": options.name = iterator.next() ?? options.name
            case "--bot": options.bot = true
            case "--help", "-h":
                print("usage: chat [--redis URL] [--room NAME] [--name NAME] [--bot]")
                exit(0)
            default:
                FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8))
                exit(2)
            }
        }
        return options
    }
}

@main
struct Chat {
    static func main() async {
        let options = Options.parse(CommandLine.arguments)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        do {
            try await run(options)
        } catch {
            FileHandle.standardError.write(Data("chat: \(error)\n".utf8))
            exit(1)
        }
    }

    static func run(_ options: Options) async throws {
        var configuration = RedisPubSubChannelLayer.Configuration(hosts: [options.redis])
        configuration.onReconnect = "chat.reconnected"
        let layer = try RedisPubSubChannelLayer(configuration: configuration, logger: Logger(label: "chat"))
        let group = "chat_\(options.room)"
        let me = try await layer.newChannel()
        try await layer.groupAdd(group, channel: me)
        let messages = try await layer.messages(from: me)
        print("[\(options.name) joined #\(options.room); type a message and press return]")
        try await layer.groupSend(["type": "chat.message", "message": "\(options.name) joined"], to: group)

        try await withThrowingTaskGroup(of: Void.self) { tasks in
            // Receive: print what the room says.
            tasks.addTask {
                for try await message in messages {
                    guard message["type"]?.stringValue == "chat.message", let text = message["message"]?.stringValue else {
                        if message["type"]?.stringValue == "chat.reconnected" { print("[reconnected; messages sent meanwhile were lost]") }
                        continue
                    }
                    print(text)
                    if options.bot, !text.hasPrefix("\(options.name):"), !text.hasSuffix(" joined") {
                        try await layer.groupSend(["type": "chat.message", "message": "\(options.name): I heard \"\(text)\""], to: group)
                    }
                }
            }
            if !options.bot {
                // Send: every line typed goes to the room.
                tasks.addTask {
                    while let line = readLine(), !line.isEmpty {
                        try await layer.groupSend(["type": "chat.message", "message": "\(options.name): \(line)"], to: group)
                    }
                    try await layer.groupSend(["type": "chat.message", "message": "\(options.name) left"], to: group)
                }
                try await tasks.next()
                tasks.cancelAll()
            } else {
                try await tasks.next()
            }
        }
        try await layer.groupDiscard(group, channel: me)
        await layer.close()
    }
}
