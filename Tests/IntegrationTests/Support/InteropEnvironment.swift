import ChannelsRedis
import ChannelsRedisTestSupport
import Testing

/// Both sides of one test: its own Redis server(s), a Swift layer and a Python peer, configured alike.
struct InteropEnvironment {
    let servers: [RedisServer]
    let layer: RedisPubSubChannelLayer
    let peer: InteropPeer
    let configuration: RedisPubSubChannelLayer.Configuration

    var hosts: [String] { servers.map(\.url) }

    func groupChannel(_ group: String) -> String { "\(configuration.prefix)__group__\(group)" }

    /// Another Swift layer on the same hosts, with other keys.
    func makeSwiftLayer(keys: [String]) throws -> RedisPubSubChannelLayer {
        var configuration = self.configuration
        configuration.symmetricEncryptionKeys = keys
        return try RedisPubSubChannelLayer(configuration: configuration)
    }

    /// Subscribers of `channel` summed over every server.
    func subscribers(_ channel: String) async throws -> Int {
        var total = 0
        for server in servers { total += try await subscriberCount(server, channel) }
        return total
    }

    /// Waits until Redis counts `count` subscribers of `channel` (redis-py sends SUBSCRIBE without waiting for the reply,
    /// so a Python subscription is certain only once Redis shows it).
    func awaitSubscribers(_ channel: String, _ count: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await eventually(timeout: .seconds(15), "\(count) subscriber(s) of \(channel)", sourceLocation: sourceLocation) {
            try await subscribers(channel) == count
        }
    }

    /// Checks that `channel` has `count` subscribers on server `shard` and none on the others.
    func expectOnlyOn(_ shard: Int, _ channel: String, subscribers count: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        for (index, server) in servers.enumerated() {
            let found = try await subscriberCount(server, channel)
            #expect(
                found == (index == shard ? count : 0),
                "\(channel) on host \(index) (hash says \(shard)): \(found) subscriber(s)",
                sourceLocation: sourceLocation
            )
        }
    }

    /// `PUBSUB CHANNELS *` of every server.
    func redisChannels() async throws -> [String] {
        var channels: [String] = []
        for server in servers {
            channels += try await server.command(["PUBSUB", "CHANNELS", "*"]).array?.compactMap(\.string) ?? []
        }
        return channels.sorted()
    }
}

func withInterop(prefix: String, _ body: (InteropEnvironment) async throws -> Void) async throws {
    var setup = InteropSetup.msgpack
    setup.prefix = prefix
    try await withInterop(setup, body)
}

/// Starts the servers, the Swift layer and the Python peer of `setup`, runs `body`, and closes and stops them all.
func withInterop(_ setup: InteropSetup = .msgpack, _ body: (InteropEnvironment) async throws -> Void) async throws {
    var servers: [RedisServer] = []
    defer {
        for server in servers { server.stop() }
    }
    for _ in 0..<setup.servers { servers.append(try await RedisServer.start()) }
    let hosts = servers.map(\.url)
    var configuration = RedisPubSubChannelLayer.Configuration(hosts: hosts, prefix: setup.prefix)
    if setup.json { configuration.serializer = .json }
    configuration.symmetricEncryptionKeys = setup.swiftKeys
    let layer = try RedisPubSubChannelLayer(configuration: configuration)
    let peer: InteropPeer
    do {
        peer = try await InteropPeer.start(hosts: hosts, prefix: setup.prefix, serializer: setup.json ? "json" : "msgpack", keys: setup.pythonKeys)
    } catch {
        await layer.close()
        throw error
    }
    let environment = InteropEnvironment(servers: servers, layer: layer, peer: peer, configuration: configuration)
    try await closing(peer, and: layer) { try await body(environment) }
}

/// A failure of the interop fixtures: the peer misbehaved, or Swift received nothing.
struct InteropFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Sends each message Swift → Python and Python → Swift, one at a time, and expects it back exactly.
func expectBothWaysExactly(_ messages: [ChannelMessage], _ env: InteropEnvironment) async throws {
    let pythonChannel = try await env.peer.newChannel()
    try await env.awaitSubscribers(pythonChannel, 1)
    let swiftChannel = try await env.layer.newChannel()
    for message in messages {
        try await env.layer.send(message, to: pythonChannel)
        expectExact(
            try await env.peer.receive(from: pythonChannel, timeout: .seconds(30)).message,
            message,
            "Swift → Python, \(abbreviated(message))"
        )
        try await env.peer.send(message, to: swiftChannel)
        expectExact(
            try await swiftReceive(env.layer, from: swiftChannel, within: .seconds(30)),
            message,
            "Python → Swift, \(abbreviated(message))"
        )
    }
}

/// `layer.receive(from:timeout:)`; throws when nothing came within `timeout`.
func swiftReceive(
    _ layer: RedisPubSubChannelLayer,
    from channel: String,
    within timeout: Duration = .seconds(15)
) async throws -> ChannelMessage {
    guard let message = try await receive(layer, from: channel, within: timeout) else {
        throw InteropFailure("Swift received nothing on \(channel) within \(timeout) (undecodable so far: \(layer.statistics.undecodableMessages))")
    }
    return message
}
