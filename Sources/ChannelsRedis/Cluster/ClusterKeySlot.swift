/// The Redis Cluster key slot of a channel name: which of the 16,384 slots, and so which primary, carries it.
///
/// Sharded pub/sub (`SSUBSCRIBE`, `SPUBLISH`, Redis 7) puts each channel on the primary that owns its slot, computed as
/// for a key: CRC-16 (XMODEM) of the name's bytes, modulo 16,384. A hash tag is honoured as for keys: when the name has
/// a `{` and, after it, a `}` with at least one byte between them, only those bytes are hashed (the first `{` and the
/// first `}` after it), so `{room}.a` and `{room}.b` share a slot and `{}x` hashes all of `{}x`.
///
/// Checked against the server's `CLUSTER KEYSLOT` on a real cluster (ClusterFixtureTests) and against the vectors of the
/// Redis Cluster specification (ClusterKeySlotTests).
enum ClusterKeySlot {
    /// How many slots a cluster has.
    static let count = 16_384

    /// The slot of `name`'s UTF-8 bytes.
    static func slot(for name: String) -> Int {
        var name = name
        return name.withUTF8 { slot(for: UnsafeRawBufferPointer($0)) }
    }

    /// The slot of a name given as bytes (a channel name as it arrived in a push).
    static func slot(for bytes: UnsafeRawBufferPointer) -> Int {
        Int(CRC16.checksum(hashed(bytes)) & UInt16(count - 1))
    }

    /// The part of `bytes` that is hashed: the hash tag's content if there is a non-empty one, else all of it.
    static func hashed(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        guard let open = bytes.firstIndex(of: UInt8(ascii: "{")) else { return bytes }
        let afterOpen = open + 1
        guard let close = bytes[afterOpen...].firstIndex(of: UInt8(ascii: "}")), close > afterOpen else { return bytes }
        return UnsafeRawBufferPointer(rebasing: bytes[afterOpen..<close])
    }
}

/// CRC-16 as Redis Cluster computes it (CCITT/XMODEM: polynomial `0x1021`, initial value 0, not reflected, no final
/// XOR); `"123456789"` gives `0x31C3`. One 256-entry table, a byte per step: names are short.
enum CRC16 {
    private static let table: [UInt16] = (0..<256).map { byte in
        var crc = UInt16(byte) << 8
        for _ in 0..<8 {
            crc = (crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }

    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        table.withUnsafeBufferPointer { table in
            var crc: UInt16 = 0
            for byte in bytes {
                crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
            }
            return crc
        }
    }
}
