import ChannelsRedis
import ChannelsRedisTestSupport
import Foundation

/// Runs `body`, then closes `peer` and `layer`, whether `body` returned or threw.
func closing<Result>(_ peer: InteropPeer, and layer: RedisPubSubChannelLayer, _ body: () async throws -> Result) async throws -> Result {
    do {
        let result = try await body()
        await peer.close()
        await layer.close()
        return result
    } catch {
        await peer.close()
        await layer.close()
        throw error
    }
}

/// `Tests/Python/peer.py`: a Python channels_redis layer driven one JSON command per line.
final class InteropPeer: Sendable {
    let process: PythonProcess
    private let nextID = Mutex(0)

    private init(process: PythonProcess) {
        self.process = process
    }

    /// Starts the peer with a layer like `RedisPubSubChannelLayer(hosts=hosts, prefix=prefix,
    /// serializer_format=serializer, symmetric_encryption_keys=keys or None)` and waits for its `ready`.
    static func start(hosts: [String], prefix: String, serializer: String, keys: [String]) async throws -> InteropPeer {
        var arguments: [String] = []
        for host in hosts { arguments += ["--host", host] }
        arguments += ["--prefix", prefix, "--serializer", serializer]
        for key in keys { arguments += ["--key", key] }
        let process = try PythonPeer.start(script: "peer.py", arguments: arguments)
        let first = try await process.readLine(timeout: .seconds(60))
        guard first == "ready" else {
            process.terminate()
            throw InteropFailure("peer.py said \(first) instead of ready; its stderr:\n\(process.standardError)")
        }
        return InteropPeer(process: process)
    }

    struct Reply: CustomStringConvertible {
        var ok: Bool
        var kind: String?
        var error: String?
        var result: PeerJSON

        var description: String { ok ? "ok" : "\(kind ?? "?"): \(error ?? "?")" }
    }

    /// Sends one command and returns its reply, successful or not.
    func call(_ command: String, _ fields: [String: PeerJSON] = [:], timeout: Duration = .seconds(60)) async throws -> Reply {
        let id = nextID.withLock { id in
            id += 1
            return String(id)
        }
        var object = fields
        object["id"] = .string(id)
        object["cmd"] = .string(command)
        try process.writeLine(PeerJSON.object(object).serialized())
        let line = try await process.readLine(timeout: timeout)
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(line.utf8)), let reply = try? PeerJSON(any: parsed),
            case .object(let envelope) = reply
        else {
            throw InteropFailure(
                "peer.py answered \(command) with a line that is not a reply: \(line.prefix(300)); its stderr:\n\(process.standardError)"
            )
        }
        guard case .string(let replyID)? = envelope["id"], replyID == id else {
            throw InteropFailure("peer.py answered \(command) #\(id) with id \(String(describing: envelope["id"]))")
        }
        var error: String?
        if case .string(let text)? = envelope["error"] { error = text }
        var kind: String?
        if case .string(let text)? = envelope["kind"] { kind = text }
        guard case .bool(let ok)? = envelope["ok"] else { throw InteropFailure("peer.py reply without ok: \(line.prefix(300))") }
        return Reply(ok: ok, kind: kind, error: error, result: envelope["result"] ?? .null)
    }

    /// Sends one command; throws when the peer reports a failure.
    @discardableResult
    func ok(_ command: String, _ fields: [String: PeerJSON] = [:], timeout: Duration = .seconds(60)) async throws -> PeerJSON {
        let reply = try await call(command, fields, timeout: timeout)
        guard reply.ok else {
            throw InteropFailure("python \(command) failed: \(reply); peer stderr:\n\(process.standardError.suffix(3000))")
        }
        return reply.result
    }

    func newChannel(prefix: String = "specific.") async throws -> String {
        guard case .string(let name) = try await ok("new_channel", ["prefix": .string(prefix)]) else {
            throw InteropFailure("new_channel returned no name")
        }
        return name
    }

    func send(_ message: ChannelMessage, to channel: String) async throws {
        try await ok("send", ["channel": .string(channel), "message": PeerJSON(message)])
    }

    func send(literal: String, to channel: String) async throws {
        try await ok("send", ["channel": .string(channel), "literal": .string(literal)])
    }

    func groupSend(_ message: ChannelMessage, to group: String) async throws {
        try await ok("group_send", ["group": .string(group), "message": PeerJSON(message)])
    }

    func groupSend(literal: String, to group: String) async throws {
        try await ok("group_send", ["group": .string(group), "literal": .string(literal)])
    }

    func groupAdd(_ group: String, channel: String) async throws {
        try await ok("group_add", ["group": .string(group), "channel": .string(channel)])
    }

    func groupDiscard(_ group: String, channel: String) async throws {
        try await ok("group_discard", ["group": .string(group), "channel": .string(channel)])
    }

    /// Starts a background `receive` of `channel` (which subscribes a general channel); ``receive(from:timeout:)`` collects it.
    func listen(_ channel: String) async throws {
        try await ok("listen", ["channel": .string(channel)])
    }

    struct Received: Sendable {
        var message: ChannelMessage
        /// Python's `repr` of the received message.
        var repr: String
    }

    func receiveOutcome(from channel: String, timeout: Duration = .seconds(15)) async throws -> Result<Received, InteropFailure> {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let reply = try await call("receive", ["channel": .string(channel), "timeout": .string(String(seconds))], timeout: timeout + .seconds(30))
        guard reply.ok else {
            return .failure(InteropFailure("python receive(\(channel)): \(reply)"))
        }
        guard case .object(let object) = reply.result, let message = object["message"], case .string(let repr)? = object["repr"] else {
            throw InteropFailure("python receive returned \(reply.result)")
        }
        return .success(Received(message: try message.message(), repr: repr))
    }

    func receive(from channel: String, timeout: Duration = .seconds(15)) async throws -> Received {
        switch try await receiveOutcome(from: channel, timeout: timeout) {
        case .success(let received): return received
        case .failure(let failure): throw InteropFailure("\(failure); peer stderr:\n\(process.standardError.suffix(3000))")
        }
    }

    /// The bytes Python's layer would publish for `message` (`layer.serialize`).
    func serialize(_ message: ChannelMessage) async throws -> [UInt8] {
        try await bytes(ok("serialize", ["message": PeerJSON(message)]))
    }

    func serialize(literal: String) async throws -> [UInt8] {
        try await bytes(ok("serialize", ["literal": .string(literal)]))
    }

    private func bytes(_ result: PeerJSON) throws -> [UInt8] {
        guard case .binary(let bytes) = try result.message() else { throw InteropFailure("not bytes: \(result)") }
        return bytes
    }

    /// `channels_redis.utils._consistent_hash(name, ring_size)`.
    func consistentHash(_ name: String, ringSize: Int) async throws -> Int {
        guard let index = try await ok("consistent_hash", ["name": .string(name), "ring_size": .string(String(ringSize))]).message().intValue else {
            throw InteropFailure("consistent_hash returned no int")
        }
        return index
    }

    /// A plain redis-py subscriber of `channel` on `host`, outside the layer, confirmed by Redis.
    func rawSubscribe(host: String, channel: String) async throws {
        try await ok("raw_subscribe", ["host": .string(host), "channel": .string(channel)])
    }

    /// The next payload the plain subscriber on `host` saw, exactly as published.
    func rawReceive(host: String, timeout: Duration = .seconds(15)) async throws -> (channel: String, data: [UInt8]) {
        let seconds = Double(timeout.components.seconds)
        let result = try await ok("raw_receive", ["host": .string(host), "timeout": .string(String(seconds))], timeout: timeout + .seconds(30))
        guard case .object(let object) = result, case .string(let channel)? = object["channel"], let data = object["data"] else {
            throw InteropFailure("raw_receive returned \(result)")
        }
        return (channel, try bytes(data))
    }

    /// Flushes the layer, ends the peer and reaps it.
    func close() async {
        _ = try? await call("close", timeout: .seconds(15))
        _ = try? await process.waitForExit(timeout: .seconds(10))
        process.terminate()
    }
}
