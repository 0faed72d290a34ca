import ChannelsRedisTestSupport
import Foundation

/// A Sentinel deployment of the test's own on loopback ports: a master, one replica and three
/// sentinels monitoring them as `mymaster` (quorum 2), each a ``RedisServer`` stopped by its pid.
///
/// Tuned to fail over quickly: a node is down after 1 s without answers, and a failover may be
/// retried after 5 s. With `tls`, every process also listens on a TLS port, replication and the
/// sentinels' own links use TLS, and ``url`` names the TLS ports (`rediss+sentinel://`); the plain
/// ports stay open for the fixture's commands only.
///
/// ```swift
/// let deployment = try await SentinelDeployment.start()
/// defer { deployment.stop() }
/// let layer = try RedisPubSubChannelLayer(hosts: [deployment.url])
/// try await deployment.failover()
/// ```
final class SentinelDeployment: Sendable {
    static let masterName = "mymaster"

    /// The two data nodes, in start order: `nodes[0]` is the master at first.
    let nodes: [RedisServer]
    let sentinels: [RedisServer]
    /// The port the layer and the sentinels use for each node and each sentinel: its TLS port with
    /// `tls`, else its plain port.
    let nodePorts: [Int]
    let sentinelPorts: [Int]
    let tls: TLSCertificates?
    /// The data nodes' password (`requirepass` and `masterauth`), if any.
    let password: String?
    /// The sentinels' own password, if any.
    let sentinelPassword: String?

    private init(
        nodes: [RedisServer],
        sentinels: [RedisServer],
        nodePorts: [Int],
        sentinelPorts: [Int],
        tls: TLSCertificates?,
        password: String?,
        sentinelPassword: String?
    ) {
        self.nodes = nodes
        self.sentinels = sentinels
        self.nodePorts = nodePorts
        self.sentinelPorts = sentinelPorts
        self.tls = tls
        self.password = password
        self.sentinelPassword = sentinelPassword
    }

    /// Starts the master, then the replica, waits until it replicates, then starts the sentinels and
    /// waits until they agree on the master, see the replica and see each other.
    static func start(password: String? = nil, sentinelPassword: String? = nil, tls: TLSCertificates? = nil) async throws -> SentinelDeployment {
        let auth = password.map { ["--requirepass", $0, "--masterauth", $0] } ?? []
        /// A TLS port and its arguments, or the plain port's.
        func listener() throws -> (port: Int?, arguments: [String]) {
            guard let tls else { return (nil, []) }
            let port = try LoopbackSocket.freeServerPort()
            return (port, tls.serverArguments(tlsPort: port) + ["--tls-replication", "yes"])
        }
        let masterTLS = try listener()
        let master = try await RedisServer.start(arguments: auth + masterTLS.arguments)
        let masterPort = masterTLS.port ?? master.port
        let replicaTLS = try listener()
        let replica = try await RedisServer.start(arguments: auth + replicaTLS.arguments + ["--replicaof", "127.0.0.1", String(masterPort)])
        try await Self.waitFor("the replica to sync with the master", timeout: .seconds(30)) {
            let info = try await replica.command(["INFO", "replication"]).string ?? ""
            return info.contains("master_link_status:up")
        }
        var configuration = """
            sentinel monitor \(masterName) 127.0.0.1 \(masterPort) 2
            sentinel down-after-milliseconds \(masterName) 1000
            sentinel failover-timeout \(masterName) 5000
            sentinel parallel-syncs \(masterName) 1

            """
        if let password { configuration += "sentinel auth-pass \(masterName) \(password)\n" }
        if let sentinelPassword { configuration += "sentinel sentinel-pass \(sentinelPassword)\n" }
        let sentinelArguments = ["--sentinel"] + (sentinelPassword.map { ["--requirepass", $0] } ?? [])
        var sentinels: [RedisServer] = []
        var sentinelPorts: [Int] = []
        for _ in 0..<3 {
            let sentinelTLS = try listener()
            let sentinel = try await RedisServer.start(arguments: sentinelArguments + sentinelTLS.arguments, configuration: configuration)
            sentinels.append(sentinel)
            sentinelPorts.append(sentinelTLS.port ?? sentinel.port)
        }
        let deployment = SentinelDeployment(
            nodes: [master, replica],
            sentinels: sentinels,
            nodePorts: [masterPort, replicaTLS.port ?? replica.port],
            sentinelPorts: sentinelPorts,
            tls: tls,
            password: password,
            sentinelPassword: sentinelPassword
        )
        do {
            try await deployment.waitUntilSettled()
        } catch {
            deployment.stop()
            throw error
        }
        return deployment
    }

    /// `redis+sentinel://[:password@]127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/mymaster[?sentinel_password=…]`, or
    /// with `tls` `rediss+sentinel://…?ssl_ca_certs=<the test CA>[&sentinel_password=…]` on the TLS ports.
    var url: String {
        let credentials = password.map { ":\($0)@" } ?? ""
        let hosts = sentinelPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",")
        var parameters: [String] = []
        if let tls { parameters.append("ssl_ca_certs=\(tls.caCertificate)") }
        if let sentinelPassword { parameters.append("sentinel_password=\(sentinelPassword)") }
        let query = parameters.isEmpty ? "" : "?" + parameters.joined(separator: "&")
        return "\(tls == nil ? "redis" : "rediss")+sentinel://\(credentials)\(hosts)/\(Self.masterName)\(query)"
    }

    /// The port the layer connects to on `node`: its TLS port with `tls`.
    func layerPort(of node: RedisServer) -> Int {
        nodePorts[nodes.firstIndex { $0 === node }!]
    }

    private func node(atPort port: Int) -> RedisServer? {
        nodePorts.firstIndex(of: port).map { nodes[$0] }
    }

    /// The data node the sentinels name the master now (asked of the first sentinel that answers).
    func master() async throws -> RedisServer {
        let port = try await masterPort()
        guard let node = node(atPort: port) else {
            throw FixtureError(.startFailed, "the sentinels name 127.0.0.1:\(port) the master, which is not a node of this deployment")
        }
        return node
    }

    /// What `SENTINEL get-master-addr-by-name` says, from the first sentinel that answers.
    func masterPort() async throws -> Int {
        var problems: [String] = []
        for sentinel in sentinels where sentinel.isRunning {
            do {
                let reply = try await sentinel.command(["SENTINEL", "get-master-addr-by-name", Self.masterName])
                if let fields = reply.array, fields.count == 2, let port = fields[1].string.flatMap({ Int($0) }) { return port }
                problems.append("\(sentinel.port): \(reply)")
            } catch {
                problems.append("\(sentinel.port): \(error)")
            }
        }
        throw FixtureError(.startFailed, "no sentinel named the master: \(problems.joined(separator: "; "))")
    }

    /// `SENTINEL FAILOVER mymaster` on the first sentinel, then waits until every sentinel names the
    /// other node and it says `ROLE master`. Returns the new master.
    @discardableResult
    func failover(timeout: Duration = .seconds(30)) async throws -> RedisServer {
        let old = try await master()
        let reply = try await sentinels[0].command(["SENTINEL", "FAILOVER", Self.masterName])
        guard reply.string == "OK" else { throw FixtureError(.startFailed, "SENTINEL FAILOVER answered \(reply)") }
        return try await waitForNewMaster(replacing: old, timeout: timeout)
    }

    /// Waits until every running sentinel names a master other than `old` and that node says
    /// `ROLE master`.
    func waitForNewMaster(replacing old: RedisServer, timeout: Duration = .seconds(30)) async throws -> RedisServer {
        var newMaster: RedisServer?
        try await Self.waitFor("the sentinels to name a new master instead of 127.0.0.1:\(layerPort(of: old))", timeout: timeout) {
            var ports = Set<Int>()
            for sentinel in self.sentinels where sentinel.isRunning {
                let reply = try await sentinel.command(["SENTINEL", "get-master-addr-by-name", Self.masterName])
                guard let port = reply.array?.last?.string.flatMap({ Int($0) }) else { return false }
                ports.insert(port)
            }
            guard ports.count == 1, let port = ports.first, port != self.layerPort(of: old), let node = self.node(atPort: port)
            else { return false }
            let role = try await node.command(["ROLE"])
            guard role.array?.first?.string == "master" else { return false }
            newMaster = node
            return true
        }
        return newMaster!
    }

    /// Stops every process. Idempotent.
    func stop() {
        for sentinel in sentinels { sentinel.stop() }
        for node in nodes { node.stop() }
    }

    /// The sentinels' logs, for a failure message.
    func sentinelLogs(lines: Int = 15) -> String {
        sentinels.enumerated().map { index, sentinel in "sentinel \(index) (\(sentinel.port)):\n\(sentinel.logTail(lines: lines))" }
            .joined(separator: "\n")
    }

    private func waitUntilSettled() async throws {
        try await Self.waitFor("the sentinels to see the master, the replica and each other", timeout: .seconds(60)) {
            for sentinel in self.sentinels {
                let quorum = try await sentinel.command(["SENTINEL", "CKQUORUM", Self.masterName])
                guard quorum.string?.hasPrefix("OK 3 usable") == true else { return false }
                let replicas = try await sentinel.command(["SENTINEL", "REPLICAS", Self.masterName])
                guard replicas.array?.count == 1 else { return false }
                let named = try await sentinel.command(["SENTINEL", "get-master-addr-by-name", Self.masterName])
                guard named.array?.last?.string == String(self.nodePorts[0]) else { return false }
            }
            return true
        }
    }

    /// Polls `condition` every 100 ms until it holds; a thrown error counts as "not yet".
    static func waitFor(_ what: String, timeout: Duration, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        var lastError = ""
        while ContinuousClock.now < deadline {
            do {
                if try await condition() { return }
            } catch {
                lastError = " (last error: \(error))"
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw FixtureError(.startFailed, "timed out after \(timeout) waiting for \(what)\(lastError)")
    }
}
