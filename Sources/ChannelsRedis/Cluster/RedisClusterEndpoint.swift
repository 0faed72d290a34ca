/// The seed nodes of a Redis Cluster and how to log in to its nodes: what a `redis-cluster://` entry of
/// ``RedisPubSubChannelLayer/Configuration/hosts`` says.
///
/// The seeds are only where the layer first asks for the cluster's slot map (`CLUSTER SHARDS`); the map then names
/// every primary, and the layer connects to those. Several seeds let it start while one of them is down. Every node is
/// logged in to with the same credentials, as Redis Cluster requires of its clients.
///
/// ```swift
/// let cluster = try RedisClusterEndpoint(url: "redis-cluster://:secret@10.0.0.1:7000,10.0.0.2:7000")
/// print(cluster.seeds)  // [10.0.0.1:7000, 10.0.0.2:7000]
/// print(cluster)        // redis-cluster://:***@10.0.0.1:7000,10.0.0.2:7000
/// ```
///
/// Accepted URLs: `redis-cluster://[[username]:password@]host[:port][,host[:port]…][/0]`, each host a name, an IPv4
/// address or an IPv6 address in brackets, the port 6379 when none is given, percent-decoding and case as in a
/// `redis://` URL (``RedisEndpoint``). Refused, with an `invalidConfiguration` error that never quotes the password:
/// no seed, an empty seed (`a,,b`), a database other than 0 (a cluster has only database 0), query parameters, and
/// anything a `redis://` URL refuses.
public struct RedisClusterEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// The URL scheme, `redis-cluster`.
    public static let scheme = "redis-cluster"

    /// Where to ask for the slot map first, in order; TCP addresses (``RedisEndpoint/Address/hostname(_:port:)``).
    public var seeds: [RedisEndpoint.Address]
    /// The ACL user to authenticate as on every node (Redis 6+), or `nil` for the default user.
    public var username: String?
    /// The password to authenticate with on every node, or `nil` to not authenticate.
    public var password: String?

    /// Creates a cluster endpoint from its parts. Checked when the layer is created, as a URL is.
    ///
    /// An empty `username` or `password` means none, as in a URL.
    ///
    /// ```swift
    /// let cluster = RedisClusterEndpoint(seeds: [.hostname("10.0.0.1", port: 7000)], password: secret)
    /// let config = RedisPubSubChannelLayer.Configuration(hosts: [cluster.url])
    /// ```
    public init(seeds: [RedisEndpoint.Address], username: String? = nil, password: String? = nil) {
        self.seeds = seeds
        self.username = username
        self.password = password
    }

    /// Parses a `redis-cluster://` URL.
    ///
    /// - Parameter url: e.g. `redis-cluster://127.0.0.1:7000,127.0.0.1:7001`.
    /// - Throws: ``ChannelLayerError`` with code `.invalidConfiguration` and a message that quotes the URL with its
    ///   password replaced by `***`.
    public init(url: String) throws(ChannelLayerError) {
        do {
            self = try Self.parse(url)
        } catch {
            throw ChannelLayerError(.invalidConfiguration, "Invalid Redis Cluster URL '\(RedisEndpoint.redact(url))': \(error.reason)")
        }
    }

    /// Whether `url` is meant as a cluster URL (its scheme is `redis-cluster`, in any case): such a host is parsed with
    /// ``init(url:)``, every other with ``RedisEndpoint/init(url:)``.
    public static func isClusterURL(_ url: String) -> Bool {
        guard let separator = url.firstRange(of: "://") else { return false }
        return url[..<separator.lowerBound].lowercased() == scheme
    }

    /// The endpoint as a URL for ``RedisPubSubChannelLayer/Configuration/hosts``, password included (percent-encoded):
    /// `RedisClusterEndpoint(url: cluster.url)` gives it back (with hosts lowercased, as every URL's are).
    public var url: String { formatted(showingPassword: true) }

    /// The URL with the password shown as `***`.
    public var description: String { formatted(showingPassword: false) }

    /// The endpoint of the node at `address`, with this cluster's credentials.
    func endpoint(for address: RedisEndpoint.Address) -> RedisEndpoint {
        RedisEndpoint(address: address, username: username, password: password)
    }

    /// Checks an endpoint built from parts as its URL would be checked; returns it with its seeds normalised.
    func validated() throws(ChannelLayerError) -> RedisClusterEndpoint {
        guard !seeds.isEmpty else {
            throw ChannelLayerError(.invalidConfiguration, "a Redis Cluster needs at least one seed node")
        }
        for seed in seeds {
            guard case .tcp = seed.kind, seed.tls == nil else {
                throw ChannelLayerError(
                    .invalidConfiguration,
                    "the Redis Cluster seed \(seed) must be a plain TCP host and port (cluster mode supports neither Unix sockets nor TLS yet)"
                )
            }
        }
        return try RedisClusterEndpoint(url: url)
    }

    private func formatted(showingPassword: Bool) -> String {
        "\(Self.scheme)://" + RedisEndpoint.formatCredentials(username: username, password: password, showingPassword: showingPassword)
            + RedisEndpoint.formatHostList(seeds)
    }
}

// MARK: - Parsing

extension RedisClusterEndpoint {
    private static func parse(_ url: String) throws(RedisEndpoint.ParseError) -> RedisClusterEndpoint {
        if let bad = url.unicodeScalars.first(where: { $0.value <= 0x20 || $0.value == 0x7F }) {
            let what = bad == " " ? "a space" : "a control character"
            throw RedisEndpoint.ParseError("contains \(what); percent-encode it (a space is %20)")
        }
        guard isClusterURL(url), let separator = url.firstRange(of: "://") else {
            throw RedisEndpoint.ParseError("the scheme must be redis-cluster://")
        }
        let rest = url[separator.upperBound...]
        if rest.contains("#") {
            throw RedisEndpoint.ParseError("contains '#', which would end the URL; percent-encode it as %23")
        }
        let (username, password, hostList, pathAndQuery) = RedisEndpoint.splitAuthority(rest)
        // Before anything that quotes the rest: past the authority an '@' means a password's '/' or '?' cut it short.
        if pathAndQuery.contains("@") {
            throw RedisEndpoint.ParseError(
                "has an '@' after the hosts; percent-encode '/', '?', '#' and '@' in a username or password (%2F, %3F, %23, %40)"
            )
        }
        if pathAndQuery.contains("?") {
            throw RedisEndpoint.ParseError("takes no query parameters")
        }
        guard pathAndQuery.isEmpty || pathAndQuery == "/" || pathAndQuery == "/0" else {
            throw RedisEndpoint.ParseError("has the path '\(pathAndQuery)'; a cluster has only database 0, so write no path or /0")
        }
        guard !hostList.isEmpty else {
            throw RedisEndpoint.ParseError("has no seed node; write redis-cluster://host:port[,host:port…]")
        }
        var seeds: [RedisEndpoint.Address] = []
        let listed = try RedisEndpoint.parseHostList(hostList, defaultPort: RedisEndpoint.defaultPort, naming: "seed node")
        for seed in listed where !seeds.contains(seed) { seeds.append(seed) }
        return RedisClusterEndpoint(seeds: seeds, username: username, password: password)
    }
}
