extension RedisEndpoint {
    /// A master found through Redis Sentinel: which sentinels to ask, for which master, and how to
    /// log in to them. The endpoint's own ``RedisEndpoint/username`` and ``RedisEndpoint/password``
    /// are the data nodes' (master and replicas), as in channels_redis, where a host entry's
    /// `sentinel_kwargs` are for the sentinels and its other keys for the master.
    ///
    /// The layer asks the sentinels for the master's address (`SENTINEL get-master-addr-by-name`,
    /// each sentinel in turn, starting with the one that answered last) before every connect, and
    /// checks with `ROLE` that the node it reached is a master. While the layer is open it keeps one
    /// connection to a sentinel subscribed to `+switch-master`: on a failover it drops both of the
    /// shard's connections and reconnects to the new master, resubscribing everything. Each liveness
    /// probe also asks the node its `ROLE`, so a demoted master that keeps its clients connected is
    /// left within one ``RedisPubSubChannelLayer/Configuration/livenessInterval`` even if no
    /// sentinel could be reached to say so.
    ///
    /// As a `hosts` string:
    /// `redis+sentinel://[[username]:password@]host[:port][,host[:port]…]/master_name[/db]`
    /// (`rediss+sentinel://` for TLS), with the
    /// sentinels' own credentials in the query parameters `sentinel_username` and
    /// `sentinel_password`. A sentinel's port defaults to 26379.
    ///
    /// ```swift
    /// let sentinel = RedisEndpoint.Sentinel(
    ///     masterName: "mymaster",
    ///     sentinels: [.hostname("10.0.0.1", port: 26379), .hostname("10.0.0.2", port: 26379)]
    /// )
    /// let endpoint = RedisEndpoint(address: .sentinel(sentinel), password: dataPassword)
    /// print(endpoint)  // redis+sentinel://:***@10.0.0.1:26379,10.0.0.2:26379/mymaster/0
    /// ```
    ///
    /// Over TLS (``RedisEndpoint/Address/sentinel(_:tls:)``, or `rediss+sentinel://` with the `ssl_`
    /// parameters of ``RedisEndpoint/TLS``) the sentinels and the data nodes are all reached over TLS
    /// with the same settings, and each certificate is checked against the host that connection was
    /// given: the sentinel's as configured, the master's as the sentinels name it (usually an IP
    /// address, so it must be in the certificate's subject alternative names), unless
    /// ``RedisEndpoint/TLS/serverName`` names one for all of them.
    public struct Sentinel: Sendable, Hashable {
        /// The name the sentinels monitor the master under (`sentinel monitor <name> …`).
        public var masterName: String
        /// The sentinels to ask, in order: TCP addresses (``Address/hostname(_:port:)``) with their
        /// ports, usually ``defaultPort`` (a `.hostname` without one means Redis's 6379).
        public var sentinels: [Address]
        /// The ACL user to authenticate to the sentinels as, or `nil`.
        public var username: String?
        /// The sentinels' password (`requirepass` in their configuration), or `nil`.
        public var password: String?

        /// Redis Sentinel's default port.
        public static let defaultPort = 26379

        /// Creates Sentinel settings. An empty `username` or `password` means none.
        public init(masterName: String, sentinels: [Address], username: String? = nil, password: String? = nil) {
            self.masterName = masterName
            self.sentinels = sentinels
            self.username = username
            self.password = password
        }

        /// The endpoint of one sentinel: its address with the sentinels' credentials.
        func endpoint(_ index: Int) -> RedisEndpoint {
            RedisEndpoint(address: sentinels[index], username: username, password: password)
        }

        /// Query parameters for ``RedisEndpoint/url``: the credentials, when set.
        var queryParameters: [(name: String, value: String)] {
            var parameters: [(name: String, value: String)] = []
            if let username, !username.isEmpty { parameters.append(("sentinel_username", username)) }
            if let password, !password.isEmpty { parameters.append(("sentinel_password", password)) }
            return parameters
        }

        /// The URL query parameters that configure the sentinels.
        static let parameterNames: Set<String> = ["sentinel_username", "sentinel_password"]
    }
}

extension RedisEndpoint.Address {
    /// A master found through Redis Sentinel (a `redis+sentinel://` URL): see
    /// ``RedisEndpoint/Sentinel``.
    public static func sentinel(_ settings: RedisEndpoint.Sentinel) -> RedisEndpoint.Address {
        RedisEndpoint.Address(kind: .sentinel(settings))
    }

    /// A master found through Redis Sentinel, with the sentinels and the data nodes reached over
    /// TLS (a `rediss+sentinel://` URL).
    public static func sentinel(_ settings: RedisEndpoint.Sentinel, tls: RedisEndpoint.TLS) -> RedisEndpoint.Address {
        RedisEndpoint.Address(kind: .sentinel(settings), tls: tls)
    }

    /// The Sentinel settings, or `nil` for an address that names its server directly.
    public var sentinel: RedisEndpoint.Sentinel? {
        if case .sentinel(let settings) = kind { settings } else { nil }
    }
}
