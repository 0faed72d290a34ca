import Testing

@testable import ChannelsRedis

@Suite struct RedisEndpointTLSTests {
    @Test func aRedissURLVerifiesAgainstTheSystemStoreByDefault() throws {
        let endpoint = try RedisEndpoint(url: "rediss://:pw@redis.internal:6380/1")
        #expect(endpoint.address.host == "redis.internal" && endpoint.address.port == 6380)
        let tls = try #require(endpoint.address.tls)
        #expect(tls == .default)
        #expect(tls.trustRoots == .system && tls.verification == .fullVerification)
        #expect(tls.certificateFile == nil && tls.privateKeyFile == nil && tls.serverName == nil)
        #expect(endpoint.password == "pw" && endpoint.database == 1)
        #expect(endpoint.description == "rediss://:***@redis.internal:6380/1")
        #expect(try RedisEndpoint(url: "redis://host").address.tls == nil)
    }

    @Test func readsRedisPysSSLParameters() throws {
        let endpoint = try RedisEndpoint(
            url: "rediss://127.0.0.1:6380?ssl_ca_certs=/etc/redis/ca.crt&ssl_certfile=/c.pem&ssl_keyfile=%2Fk.pem&ssl_check_hostname=False&db=3"
        )
        let tls = try #require(endpoint.address.tls)
        #expect(tls.trustRoots == .certificateFile("/etc/redis/ca.crt"))
        #expect(tls.certificateFile == "/c.pem" && tls.privateKeyFile == "/k.pem")
        #expect(tls.verification == .noHostnameVerification)
        #expect(endpoint.database == 3)

        let insecure = try RedisEndpoint(url: "rediss://host?ssl_cert_reqs=none").address.tls
        #expect(insecure?.verification == .insecureNoVerification)
        let insecureNoCheck = try RedisEndpoint(url: "rediss://host?ssl_cert_reqs=NONE&ssl_check_hostname=0").address.tls
        #expect(insecureNoCheck?.verification == .insecureNoVerification)
        for required in ["required", "optional", "Required"] {
            let tls = try RedisEndpoint(url: "rediss://host?ssl_cert_reqs=\(required)&ssl_check_hostname=true").address.tls
            #expect(tls?.verification == .fullVerification, "\(required)")
        }
        #expect(try RedisEndpoint(url: "rediss://host?ssl_server_name=redis.example").address.tls?.serverName == "redis.example")
    }

    @Test func urlRoundTripsTheTLSSettings() throws {
        let settings: [RedisEndpoint.TLS] = [
            .default,
            RedisEndpoint.TLS(trustRoots: .certificateFile("/etc/redis/ca dir/ca.crt")),
            RedisEndpoint.TLS(certificateFile: "/c.pem", privateKeyFile: "/k.pem", verification: .noHostnameVerification),
            RedisEndpoint.TLS(verification: .insecureNoVerification, serverName: "redis.example"),
        ]
        for tls in settings {
            let endpoint = RedisEndpoint(address: .hostname("10.0.0.5", port: 6380, tls: tls), password: "p@ss&word")
            #expect(endpoint.url.hasPrefix("rediss://:p%40ss%26word@10.0.0.5:6380/0"), "\(endpoint.url)")
            #expect(try RedisEndpoint(url: endpoint.url) == endpoint, "\(endpoint.url)")
            #expect(!endpoint.description.contains("word"))
        }
        let example = RedisEndpoint(address: .hostname("127.0.0.1", port: 6380, tls: .init(trustRoots: .certificateFile("/etc/redis/ca.crt"))))
        #expect(example.url == "rediss://127.0.0.1:6380/0?ssl_ca_certs=/etc/redis/ca.crt")
    }

    @Test func redactionShowsTheSSLParametersAndHidesThePassword() {
        #expect(
            RedisEndpoint.redact("rediss://u:pw@host:6380?ssl_ca_certs=/ca.crt&ssl_cert_reqs=none&password=x")
                == "rediss://u:***@host:6380?ssl_ca_certs=/ca.crt&ssl_cert_reqs=none&password=***"
        )
    }
}
