import Testing

@testable import ChannelsRedis

/// The key slot of a name, against the Redis Cluster specification's vectors and answers of a Redis 7.0 server's
/// `CLUSTER KEYSLOT` (the integration suite checks many more names against a live server: ClusterFixtureTests).
@Suite struct ClusterKeySlotTests {
    @Test func crc16IsXModem() {
        let bytes = Array("123456789".utf8)
        #expect(bytes.withUnsafeBytes { CRC16.checksum($0) } == 0x31C3)
        #expect([UInt8]().withUnsafeBytes { CRC16.checksum($0) } == 0)
    }

    /// Each answer was `CLUSTER KEYSLOT` of redis-server 7.0.15.
    @Test(arguments: [
        ("123456789", 12739),
        ("foo", 12182),
        ("bar", 5061),
        ("user1000", 3443),
        ("{user1000}.following", 3443),
        ("{user1000}.followers", 3443),
        ("foo{}{bar}", 8363),  // an empty tag: the whole name
        ("foo{{bar}}zap", 4015),  // the tag is "{bar"
        ("foo{bar}{zap}", 5061),  // the first tag only: "bar"
        ("{}x", 10595),
        ("a{b", 13340),  // no closing brace: the whole name
        ("asgi__group__chat_lobby", 9608),
        ("", 0),
        ("é", 10180),  // UTF-8 bytes
    ])
    func slotMatchesTheServer(_ name: String, _ slot: Int) {
        #expect(ClusterKeySlot.slot(for: name) == slot)
    }

    @Test func aHashTagPutsNamesInOneSlot() {
        let slots = Set(["{room}.a", "{room}.b", "x{room}y", "room"].map(ClusterKeySlot.slot(for:)))
        #expect(slots.count == 1)
    }

    @Test func everySlotIsInRange() {
        for index in 0..<5_000 {
            let slot = ClusterKeySlot.slot(for: "asgi.specific.\(index)")
            #expect((0..<ClusterKeySlot.count).contains(slot))
        }
    }
}
