#if canImport(Glibc)
    import Glibc
#endif

extension RedisPubSubChannelLayer {
    /// How a ``RedisPubSubChannelLayer`` connects, names, encodes and buffers.
    ///
    /// The names follow Python's `RedisPubSubChannelLayer(hosts=..., prefix=..., ...)`.
    ///
    /// ```swift
    /// var config = RedisPubSubChannelLayer.Configuration(hosts: ["redis://127.0.0.1:6379"])
    /// config.serializer = .json
    /// config.symmetricEncryptionKeys = ["key-one", "key-two"]
    /// let layer = try RedisPubSubChannelLayer(configuration: config)
    /// ```
    public struct Configuration: Sendable {
        /// Redis hosts as URLs: `redis://[[user]:password@]host[:port][/db]`, the same with `rediss://`
        /// for TLS (with redis-py's `ssl_` query parameters, see ``RedisEndpoint/TLS``),
        /// `unix:///path/to/socket`, or the master of a Sentinel set,
        /// `redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/master_name` (see
        /// ``RedisEndpoint/Sentinel``).
        /// To build one from separate settings (a password with any characters in it), use
        /// ``RedisEndpoint``'s ``RedisEndpoint/url``.
        ///
        /// Several hosts shard channels and groups with channels_redis's consistent hash, so a Python
        /// process configured with the same hosts in the same order picks the same host for every name.
        ///
        /// One `redis-cluster://[[user]:password@]host:port[,host:port…]` host (see ``RedisClusterEndpoint``)
        /// uses a Redis Cluster with sharded pub/sub instead (Python has no such mode).
        public var hosts: [String]
        /// Prefix of every channel and group name on Redis (`"asgi"`, as in Python).
        public var prefix: String
        /// How many received messages one local channel buffers for its consumers.
        ///
        /// When a consumer falls further behind, the **oldest** buffered message is dropped, counted in
        /// ``RedisPubSubChannelLayer/Statistics/droppedMessages`` and logged as a warning: a stuck
        /// consumer cannot grow memory without bound. The default, 10,000, holds a burst of 10,000
        /// messages even if the consumer reads none of it meanwhile.
        public var capacity: Int
        /// How messages become bytes: `.msgpack` (default, as Python), `.json`, or `.custom(...)`.
        public var serializer: MessageSerializer
        /// Fernet keys, as Python's `symmetric_encryption_keys`: the first encrypts, any decrypts.
        /// Empty means no encryption.
        public var symmetricEncryptionKeys: [String]
        /// The largest serialized (and encrypted) message `send` accepts; larger ones throw
        /// `messageTooLarge`. Redis itself allows 512 MB per bulk string.
        public var maximumMessageSize: Int
        /// How long establishing a connection (TCP, AUTH and the first reply) may take.
        public var connectTimeout: Duration
        /// How long `send`/`groupSend` may wait for Redis to confirm a PUBLISH, including the time
        /// spent waiting for a reconnect; also how long `newChannel`, `groupAdd` and on-demand
        /// subscriptions wait for Redis to confirm a SUBSCRIBE.
        public var sendTimeout: Duration
        /// Backoff between reconnect attempts. The layer retries forever while it is open.
        public var retry: RetryParameters
        /// How often each shard checks that its subscriber still receives (a probe published to an
        /// internal channel). `.zero` turns the check off.
        public var livenessInterval: Duration
        /// How long a liveness probe may take to come back before the connection is replaced.
        public var livenessTimeout: Duration
        /// When set, a `{"type": <this>}` message is put into every local channel when a shard
        /// disconnects (channels_redis 3.x `on_disconnect`), e.g. `"redis.disconnect"`.
        public var onDisconnect: String?
        /// When set, a `{"type": <this>}` message is put into every local channel when a shard has
        /// reconnected and resubscribed (channels_redis 3.x `on_reconnect`).
        public var onReconnect: String?
        /// How long the layer's loop thread keeps polling for I/O and work after it last found
        /// some, before it sleeps in `epoll_wait`; at most one second. `.zero` (the default) sleeps
        /// at once, as other Redis clients do.
        ///
        /// ``RedisPubSubChannelLayer/Configuration/replyPoll`` (on by default) already polls
        /// after every PUBLISH and its reply, which is what awaited sends and ping-pong need.
        /// `busyPoll` polls after *any* work, incoming messages included: what it still buys is for
        /// a process that mostly receives (messages published by other processes reach a loop that
        /// is still polling, so a consumer on ``RedisPubSubChannelLayer/taskExecutor`` is resumed
        /// without the loop's wake-up), and for polls longer than `replyPoll`'s after a publish.
        /// Under steady traffic the loop thread then uses up to a core. Between empty polls it
        /// yields its core to any other runnable thread. What `.microseconds(50)` bought on the
        /// benchmark machine: <doc:Performance>.
        public var busyPoll: Duration
        /// How long the layer's loop thread keeps polling for I/O and work, instead of sleeping in
        /// `epoll_wait`, after it wrote a PUBLISH or read a PUBLISH's reply; at most one second.
        /// `.zero` turns it off. The default, 50 µs, is about two Redis round trips on loopback on
        /// the benchmark machine (longer polls measured worse there: the polling thread then holds
        /// a core the resumed sender and Redis need).
        ///
        /// Waking a sleeping thread costs 10-30 µs on a virtual machine, and every awaited `send`
        /// would otherwise wake the loop thread for its reply: polling while a reply is due spares
        /// that wake-up (awaited sends, ping-pong, latency; figures in <doc:Performance>). It costs
        /// CPU only while the layer publishes, at most this long per PUBLISH or reply (the loop
        /// yields its core to other runnable threads between polls); a layer that publishes nothing
        /// (only receives, or is idle: liveness probes do not count) never polls. Turn it off where
        /// CPU counts more than round trips: a steady stream of sends spaced wider than the poll
        /// costs up to this much loop-thread CPU per send. On a busy machine with few cores it can
        /// lengthen the latency tail of a consumer on the global executor (the polling thread holds
        /// a core that consumer's thread needs; on a quiet one it did not, see <doc:Performance>):
        /// run such a consumer on ``RedisPubSubChannelLayer/taskExecutor``, or turn this off.
        public var replyPoll: Duration
        /// How long a local channel may hold messages with no consumer taking any before it counts
        /// as unconsumed: ``RedisPubSubChannelLayer/Statistics/unconsumedChannels`` (and the
        /// `channels_redis_unconsumed_channels` gauge) counts such channels, and an `info` log names
        /// the oldest, at most once a minute. A channel lives until it is discarded, so this is how
        /// a forgotten ``RedisPubSubChannelLayer/discard(channel:)`` shows up in production.
        public var unconsumedChannelThreshold: Duration
        /// Redis Cluster (`redis-cluster://` hosts) only: how often the slot map is fetched while
        /// every primary is healthy. Redirects and lost connections fetch it sooner (at most every
        /// 100 ms), and so does an unhealthy primary (every 500 ms), so this bounds only how late a
        /// layer that sends nothing to a moved slot learns of the move. At least 100 milliseconds.
        public var clusterSlotMapRefreshInterval: Duration

        /// Creates a configuration; every parameter has a default.
        public init(
            hosts: [String] = ["redis://127.0.0.1:6379"],
            prefix: String = "asgi",
            capacity: Int = 10_000,
            serializer: MessageSerializer = .msgpack,
            symmetricEncryptionKeys: [String] = [],
            maximumMessageSize: Int = 16 * 1024 * 1024,
            connectTimeout: Duration = .seconds(5),
            sendTimeout: Duration = .seconds(5),
            retry: RetryParameters = RetryParameters(),
            livenessInterval: Duration = .seconds(5),
            livenessTimeout: Duration = .seconds(3),
            onDisconnect: String? = nil,
            onReconnect: String? = nil,
            busyPoll: Duration = .zero,
            unconsumedChannelThreshold: Duration = .seconds(60),
            replyPoll: Duration = .microseconds(50),
            clusterSlotMapRefreshInterval: Duration = .seconds(10)
        ) {
            self.hosts = hosts
            self.prefix = prefix
            self.capacity = capacity
            self.serializer = serializer
            self.symmetricEncryptionKeys = symmetricEncryptionKeys
            self.maximumMessageSize = maximumMessageSize
            self.connectTimeout = connectTimeout
            self.sendTimeout = sendTimeout
            self.retry = retry
            self.livenessInterval = livenessInterval
            self.livenessTimeout = livenessTimeout
            self.onDisconnect = onDisconnect
            self.onReconnect = onReconnect
            self.busyPoll = busyPoll
            self.replyPoll = replyPoll
            self.unconsumedChannelThreshold = unconsumedChannelThreshold
            self.clusterSlotMapRefreshInterval = clusterSlotMapRefreshInterval
        }

        func validated() throws(ChannelLayerError) -> [RedisEndpoint] {
            guard !hosts.isEmpty else {
                throw ChannelLayerError(.invalidConfiguration, "at least one Redis host is required")
            }
            guard capacity > 0 else {
                throw ChannelLayerError(.invalidConfiguration, "capacity must be positive, not \(capacity)")
            }
            guard maximumMessageSize > 0 else {
                throw ChannelLayerError(.invalidConfiguration, "maximumMessageSize must be positive")
            }
            guard connectTimeout > .zero, sendTimeout > .zero, livenessTimeout > .zero, livenessInterval >= .zero else {
                throw ChannelLayerError(.invalidConfiguration, "timeouts must be positive")
            }
            guard busyPoll >= .zero, busyPoll <= .seconds(1) else {
                throw ChannelLayerError(.invalidConfiguration, "busyPoll must be between zero and one second, not \(busyPoll)")
            }
            guard replyPoll >= .zero, replyPoll <= .seconds(1) else {
                throw ChannelLayerError(.invalidConfiguration, "replyPoll must be between zero and one second, not \(replyPoll)")
            }
            guard unconsumedChannelThreshold > .zero else {
                throw ChannelLayerError(.invalidConfiguration, "unconsumedChannelThreshold must be positive, not \(unconsumedChannelThreshold)")
            }
            guard clusterSlotMapRefreshInterval >= .milliseconds(100) else {
                throw ChannelLayerError(
                    .invalidConfiguration,
                    "clusterSlotMapRefreshInterval must be at least 100 milliseconds, not \(clusterSlotMapRefreshInterval)"
                )
            }
            guard !prefix.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F }) else {
                throw ChannelLayerError(.invalidConfiguration, "prefix '\(prefix)' must be printable ASCII without spaces")
            }
            var endpoints: [RedisEndpoint] = []
            for host in hosts { endpoints.append(try RedisEndpoint(url: host)) }
            return endpoints
        }
    }

    /// Capped exponential backoff with jitter between reconnect attempts.
    public struct RetryParameters: Sendable {
        /// The delay before the first retry.
        public var initialBackoff: Duration
        /// The largest delay between attempts.
        public var maximumBackoff: Duration
        /// How much each delay grows over the previous one.
        public var multiplier: Double
        /// Random spread applied to each delay, as a fraction (0.2 means ±20 %).
        public var jitter: Double

        /// Creates retry parameters; the defaults retry after 50 ms, doubling up to 5 s, ±20 %.
        public init(
            initialBackoff: Duration = .milliseconds(50),
            maximumBackoff: Duration = .seconds(5),
            multiplier: Double = 2,
            jitter: Double = 0.2
        ) {
            self.initialBackoff = initialBackoff
            self.maximumBackoff = maximumBackoff
            self.multiplier = multiplier
            self.jitter = jitter
        }

        /// The delay before attempt `attempt` (1-based).
        func delay(forAttempt attempt: Int) -> Duration {
            var generator = SystemRandomNumberGenerator()
            return delay(forAttempt: attempt, using: &generator)
        }

        /// The delay before attempt `attempt` (1-based), its jitter drawn from `generator` (tests
        /// pass a fixed one).
        func delay(forAttempt attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
            let base = initialBackoff.seconds * pow(max(multiplier, 1), Double(max(attempt - 1, 0)))
            let capped = min(base, maximumBackoff.seconds)
            let spread = max(0, min(jitter, 1))
            let factor = spread > 0 ? Double.random(in: (1 - spread)...(1 + spread), using: &generator) : 1
            return .nanoseconds(Int64(max(0, capped * factor) * 1e9))
        }
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
