import Testing

@testable import ChannelsRedis

@Suite struct RedisEndpointSentinelTests {
    private static func sentinel(
        _ name: String,
        _ nodes: [(String, Int)],
        username: String? = nil,
        password: String? = nil
    ) -> RedisEndpoint.Address {
        .sentinel(RedisEndpoint.Sentinel(masterName: name, sentinels: nodes.map { .hostname($0.0, port: $0.1) }, username: username, password: password))
    }

    static let valid: [(url: String, endpoint: RedisEndpoint)] = [
        (
            "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/mymaster",
            RedisEndpoint(address: sentinel("mymaster", [("10.0.0.1", 26379), ("10.0.0.2", 26380)]))
        ),
        ("redis+sentinel://sentinel.internal/mymaster", RedisEndpoint(address: sentinel("mymaster", [("sentinel.internal", 26379)]))),
        ("REDIS+SENTINEL://S1:,[::1]/m/3", RedisEndpoint(address: sentinel("m", [("s1", 26379), ("::1", 26379)]), database: 3)),
        ("redis+sentinel://h/m/?db=2", RedisEndpoint(address: sentinel("m", [("h", 26379)]), database: 2)),
        ("redis+sentinel://h/my%2Fmaster", RedisEndpoint(address: sentinel("my/master", [("h", 26379)]))),
        (
            "redis+sentinel://user:p%40ss@h:1,h:2/m?sentinel_password=s%26cret&sentinel_username=watcher",
            RedisEndpoint(
                address: sentinel("m", [("h", 1), ("h", 2)], username: "watcher", password: "s&cret"),
                username: "user",
                password: "p@ss"
            )
        ),
        ("redis+sentinel://h/m?sentinel_password=", RedisEndpoint(address: sentinel("m", [("h", 26379)]))),
        (
            "rediss+sentinel://h1,h2:7/m?ssl_ca_certs=/etc/redis/ca.crt&sentinel_password=x&ssl_check_hostname=false",
            RedisEndpoint(
                address: .sentinel(
                    RedisEndpoint.Sentinel(masterName: "m", sentinels: [.hostname("h1", port: 26379), .hostname("h2", port: 7)], password: "x"),
                    tls: RedisEndpoint.TLS(trustRoots: .certificateFile("/etc/redis/ca.crt"), verification: .noHostnameVerification)
                )
            )
        ),
    ]

    @Test func parsesSentinelURLs() throws {
        for (url, expected) in Self.valid {
            let endpoint = try RedisEndpoint(url: url)
            #expect(endpoint == expected, "\(url)")
            #expect(try RedisEndpoint(url: endpoint.url) == endpoint, "\(endpoint.url)")
        }
    }

    @Test func rejectsMalformedSentinelURLs() {
        let invalid: [(url: String, reason: String)] = [
            ("redis+sentinel://h:26379", "names no master"),
            ("redis+sentinel://h:26379/", "names no master"),
            ("redis+sentinel://h:26379//0", "names no master"),
            ("redis+sentinel:///mymaster", "has an empty sentinel address"),
            ("redis+sentinel://a,,b/mymaster", "has an empty sentinel address"),
            ("redis+sentinel://a,/mymaster", "has an empty sentinel address"),
            ("redis+sentinel://a:0/mymaster", "invalid port '0'"),
            ("redis+sentinel://a/m/x", "invalid database 'x' in the path"),
            ("redis+sentinel://a/m/1/2", "invalid database '1/2' in the path"),
            ("redis+sentinel://a/my%20master", "master name with a space"),
            ("redis+sentinel://a/m?sentinel_kwargs=x", "unsupported query parameter 'sentinel_kwargs'"),
            ("redis+sentinel://a/m?ssl_ca_certs=/ca", "which needs a rediss:// URL"),
            ("redis://a?sentinel_password=x", "which needs a redis+sentinel:// URL"),
            ("rediss+sentinel://a/m?ssl_keyfile=/k.pem", "has 'ssl_keyfile' without 'ssl_certfile'"),
            ("redis+sentinel://:pa/ss@a/m", "has an '@' after the host"),
        ]
        for (url, reason) in invalid {
            let error = #expect(throws: ChannelLayerError.self, "\(url)") { try RedisEndpoint(url: url) }
            #expect(error?.code == .invalidConfiguration)
            #expect(error?.message.contains(reason) == true, "\(url): \(error?.message ?? "-")")
        }
    }

    @Test func hidesBothPasswords() throws {
        let endpoint = try RedisEndpoint(url: "redis+sentinel://:data-pw@h:1,[::1]:2/m/1?sentinel_password=sentinel-pw")
        #expect(endpoint.description == "redis+sentinel://:***@h:1,[::1]:2/m/1?sentinel_password=***")
        #expect(endpoint.address.description == "m@h:1,[::1]:2")
        #expect(!endpoint.description.contains("pw"))
        let tls = try RedisEndpoint(url: "rediss+sentinel://:data-pw@h/m?sentinel_password=sentinel-pw&ssl_ca_certs=/ca.crt")
        #expect(tls.description == "rediss+sentinel://:***@h:26379/m/0?sentinel_password=***&ssl_ca_certs=/ca.crt")
        let rejected = #expect(throws: ChannelLayerError.self) { try RedisEndpoint(url: "redis+sentinel://:data-pw@h/m?sentinel_password=sentinel-pw&x=1") }
        #expect(rejected?.message.contains("pw") == false, "\(rejected?.message ?? "")")
    }

    @Test func anEndpointBuiltFromPartsRoundTripsThroughItsURL() throws {
        for password in [nil, "secret", "p@ss:w/rd", "a#b?c&d=e", "100%", "pässwörd"] {
            let settings = RedisEndpoint.Sentinel(
                masterName: "cache-1",
                sentinels: [.hostname("s1.internal", port: RedisEndpoint.Sentinel.defaultPort), .hostname("fe80::1%eth0", port: 7000)],
                username: password == nil ? nil : "watcher",
                password: password
            )
            let endpoint = RedisEndpoint(address: .sentinel(settings), password: password, database: 2)
            #expect(try RedisEndpoint(url: endpoint.url) == endpoint, "\(endpoint.url)")
            #expect(endpoint.address.sentinel == settings)
            #expect(endpoint.address.host == nil && endpoint.address.port == nil)
        }
    }

    @Test func theLayerAcceptsASentinelHost() async throws {
        let layer = try RedisPubSubChannelLayer(hosts: ["redis+sentinel://127.0.0.1:1/mymaster"])
        #expect(layer.shardStatuses.count == 1)
        await layer.close()
    }
}
