import Synchronization

/// The status cells of a layer's shards, read by ``RedisPubSubChannelLayer/isHealthy`` and
/// ``RedisPubSubChannelLayer/shardStatuses`` on any thread. Fixed for configured hosts; in cluster mode a cell is
/// appended for each primary as the slot map names it. A cell is never removed (a retired primary's says
/// ``ShardStatus/retired``), so a shard's index, the `shard:` of its ``ConnectionEvent``s, is its position here for
/// the layer's life.
final class ShardStatusList: Sendable {
    private let cells: Mutex<[ShardStatusCell]>

    init(_ cells: [ShardStatusCell]) {
        self.cells = Mutex(cells)
    }

    var all: [ShardStatusCell] { cells.withLock { $0 } }

    /// A new cell at the end; returns it and its index.
    func append() -> (cell: ShardStatusCell, index: Int) {
        let cell = ShardStatusCell()
        return cells.withLock { cells in
            cells.append(cell)
            return (cell, cells.count - 1)
        }
    }
}
