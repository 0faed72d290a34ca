/// Random version-4 UUIDs as 32 lowercase hex digits, as Python's `uuid.uuid4().hex`.
enum UUIDHex {
    static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        var high = generator.next() as UInt64
        var low = generator.next() as UInt64
        high = (high & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000  // version 4
        low = (low & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000  // RFC 4122 variant
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        return String(unsafeUninitializedCapacity: 32) { buffer in
            for index in 0..<16 {
                buffer[index] = digits[Int((high >> UInt64(60 - 4 * index)) & 0xF)]
                buffer[16 + index] = digits[Int((low >> UInt64(60 - 4 * index)) & 0xF)]
            }
            return 32
        }
    }
}
