/// Where one Redis server is and how to log in to it: what one entry of
/// ``RedisPubSubChannelLayer/Configuration/hosts`` says.
///
/// The layer takes its hosts as URL strings, as channels_redis's `hosts` setting does. Build an
/// endpoint from its parts when the pieces come from separate settings, and hand its ``url`` to
/// the configuration: the password is percent-encoded for you, so an `@`, `/` or `#` in it cannot
/// turn into another host.
///
/// ```swift
/// let endpoint = RedisEndpoint(address: .hostname("redis.internal", port: 6380), password: secret)
/// let config = RedisPubSubChannelLayer.Configuration(hosts: [endpoint.url])
/// print(endpoint)  // redis://:***@redis.internal:6380/0
/// ```
///
/// Accepted URLs (what redis-py's `parse_url` accepts):
///
/// - `redis://[[username]:password@]host[:port][/db][?db=N]`, where `host` is a name, an IPv4 address or an IPv6
///   address in brackets (`redis://[::1]:6380`). The port defaults to 6379, the database to 0.
/// - `rediss://[[username]:password@]host[:port][/db][?db=N&ssl_…=…]`: the same over TLS, verified against the
///   system's trust store unless the `ssl_` parameters redis-py reads say otherwise (``TLS`` lists them), e.g.
///   `rediss://127.0.0.1:6380?ssl_ca_certs=/etc/redis/ca.crt`.
/// - `unix://[[username]:password@]/path/to/socket[?db=N]`.
/// - `redis+sentinel://[[username]:password@]host[:port][,host[:port]…]/master_name[/db][?sentinel_password=…]`: the
///   master the sentinels name (``Sentinel``); the credentials before the `@` are the data nodes', a sentinel's port
///   defaults to 26379, and `sentinel_username` and `sentinel_password` log in to the sentinels. `rediss+sentinel://`
///   reaches the sentinels and the data nodes over TLS, with the `ssl_` parameters of `rediss://`.
///
/// As in redis-py: the scheme and host are case-insensitive (the host is lowercased), the username, password, host and
/// socket path are percent-decoded (write `%40` for an `@` in a password; an escape that is not `%XX` is kept as
/// written), the password is whatever follows the first `:` of the part before the last `@`, an empty port means the
/// default, and `?db=` wins over the path's database. The pub/sub layer ignores the database (Redis pub/sub channels
/// are server-wide); it is parsed so that the URLs a Django project already uses keep working.
///
/// Stricter than redis-py, because each of these is almost always a mistake that redis-py silently turns into a
/// connection to some other place: an empty host (redis-py connects to localhost), port 0 (redis-py uses 6379), a path
/// that is not a database number (redis-py ignores it), a `#` (redis-py cuts the URL there, so a password containing
/// `#` loses its tail), a `unix://` URL with a host (redis-py ignores the host: `unix://tmp/redis.sock` means
/// `/redis.sock` there), whitespace, `ssl_` parameters on a `redis://` URL (redis-py ignores them and connects in
/// plain text), and query parameters other than `db` and the `ssl_` ones (they tune redis-py's own sockets and mean
/// nothing here; the layer's configuration has its own timeouts).
///
/// The password never appears in ``description`` or in an error message.
public struct RedisEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// How to reach a server: a TCP host and port (in plain text or over TLS), a Unix domain socket,
    /// or the master of a Sentinel set.
    ///
    /// A struct with static members rather than a public enum, so that kinds of address can be
    /// added (Sentinel, Cluster) without breaking a `switch` in user code.
    public struct Address: Sendable, Hashable, CustomStringConvertible {
        enum Kind: Sendable, Hashable {
            /// A TCP host name or IP address (IPv6 without brackets) and port.
            case tcp(host: String, port: Int)
            /// The path of a Unix domain socket.
            case unix(path: String)
            /// Whichever node the sentinels name the master (`RedisEndpoint+Sentinel.swift`).
            case sentinel(Sentinel)
        }

        let kind: Kind
        /// The TLS settings of a TCP address reached over TLS (`rediss://`), or `nil`.
        public let tls: TLS?

        init(kind: Kind, tls: TLS? = nil) {
            self.kind = kind
            self.tls = tls
        }

        /// A TCP server: a host name, an IPv4 address or an IPv6 address (without brackets), and a
        /// port from 1 to 65535. Checked when the layer is created, as a URL is.
        public static func hostname(_ host: String, port: Int = RedisEndpoint.defaultPort) -> Address {
            Address(kind: .tcp(host: host, port: port))
        }

        /// A TCP server reached over TLS (a `rediss://` URL): the host and port as in
        /// ``hostname(_:port:)``, and how to verify the server.
        ///
        /// ```swift
        /// let address = RedisEndpoint.Address.hostname("redis.internal", port: 6380, tls: .default)
        /// ```
        public static func hostname(_ host: String, port: Int = RedisEndpoint.defaultPort, tls: TLS) -> Address {
            Address(kind: .tcp(host: host, port: port), tls: tls)
        }

        /// A server listening on the Unix domain socket at `path` (absolute).
        public static func unixDomainSocket(path: String) -> Address {
            Address(kind: .unix(path: path))
        }

        /// The TCP host, or `nil` for a Unix socket.
        public var host: String? {
            if case .tcp(let host, _) = kind { host } else { nil }
        }

        /// The TCP port, or `nil` for a Unix socket.
        public var port: Int? {
            if case .tcp(_, let port) = kind { port } else { nil }
        }

        /// The socket path, or `nil` for a TCP address.
        public var socketPath: String? {
            if case .unix(let path) = kind { path } else { nil }
        }

        /// `host:port` (IPv6 in brackets), the socket path, or `master_name@host:port,host:port` for
        /// a Sentinel set.
        public var description: String {
            switch kind {
            case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            case .unix(let path): path
            case .sentinel(let settings): "\(settings.masterName)@" + settings.sentinels.map(\.description).joined(separator: ",")
            }
        }
    }

    /// Redis's default port, used when a `redis://` URL names none.
    public static let defaultPort = 6379

    /// Where the server is.
    public var address: Address
    /// The ACL user to authenticate as (Redis 6+), or `nil` for the default user.
    public var username: String?
    /// The password to authenticate with, or `nil` to not authenticate.
    public var password: String?
    /// The database number. Pub/sub ignores it (its channels are server-wide); it is kept so that
    /// a Django project's URLs work unchanged.
    public var database: Int

    /// Creates an endpoint from its parts.
    ///
    /// An empty `username` or `password` means none, as in a URL.
    public init(address: Address, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.address = address
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses a host URL such as `redis://localhost:6379` or `unix:///run/redis.sock`.
    ///
    /// - Parameter url: The URL, as it would appear in channels_redis's `hosts` list.
    /// - Throws: ``ChannelLayerError`` with code `.invalidConfiguration` and a message that quotes the URL with its
    ///   password replaced by `***`.
    public init(url: String) throws(ChannelLayerError) {
        do {
            self = try Self.parse(url)
        } catch {
            throw ChannelLayerError(.invalidConfiguration, "Invalid Redis URL '\(Self.redact(url))': \(error.reason)")
        }
    }

    /// The endpoint as a URL for ``RedisPubSubChannelLayer/Configuration/hosts``, password
    /// included (percent-encoded): `RedisEndpoint(url: endpoint.url)` gives the endpoint back (with
    /// the host lowercased, as every URL's is).
    public var url: String { formatted(showingPassword: true) }

    /// The URL with the password shown as `***`, e.g. `redis://user:***@host:6379/0`.
    public var description: String { formatted(showingPassword: false) }

    private func formatted(showingPassword: Bool) -> String {
        var text: String
        switch address.kind {
        case .tcp: text = address.tls == nil ? "redis://" : "rediss://"
        case .unix: text = "unix://"
        case .sentinel: text = address.tls == nil ? "redis+sentinel://" : "rediss+sentinel://"
        }
        text += Self.formatCredentials(username: username, password: password, showingPassword: showingPassword)
        switch address.kind {
        case .tcp:
            text += Self.formatHostList([address]) + "/\(database)"
            text += tlsQuery(separator: "?")
        case .unix(let path):
            text += Self.percentEncode(path, keeping: Self.unreserved.union([UInt8(ascii: "/")]))
            if database != 0 { text += "?db=\(database)" }
        case .sentinel(let settings):
            text += Self.formatHostList(settings.sentinels)
            text += "/\(Self.percentEncode(settings.masterName, keeping: Self.unreserved))/\(database)"
            let parameters = settings.queryParameters
            if !parameters.isEmpty {
                text += "?" + parameters.map { parameter in
                    let shown = showingPassword || parameter.name != "sentinel_password"
                    return "\(parameter.name)=\(shown ? Self.percentEncode(parameter.value, keeping: Self.unreserved) : "***")"
                }.joined(separator: "&")
            }
            text += tlsQuery(separator: parameters.isEmpty ? "?" : "&")
        }
        return text
    }

    /// `user:password@` (percent-encoded, the password as `***` unless `showingPassword`), `:password@`, `user@`, or
    /// nothing: the credentials of every URL the layer writes (an empty username or password is none).
    static func formatCredentials(username: String?, password: String?, showingPassword: Bool) -> String {
        let username = username.flatMap { $0.isEmpty ? nil : $0 }
        let password = password.flatMap { $0.isEmpty ? nil : $0 }
        guard username != nil || password != nil else { return "" }
        var text = percentEncode(username ?? "", keeping: unreserved)
        if let password { text += ":" + (showingPassword ? percentEncode(password, keeping: unreserved) : "***") }
        return text + "@"
    }

    /// `host:port[,host:port…]`, the counterpart of `parseHostList`: an IPv6 host in brackets with a zone's `%`
    /// escaped; an address that is not TCP as its description (refused when parsed back).
    static func formatHostList(_ addresses: [Address]) -> String {
        addresses.map { address in
            guard case .tcp(let host, let port) = address.kind else { return address.description }
            return host.contains(":") ? "[\(host.replacingPercent())]:\(port)" : "\(host):\(port)"
        }.joined(separator: ",")
    }

    /// The `ssl_` query parameters of a TLS address, after `separator`; empty without any.
    private func tlsQuery(separator: String) -> String {
        guard let tls = address.tls, !tls.queryParameters.isEmpty else { return "" }
        let valueBytes = Self.unreserved.union(Array("/:,".utf8))
        return separator + tls.queryParameters.map { "\($0.name)=\(Self.percentEncode($0.value, keeping: valueBytes))" }.joined(separator: "&")
    }
}
