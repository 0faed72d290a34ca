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
    /// How to reach a server: a TCP host and port (in plain text or over TLS), or a Unix domain socket.
    ///
    /// A struct with static members rather than a public enum, so that kinds of address can be
    /// added (Sentinel, Cluster) without breaking a `switch` in user code.
    public struct Address: Sendable, Hashable, CustomStringConvertible {
        enum Kind: Sendable, Hashable {
            /// A TCP host name or IP address (IPv6 without brackets) and port.
            case tcp(host: String, port: Int)
            /// The path of a Unix domain socket.
            case unix(path: String)
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

        /// `host:port` (IPv6 in brackets) or the socket path.
        public var description: String {
            switch kind {
            case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            case .unix(let path): path
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
        }
        let username = username.flatMap { $0.isEmpty ? nil : $0 }
        let password = password.flatMap { $0.isEmpty ? nil : $0 }
        if username != nil || password != nil {
            text += Self.percentEncode(username ?? "", keeping: Self.unreserved)
            if let password { text += ":" + (showingPassword ? Self.percentEncode(password, keeping: Self.unreserved) : "***") }
            text += "@"
        }
        switch address.kind {
        case .tcp(let host, let port):
            let host = host.contains(":") ? "[\(host.replacingPercent())]" : host
            text += "\(host):\(port)/\(database)"
            if let tls = address.tls, !tls.queryParameters.isEmpty {
                let valueBytes = Self.unreserved.union(Array("/:,".utf8))
                text += "?" + tls.queryParameters.map { "\($0.name)=\(Self.percentEncode($0.value, keeping: valueBytes))" }.joined(separator: "&")
            }
        case .unix(let path):
            text += Self.percentEncode(path, keeping: Self.unreserved.union([UInt8(ascii: "/")]))
            if database != 0 { text += "?db=\(database)" }
        }
        return text
    }
}

// MARK: - Parsing

extension RedisEndpoint {
    /// Why a URL was rejected; ``init(url:)`` wraps it with the redacted URL.
    private struct ParseError: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    private enum Scheme {
        case tcp
        case tls
        case unix
    }

    /// What a URL's query says.
    private struct Query {
        var database: Int?
        /// `ssl_` parameters, by name, first occurrence only (as redis-py's parse_qs).
        var tls: [String: String] = [:]
    }

    private static func parse(_ url: String) throws(ParseError) -> RedisEndpoint {
        if let bad = url.unicodeScalars.first(where: { $0.value <= 0x20 || $0.value == 0x7F }) {
            let what = bad == " " ? "a space" : "a control character"
            throw ParseError("contains \(what); percent-encode it (a space is %20)")
        }
        guard let separator = url.firstRange(of: "://") else {
            throw ParseError("has no scheme; write redis://host[:port][/db] or unix:///path/to/socket")
        }
        let scheme: Scheme
        switch url[..<separator.lowerBound].lowercased() {
        case "redis":
            scheme = .tcp
        case "unix":
            scheme = .unix
        case "rediss":
            scheme = .tls
        case "redis+unix", "redis-socket":
            throw ParseError("the scheme must be redis://, rediss:// or unix://; for a Unix socket write unix:///path/to/socket")
        default:
            throw ParseError("the scheme must be redis://, rediss:// or unix://")
        }
        let rest = url[separator.upperBound...]
        if rest.contains("#") {
            throw ParseError("contains '#', which would end the URL; percent-encode it as %23")
        }

        // As urllib's urlsplit: the authority ends at the first '/' or '?'; credentials end at its last '@'.
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        let pathAndQuery = rest[authorityEnd...]
        let path: Substring
        let query: Substring?
        if let questionMark = pathAndQuery.firstIndex(of: "?") {
            path = pathAndQuery[..<questionMark]
            query = pathAndQuery[pathAndQuery.index(after: questionMark)...]
        } else {
            path = pathAndQuery
            query = nil
        }

        var username: String?
        var password: String?
        let hostAndPort: Substring
        if let at = authority.lastIndex(of: "@") {
            let userinfo = authority[..<at]
            hostAndPort = authority[authority.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                username = percentDecode(userinfo[..<colon])
                password = percentDecode(userinfo[userinfo.index(after: colon)...])
            } else {
                username = percentDecode(userinfo)
            }
            // redis-py treats an empty username or password as absent.
            if username?.isEmpty == true { username = nil }
            if password?.isEmpty == true { password = nil }
        } else {
            hostAndPort = authority
        }

        // An '@' past the authority means the credentials contained a '/' or '?' that ended the authority early. Say so
        // before anything else: the other checks quote pieces of the URL, which here would be pieces of the password.
        // (A socket path may contain '@'; a database number or a `db` parameter cannot.)
        if query?.contains("@") == true || (scheme != .unix && path.contains("@")) {
            throw ParseError("has an '@' after the host; percent-encode '/', '?', '#' and '@' in a username or password (%2F, %3F, %23, %40)")
        }

        // The query is parsed last for the same reason: in a malformed URL it may hold part of a password.
        var parsedQuery = Query()
        if let query { parsedQuery = try parseQuery(query) }
        if scheme != .tls, let name = parsedQuery.tls.keys.sorted().first {
            throw ParseError("has the TLS parameter '\(name)', which needs a rediss:// URL")
        }
        switch scheme {
        case .tcp, .tls:
            let (host, port) = try parseHostAndPort(hostAndPort)
            let database: Int
            // Python reads the path only when the query has no `db`. (Not `??`: its autoclosure would erase the typed error.)
            if let queryDatabase = parsedQuery.database {
                database = queryDatabase
            } else {
                database = try parsePathDatabase(path)
            }
            let address: Address
            if scheme == .tls {
                address = .hostname(host, port: port, tls: try parseTLS(parsedQuery.tls))
            } else {
                address = .hostname(host, port: port)
            }
            return RedisEndpoint(address: address, username: username, password: password, database: database)
        case .unix:
            guard hostAndPort.isEmpty else {
                throw ParseError("a unix:// URL takes no host; write unix:///path/to/socket (three slashes)")
            }
            let socketPath = percentDecode(path)
            guard socketPath.hasPrefix("/"), socketPath != "/" else {
                throw ParseError("has no socket path; write unix:///path/to/socket")
            }
            let database = parsedQuery.database ?? 0
            return RedisEndpoint(address: .unixDomainSocket(path: socketPath), username: username, password: password, database: database)
        }
    }

    private static func parseHostAndPort(_ text: Substring) throws(ParseError) -> (host: String, port: Int) {
        let hostPart: Substring
        let portPart: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw ParseError("has an IPv6 address without its closing ']'")
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let afterBracket = text[text.index(after: close)...]
            if afterBracket.isEmpty {
                portPart = nil
            } else if afterBracket.hasPrefix(":") {
                portPart = afterBracket.dropFirst()
            } else {
                throw ParseError("has '\(afterBracket)' after the IPv6 address; only ':port' may follow it")
            }
            let host = try ipv6Host(hostPart)
            return (host, try parsePort(portPart))
        }
        if let colon = text.firstIndex(of: ":") {
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        } else {
            hostPart = text
            portPart = nil
        }
        if hostPart.isEmpty {
            if let portPart, portPart.contains(":") {
                throw ParseError("has an IPv6 address without brackets; write redis://[::1]:6379")
            }
            throw ParseError("has no host; write redis://host[:port][/db]")
        }
        let host = percentDecode(hostPart).lowercased()
        guard host.utf8.allSatisfy(isHostNameByte) else {
            throw ParseError("has an invalid host name; use letters, digits, '-', '_' and '.', or an IP address")
        }
        return (host, try parsePort(portPart))
    }

    /// Validates the inside of `[...]`: hex digits, ':' and '.' (for an embedded IPv4), plus an optional zone
    /// (`fe80::1%25eth0`, RFC 6874).
    private static func ipv6Host(_ text: Substring) throws(ParseError) -> String {
        let decoded = percentDecode(text).lowercased()
        let address = decoded.split(separator: "%", maxSplits: 1, omittingEmptySubsequences: false)
        let isAddressByte: (UInt8) -> Bool = { byte in
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: ":"), UInt8(ascii: "."): true
            default: false
            }
        }
        guard let body = address.first, body.contains(":"), body.utf8.allSatisfy(isAddressByte),
            address.count == 1 || (address[1].isEmpty == false && address[1].utf8.allSatisfy(isHostNameByte))
        else {
            throw ParseError("has an invalid IPv6 address between the brackets")
        }
        return decoded
    }

    private static func parsePort(_ text: Substring?) throws(ParseError) -> Int {
        // An empty port ("host:") means the default, as in RFC 3986 and redis-py.
        guard let text, !text.isEmpty else { return defaultPort }
        guard text.utf8.allSatisfy(isDigit), let port = Int(text), (1...65535).contains(port) else {
            throw ParseError("has an invalid port '\(text)'; it must be a number from 1 to 65535")
        }
        return port
    }

    private static func parsePathDatabase(_ path: Substring) throws(ParseError) -> Int {
        // The path is empty or starts with the '/' that ended the authority.
        if path.isEmpty || path == "/" { return 0 }
        return try parseDatabase(percentDecode(path.dropFirst())[...], from: "the path")
    }

    /// The `db` and `ssl_` parameters of a query.
    private static func parseQuery(_ query: Substring) throws(ParseError) -> Query {
        var result = Query()
        for parameter in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = percentDecode(parts[0], plusIsSpace: true)
            let value = parts.count == 2 ? percentDecode(parts[1], plusIsSpace: true) : ""
            // redis-py (parse_qs) takes the first of repeated parameters.
            if name == "db" {
                let parsed = try parseDatabase(value[...], from: "'db'")
                if result.database == nil { result.database = parsed }
            } else if TLS.parameterNames.contains(name) {
                if result.tls[name] == nil { result.tls[name] = value }
            } else {
                let known = TLS.parameterNames.sorted().map { "'\($0)'" }.joined(separator: ", ")
                throw ParseError("has the unsupported query parameter '\(name)'; only 'db' and, on rediss://, \(known) are understood")
            }
        }
        return result
    }

    /// The TLS settings of a rediss:// URL's `ssl_` parameters, read as redis-py reads them.
    private static func parseTLS(_ parameters: [String: String]) throws(ParseError) -> TLS {
        var tls = TLS()
        func path(_ name: String) throws(ParseError) -> String? {
            guard let value = parameters[name] else { return nil }
            guard !value.isEmpty else { throw ParseError("has an empty '\(name)'; give a file path or leave the parameter out") }
            return value
        }
        if let caFile = try path("ssl_ca_certs") { tls.trustRoots = .certificateFile(caFile) }
        tls.certificateFile = try path("ssl_certfile")
        tls.privateKeyFile = try path("ssl_keyfile")
        if tls.privateKeyFile != nil, tls.certificateFile == nil {
            throw ParseError("has 'ssl_keyfile' without 'ssl_certfile'; the key belongs to a client certificate")
        }
        tls.serverName = try path("ssl_server_name")
        var verifyCertificate = true
        if let requirement = parameters["ssl_cert_reqs"] {
            switch requirement.lowercased() {
            // A client's CERT_OPTIONAL verifies like CERT_REQUIRED in Python's ssl module.
            case "required", "optional": verifyCertificate = true
            case "none": verifyCertificate = false
            default: throw ParseError("has an invalid 'ssl_cert_reqs' '\(requirement)'; it must be required or none")
            }
        }
        var checkHostname: Bool?
        if let flag = parameters["ssl_check_hostname"] {
            switch flag.lowercased() {
            case "true", "t", "yes", "y", "1": checkHostname = true
            case "false", "f", "no", "n", "0": checkHostname = false
            default: throw ParseError("has an invalid 'ssl_check_hostname' '\(flag)'; it must be true or false")
            }
        }
        if !verifyCertificate {
            if checkHostname == true {
                // Python's ssl refuses this pair too (check_hostname needs CERT_REQUIRED).
                throw ParseError(
                    "has 'ssl_cert_reqs=none' with 'ssl_check_hostname=true'; a host name cannot be checked without verifying the certificate"
                )
            }
            tls.verification = .insecureNoVerification
        } else if checkHostname == false {
            tls.verification = .noHostnameVerification
        }
        return tls
    }

    private static func parseDatabase(_ text: Substring, from origin: String) throws(ParseError) -> Int {
        guard !text.isEmpty, text.utf8.allSatisfy(isDigit), let database = Int(text) else {
            throw ParseError("has an invalid database '\(text)' in \(origin); it must be a non-negative integer")
        }
        return database
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    /// Host names use the same bytes as Channels names: `[a-zA-Z0-9\-_.]`.
    private static func isHostNameByte(_ byte: UInt8) -> Bool {
        NameValidation.isNameByte(byte)
    }
}

// MARK: - Percent-encoding and redaction

extension RedisEndpoint {
    /// RFC 3986's unreserved characters, which ``description`` writes as they are.
    fileprivate static let unreserved: Set<UInt8> = Set(
        Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)
    )

    /// Decodes `%XX` escapes like Python's `urllib.parse.unquote`: a `%` not followed by two hex digits stays as it
    /// is, and bytes that are not UTF-8 become U+FFFD.
    fileprivate static func percentDecode(_ text: Substring, plusIsSpace: Bool = false) -> String {
        let bytes = Array(text.utf8)
        guard bytes.contains(UInt8(ascii: "%")) || (plusIsSpace && bytes.contains(UInt8(ascii: "+"))) else {
            return String(text)
        }
        var output = [UInt8]()
        output.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%"), index + 2 < bytes.count, let high = hexValue(bytes[index + 1]),
                let low = hexValue(bytes[index + 2])
            {
                output.append(high << 4 | low)
                index += 3
            } else {
                output.append(plusIsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                index += 1
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    fileprivate static func percentEncode(_ text: String, keeping allowed: Set<UInt8>) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var output = [UInt8]()
        for byte in text.utf8 {
            if allowed.contains(byte) {
                output.append(byte)
            } else {
                output.append(contentsOf: [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// `url` made safe to show: whatever follows the first ':' of the credentials (everything before the last '@')
    /// becomes `***`, so do the values of query parameters other than `db` and the `ssl_` ones (file paths and flags),
    /// and control characters are escaped.
    ///
    /// Works on any string, parsable or not, and errs towards hiding too much: a rejected URL is exactly the case where
    /// the parser cannot be trusted to know where the password ends.
    static func redact(_ url: String) -> String {
        var text = Substring(url)
        var result = ""
        if let separator = text.firstRange(of: "://") {
            result += String(text[..<separator.upperBound])
            text = text[separator.upperBound...]
        }
        if let at = text.lastIndex(of: "@") {
            let userinfo = text[..<at]
            if let colon = userinfo.firstIndex(of: ":") {
                result += String(userinfo[...colon]) + "***"
            } else {
                result += String(userinfo)
            }
            result += "@"
            text = text[text.index(after: at)...]
        }
        if let questionMark = text.firstIndex(of: "?") {
            result += String(text[...questionMark])
            let parameters = text[text.index(after: questionMark)...].split(separator: "&", omittingEmptySubsequences: false)
            result += parameters.map { parameter in
                guard let equals = parameter.firstIndex(of: "="), parameter[..<equals] != "db",
                    !TLS.parameterNames.contains(String(parameter[..<equals]))
                else { return String(parameter) }
                return String(parameter[...equals]) + "***"
            }.joined(separator: "&")
        } else {
            result += String(text)
        }
        return result.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? $0.escaped(asASCII: true) : String($0) }.joined()
    }
}

extension String {
    /// `%` written as `%25`, for an IPv6 zone inside brackets.
    fileprivate func replacingPercent() -> String {
        var result = ""
        for character in self {
            result += character == "%" ? "%25" : String(character)
        }
        return result
    }
}
