/// Maps a channel or group name to one of several Redis hosts ("shards"), exactly as Python channels_redis does.
///
/// Every process that talks to the same set of hosts must agree on which host carries which Redis channel, otherwise a
/// message is published on one host while its subscriber listens on another. So this reproduces channels_redis's
/// `_consistent_hash` (in `channels_redis/utils.py`) bit for bit: CRC-32 of the name's UTF-8 bytes, keep the low 12
/// bits (0...4095), then scale that onto the ring with a *floating-point* division, as Python does.
enum ConsistentHash {
    /// The number of buckets the CRC is reduced to before it is scaled onto the ring (Python's `0xFFF` mask).
    private static let bucketCount = 4096

    /// The index of the shard that carries `name`, in `0..<shardCount`.
    ///
    /// Channels hash their full name; groups hash the prefixed group channel name (`asgi__group__chat`), as the Python
    /// layer does.
    ///
    /// - Parameters:
    ///   - name: The Redis channel name; its UTF-8 bytes are hashed.
    ///   - shardCount: How many hosts there are; must be at least 1.
    /// - Returns: A shard index in `0..<shardCount`.
    static func shardIndex(for name: String, shardCount: Int) -> Int {
        precondition(shardCount >= 1, "a channel layer needs at least one host")
        // Python skips the hash for a single host; the result is the same, only cheaper.
        if shardCount == 1 { return 0 }
        var name = name
        let crc = name.withUTF8 { CRC32.checksum(UnsafeRawBufferPointer($0)) }
        let bucket = Int(crc & 0xFFF)
        // Why floating point: Python computes `int(bigval / (4096 / float(ring_size)))`. Integer arithmetic
        // (`bucket * shardCount / 4096`) gives a different answer at some bucket boundaries when 4096 is not a multiple
        // of the ring size (the divisor is then rounded), and any disagreement splits the cluster.
        let divisor = Double(bucketCount) / Double(shardCount)
        return Int(Double(bucket) / divisor)
    }
}

/// CRC-32 as zlib and Python's `binascii.crc32` compute it (IEEE 802.3, reflected polynomial `0xEDB88320`, initial
/// value and final XOR `0xFFFFFFFF`).
///
/// Written here rather than linking zlib: it is a few lines, and the library then needs no extra system package.
/// Slicing-by-8 (eight 256-entry tables, eight bytes per step) because every publish hashes its channel name when
/// there are several shards.
enum CRC32 {
    /// Eight 256-entry tables laid end to end: entry `k * 256 + b` is the CRC contribution of byte `b` followed by `k`
    /// zero bytes. One flat array so the hot loop indexes a single buffer.
    private static let table: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1
            }
            table[byte] = crc
        }
        for byte in 0..<256 {
            var crc = table[byte]
            for k in 1..<8 {
                crc = table[Int(crc & 0xFF)] ^ (crc >> 8)
                table[k * 256 + byte] = crc
            }
        }
        return table
    }()

    /// The CRC-32 of `bytes`.
    ///
    /// - Parameters:
    ///   - bytes: The data to checksum.
    ///   - previous: The CRC of the data that came before, to checksum in pieces (0 to start, like zlib).
    static func checksum(_ bytes: UnsafeRawBufferPointer, previous: UInt32 = 0) -> UInt32 {
        table.withUnsafeBufferPointer { table in
            var crc = ~previous
            var index = 0
            let count = bytes.count
            while count &- index >= 8 {
                let low =
                    crc
                    ^ (UInt32(bytes[index]) | UInt32(bytes[index &+ 1]) << 8 | UInt32(bytes[index &+ 2]) << 16
                        | UInt32(bytes[index &+ 3]) << 24)
                crc =
                    table[7 &* 256 &+ Int(low & 0xFF)] ^ table[6 &* 256 &+ Int((low >> 8) & 0xFF)]
                    ^ table[5 &* 256 &+ Int((low >> 16) & 0xFF)] ^ table[4 &* 256 &+ Int(low >> 24)]
                    ^ table[3 &* 256 &+ Int(bytes[index &+ 4])] ^ table[2 &* 256 &+ Int(bytes[index &+ 5])]
                    ^ table[256 &+ Int(bytes[index &+ 6])] ^ table[Int(bytes[index &+ 7])]
                index &+= 8
            }
            while index < count {
                crc = table[Int((crc ^ UInt32(bytes[index])) & 0xFF)] ^ (crc >> 8)
                index &+= 1
            }
            return ~crc
        }
    }

    /// The CRC-32 of `bytes`.
    static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        if let result = bytes.withContiguousStorageIfAvailable({ checksum(UnsafeRawBufferPointer($0)) }) {
            return result
        }
        return Array(bytes).withUnsafeBytes { checksum($0) }
    }
}
