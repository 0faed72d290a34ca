extension RedisEndpoint {
    /// How a `rediss://` endpoint secures its connections: what to trust, whether and how to verify
    /// the server, and an optional client certificate for mutual TLS.
    ///
    /// The default verifies the server's certificate chain against the system's trust store
    /// (Debian: `/etc/ssl/certs`, the `ca-certificates` package) and checks that the certificate is
    /// for the host the endpoint names (its DNS name, or its IP address when the host is one), which
    /// is also sent as SNI. The handshake runs on the layer's event loop before a connection counts
    /// as connected, within ``RedisPubSubChannelLayer/Configuration/connectTimeout``.
    ///
    /// Each setting has the query parameter redis-py reads on a `rediss://` URL, so a `hosts`
    /// string alone can configure TLS, and ``RedisEndpoint/url`` writes them back:
    ///
    /// | setting | URL parameter |
    /// | --- | --- |
    /// | ``trustRoots`` `.certificateFile(path)` | `ssl_ca_certs=path` |
    /// | ``certificateFile`` | `ssl_certfile=path` |
    /// | ``privateKeyFile`` | `ssl_keyfile=path` |
    /// | ``verification`` `.insecureNoVerification` | `ssl_cert_reqs=none` (`required`, the default, and `optional` verify) |
    /// | ``verification`` `.noHostnameVerification` | `ssl_check_hostname=false` |
    /// | ``serverName`` | `ssl_server_name=name` (not a redis-py parameter) |
    ///
    /// ```swift
    /// let tls = RedisEndpoint.TLS(trustRoots: .certificateFile("/etc/redis/ca.crt"))
    /// let endpoint = RedisEndpoint(address: .hostname("redis.internal", port: 6380, tls: tls))
    /// print(endpoint.url)  // rediss://redis.internal:6380/0?ssl_ca_certs=/etc/redis/ca.crt
    /// ```
    ///
    /// Files are read when the layer is created: a missing or malformed CA file, certificate or key
    /// is an `invalidConfiguration` error from the layer's initializer, not a failure at the first
    /// connect.
    public struct TLS: Sendable, Hashable {
        /// The certificate authorities a server's certificate must chain to.
        ///
        /// A struct with static members so that kinds can be added (a directory, PEM bytes).
        public struct TrustRoots: Sendable, Hashable, CustomStringConvertible {
            enum Kind: Sendable, Hashable {
                case system
                case file(String)
            }

            let kind: Kind

            /// The system's trust store (OpenSSL's default paths).
            public static let system = TrustRoots(kind: .system)

            /// Only the CA certificates in the PEM file at `path` (instead of the system's store), as
            /// redis-py's `ssl_ca_certs`.
            public static func certificateFile(_ path: String) -> TrustRoots {
                TrustRoots(kind: .file(path))
            }

            /// The CA file's path, or `nil` for the system's store.
            public var certificateFile: String? {
                if case .file(let path) = kind { path } else { nil }
            }

            /// `system` or the CA file's path.
            public var description: String { certificateFile ?? "system" }
        }

        /// How much of the server's identity is checked.
        ///
        /// A struct with static members so that modes can be added (pinning) without breaking a
        /// `switch` in user code.
        public struct Verification: Sendable, Hashable, CustomStringConvertible {
            enum Kind: Sendable, Hashable {
                case full
                case noHostname
                case none
            }

            let kind: Kind

            /// The certificate must chain to ``TLS/trustRoots`` and be for the host (the default).
            public static let fullVerification = Verification(kind: .full)

            /// The certificate must chain to ``TLS/trustRoots``, for any host name: redis-py's
            /// `ssl_check_hostname=false`. Any server holding a certificate from those roots can
            /// impersonate this one.
            public static let noHostnameVerification = Verification(kind: .noHostname)

            /// No verification at all: the traffic is encrypted, but anyone on the path can
            /// impersonate the server and read it. redis-py's `ssl_cert_reqs=none`. For tests and
            /// throwaway setups only.
            public static let insecureNoVerification = Verification(kind: .none)

            var verifiesCertificate: Bool { kind != .none }
            var verifiesHostname: Bool { kind == .full }

            /// `full`, `noHostname` or `insecureNoVerification`.
            public var description: String {
                switch kind {
                case .full: "full"
                case .noHostname: "noHostname"
                case .none: "insecureNoVerification"
                }
            }
        }

        /// What the server's certificate must chain to.
        public var trustRoots: TrustRoots
        /// A PEM client certificate (chain) to present, for servers that require one
        /// (`tls-auth-clients yes`), or `nil`.
        public var certificateFile: String?
        /// The PEM private key of ``certificateFile``; `nil` when the key is in that file.
        public var privateKeyFile: String?
        /// How much of the server's identity is checked.
        public var verification: Verification
        /// The name sent as SNI and checked against the certificate, when it is not the endpoint's
        /// host (a server reached through an IP address or a tunnel); `nil` means the host.
        public var serverName: String?

        /// Creates TLS settings; the defaults verify the server against the system's trust store.
        ///
        /// - Parameters:
        ///   - trustRoots: What the server's certificate must chain to.
        ///   - certificateFile: A client certificate for mutual TLS.
        ///   - privateKeyFile: Its key, when not in `certificateFile`.
        ///   - verification: How much of the server's identity is checked.
        ///   - serverName: The SNI and certificate name, when not the host.
        public init(
            trustRoots: TrustRoots = .system,
            certificateFile: String? = nil,
            privateKeyFile: String? = nil,
            verification: Verification = .fullVerification,
            serverName: String? = nil
        ) {
            self.trustRoots = trustRoots
            self.certificateFile = certificateFile
            self.privateKeyFile = privateKeyFile
            self.verification = verification
            self.serverName = serverName
        }

        /// Full verification against the system's trust store, no client certificate.
        public static var `default`: TLS { TLS() }

        /// The URL query parameters that say this, in a fixed order (defaults left out).
        var queryParameters: [(name: String, value: String)] {
            var parameters: [(name: String, value: String)] = []
            if let path = trustRoots.certificateFile { parameters.append(("ssl_ca_certs", path)) }
            if let certificateFile { parameters.append(("ssl_certfile", certificateFile)) }
            if let privateKeyFile { parameters.append(("ssl_keyfile", privateKeyFile)) }
            switch verification.kind {
            case .full: break
            case .noHostname: parameters.append(("ssl_check_hostname", "false"))
            case .none: parameters.append(("ssl_cert_reqs", "none"))
            }
            if let serverName { parameters.append(("ssl_server_name", serverName)) }
            return parameters
        }

        /// The query parameters a `rediss://` URL may carry (their values are not secret, so
        /// redaction shows them).
        static let parameterNames: Set<String> = [
            "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname", "ssl_server_name",
        ]
    }
}
