import Testing

@testable import ChannelsRedis

@Suite struct RedisClusterEndpointTests {
    @Test func parsesSeedsAndCredentials() throws {
        let cluster = try RedisClusterEndpoint(url: "redis-cluster://user:p%40ss@10.0.0.1:7000,Node-2.Internal:7001,[::1]:7002,host")
        #expect(
            cluster.seeds == [
                .hostname("10.0.0.1", port: 7000), .hostname("node-2.internal", port: 7001), .hostname("::1", port: 7002),
                .hostname("host", port: 6379),
            ]
        )
        #expect(cluster.username == "user")
        #expect(cluster.password == "p@ss")
        #expect(
            cluster.endpoint(for: cluster.seeds[1])
                == RedisEndpoint(address: .hostname("node-2.internal", port: 7001), username: "user", password: "p@ss")
        )
    }

    @Test(arguments: [
        "redis-cluster://127.0.0.1:7000",
        "REDIS-CLUSTER://127.0.0.1:7000/",
        "redis-cluster://127.0.0.1:7000/0",
        "redis-cluster://:secret@127.0.0.1:7000,127.0.0.1:7001",
        "redis-cluster://user@127.0.0.1:7000",
    ])
    func acceptsValidURLs(_ url: String) throws {
        let cluster = try RedisClusterEndpoint(url: url)
        #expect(!cluster.seeds.isEmpty)
        #expect(RedisClusterEndpoint.isClusterURL(url))
    }

    @Test func repeatedSeedsCountOnce() throws {
        let cluster = try RedisClusterEndpoint(url: "redis-cluster://h:1,H:1,h:2")
        #expect(cluster.seeds == [.hostname("h", port: 1), .hostname("h", port: 2)])
    }

    @Test(arguments: [
        ("redis-cluster://", "no seed node"),
        ("redis-cluster://:pw@", "no seed node"),
        ("redis-cluster://a:1,,b:2", "empty seed node (number 2)"),
        ("redis-cluster://a:1,", "empty seed node (number 2)"),
        ("redis-cluster://a:0", "seed node 1 'a:0' has an invalid port"),
        ("redis-cluster://a:1,b:99999", "seed node 2 'b:99999' has an invalid port"),
        ("redis-cluster://a:1,::1:2", "IPv6 address without brackets"),
        ("redis-cluster://a:1/1", "only database 0"),
        ("redis-cluster://a:1?db=0", "takes no query parameters"),
        ("redis-cluster://a:1#x", "'#'"),
        ("redis-cluster://a b:1", "a space"),
        ("redis://a:1", "scheme must be redis-cluster://"),
        ("redis-cluster://:pass/word@a:1", "'@' after the hosts"),
    ])
    func rejectsInvalidURLs(_ url: String, _ reason: String) {
        #expect {
            _ = try RedisClusterEndpoint(url: url)
        } throws: { error in
            guard let error = error as? ChannelLayerError, error.code == .invalidConfiguration else { return false }
            return error.message.contains(reason)
        }
    }

    @Test func theURLRoundTripsAndTheDescriptionHidesThePassword() throws {
        let cluster = RedisClusterEndpoint(seeds: [.hostname("10.0.0.1", port: 7000), .hostname("fe80::1%eth0", port: 7001)], password: "s/e@c#r")
        #expect(cluster.url == "redis-cluster://:s%2Fe%40c%23r@10.0.0.1:7000,[fe80::1%25eth0]:7001")
        #expect(cluster.description == "redis-cluster://:***@10.0.0.1:7000,[fe80::1%25eth0]:7001")
        #expect(try RedisClusterEndpoint(url: cluster.url) == cluster)
    }

    @Test func anErrorNeverQuotesThePassword() {
        #expect {
            _ = try RedisClusterEndpoint(url: "redis-cluster://:hunter2@a:1,,b:2")
        } throws: { error in
            "\(error)".contains("hunter2") == false && "\(error)".contains("***")
        }
    }

    @Test func seedsBuiltFromPartsAreChecked() {
        #expect(throws: ChannelLayerError.self) { try RedisClusterEndpoint(seeds: []).validated() }
        #expect(throws: ChannelLayerError.self) { try RedisClusterEndpoint(seeds: [.unixDomainSocket(path: "/tmp/r.sock")]).validated() }
        #expect(throws: ChannelLayerError.self) { try RedisClusterEndpoint(seeds: [.hostname("h", port: 7000, tls: .default)]).validated() }
        #expect(throws: ChannelLayerError.self) { try RedisClusterEndpoint(seeds: [.hostname("bad host", port: 7000)]).validated() }
        #expect((try? RedisClusterEndpoint(seeds: [.hostname("H", port: 7000)]).validated())?.seeds == [.hostname("h", port: 7000)])
    }
}
