internal import CHiredisIO

/// The OpenSSL client context (`SSL_CTX`) of one `rediss://` endpoint: its trust roots, client
/// certificate and verification mode, loaded once when the layer is created and shared by every
/// connection to that endpoint, across reconnects.
///
/// Loading here, not at the first connect, makes a missing or malformed CA file, certificate or key
/// an `invalidConfiguration` error of the layer's initializer.
final class OpenSSLContext: @unchecked Sendable {
    // @unchecked Sendable: immutable after init. OpenSSL allows an SSL_CTX that is no longer being
    // configured to be shared by threads (SSL_new takes its own reference); the connections made from
    // it are used on the loop thread only (HiredisConnection).
    let pointer: OpaquePointer
    let settings: RedisEndpoint.TLS
    /// The name sent as SNI and checked against the certificate, when it is fixed: the settings'
    /// ``RedisEndpoint/TLS/serverName`` or the endpoint's host. `nil` for a Sentinel endpoint, whose
    /// connections each check the host they were given (a sentinel's, or the master's).
    let serverName: String?

    /// - Throws: ``ChannelLayerError`` with code `invalidConfiguration` saying which file failed and why.
    init(settings: RedisEndpoint.TLS, host: String?, endpoint: RedisEndpoint) throws(ChannelLayerError) {
        var error = [CChar](repeating: 0, count: 512)
        let created = chr_io_tls_create(
            settings.trustRoots.certificateFile,
            settings.certificateFile,
            settings.privateKeyFile,
            settings.verification.verifiesCertificate ? 1 : 0,
            &error,
            error.count
        )
        guard let created else {
            let reason = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw ChannelLayerError(.invalidConfiguration, "TLS for \(endpoint): \(reason)")
        }
        self.pointer = created
        self.settings = settings
        self.serverName = settings.serverName ?? host
    }

    deinit {
        // An exception to "deinit never calls C": SSL_CTX is reference-counted and thread-safe, and
        // every connection's SSL holds its own reference, so the last owner may free it anywhere.
        chr_io_tls_free(pointer)
    }

    /// SSL objects made and freed by connections so far, process-wide: the tests' leak check.
    static var connectionCounts: (created: UInt64, freed: UInt64) {
        var created: UInt64 = 0
        var freed: UInt64 = 0
        chr_io_tls_counts(&created, &freed)
        return (created, freed)
    }
}
