import ChannelsRedisTestSupport
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A Redis Cluster of the test's own: primaries with replicas, every node a ``RedisServer`` on a free loopback port
/// whose bus port (`port + 10000`) is free too, joined by `redis-cli --cluster create`, stopped by pid.
///
/// ```swift
/// let cluster = try await RedisCluster.start()  // 3 primaries, 1 replica each
/// defer { cluster.stop() }
/// let layer = try RedisPubSubChannelLayer(configuration: .init(hosts: [cluster.url]))
/// let owner = try await cluster.ownerPort(ofSlot: 42)
/// ```
///
/// Every node runs with `--cluster-enabled yes --cluster-config-file nodes-PORT.conf` in its own temporary directory
/// (so a node killed and restarted by a fault test keeps its identity) and a short `--cluster-node-timeout`, so that a
/// killed primary's replica takes over within a few seconds. A missing `redis-server` or `redis-cli` is a failure
/// with a clear message, not a skip.
///
/// `Sendable` without `@unchecked`: every stored property is a `let` of a `Sendable` type.
final class RedisCluster: Sendable {
    /// How long forming the cluster may take, from the first node's launch to every node reporting `cluster_state:ok`
    /// with its replicas in sync. Generous, as ``RedisServer/readinessTimeout`` is: 2 cores shared by parallel suites.
    static let readinessTimeout: Duration = .seconds(60)

    /// Server ports come from here so that their bus ports (`+ 10000`, 30000–32767) stay below Linux's ephemeral range
    /// (32768–60999): an outgoing connection's local port could otherwise take a bus port between our check and the bind.
    static let portRange = 20_000..<22_768

    /// Every node, in the order given to `redis-cli --cluster create`: the first `primaryCount` were made primaries.
    let nodes: [RedisServer]
    let primaryCount: Int
    /// `--cluster-node-timeout` of every node.
    let nodeTimeout: Duration
    /// The `--requirepass` (and `--masterauth`) of every node, if any.
    let password: String?
    /// A temporary directory of the cluster's own: the `redis-cli --cluster` log.
    let directory: String

    private init(nodes: [RedisServer], primaryCount: Int, nodeTimeout: Duration, password: String?, directory: String) {
        self.nodes = nodes
        self.primaryCount = primaryCount
        self.nodeTimeout = nodeTimeout
        self.password = password
        self.directory = directory
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Starts `primaries` primaries with `replicasPerPrimary` replicas each and waits until the cluster is formed.
    ///
    /// - Parameters:
    ///   - nodeTimeout: `--cluster-node-timeout`; a failed primary's replica is promoted a little after it.
    ///   - password: `--requirepass` and `--masterauth` on every node.
    ///   - arguments: more `redis-server` arguments for every node.
    /// - Throws: ``FixtureError`` `.notFound` for a missing binary, `.startFailed` with the log when `redis-cli` fails or
    ///   the cluster is not ready within ``readinessTimeout``.
    static func start(
        primaries: Int = 3,
        replicasPerPrimary: Int = 1,
        nodeTimeout: Duration = .milliseconds(2_000),
        password: String? = nil,
        arguments: [String] = []
    ) async throws -> RedisCluster {
        guard let cli = ChildProcess.locate("redis-cli", extraDirectories: ["/usr/bin", "/usr/local/bin"]) else {
            throw FixtureError(.notFound, "redis-cli not found: install it with `apt-get install -y redis-tools` or run `bash .ci/test`")
        }
        var template = Array((NSTemporaryDirectory() + "/channels-redis-cluster-XXXXXX").utf8CString)
        guard let created = mkdtemp(&template) else {
            throw FixtureError.systemCall("mkdtemp")
        }
        let directory = String(cString: created)
        let count = primaries * (1 + replicasPerPrimary)
        let timeoutMilliseconds = Int(nodeTimeout / .milliseconds(1))
        var nodes: [RedisServer] = []
        do {
            var taken: Set<Int> = []
            while nodes.count < count {
                let port = try freeClusterPort(avoiding: taken)
                taken.insert(port)
                var nodeArguments = [
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes-\(port).conf",
                    "--cluster-node-timeout", String(timeoutMilliseconds),
                ]
                if let password { nodeArguments += ["--requirepass", password, "--masterauth", password] }
                do {
                    nodes.append(try await RedisServer.start(port: port, arguments: nodeArguments + arguments))
                } catch let error as FixtureError where error.kind == .addressInUse {
                    continue  // taken between the check and the bind (or its bus port was): another port
                }
            }
            let cluster = RedisCluster(nodes: nodes, primaryCount: primaries, nodeTimeout: nodeTimeout, password: password, directory: directory)
            try await cluster.create(cli: cli, replicasPerPrimary: replicasPerPrimary)
            try await cluster.waitUntilReady(timeout: readinessTimeout)
            return cluster
        } catch {
            for node in nodes { node.stop() }
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    /// Every node's port.
    var ports: [Int] { nodes.map(\.port) }

    /// `redis-cluster://127.0.0.1:P1,127.0.0.1:P2,…` with every node as a seed (and the password, if any).
    var url: String { url(seeds: nodes) }

    /// `redis-cluster://` with only `seeds` as seed nodes.
    func url(seeds: [RedisServer]) -> String {
        let credentials = password.map { ":\($0)@" } ?? ""
        return "redis-cluster://\(credentials)" + seeds.map { "127.0.0.1:\($0.port)" }.joined(separator: ",")
    }

    /// The node listening on `port`.
    func node(port: Int) -> RedisServer? { nodes.first { $0.port == port } }

    /// SIGTERM every node by its pid (SIGKILL after a grace period), and reap them. Idempotent.
    func stop() {
        for node in nodes { node.stop() }
    }

    /// `command` on the node at `port` (AUTH with the cluster's password).
    func command(_ arguments: [String], port: Int, timeout: Duration = .seconds(5)) async throws -> RESPValue {
        try await RESPClient.command(arguments, port: port, password: password, timeout: timeout)
    }

    /// The server's own `CLUSTER KEYSLOT name`, asked of a running node.
    func keySlot(_ name: String) async throws -> Int {
        let reply = try await command(["CLUSTER", "KEYSLOT", name], port: try runningNode().port)
        guard let slot = reply.integer else {
            throw FixtureError(.protocolViolation, "CLUSTER KEYSLOT \(name) answered \(reply)")
        }
        return slot
    }

    /// The nodes as a running node's `CLUSTER NODES` describes them: a text format, read here independently of the
    /// library's `CLUSTER SHARDS` parser so that tests can check one against the other.
    func clusterNodes(askingPort port: Int? = nil) async throws -> [NodeInfo] {
        let asked = try port ?? runningNode().port
        let reply = try await command(["CLUSTER", "NODES"], port: asked)
        guard let text = reply.string else {
            throw FixtureError(.protocolViolation, "CLUSTER NODES answered \(reply)")
        }
        return try text.split(whereSeparator: \.isNewline).map { line in
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count >= 8, let colon = fields[1].lastIndex(of: ":"),
                let port = Int(fields[1][fields[1].index(after: colon)...].prefix { $0.isNumber })
            else {
                throw FixtureError(.protocolViolation, "CLUSTER NODES line not understood: \(line)")
            }
            let flags = Set(fields[2].split(separator: ",").map(String.init))
            var slots: [ClosedRange<Int>] = []
            for field in fields.dropFirst(8) where !field.hasPrefix("[") {
                let bounds = field.split(separator: "-").compactMap { Int($0) }
                if bounds.count == 2 { slots.append(bounds[0]...bounds[1]) } else if bounds.count == 1 { slots.append(bounds[0]...bounds[0]) }
            }
            return NodeInfo(id: fields[0], port: port, flags: flags, primaryID: fields[3] == "-" ? nil : fields[3], slots: slots)
        }
    }

    /// One line of `CLUSTER NODES`.
    struct NodeInfo: Sendable, Equatable {
        var id: String
        var port: Int
        var flags: Set<String>
        /// A replica's primary.
        var primaryID: String?
        var slots: [ClosedRange<Int>]

        var isPrimary: Bool { flags.contains("master") }
        var isFailed: Bool { flags.contains("fail") || flags.contains("fail?") }
    }

    /// The port of the primary that serves `slot`, as `CLUSTER NODES` says.
    func ownerPort(ofSlot slot: Int) async throws -> Int {
        let owners = try await clusterNodes().filter { $0.isPrimary && !$0.isFailed && $0.slots.contains { $0.contains(slot) } }
        guard let owner = owners.first else {
            throw FixtureError(.protocolViolation, "no primary serves slot \(slot)")
        }
        return owner.port
    }

    /// Moves `slots` from the primary on `sourcePort` to the one on `targetPort`, as `redis-cli --cluster reshard` does
    /// for slots without keys: `CLUSTER SETSLOT … IMPORTING` on the target, `MIGRATING` on the source, then `NODE` on
    /// the target, the source and every other primary. Sharded pub/sub channels are not keys: the source ends their
    /// subscriptions with a `sunsubscribe` push when it gives the slot up.
    func migrate(slots: [Int], from sourcePort: Int, to targetPort: Int) async throws {
        for slot in slots {
            try await openMigration(slot: slot, from: sourcePort, to: targetPort)
            try await finishMigration(slot: slot, from: sourcePort, to: targetPort)
        }
    }

    /// The first half of a migration: `slot` IMPORTING on the target, MIGRATING on the source (which still owns it).
    func openMigration(slot: Int, from sourcePort: Int, to targetPort: Int) async throws {
        let (source, target, _) = try await migrationNodes(from: sourcePort, to: targetPort)
        try await setSlot(
            slot,
            [(targetPort, ["IMPORTING", source.id]), (sourcePort, ["MIGRATING", target.id])]
        )
    }

    /// The second half: `slot` assigned to the target, on the target, the source and every other primary.
    func finishMigration(slot: Int, from sourcePort: Int, to targetPort: Int) async throws {
        let (_, target, others) = try await migrationNodes(from: sourcePort, to: targetPort)
        try await setSlot(slot, ([targetPort, sourcePort] + others).map { ($0, ["NODE", target.id]) })
    }

    private func migrationNodes(from sourcePort: Int, to targetPort: Int) async throws -> (source: NodeInfo, target: NodeInfo, others: [Int]) {
        let nodes = try await clusterNodes()
        guard let source = nodes.first(where: { $0.port == sourcePort }), let target = nodes.first(where: { $0.port == targetPort }) else {
            throw FixtureError(.protocolViolation, "no node on \(sourcePort) or \(targetPort)")
        }
        let others = nodes.filter { $0.isPrimary && !$0.isFailed && $0.port != sourcePort && $0.port != targetPort }.map(\.port)
        return (source, target, others)
    }

    /// `CLUSTER SETSLOT slot …` on each port in turn; each must answer OK.
    private func setSlot(_ slot: Int, _ steps: [(port: Int, arguments: [String])]) async throws {
        for (port, tail) in steps {
            let arguments = ["CLUSTER", "SETSLOT", String(slot)] + tail
            let reply = try await command(arguments, port: port)
            guard reply == .simple("OK") else {
                throw FixtureError(.failed, "\(arguments.joined(separator: " ")) on \(port) answered \(reply)")
            }
        }
    }

    /// The current primaries' ports, ordered by their first slot.
    func primaryPorts() async throws -> [Int] {
        try await clusterNodes().filter { $0.isPrimary && !$0.isFailed && !$0.slots.isEmpty }
            .sorted { $0.slots.map(\.lowerBound).min()! < $1.slots.map(\.lowerBound).min()! }.map(\.port)
    }

    /// Waits until every running node reports `cluster_state:ok` for all 16,384 slots and knows every node, every replica's
    /// link to its primary is up, and all running nodes agree on which primary serves which slots.
    func waitUntilReady(timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        var problem = "nothing checked yet"
        while true {
            do {
                if let notYet = try await readinessProblem() {
                    problem = notYet
                } else {
                    return
                }
            } catch {
                problem = "\(error)"
            }
            if ContinuousClock.now >= deadline {
                throw FixtureError(.startFailed, "the cluster on ports \(ports) was not ready within \(timeout): \(problem)\n\(logTails())")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// What is not ready yet, or `nil`.
    private func readinessProblem() async throws -> String? {
        var views: [[String]] = []
        for node in nodes where node.isRunning {
            let info = try await command(["CLUSTER", "INFO"], port: node.port).string ?? ""
            let fields = Self.fields(info)
            guard fields["cluster_state"] == "ok", fields["cluster_slots_ok"] == "16384" else {
                return "node \(node.port): cluster_state \(fields["cluster_state"] ?? "?"), slots ok \(fields["cluster_slots_ok"] ?? "?")"
            }
            guard fields["cluster_known_nodes"] == String(nodes.count) else {
                return "node \(node.port) knows \(fields["cluster_known_nodes"] ?? "?") of \(nodes.count) nodes"
            }
            let replication = Self.fields(try await command(["INFO", "replication"], port: node.port).string ?? "")
            if replication["role"] == "slave", replication["master_link_status"] != "up" {
                return "replica \(node.port): link to its primary is \(replication["master_link_status"] ?? "?")"
            }
            let view = try await clusterNodes(askingPort: node.port).filter { $0.isPrimary && !$0.isFailed && !$0.slots.isEmpty }
                .map { "\($0.port):\($0.slots)" }.sorted()
            views.append(view)
        }
        if let first = views.first, views.contains(where: { $0 != first }) {
            return "the nodes do not agree on the slots yet: \(Set(views.map { $0.joined(separator: " ") }))"
        }
        return nil
    }

    private func runningNode() throws -> RedisServer {
        guard let node = nodes.first(where: \.isRunning) else {
            throw FixtureError(.connectionRefused, "no node of the cluster is running")
        }
        return node
    }

    /// `redis-cli --cluster create` over every node; its output goes to the cluster's log.
    private func create(cli: String, replicasPerPrimary: Int) async throws {
        let logPath = directory + "/redis-cli.log"
        var arguments = ["--cluster", "create"] + nodes.map { "127.0.0.1:\($0.port)" }
        arguments += ["--cluster-replicas", String(replicasPerPrimary), "--cluster-yes"]
        if let password { arguments += ["-a", password, "--no-auth-warning"] }
        let process = try ChildProcess.spawn(
            executable: cli,
            arguments: arguments,
            standardOutput: .appendingTo(logPath),
            standardError: .appendingTo(logPath)
        )
        guard let termination = try await process.waitForExit(timeout: .seconds(60)) else {
            process.kill()
            throw FixtureError(.startFailed, "redis-cli --cluster create did not finish within 60 s\n\(Self.tail(logPath))")
        }
        guard termination == .exited(0) else {
            throw FixtureError(.startFailed, "redis-cli --cluster create \(termination)\n\(Self.tail(logPath))")
        }
    }

    /// The tail of redis-cli's log and of every node's.
    func logTails(lines: Int = 8) -> String {
        (["redis-cli:\n" + Self.tail(directory + "/redis-cli.log", lines: lines)] + nodes.map { "node \($0.port):\n" + $0.logTail(lines: lines) })
            .joined(separator: "\n")
    }

    private static func tail(_ path: String, lines: Int = 30) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "(no log at \(path))"
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// `name:value` lines of INFO-style text.
    static func fields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    /// A port in ``portRange`` that, with its bus port, nothing was bound to a moment ago (and not in `taken`).
    private static func freeClusterPort(avoiding taken: Set<Int>) throws -> Int {
        for _ in 0..<200 {
            let port = Int.random(in: portRange)
            guard !taken.contains(port) else { continue }
            if isFree(port), isFree(port + 10_000) { return port }
        }
        throw FixtureError(.addressInUse, "found no free port pair (P, P + 10000) in 127.0.0.1:\(portRange) after 200 tries")
    }

    private static func isFree(_ port: Int) -> Bool {
        guard let fd = try? LoopbackSocket.makeTCPSocket() else { return false }
        defer { close(fd) }
        // The options redis-server binds with, so "free" means "redis-server can bind it".
        return (try? LoopbackSocket.bind(fd, port: port, reuseAddress: true)) != nil
    }
}
