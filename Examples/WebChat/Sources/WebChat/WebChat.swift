// The Django Channels tutorial's chat, served by Hummingbird on ChannelsRedis.
//
//   swift run --package-path Examples/WebChat webchat --port 8080 --redis redis://127.0.0.1:6379
//
// then open http://127.0.0.1:8080/chat/lobby/ in two tabs (or against two servers sharing one Redis).
// The URLs are the tutorial's: the page at /chat/<room>/, its WebSocket at /ws/chat/<room>/, and a
// lobby form at /. Every tab is a consumer in group `chat_<room>`, so the tutorial's Django
// consumers and the terminal chat (`swift run chat --room <room>`) share the room.
import ArgumentParser
import ChannelsRedis
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

@main
struct WebChat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webchat",
        abstract: "A browser chat on ChannelsRedis, wire-compatible with the Django Channels tutorial's chat."
    )

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on (0: any free port; the URL printed says which).")
    var port = 8080

    @Option(help: "The Redis URL, as channels_redis's hosts: redis://[[user]:password@]host[:port][/db].")
    var redis = "redis://127.0.0.1:6379"

    @Option(help: "The channel layer's prefix (channels_redis's `prefix`); Django peers must use the same.")
    var prefix = "asgi"

    @Option(help: "Seconds a send may wait for Redis (while it is down, say) before the tab is told it failed.")
    var sendTimeout: Double = 5

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown log level '\(logLevel)'") }
        guard sendTimeout > 0 else { throw ValidationError("--send-timeout must be positive") }
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be 0...65535") }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "webchat")

        var configuration = RedisPubSubChannelLayer.Configuration(hosts: [redis], prefix: prefix)
        configuration.sendTimeout = .milliseconds(Int64(sendTimeout * 1_000))
        configuration.onDisconnect = ChatConsumer.disconnectedType
        configuration.onReconnect = ChatConsumer.reconnectedType
        let layer = try RedisPubSubChannelLayer(configuration: configuration, logger: Logger(label: "channels-redis"))

        let host = self.host
        let app = Application(
            router: Self.pageRouter(),
            server: .http1WebSocketUpgrade(
                webSocketRouter: Self.webSocketRouter(layer: layer, logger: logger),
                // On shutdown a tab that does not answer the close frame holds the server up to closeTimeout.
                configuration: .init(ws: .init(maxFrameSize: ChatConsumer.maximumMessageSize, closeTimeout: .seconds(3)))
            ),
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "webchat"),
            // The layer is a Service: the app's ServiceGroup shuts it down after the HTTP server on
            // SIGTERM or SIGINT, so the tabs' "left" messages still go out.
            services: [layer],
            onServerRunning: { channel in
                // One line on standard output, for scripts waiting for the server (written straight to
                // the file descriptor: print's buffer would hold it while stdout is a pipe).
                var line = "webchat: listening on http://\(host):\(channel.localAddress?.port ?? 0)/chat/lobby/\n"
                line.withUTF8 { bytes in _ = write(1, bytes.baseAddress, bytes.count) }
            },
            logger: logger
        )
        try await app.runService()
    }

    /// `GET /` and `/chat/`: the lobby; `GET /chat/<room>/`: the room page; a plain (not upgraded)
    /// request to a room's WebSocket URL gets 400.
    static func pageRouter() -> Router<BasicWebSocketRequestContext> {
        let router = Router(context: BasicWebSocketRequestContext.self)
        router.get("/") { _, _ in ChatPage.lobby }
        router.get("/chat") { _, _ in ChatPage.lobby }
        router.get("/chat/:room") { _, context in
            guard let room = RoomName(context.parameters.get("room")) else { throw invalidRoom }
            return ChatPage.room(room)
        }
        router.get("/ws/chat/:room") { _, context -> Response in
            guard RoomName(context.parameters.get("room")) != nil else { throw invalidRoom }
            throw HTTPError(.badRequest, message: "this URL takes a WebSocket upgrade")
        }
        return router
    }

    /// `/ws/chat/<room>/`: one ``ChatConsumer`` per socket. An invalid room is not upgraded, so the
    /// page router answers it with 400.
    static func webSocketRouter(layer: RedisPubSubChannelLayer, logger: Logger) -> Router<BasicWebSocketRequestContext> {
        let router = Router(context: BasicWebSocketRequestContext.self)
        router.ws("/ws/chat/:room") { _, context in
            RoomName(context.parameters.get("room")) == nil ? .dontUpgrade : .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            guard let room = RoomName(context.requestContext.parameters.get("room")) else { return }
            let name = context.request.uri.queryParameters.get("name").flatMap { displayName(String($0)) }
            let consumer = ChatConsumer(layer: layer, room: room, requestedName: name, logger: logger)
            await consumer.run(inbound: inbound, outbound: outbound)
        }
        return router
    }

    static let invalidRoom = HTTPError(
        .badRequest,
        message: "invalid room name: use letters, digits, '-', '_' and '.', at most 94 characters"
    )

    /// A `?name=` cleaned up for display: no control characters or surrounding spaces, at most 32
    /// characters; `nil` when nothing is left.
    static func displayName(_ raw: String) -> String? {
        var name = Substring(String(String.UnicodeScalarView(raw.unicodeScalars.filter { $0.properties.generalCategory != .control })))
        while name.first == " " { name.removeFirst() }
        while name.last == " " { name.removeLast() }
        return name.isEmpty ? nil : String(name.prefix(32))
    }
}
