// How a RedisEndpoint is read from and written to a host URL (RedisEndpoint.swift has the type):
// the parser, percent-encoding and the redaction of passwords in messages.

// MARK: - Parsing

extension RedisEndpoint {
    /// Why a URL was rejected; ``init(url:)`` wraps it with the redacted URL.
    struct ParseError: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    private enum Scheme {
        case tcp
        case tls
        case unix
        case sentinel
        case sentinelTLS
    }

    /// What a URL's query says.
    private struct Query {
        var database: Int?
        /// `ssl_` parameters, by name, first occurrence only (as redis-py's parse_qs).
        var tls: [String: String] = [:]
        /// `sentinel_` parameters, by name, first occurrence only.
        var sentinel: [String: String] = [:]
    }

    static func parse(_ url: String) throws(ParseError) -> RedisEndpoint {
        if let bad = url.unicodeScalars.first(where: { $0.value <= 0x20 || $0.value == 0x7F }) {
            let what = bad == " " ? "a space" : "a control character"
            throw ParseError("contains \(what); percent-encode it (a space is %20)")
        }
        guard let separator = url.firstRange(of: "://") else {
            throw ParseError("has no scheme; write redis://host[:port][/db], unix:///path/to/socket or redis+sentinel://host[:port][,host[:port]]/master_name")
        }
        let scheme: Scheme
        switch url[..<separator.lowerBound].lowercased() {
        case "redis":
            scheme = .tcp
        case "unix":
            scheme = .unix
        case "rediss":
            scheme = .tls
        case "redis+sentinel":
            scheme = .sentinel
        case "rediss+sentinel":
            scheme = .sentinelTLS
        case "redis+unix", "redis-socket":
            throw ParseError("the scheme must be redis://, rediss://, unix:// or redis+sentinel://; for a Unix socket write unix:///path/to/socket")
        default:
            throw ParseError("the scheme must be redis://, rediss://, unix:// or redis+sentinel://")
        }
        let rest = url[separator.upperBound...]
        if rest.contains("#") {
            throw ParseError("contains '#', which would end the URL; percent-encode it as %23")
        }

        let (username, password, hostAndPort, pathAndQuery) = splitAuthority(rest)
        let path: Substring
        let query: Substring?
        if let questionMark = pathAndQuery.firstIndex(of: "?") {
            path = pathAndQuery[..<questionMark]
            query = pathAndQuery[pathAndQuery.index(after: questionMark)...]
        } else {
            path = pathAndQuery
            query = nil
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
        if scheme != .tls, scheme != .sentinelTLS, let name = parsedQuery.tls.keys.sorted().first {
            throw ParseError("has the TLS parameter '\(name)', which needs a rediss:// URL")
        }
        if scheme != .sentinel, scheme != .sentinelTLS, let name = parsedQuery.sentinel.keys.sorted().first {
            throw ParseError("has the Sentinel parameter '\(name)', which needs a redis+sentinel:// URL")
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
        case .sentinel, .sentinelTLS:
            let sentinels = try parseHostList(hostAndPort, defaultPort: Sentinel.defaultPort, naming: "sentinel address")
            let (masterName, pathDatabase) = try parseSentinelPath(path)
            var sentinel = Sentinel(masterName: masterName, sentinels: sentinels)
            sentinel.username = parsedQuery.sentinel["sentinel_username"].flatMap { $0.isEmpty ? nil : $0 }
            sentinel.password = parsedQuery.sentinel["sentinel_password"].flatMap { $0.isEmpty ? nil : $0 }
            let database = parsedQuery.database ?? pathDatabase
            let address: Address = scheme == .sentinelTLS ? .sentinel(sentinel, tls: try parseTLS(parsedQuery.tls)) : .sentinel(sentinel)
            return RedisEndpoint(address: address, username: username, password: password, database: database)
        }
    }

    /// `/master_name[/db]`: the master's name (percent-decoded) and the database, 0 if absent.
    private static func parseSentinelPath(_ path: Substring) throws(ParseError) -> (masterName: String, database: Int) {
        let parts = path.dropFirst().split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let first = parts.first, !first.isEmpty else {
            throw ParseError("names no master; write redis+sentinel://host:26379/master_name (the name the sentinels monitor)")
        }
        let masterName = percentDecode(first)
        // Sentinel takes the name as one argument and prints it in space-separated events.
        guard !masterName.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F }) else {
            throw ParseError("has a master name with a space or control character, which Sentinel cannot monitor")
        }
        guard parts.count == 2 else { return (masterName, 0) }
        guard !parts[1].isEmpty else { return (masterName, 0) }
        return (masterName, try parseDatabase(percentDecode(parts[1])[...], from: "the path"))
    }

    /// What follows `scheme://`, split as urllib's urlsplit does: the authority ends at the first '/' or '?', the
    /// credentials at its last '@' (percent-decoded; empty means absent, as in redis-py); the hosts between them.
    static func splitAuthority(
        _ rest: Substring
    ) -> (username: String?, password: String?, hosts: Substring, pathAndQuery: Substring) {
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard let at = authority.lastIndex(of: "@") else { return (nil, nil, authority, rest[authorityEnd...]) }
        let userinfo = authority[..<at]
        var username: String?
        var password: String?
        if let colon = userinfo.firstIndex(of: ":") {
            username = percentDecode(userinfo[..<colon])
            password = percentDecode(userinfo[userinfo.index(after: colon)...])
        } else {
            username = percentDecode(userinfo)
        }
        if username?.isEmpty == true { username = nil }
        if password?.isEmpty == true { password = nil }
        return (username, password, authority[authority.index(after: at)...], rest[authorityEnd...])
    }

    /// A comma-separated `host[:port]` list (a Sentinel URL's sentinels, a cluster URL's seeds), each entry read as
    /// the host and port of a `redis://` URL; an empty entry (`a,,b`, `a,`, or no entry at all) is refused. `noun`
    /// names an entry in the errors, which say which entry (from 1) is wrong.
    static func parseHostList(_ text: Substring, defaultPort: Int, naming noun: String) throws(ParseError) -> [Address] {
        var addresses: [Address] = []
        for (index, entry) in text.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            guard !entry.isEmpty else {
                throw ParseError("has an empty \(noun) (number \(index + 1)); separate host:port pairs with single commas")
            }
            do {
                let (host, port) = try parseHostAndPort(entry, defaultPort: defaultPort)
                addresses.append(.hostname(host, port: port))
            } catch {
                throw ParseError("\(noun) \(index + 1) '\(entry)' \(error.reason)")
            }
        }
        return addresses
    }

    private static func parseHostAndPort(_ text: Substring, defaultPort: Int = RedisEndpoint.defaultPort) throws(ParseError) -> (host: String, port: Int) {
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
            return (host, try parsePort(portPart, defaultPort: defaultPort))
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
        return (host, try parsePort(portPart, defaultPort: defaultPort))
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

    private static func parsePort(_ text: Substring?, defaultPort: Int) throws(ParseError) -> Int {
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
            } else if Sentinel.parameterNames.contains(name) {
                if result.sentinel[name] == nil { result.sentinel[name] = value }
            } else {
                let known = TLS.parameterNames.sorted().map { "'\($0)'" }.joined(separator: ", ")
                let sentinel = Sentinel.parameterNames.sorted().map { "'\($0)'" }.joined(separator: ", ")
                throw ParseError(
                    "has the unsupported query parameter '\(name)'; only 'db', on rediss:// \(known), and on redis+sentinel:// \(sentinel) are understood"
                )
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
    static let unreserved: Set<UInt8> = Set(
        Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)
    )

    /// Decodes `%XX` escapes like Python's `urllib.parse.unquote`: a `%` not followed by two hex digits stays as it
    /// is, and bytes that are not UTF-8 become U+FFFD.
    static func percentDecode(_ text: Substring, plusIsSpace: Bool = false) -> String {
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

    static func percentEncode(_ text: String, keeping allowed: Set<UInt8>) -> String {
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
    func replacingPercent() -> String {
        var result = ""
        for character in self {
            result += character == "%" ? "%25" : String(character)
        }
        return result
    }
}
