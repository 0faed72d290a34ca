/// Serializer plus optional Fernet encryption, in channels_redis's order: serialize, then encrypt.
struct MessageCodec: Sendable {
    let serializer: any ChannelMessageSerializer
    let fernet: Fernet?
    let maximumMessageSize: Int

    init(configuration: RedisPubSubChannelLayer.Configuration) throws(ChannelLayerError) {
        self.serializer = configuration.serializer.base
        self.fernet = configuration.symmetricEncryptionKeys.isEmpty ? nil : try Fernet(keys: configuration.symmetricEncryptionKeys)
        self.maximumMessageSize = configuration.maximumMessageSize
    }

    func encode(_ message: ChannelMessage) throws(ChannelLayerError) -> [UInt8] {
        var bytes = try serializer.serialize(message)
        if let fernet { bytes = try fernet.encrypt(bytes) }
        guard bytes.count <= maximumMessageSize else {
            throw ChannelLayerError(
                .messageTooLarge,
                "the message is \(bytes.count) bytes serialized, over the configured maximum of \(maximumMessageSize)"
            )
        }
        return bytes
    }

    func decode(_ bytes: UnsafeRawBufferPointer) throws(ChannelLayerError) -> ChannelMessage {
        guard let fernet else { return try serializer.deserialize(bytes) }
        let plain = try fernet.decrypt(bytes)
        let result = plain.withUnsafeBytes { raw in Result { () throws(ChannelLayerError) in try serializer.deserialize(raw) } }
        return try result.get()
    }
}
