extension InMemoryChannelLayer {
    /// How an ``InMemoryChannelLayer`` names and buffers.
    ///
    /// The two settings mean what they mean for ``RedisPubSubChannelLayer/Configuration``, so a test
    /// configured like production behaves like it.
    ///
    /// ```swift
    /// var config = InMemoryChannelLayer.Configuration()
    /// config.capacity = 100
    /// let layer = try InMemoryChannelLayer(configuration: config)
    /// ```
    public struct Configuration: Sendable {
        /// Prefix of every channel name ``InMemoryChannelLayer/newChannel(prefix:)`` makes (`"asgi"`,
        /// as in Python).
        public var prefix: String
        /// How many messages one channel buffers for its consumers.
        ///
        /// When a consumer falls further behind, the **oldest** buffered message is dropped, counted in
        /// ``InMemoryChannelLayer/Statistics/droppedMessages`` and logged as a warning, as the Redis
        /// layer does. (Python's `InMemoryChannelLayer` raises `ChannelFull` at its capacity, 100 by
        /// default, instead.)
        public var capacity: Int

        /// Creates a configuration; every parameter has a default.
        public init(prefix: String = "asgi", capacity: Int = 10_000) {
            self.prefix = prefix
            self.capacity = capacity
        }

        /// Checks the settings as ``RedisPubSubChannelLayer/Configuration`` checks the same ones.
        func validate() throws(ChannelLayerError) {
            guard capacity > 0 else {
                throw ChannelLayerError(.invalidConfiguration, "capacity must be positive, not \(capacity)")
            }
            guard !prefix.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F }) else {
                throw ChannelLayerError(.invalidConfiguration, "prefix '\(prefix)' must be printable ASCII without spaces")
            }
        }
    }
}
