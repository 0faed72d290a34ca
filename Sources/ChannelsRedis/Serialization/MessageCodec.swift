/// Serializer plus optional Fernet encryption, in channels_redis's order: serialize, then encrypt.
struct MessageCodec: Sendable {
    let serializer: any ChannelMessageSerializer
    let fernet: Fernet?
    let maximumMessageSize: Int
    /// Plain msgpack (the default): batches are encoded in place (`encode(_:into:)`).
    private let isPlainMessagePack: Bool

    init(configuration: RedisPubSubChannelLayer.Configuration) throws(ChannelLayerError) {
        self.serializer = configuration.serializer.base
        self.fernet = configuration.symmetricEncryptionKeys.isEmpty ? nil : try Fernet(keys: configuration.symmetricEncryptionKeys)
        self.maximumMessageSize = configuration.maximumMessageSize
        self.isPlainMessagePack = fernet == nil && serializer is MessagePackSerializer
    }

    func encode(_ message: ChannelMessage) throws(ChannelLayerError) -> [UInt8] {
        var bytes = try serializer.serialize(message)
        if let fernet { bytes = try fernet.encrypt(bytes) }
        try checkSize(bytes.count)
        return bytes
    }

    private func checkSize(_ size: Int) throws(ChannelLayerError) {
        guard size <= maximumMessageSize else {
            throw ChannelLayerError(.messageTooLarge, "the message is \(size) bytes serialized, over the configured maximum of \(maximumMessageSize)")
        }
    }

    func decode(_ bytes: UnsafeRawBufferPointer) throws(ChannelLayerError) -> ChannelMessage {
        guard let fernet else { return try serializer.deserialize(bytes) }
        let plain = try fernet.decrypt(bytes)
        let result = plain.withUnsafeBytes { raw in Result { () throws(ChannelLayerError) in try serializer.deserialize(raw) } }
        return try result.get()
    }
}

/// Encoded payloads back to back in one buffer: a batch send makes two allocations, not one per
/// message (each allocated by the sender and freed on the loop thread).
struct PayloadBatch: RandomAccessCollection, Sendable {
    private(set) var bytes: [UInt8] = []
    /// Where each payload ends in `bytes`.
    private var ends: [Int] = []

    init(capacity: Int) {
        ends.reserveCapacity(capacity)
        bytes.reserveCapacity(capacity * 96)
    }

    var startIndex: Int { 0 }
    var endIndex: Int { ends.count }

    subscript(position: Int) -> ArraySlice<UInt8> {
        bytes[(position == 0 ? 0 : ends[position - 1])..<ends[position]]
    }

    /// Calls `body` with every payload's bytes, back to back, and where each ends.
    func withUnsafeStorage<Result>(_ body: (UnsafeRawBufferPointer, UnsafeBufferPointer<Int>) throws -> Result) rethrows -> Result {
        try bytes.withUnsafeBytes { bytes in try ends.withUnsafeBufferPointer { ends in try body(bytes, ends) } }
    }

    /// Appends one payload written by `body` at the end of `bytes`; on a throw nothing is appended.
    mutating func append<Failure: Error>(_ body: (inout [UInt8]) throws(Failure) -> Void) throws(Failure) {
        let start = bytes.count
        do {
            try body(&bytes)
        } catch {
            bytes.removeSubrange(start...)
            throw error
        }
        ends.append(bytes.count)
    }
}

extension MessageCodec {
    /// Encodes `message` as the next payload of `batch` (the same bytes as `encode(_:)`).
    func encode(_ message: ChannelMessage, into batch: inout PayloadBatch) throws(ChannelLayerError) {
        try batch.append { (bytes: inout [UInt8]) throws(ChannelLayerError) in
            let start = bytes.count
            if isPlainMessagePack {
                MessagePack.encode(message, into: &bytes)  // straight into the batch: no array of its own
            } else {
                bytes.append(contentsOf: try encode(message))
            }
            try checkSize(bytes.count - start)
        }
    }
}
