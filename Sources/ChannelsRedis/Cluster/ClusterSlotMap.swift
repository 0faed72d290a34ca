/// Which node of a Redis Cluster owns each of the 16,384 key slots: the cluster's answer to `CLUSTER SHARDS` (Redis
/// 7.0+) or `CLUSTER SLOTS` (older servers), parsed by ``init(shardsReply:askedNode:)`` and
/// ``init(slotsReply:askedNode:)``.
///
/// A value, immutable once made: the layer replaces its map when it learns a newer one (a `-MOVED` reply, a lost
/// connection, the periodic refresh).
struct ClusterSlotMap: Sendable, Equatable, CustomStringConvertible {
    /// One node as the map names it.
    struct Node: Sendable, Hashable, CustomStringConvertible {
        /// The node's 40-character cluster id; empty when the reply gave none (`CLUSTER SLOTS` before Redis 4).
        var id: String
        /// Where to reach it: the reply's endpoint (its IP by default, see `cluster-preferred-endpoint-type`).
        var host: String
        var port: Int

        var address: RedisEndpoint.Address { .hostname(host, port: port) }
        var description: String { address.description }
    }

    /// A primary, its replicas and the slots it serves.
    struct Shard: Sendable, Equatable {
        var primary: Node
        var replicas: [Node]
        /// Sorted, not overlapping.
        var slots: [ClosedRange<Int>]

        var slotCount: Int { slots.reduce(0) { $0 + $1.count } }
    }

    /// The shards that serve at least one slot, in the order of their first slot.
    let shards: [Shard]
    /// For each slot, the index of its shard in ``shards``, or -1 while no node serves it.
    private let owners: [Int16]

    /// A map from shards that each own `slots`; shards of one primary are merged. A slot claimed by two primaries (a
    /// reply never does that, but a corrupt one must not crash the layer) goes to one of them.
    init(shards given: [Shard]) {
        var merged: [Shard] = []
        for shard in given where !shard.slots.isEmpty {
            if let index = merged.firstIndex(where: { $0.primary == shard.primary }) {
                merged[index].slots += shard.slots
                for replica in shard.replicas where !merged[index].replicas.contains(replica) { merged[index].replicas.append(replica) }
            } else {
                merged.append(shard)
            }
        }
        for index in merged.indices { merged[index].slots = Self.normalized(merged[index].slots) }
        merged.sort { $0.slots[0].lowerBound < $1.slots[0].lowerBound }
        var owners = [Int16](repeating: -1, count: ClusterKeySlot.count)
        for (index, shard) in merged.enumerated() {
            for range in shard.slots {
                for slot in range { owners[slot] = Int16(index) }
            }
        }
        self.shards = merged
        self.owners = owners
    }

    /// The index in ``shards`` of the shard that serves `slot`, or `nil` while none does.
    func shardIndex(forSlot slot: Int) -> Int? {
        guard slot >= 0, slot < owners.count else { return nil }
        let owner = owners[slot]
        return owner < 0 ? nil : Int(owner)
    }

    /// The primary that serves `slot`, or `nil` while none does.
    func primary(forSlot slot: Int) -> Node? {
        shardIndex(forSlot: slot).map { shards[$0].primary }
    }

    /// How many slots some primary serves (16,384 in a healthy cluster).
    var coveredSlots: Int { owners.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }

    /// The primaries, in the order of ``shards``.
    var primaries: [Node] { shards.map(\.primary) }

    var description: String {
        shards.map { shard in
            let ranges = shard.slots.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }
            return "\(shard.primary) [\(ranges.joined(separator: ","))] replicas \(shard.replicas.map(\.description))"
        }.joined(separator: "; ")
    }

    /// Sorted, with adjacent and overlapping ranges joined.
    private static func normalized(_ ranges: [ClosedRange<Int>]) -> [ClosedRange<Int>] {
        var result: [ClosedRange<Int>] = []
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = result.last, range.lowerBound <= last.upperBound + 1 {
                result[result.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
            } else {
                result.append(range)
            }
        }
        return result
    }
}
