/// What happened to the layer's connection to one Redis host.
///
/// `shard` is the shard's index in ``RedisPubSubChannelLayer/shardStatuses``: the position of its host in `hosts`,
/// or, with a `redis-cluster://` host, of its primary in the order the slot maps named them. Indices are never
/// reused or shifted: a primary that leaves the cluster keeps its entry, as ``ShardStatus/retired``, and a node that
/// becomes a primary gets a new index.
///
/// Pub/sub is at-most-once: messages published while a shard's subscriber is disconnected are lost.
/// These events tell a consumer when to resynchronise.
///
/// ```swift
/// for await event in layer.connectionEvents() {
///     if case .disconnected(let shard, let error) = event { print("shard \(shard) down: \(error)") }
/// }
/// ```
public enum ConnectionEvent: Sendable {
    /// The shard at this index of `shardStatuses` lost a connection; messages may be lost until it is back.
    case disconnected(shard: Int, error: ChannelLayerError)
    /// The shard reconnected and every wanted channel and group is subscribed again.
    case reconnected(shard: Int)
}

/// Fans connection events out to every listener.
final class ConnectionEventBroadcaster: Sendable {
    private struct Listeners: Sendable {
        var next: UInt64 = 0
        var finished = false
        var all: [UInt64: AsyncStream<ConnectionEvent>.Continuation] = [:]
    }
    private let listeners = LockedValue(Listeners())

    func stream() -> AsyncStream<ConnectionEvent> {
        let (stream, continuation) = AsyncStream<ConnectionEvent>.makeStream(bufferingPolicy: .bufferingNewest(1_000))
        let id = listeners.withLock { state -> UInt64? in
            guard !state.finished else { return nil }
            state.next += 1
            state.all[state.next] = continuation
            return state.next
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.listeners.withLock { $0.all.removeValue(forKey: id) }
        }
        return stream
    }

    func emit(_ event: ConnectionEvent) {
        let all = listeners.withLock { Array($0.all.values) }
        for continuation in all { continuation.yield(event) }
    }

    func finish() {
        let all = listeners.withLock { state -> [AsyncStream<ConnectionEvent>.Continuation] in
            state.finished = true
            defer { state.all = [:] }
            return Array(state.all.values)
        }
        for continuation in all { continuation.finish() }
    }
}
