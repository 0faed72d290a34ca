// How a ClusterSlotMap is read from the replies of CLUSTER SHARDS (Redis 7.0+) and CLUSTER SLOTS (every cluster
// version; deprecated since 7.0). Both are parsed leniently where the protocol allows growth (unknown fields, extra
// node metadata) and strictly where a wrong guess would route channels to the wrong node (slot numbers, ports).

extension ClusterSlotMap {
    /// Why a reply could not be read as a slot map.
    struct ParseError: Error, CustomStringConvertible {
        var reason: String
        init(_ reason: String) { self.reason = reason }
        var description: String { reason }
    }

    /// Reads a `CLUSTER SHARDS` reply: an array of shards, each a flat map with `slots` (start and end numbers, in
    /// pairs) and `nodes` (each a flat map with `id`, `endpoint`, `ip`, `port`, `role`, `health`, …).
    ///
    /// A shard's primary is its node with role `master`, the `online` one if there are several (an old primary that
    /// failed is listed with its shard's new primary until it is forgotten); its replicas are the other nodes not
    /// marked `fail`. A shard without slots (a new node, or a primary whose slots all moved away) is left out.
    ///
    /// - Parameter askedNode: the node that answered; its host stands in for an empty endpoint (Redis's way of saying
    ///   "the address you reached me at").
    init(shardsReply reply: RedisValue, askedNode: RedisEndpoint.Address) throws(ParseError) {
        guard let entries = reply.array else {
            throw ParseError("CLUSTER SHARDS did not answer with an array: \(Self.summary(reply))")
        }
        var shards: [Shard] = []
        for (index, entry) in entries.enumerated() {
            let fields = try Self.flatMap(entry, what: "shard \(index + 1)")
            guard let slotValues = fields["slots"]?.array else {
                throw ParseError("shard \(index + 1) of CLUSTER SHARDS has no slots array")
            }
            guard slotValues.count.isMultiple(of: 2) else {
                throw ParseError("shard \(index + 1) of CLUSTER SHARDS has an odd number of slot bounds")
            }
            var slots: [ClosedRange<Int>] = []
            for pair in stride(from: 0, to: slotValues.count, by: 2) {
                slots.append(try Self.slotRange(slotValues[pair], slotValues[pair + 1], what: "shard \(index + 1)"))
            }
            guard let nodeValues = fields["nodes"]?.array else {
                throw ParseError("shard \(index + 1) of CLUSTER SHARDS has no nodes array")
            }
            var primaries: [(node: Node, online: Bool)] = []
            var replicas: [Node] = []
            for (nodeIndex, nodeValue) in nodeValues.enumerated() {
                let what = "node \(nodeIndex + 1) of shard \(index + 1)"
                let node = try Self.flatMap(nodeValue, what: what)
                guard let port = node["port"]?.integer ?? node["tls-port"]?.integer else {
                    throw ParseError("\(what) of CLUSTER SHARDS has no port")
                }
                let endpoint = node["endpoint"]?.string
                let ip = node["ip"]?.string
                guard let host = try Self.host(endpoint: endpoint, ip: ip, askedNode: askedNode, what: what) else { continue }
                let parsed = Node(id: node["id"]?.string ?? "", host: host, port: try Self.port(port, what: what))
                let health = node["health"]?.string ?? "online"
                if node["role"]?.string == "master" {
                    primaries.append((parsed, health == "online"))
                } else if health != "fail" {
                    // "loading" too: Redis 7.0 says so of every replica whose replication offset is still 0, which in
                    // a cluster with no writes yet is every replica.
                    replicas.append(parsed)
                }
            }
            guard !slots.isEmpty else { continue }
            guard let primary = primaries.first(where: \.online) ?? primaries.first else {
                // A shard whose primary is unknown for now (failing over): its slots have no owner until the next map.
                continue
            }
            shards.append(Shard(primary: primary.node, replicas: replicas, slots: slots))
        }
        self.init(shards: shards)
    }

    /// Reads a `CLUSTER SLOTS` reply: an array of ranges, each `[start, end, primary, replica…]` with every node
    /// `[host, port, id?, metadata?]`. Ranges of one primary become one shard.
    init(slotsReply reply: RedisValue, askedNode: RedisEndpoint.Address) throws(ParseError) {
        guard let entries = reply.array else {
            throw ParseError("CLUSTER SLOTS did not answer with an array: \(Self.summary(reply))")
        }
        var shards: [Shard] = []
        for (index, entry) in entries.enumerated() {
            let what = "range \(index + 1) of CLUSTER SLOTS"
            guard let parts = entry.array, parts.count >= 3 else {
                throw ParseError("\(what) is not an array of start, end and nodes")
            }
            let range = try Self.slotRange(parts[0], parts[1], what: what)
            var nodes: [Node] = []
            for (nodeIndex, nodeValue) in parts[2...].enumerated() {
                let nodeWhat = "node \(nodeIndex + 1) of \(what)"
                guard let node = nodeValue.array, node.count >= 2, let port = node[1].integer else {
                    throw ParseError("\(nodeWhat) is not [host, port, …]")
                }
                guard let host = try Self.host(endpoint: node[0].string, ip: nil, askedNode: askedNode, what: nodeWhat) else {
                    if nodeIndex == 0 { break }  // an unknown primary: the range has no owner for now
                    continue
                }
                let id = node.count >= 3 ? node[2].string ?? "" : ""
                nodes.append(Node(id: id, host: host, port: try Self.port(port, what: nodeWhat)))
            }
            guard let primary = nodes.first else { continue }
            shards.append(Shard(primary: primary, replicas: Array(nodes.dropFirst()), slots: [range]))
        }
        self.init(shards: shards)
    }

    // MARK: Pieces

    /// A flat `[name, value, name, value, …]` array as a dictionary (the first of repeated names wins).
    private static func flatMap(_ value: RedisValue, what: String) throws(ParseError) -> [String: RedisValue] {
        guard let elements = value.array, elements.count.isMultiple(of: 2) else {
            throw ParseError("\(what) of CLUSTER SHARDS is not a list of names and values")
        }
        var fields: [String: RedisValue] = [:]
        for index in stride(from: 0, to: elements.count, by: 2) {
            guard let name = elements[index].string else {
                throw ParseError("\(what) of CLUSTER SHARDS has a field name that is not a string")
            }
            if fields[name] == nil { fields[name] = elements[index + 1] }
        }
        return fields
    }

    private static func slotRange(_ start: RedisValue, _ end: RedisValue, what: String) throws(ParseError) -> ClosedRange<Int> {
        guard let low = start.integer, let high = end.integer, low >= 0, low <= high, high < ClusterKeySlot.count else {
            throw ParseError("\(what) has the slot range \(summary(start))-\(summary(end)), not within 0-\(ClusterKeySlot.count - 1)")
        }
        return low...high
    }

    private static func port(_ port: Int, what: String) throws(ParseError) -> Int {
        guard (1...65535).contains(port) else {
            throw ParseError("\(what) has the port \(port)")
        }
        return port
    }

    /// The host to connect to: the endpoint, else the IP; the asked node's host for an empty one; `nil` for `?` (Redis's
    /// "unknown endpoint": the node cannot be reached yet).
    private static func host(endpoint: String?, ip: String?, askedNode: RedisEndpoint.Address, what: String) throws(ParseError) -> String? {
        let given = [endpoint, ip].compactMap { $0 }.first { !$0.isEmpty && $0 != "?" }
        if let given { return given.lowercased() }
        if endpoint == "?" || (endpoint == nil && ip == "?") { return nil }
        guard let askedHost = askedNode.host else {
            throw ParseError("\(what) has an empty endpoint and the asked node has no host")
        }
        return askedHost
    }

    /// A short text for a reply in an error message.
    static func summary(_ value: RedisValue) -> String {
        switch value {
        case .simple(let text): "'\(text.prefix(80))'"
        case .error(let text): "the error '\(text.prefix(120))'"
        case .integer(let number): "\(number)"
        case .bulk(nil), .array(nil): "nil"
        case .bulk(let bytes?): "'\(String(decoding: bytes.prefix(80), as: UTF8.self))'"
        case .array(let values?): "an array of \(values.count)"
        }
    }
}
