import Testing

@testable import ChannelsRedis

@Suite struct RedisEndpointTests {
    struct Valid: CustomTestStringConvertible, Sendable {
        var url: String
        var address: RedisEndpoint.Address
        var username: String? = nil
        var password: String? = nil
        var database = 0
        var testDescription: String { url }
    }

    static let valid: [Valid] = [
        Valid(url: "redis://localhost", address: .hostname("localhost", port: 6379)),
        Valid(url: "redis://localhost:6380/2", address: .hostname("localhost", port: 6380), database: 2),
        Valid(url: "redis://127.0.0.1:6379/0", address: .hostname("127.0.0.1", port: 6379)),
        Valid(url: "redis://redis_1.internal", address: .hostname("redis_1.internal", port: 6379)),
        Valid(url: "REDIS://Cache.Example.COM", address: .hostname("cache.example.com", port: 6379)),
        Valid(url: "redis://[::1]:6380", address: .hostname("::1", port: 6380)),
        Valid(url: "redis://[::1]", address: .hostname("::1", port: 6379)),
        Valid(url: "redis://[::FFFF:127.0.0.1]:7000/1", address: .hostname("::ffff:127.0.0.1", port: 7000), database: 1),
        Valid(url: "redis://[fe80::1%25eth0]:7000", address: .hostname("fe80::1%eth0", port: 7000)),
        Valid(url: "redis://localhost:", address: .hostname("localhost", port: 6379)),  // empty port: the default
        Valid(url: "redis://h:06379", address: .hostname("h", port: 6379)),
        Valid(url: "redis://h:1", address: .hostname("h", port: 1)),
        Valid(url: "redis://h:65535", address: .hostname("h", port: 65535)),
        Valid(url: "redis://h/", address: .hostname("h", port: 6379)),
        Valid(url: "redis://h/%31", address: .hostname("h", port: 6379), database: 1),
        Valid(url: "redis://h?db=3", address: .hostname("h", port: 6379), database: 3),
        Valid(url: "redis://h/1?db=2", address: .hostname("h", port: 6379), database: 2),  // the query wins
        Valid(url: "redis://h?db=4&db=5", address: .hostname("h", port: 6379), database: 4),  // the first wins
        Valid(url: "redis://h/?&db=6&", address: .hostname("h", port: 6379), database: 6),
        Valid(url: "redis://:secret@h", address: .hostname("h", port: 6379), password: "secret"),
        Valid(url: "redis://user:secret@h:1/3", address: .hostname("h", port: 1), username: "user", password: "secret", database: 3),
        Valid(url: "redis://user@h", address: .hostname("h", port: 6379), username: "user"),
        Valid(url: "redis://:@h", address: .hostname("h", port: 6379)),
        Valid(url: "redis://us%40er:p%40ss%3Aw%2Frd@h", address: .hostname("h", port: 6379), username: "us@er", password: "p@ss:w/rd"),
        Valid(url: "redis://user:p@ss@h", address: .hostname("h", port: 6379), username: "user", password: "p@ss"),
        Valid(url: "redis://user:pa:ss@h", address: .hostname("h", port: 6379), username: "user", password: "pa:ss"),
        Valid(url: "redis://:100%@h", address: .hostname("h", port: 6379), password: "100%"),
        Valid(url: "redis://:%zz%4@h", address: .hostname("h", port: 6379), password: "%zz%4"),
        Valid(url: "redis://:%FF@h", address: .hostname("h", port: 6379), password: "\u{FFFD}"),
        Valid(url: "redis://:pässwörd@h", address: .hostname("h", port: 6379), password: "pässwörd"),
        Valid(url: "unix:///tmp/redis.sock", address: .unixDomainSocket(path: "/tmp/redis.sock")),
        Valid(url: "unix:///tmp/redis.sock?db=1", address: .unixDomainSocket(path: "/tmp/redis.sock"), database: 1),
        Valid(url: "UNIX:///run/redis/redis-server.sock", address: .unixDomainSocket(path: "/run/redis/redis-server.sock")),
        Valid(url: "unix://:pw@/tmp/redis.sock", address: .unixDomainSocket(path: "/tmp/redis.sock"), password: "pw"),
        Valid(url: "unix://user:pw@/tmp/redis.sock", address: .unixDomainSocket(path: "/tmp/redis.sock"), username: "user", password: "pw"),
        Valid(url: "unix:///tmp/my%20redis.sock", address: .unixDomainSocket(path: "/tmp/my redis.sock")),
    ]

    @Test(arguments: valid)
    func parsesValidURLs(_ valid: Valid) throws {
        let endpoint = try RedisEndpoint(url: valid.url)
        #expect(endpoint.address == valid.address)
        #expect(endpoint.username == valid.username)
        #expect(endpoint.password == valid.password)
        #expect(endpoint.database == valid.database)
    }

    /// What must appear in the message; the URL is always quoted, redacted, after "Invalid Redis URL".
    static let invalid: [(url: String, reason: String)] = [
        ("", "has no scheme"),
        ("localhost:6379", "has no scheme"),
        ("redis:/localhost", "has no scheme"),
        ("http://localhost", "the scheme must be redis://, rediss://, unix:// or redis+sentinel://"),
        ("redis+unix:///tmp/redis.sock", "for a Unix socket write unix:///path/to/socket"),
        ("rediss://localhost:0", "invalid port '0'"),
        ("rediss://localhost?ssl_cert_reqs=maybe", "invalid 'ssl_cert_reqs' 'maybe'; it must be required or none"),
        ("rediss://localhost?ssl_check_hostname=perhaps", "invalid 'ssl_check_hostname' 'perhaps'"),
        ("rediss://localhost?ssl_cert_reqs=none&ssl_check_hostname=true", "a host name cannot be checked without verifying"),
        ("rediss://localhost?ssl_keyfile=/k.pem", "has 'ssl_keyfile' without 'ssl_certfile'"),
        ("rediss://localhost?ssl_ca_certs=", "has an empty 'ssl_ca_certs'"),
        ("rediss://localhost?ssl_password=x", "unsupported query parameter 'ssl_password'"),
        ("redis://localhost?ssl_ca_certs=/ca.crt", "has the TLS parameter 'ssl_ca_certs', which needs a rediss:// URL"),
        ("unix:///tmp/redis.sock?ssl_cert_reqs=none", "which needs a rediss:// URL"),
        ("redis://", "has no host"),
        ("redis://:6379", "has no host"),
        ("redis://:pw@", "has no host"),
        ("redis:///0", "has no host"),
        ("redis://::1:6379", "IPv6 address without brackets"),
        ("redis://[::1", "without its closing ']'"),
        ("redis://[::1]6379", "only ':port' may follow it"),
        ("redis://[zz::1]", "invalid IPv6 address"),
        ("redis://[127.0.0.1]", "invalid IPv6 address"),
        ("redis://[fe80::1%25]", "invalid IPv6 address"),
        ("redis://hé", "invalid host name"),
        ("redis://h!st", "invalid host name"),
        ("redis://host:0", "invalid port '0'"),
        ("redis://host:65536", "invalid port '65536'"),
        ("redis://host:99999", "invalid port '99999'"),
        ("redis://host:abc", "invalid port 'abc'"),
        ("redis://host:-1", "invalid port '-1'"),
        ("redis://host:+1", "invalid port '+1'"),
        ("redis://host:6379:1", "invalid port '6379:1'"),
        ("redis://host:99999999999999999999999", "invalid port"),
        ("redis://ho st", "contains a space"),
        (" redis://host", "contains a space"),
        ("redis://host\n", "contains a control character"),
        ("redis://host/abc", "invalid database 'abc' in the path"),
        ("redis://host/-1", "invalid database '-1' in the path"),
        ("redis://host/1/2", "invalid database '1/2' in the path"),
        ("redis://host/1.5", "invalid database '1.5' in the path"),
        ("redis://host/99999999999999999999999", "in the path; it must be a non-negative integer"),
        ("redis://host?db=x", "invalid database 'x' in 'db'"),
        ("redis://host?db=-1", "invalid database '-1' in 'db'"),
        ("redis://host?db=", "invalid database '' in 'db'"),
        ("redis://host?db", "invalid database '' in 'db'"),
        ("redis://host?socket_timeout=5", "unsupported query parameter 'socket_timeout'"),
        ("redis://host#frag", "contains '#'"),
        ("redis://user:pa/ss@host", "has an '@' after the host; percent-encode"),
        ("redis://user:pa?ss@host", "has an '@' after the host; percent-encode"),
        ("unix://:pa?ss@/tmp/redis.sock", "has an '@' after the host; percent-encode"),
        ("unix://", "has no socket path"),
        ("unix:///", "has no socket path"),
        ("unix:///tmp/redis.sock?db=a", "invalid database 'a' in 'db'"),
        ("unix://tmp/redis.sock", "a unix:// URL takes no host"),
        ("unix://localhost/tmp/redis.sock", "a unix:// URL takes no host"),
    ]

    @Test func rejectsInvalidURLs() {
        for (url, reason) in Self.invalid {
            let error = #expect(throws: ChannelLayerError.self, "\(url.debugDescription)") { try RedisEndpoint(url: url) }
            #expect(error?.code == .invalidConfiguration, "\(url.debugDescription)")
            let message = error?.message ?? ""
            #expect(message.hasPrefix("Invalid Redis URL '"), "\(message)")
            #expect(message.contains(reason), "\(url.debugDescription): \(message)")
        }
    }

    @Test func namesTheURLInTheMessage() {
        let error = #expect(throws: ChannelLayerError.self) { try RedisEndpoint(url: "redis://cache.internal:0/1") }
        #expect(error?.message == "Invalid Redis URL 'redis://cache.internal:0/1': has an invalid port '0'; it must be a number from 1 to 65535")
        let control = #expect(throws: ChannelLayerError.self) { try RedisEndpoint(url: "redis://host\n") }
        #expect(control?.message.hasPrefix(#"Invalid Redis URL 'redis://host\n': "#) == true)
    }

    /// Every rejected URL here carries the password "hunter2" somewhere the parser might not expect it; none of it may
    /// reach the message or the error's description.
    @Test func neverShowsThePasswordOfARejectedURL() {
        let urls = [
            "redis://user:hunter2@host:0",
            "rediss://:hunter2@host:0",
            "rediss://:hunter2@host?ssl_password=hunter2",
            "http://user:hunter2@host",
            "redis://:hunter2@",
            "redis://:hunter2@ho st",
            "redis://:hunter2@host?socket_timeout=1",
            "redis://:hun#ter2@host",  // '#' in a password: the URL ends there
            "redis://:hun/ter2@host",  // '/' in a password: the authority ends there
            "redis://:hun?ter2@host",  // '?' in a password: the authority ends there
            "redis://host?password=hunter2",
            "redis://host?db=1&password=hunter2",
            "user:hunter2@host:6379",  // no scheme at all
            "unix://:hunter2@tmp/redis.sock",
        ]
        for url in urls {
            let error = #expect(throws: ChannelLayerError.self, "\(url)") { try RedisEndpoint(url: url) }
            for text in [error?.message ?? "", error.map(String.init(describing:)) ?? ""] {
                #expect(!text.contains("hunter2") && !text.contains("ter2") && !text.contains("hun"), "\(text)")
                #expect(text.contains("***"), "\(text)")
            }
        }
    }

    @Test func redactsOnlyTheSecretParts() {
        #expect(RedisEndpoint.redact("redis://user:pw@host:6379/1") == "redis://user:***@host:6379/1")
        #expect(RedisEndpoint.redact("redis://user@host") == "redis://user@host")
        #expect(RedisEndpoint.redact("redis://host?db=2&password=x") == "redis://host?db=2&password=***")
        #expect(RedisEndpoint.redact("redis://host") == "redis://host")
        #expect(RedisEndpoint.redact("a:b@c") == "a:***@c")
    }

    @Test func describesWithThePasswordHidden() throws {
        let cases: [(url: String, description: String)] = [
            ("redis://user:secret@host", "redis://user:***@host:6379/0"),
            ("redis://:secret@host:6380/2", "redis://:***@host:6380/2"),
            ("redis://user@host", "redis://user@host:6379/0"),
            ("redis://localhost", "redis://localhost:6379/0"),
            ("redis://[::1]:6380", "redis://[::1]:6380/0"),
            ("redis://[fe80::1%25eth0]", "redis://[fe80::1%25eth0]:6379/0"),
            ("redis://us%40er:x@host", "redis://us%40er:***@host:6379/0"),
            ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock"),
            ("unix://:secret@/tmp/redis.sock?db=2", "unix://:***@/tmp/redis.sock?db=2"),
            ("unix:///tmp/my%20redis.sock", "unix:///tmp/my%20redis.sock"),
        ]
        for (url, description) in cases {
            let endpoint = try RedisEndpoint(url: url)
            #expect(endpoint.description == description)
            #expect(!"\(endpoint)".contains("secret"))
        }
    }

    /// The description of an endpoint without a password is itself a URL for the same endpoint.
    @Test func descriptionParsesBackToTheSameEndpoint() throws {
        for valid in Self.valid where valid.password == nil {
            let endpoint = try RedisEndpoint(url: valid.url)
            #expect(try RedisEndpoint(url: endpoint.description) == endpoint, "\(valid.url)")
        }
    }

    @Test func equalEndpointsFromDifferentSpellings() throws {
        let canonical = try RedisEndpoint(url: "redis://localhost:6379/0")
        for url in ["redis://localhost", "REDIS://LOCALHOST", "redis://localhost:", "redis://localhost/", "redis://localhost?db=0"] {
            #expect(try RedisEndpoint(url: url) == canonical, "\(url)")
        }
        #expect(try RedisEndpoint(url: "redis://localhost/1") != canonical)
        #expect(Set([canonical, try RedisEndpoint(url: "redis://localhost")]).count == 1)
    }

    @Test(arguments: valid)
    func theURLOfAParsedEndpointParsesBackToIt(_ valid: Valid) throws {
        let endpoint = try RedisEndpoint(url: valid.url)
        #expect(try RedisEndpoint(url: endpoint.url) == endpoint, "\(endpoint.url)")
    }

    @Test func anEndpointBuiltFromPartsRoundTripsThroughItsURL() throws {
        let passwords = ["secret", "p@ss:w/rd", "a#b?c&d=e", "100%", "%41", " spaced ", "pässwörd", "\u{1F512}"]
        let addresses: [RedisEndpoint.Address] = [.hostname("redis.internal", port: 6380), .hostname("::1"), .hostname("fe80::1%eth0", port: 7000),
                                                  .unixDomainSocket(path: "/run/my redis/redis.sock")]
        for address in addresses {
            for password in passwords {
                for username in [nil, "user", "us@er:x"] {
                    let endpoint = RedisEndpoint(address: address, username: username, password: password, database: 3)
                    let parsed = try RedisEndpoint(url: endpoint.url)
                    #expect(parsed == endpoint, "\(endpoint.url)")
                    #expect(!endpoint.description.contains(password), "\(endpoint.description)")
                }
            }
        }
        #expect(RedisEndpoint.Address.hostname("::1", port: 6380).description == "[::1]:6380")
        #expect(RedisEndpoint.Address.hostname("h").port == 6379)
        #expect(RedisEndpoint.Address.unixDomainSocket(path: "/s").socketPath == "/s")
        #expect(RedisEndpoint.Address.unixDomainSocket(path: "/s").host == nil)
    }

    @Test func memberwiseInitializerDefaults() {
        let endpoint = RedisEndpoint(address: .hostname("localhost", port: RedisEndpoint.defaultPort))
        #expect(endpoint.username == nil && endpoint.password == nil && endpoint.database == 0)
        #expect(endpoint.description == "redis://localhost:6379/0")
    }
}
