import ChannelsRedis
import ChannelsRedisTestSupport

/// A layer on a server of the test's own, closed and stopped afterwards.
func withLayer<Result>(
    configure: (inout RedisPubSubChannelLayer.Configuration) -> Void = { _ in },
    serverArguments: [String] = [],
    _ body: (RedisPubSubChannelLayer, RedisServer) async throws -> Result
) async throws -> Result {
    let server = try await RedisServer.start(arguments: serverArguments)
    defer { server.stop() }
    var configuration = RedisPubSubChannelLayer.Configuration(hosts: [server.url])
    configure(&configuration)
    let layer = try RedisPubSubChannelLayer(configuration: configuration)
    return try await closing(layer) { try await body($0, server) }
}

/// Runs `body` with `layer`, then closes the layer, whether `body` returned or threw.
func closing<Layer: ChannelLayer, Result>(_ layer: Layer, _ body: (Layer) async throws -> Result) async throws -> Result {
    do {
        let result = try await body(layer)
        await layer.close()
        return result
    } catch {
        await layer.close()
        throw error
    }
}

/// Receives with a deadline; `nil` if nothing came in time (the channel stays as it was).
func receive(_ layer: RedisPubSubChannelLayer, from channel: String, within timeout: Duration) async throws -> ChannelMessage? {
    try await layer.receive(from: channel, timeout: timeout)
}

/// The ordinary Swift timeout pattern a user writes: a task group racing `receive` against
/// `Task.sleep`; `nil` if the sleep won (the receive is cancelled then).
func receiveRacingSleep(_ layer: RedisPubSubChannelLayer, from channel: String, within timeout: Duration) async throws -> ChannelMessage? {
    try await withThrowingTaskGroup(of: ChannelMessage?.self) { group in
        group.addTask { try await layer.receive(from: channel) }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// The number of subscribers `server` counts for `channel` (`PUBSUB NUMSUB`).
///
/// - Throws: ``FixtureError`` `.protocolViolation` when the reply has no count.
func subscriberCount(_ server: RedisServer, _ channel: String) async throws -> Int {
    let reply = try await server.command(["PUBSUB", "NUMSUB", channel])
    guard let count = reply.array?.last?.integer else {
        throw FixtureError(.protocolViolation, "PUBSUB NUMSUB \(channel) answered \(reply)")
    }
    return count
}
