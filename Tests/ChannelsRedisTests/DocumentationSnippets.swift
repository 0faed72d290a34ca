// The Swift code of the DocC articles in Sources/ChannelsRedis/Documentation.docc, compiled by
// `swift build --build-tests` so that an article cannot drift from the API it shows.
//
// Each function below is one snippet. Where an article shows a whole function, that function is
// here as it is; otherwise the article shows the function's body, exactly, and the parameters stand
// for what the article says is already there (`layer`, `logger`). The article's source names the
// function in a comment next to the snippet: change both together.
//
// Most of them need a Redis server, so nothing calls them; the suite at the end runs the two that do
// not. Logging, ServiceLifecycle and UnixSignals are imported here as the test target's other files
// import OrderedCollections: they come with ChannelsRedis.
import ChannelsRedis
import Foundation
import Logging
import ServiceLifecycle
import Testing
import UnixSignals

// What the snippets call but the articles leave to the reader.
private func handle(_ message: ChannelMessage) async throws {}
private func render(_ job: ChannelMessage) async throws {}
private func resynchronise() async {}

// MARK: - GettingStarted.md

/// GettingStarted.md, "Make a layer".
func docsGettingStartedFirstLayer() async throws {
    let layer = try RedisPubSubChannelLayer(hosts: ["redis://127.0.0.1:6379"])

    try await layer.withChannel { me, messages in
        try await layer.groupAdd("chat_lobby", channel: me)
        let receivers = try await layer.groupSend(["type": "chat.message", "message": "hello"], to: "chat_lobby")
        print("delivered to \(receivers) process(es)")  // 1: this one
        for try await message in messages {
            print(message["message"]?.stringValue ?? "")  // "hello"
            break
        }
    }

    await layer.close()
}

/// GettingStarted.md, "Log".
func docsGettingStartedLogger() async throws {
    var logger = Logger(label: "channels-redis")
    logger.logLevel = .info  // outages, drops and forgotten channels; `debug` for every state change
    let layer = try RedisPubSubChannelLayer(hosts: ["redis://10.0.0.5:6379"], prefix: "myapp", logger: logger)
    try await layer.send(["type": "thumbnail.render", "path": "/img/1.png"], to: "thumbnails")
    await layer.close()
}

// MARK: - ConsumersAndChannelLifetime.md

/// ConsumersAndChannelLifetime.md, "Scoped consumers": `withChannel`.
func docsConsumersWithChannel(layer: RedisPubSubChannelLayer) async throws {
    try await layer.withChannel { me, messages in
        try await layer.groupAdd("chat_lobby", channel: me)
        for try await message in messages {
            try await handle(message)
        }
    }  // discarded here: unsubscribed from Redis, out of "chat_lobby"
}

/// ConsumersAndChannelLifetime.md, "Scoped consumers": `withMessages`.
func docsConsumersWithMessages(layer: RedisPubSubChannelLayer) async throws {
    // A worker process:
    try await layer.withMessages(from: "thumbnails") { jobs in
        for try await job in jobs {
            try await render(job)
        }
    }

    // Any process, Swift or Python:
    try await layer.send(["type": "thumbnail.render", "path": "/img/1.png"], to: "thumbnails")
}

/// ConsumersAndChannelLifetime.md, "Explicit lifetime".
func docsConsumersExplicitLifetime(layer: RedisPubSubChannelLayer) async throws {
    let worker = try await layer.newChannel()  // "asgispecific.<32 hex digits>", subscribed
    try await layer.send(["type": "job", "id": 7], to: worker)
    if let job = try await layer.receive(from: worker, timeout: .seconds(5)) {
        try await handle(job)
    } else {
        print("nothing within 5 s; \(worker) is still subscribed")
    }
    try await layer.discard(channel: worker)  // unsubscribed, out of its groups, consumers ended
}

/// ConsumersAndChannelLifetime.md, "A cancelled wait ends only the wait".
func docsConsumersCancelledWait(layer: RedisPubSubChannelLayer) async throws {
    let me = try await layer.newChannel()
    let waiter = Task { try await layer.receive(from: me) }
    waiter.cancel()  // that receive throws CancellationError...
    _ = await waiter.result

    try await layer.send(["type": "ping"], to: me)  // ...but `me` is still subscribed,
    let ping = try await layer.receive(from: me)  // so the next consumer gets the message
    try await handle(ping)
    try await layer.discard(channel: me)
}

/// ConsumersAndChannelLifetime.md, "A cancelled wait ends only the wait": leaving a loop.
func docsConsumersLeavingALoop(layer: RedisPubSubChannelLayer, me: String) async throws {
    for try await message in try await layer.messages(from: me) {
        if message.type == "chat.join" { break }  // ends this loop only
    }
    // `me` is still subscribed and in its groups: what arrived meanwhile is buffered.
    let next = try await layer.receive(from: me)
    try await handle(next)
}

/// ConsumersAndChannelLifetime.md, "How a channel ends".
func docsConsumersChannelEnds(layer: RedisPubSubChannelLayer, me: String) async throws {
    do {
        for try await message in try await layer.messages(from: me) {
            try await handle(message)
        }
    } catch let error as ChannelLayerError where error.code == .channelClosed {
        // Another task discarded `me`, or flushed the layer.
    } catch let error as ChannelLayerError where error.code == .layerClosed {
        // The layer was closed: the process is shutting down.
    }
}

/// ConsumersAndChannelLifetime.md, "Flush and close".
func docsConsumersFlushAndClose(layer: RedisPubSubChannelLayer) async throws {
    try await layer.flush()  // every local channel, group and subscription dropped
    await layer.close()  // connections freed, loop thread joined; later calls throw layerClosed
}

/// ConsumersAndChannelLifetime.md, "Who received a send".
func docsConsumersReceiverCounts(layer: RedisPubSubChannelLayer, channel: String) async throws {
    let receivers = try await layer.send(["type": "test.message", "text": "Ahoy-hoy!"], to: channel)
    if receivers == 0 {
        print("nobody is subscribed to \(channel): the message is gone")
    }
    let processes = try await layer.groupSend(["type": "chat.message", "message": "hi"], to: "chat_lobby")
    print("\(processes) process(es) have members in chat_lobby")
}

/// ConsumersAndChannelLifetime.md, "Finding forgotten channels".
func docsConsumersUnconsumedChannels(layer: RedisPubSubChannelLayer, logger: Logger) {
    let unconsumed = layer.statistics.unconsumedChannels
    if unconsumed > 0 {
        logger.warning("\(unconsumed) channel(s) hold messages nobody takes: a missing discard(channel:)?")
    }
}

// MARK: - DjangoInterop.md

/// DjangoInterop.md, "The same settings".
func makeDjangoCompatibleLayer(logger: Logger) throws -> RedisPubSubChannelLayer {
    var config = RedisPubSubChannelLayer.Configuration(hosts: ["redis://127.0.0.1:6379"])
    config.prefix = "asgi"  // "prefix" (the default on both sides)
    config.serializer = .msgpack  // "serializer_format": "msgpack" (the default); .json for "json"
    config.symmetricEncryptionKeys = ["key-one", "key-two"]  // "symmetric_encryption_keys"
    return try RedisPubSubChannelLayer(configuration: config, logger: logger)
}

/// DjangoInterop.md, "Talking to Django consumers".
func docsDjangoGroupSend(layer: RedisPubSubChannelLayer) async throws {
    // What the tutorial's ChatConsumer.chat_message(self, event) handles:
    try await layer.groupSend(["type": "chat.message", "message": "Hello from Swift"], to: "chat_lobby")
}

/// DjangoInterop.md, "Codable messages and dates".
func docsDjangoCodable(layer: RedisPubSubChannelLayer) async throws {
    struct ChatMessage: Codable {
        var type = "chat.message"
        var message: String
        var sent: Date
    }

    let hello = ChatMessage(message: "Hello from Swift", sent: .now)
    try await layer.groupSend(ChannelMessage(encoding: hello), to: "chat_lobby")
    // Django's consumer gets {'type': 'chat.message', 'message': 'Hello from Swift',
    //                         'sent': '2026-12-01T19:33:57.123Z'}

    try await layer.withChannel { me, messages in
        try await layer.groupAdd("chat_lobby", channel: me)
        for try await event in messages where event.type == "chat.message" {
            let chat = try event.decode(as: ChatMessage.self)
            print(chat.sent, chat.message)
        }
    }
}

// MARK: - FailureContract.md

/// FailureContract.md, "It tells you": connection events.
func docsFailureConnectionEvents(layer: RedisPubSubChannelLayer, logger: Logger) {
    Task {
        for await event in layer.connectionEvents() {
            switch event {
            case .disconnected(let shard, let error):
                logger.warning("Redis shard \(shard) is down; messages to it are lost until it is back: \(error)")
            case .reconnected(let shard):
                logger.info("Redis shard \(shard) is back and resubscribed")
                await resynchronise()
            }
        }
    }
}

/// FailureContract.md, "It tells you": in-band messages.
func docsFailureInBandEvents() async throws {
    var config = RedisPubSubChannelLayer.Configuration(hosts: ["redis://127.0.0.1:6379"])
    config.onDisconnect = "redis.disconnect"
    config.onReconnect = "redis.reconnect"
    let layer = try RedisPubSubChannelLayer(configuration: config)

    try await layer.withChannel { me, messages in
        for try await message in messages {
            switch message.type {
            case "redis.disconnect": print("messages to \(me) may be lost from now on")
            case "redis.reconnect": await resynchronise()
            default: try await handle(message)
            }
        }
    }
}

/// FailureContract.md, "Health".
func isReady(layer: RedisPubSubChannelLayer, logger: Logger) -> Bool {
    for (shard, status) in layer.shardStatuses.enumerated() where status != .ready {
        // Not `configuration.hosts[shard]`: a redis-cluster:// host has one shard per primary (and hosts carry passwords).
        logger.info("Redis shard \(shard) is \(status)")
    }
    return layer.isHealthy  // false while any shard is connecting or reconnecting
}

/// FailureContract.md, "Nothing hangs".
func docsFailureSendErrors(layer: RedisPubSubChannelLayer, logger: Logger) async {
    do {
        try await layer.send(["type": "order.created", "id": 42], to: "orders")
    } catch let error as ChannelLayerError where error.code == .timeout {
        logger.error("Redis did not confirm within sendTimeout: \(error)")
    } catch let error as ChannelLayerError where error.code == .connectionLost {
        logger.error("the connection broke before Redis answered; the message may have gone out: \(error)")
    } catch {
        logger.error("not sent: \(error)")  // invalidName, messageTooLarge, layerClosed, ...
    }
}

// MARK: - Configuration.md

/// Configuration.md, "Every setting".
func makeConfiguredLayer(logger: Logger) throws -> RedisPubSubChannelLayer {
    var config = RedisPubSubChannelLayer.Configuration(
        hosts: ["redis://:secret@10.0.0.5:6379/0", "redis://10.0.0.6:6379"]
    )
    config.prefix = "myapp"
    config.capacity = 1_000
    config.serializer = .json
    config.symmetricEncryptionKeys = ["new-key", "old-key"]
    config.maximumMessageSize = 1024 * 1024
    config.connectTimeout = .seconds(2)
    config.sendTimeout = .seconds(2)
    config.retry = .init(initialBackoff: .milliseconds(100), maximumBackoff: .seconds(10))
    config.livenessInterval = .seconds(10)
    config.livenessTimeout = .seconds(5)
    config.onDisconnect = "redis.disconnect"
    config.onReconnect = "redis.reconnect"
    config.busyPoll = .microseconds(50)
    config.unconsumedChannelThreshold = .seconds(300)
    return try RedisPubSubChannelLayer(configuration: config, logger: logger)
}

// MARK: - RunningInAServiceGroup.md

/// RunningInAServiceGroup.md, "Without a web framework". `app` stands for the HTTP server; the
/// article's Hummingbird version is not compiled here (Hummingbird is too heavy a dependency for the
/// library's tests), only this ServiceGroup form of it.
func docsServiceGroup(app: some Service, logger: Logger) async throws {
    let layer = try RedisPubSubChannelLayer(hosts: ["redis://127.0.0.1:6379"], logger: logger)
    let group = ServiceGroup(
        configuration: .init(
            services: [layer, app],  // shut down in reverse: the server first, then the layer
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
    )
    try await group.run()
}

// MARK: - What can run without Redis

@Suite
struct DocumentationSnippetTests {
    /// The defaults Configuration.md's table lists.
    @Test
    func configurationDefaultsAreTheDocumentedOnes() {
        let config = RedisPubSubChannelLayer.Configuration()
        #expect(config.hosts == ["redis://127.0.0.1:6379"])
        #expect(config.prefix == "asgi")
        #expect(config.capacity == 10_000)
        #expect(config.symmetricEncryptionKeys.isEmpty)
        #expect(config.maximumMessageSize == 16 * 1024 * 1024)
        #expect(config.connectTimeout == .seconds(5))
        #expect(config.sendTimeout == .seconds(5))
        #expect(config.retry.initialBackoff == .milliseconds(50))
        #expect(config.retry.maximumBackoff == .seconds(5))
        #expect(config.retry.multiplier == 2)
        #expect(config.retry.jitter == 0.2)
        #expect(config.livenessInterval == .seconds(5))
        #expect(config.livenessTimeout == .seconds(3))
        #expect(config.onDisconnect == nil)
        #expect(config.onReconnect == nil)
        #expect(config.busyPoll == .zero)
        #expect(config.replyPoll == .microseconds(50))
        #expect(config.unconsumedChannelThreshold == .seconds(60))
    }

    /// Making a layer connects to nothing, so the articles' configurations can be checked here.
    @Test
    func documentedConfigurationsAreValid() async throws {
        let logger = Logger(label: "documentation-snippets", factory: { _ in SwiftLogNoOpLogHandler() })
        for layer in [try makeConfiguredLayer(logger: logger), try makeDjangoCompatibleLayer(logger: logger)] {
            #expect(layer.isHealthy)  // idle: nothing has needed a connection yet
            await layer.close()
        }
    }
}
