import ChannelsRedisTestSupport
import Foundation
import Synchronization

/// A throwaway PKI for the TLS tests, made once per test process with the `openssl` command in a
/// temporary directory: a CA, a server certificate for 127.0.0.1 and localhost, one for another
/// name, a client certificate (all signed by the CA), and a second CA that signed none of them.
/// EC P-256 keys: quick to make.
///
/// ```swift
/// let pki = try await TLSCertificates.shared()
/// let server = try await RedisServer.start(arguments: pki.serverArguments(tlsPort: port))
/// ```
struct TLSCertificates: Sendable {
    let directory: String
    var caCertificate: String { directory + "/ca.crt" }
    var otherCACertificate: String { directory + "/other-ca.crt" }
    var serverCertificate: String { directory + "/server.crt" }
    var serverKey: String { directory + "/server.key" }
    var wrongNameCertificate: String { directory + "/wrong-name.crt" }
    var wrongNameKey: String { directory + "/wrong-name.key" }
    var clientCertificate: String { directory + "/client.crt" }
    var clientKey: String { directory + "/client.key" }

    private static let made = Mutex<TLSCertificates?>(nil)

    /// The process's certificates, made on first use.
    static func shared() async throws -> TLSCertificates {
        if let made = made.withLock({ $0 }) { return made }
        let certificates = try await make()
        return made.withLock { made in
            if let made { return made }  // another test made them meanwhile: use theirs
            made = certificates
            return certificates
        }
    }

    /// redis-server arguments that add a TLS listener on `tlsPort` (next to the fixture's plain port,
    /// which the fixture itself uses to check readiness and to send CLIENT KILL).
    func serverArguments(tlsPort: Int, certificate: String? = nil, key: String? = nil, requireClientCertificates: Bool = false) -> [String] {
        [
            "--tls-port", String(tlsPort),
            "--tls-cert-file", certificate ?? serverCertificate,
            "--tls-key-file", key ?? serverKey,
            "--tls-ca-cert-file", caCertificate,
            "--tls-auth-clients", requireClientCertificates ? "yes" : "no",
        ]
    }

    private static func make() async throws -> TLSCertificates {
        guard let openssl = ChildProcess.locate("openssl", extraDirectories: ["/usr/bin", "/usr/local/bin"]) else {
            throw FixtureError(.startFailed, "no openssl command: install it with apt-get install openssl")
        }
        var template = Array((NSTemporaryDirectory() + "/channels-redis-tls-XXXXXX").utf8CString)
        guard let created = mkdtemp(&template) else {
            throw FixtureError(.startFailed, "mkdtemp failed for the TLS certificates")
        }
        let directory = String(cString: created)
        let log = directory + "/openssl.log"
        func run(_ arguments: [String]) async throws {
            let process = try ChildProcess.spawn(
                executable: openssl,
                arguments: arguments,
                standardOutput: .appendingTo(log),
                standardError: .appendingTo(log)
            )
            let termination = try await process.waitForExit(timeout: .seconds(60))
            guard case .exited(0) = termination else {
                let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                throw FixtureError(
                    .startFailed,
                    "openssl \(arguments.joined(separator: " ")) ended with \(String(describing: termination)):\n\(output)"
                )
            }
        }
        func path(_ name: String) -> String { directory + "/" + name }
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for (name, subject) in [("ca", "/CN=ChannelsRedis test CA"), ("other-ca", "/CN=ChannelsRedis other CA")] {
            try await run(
                ["req", "-x509"] + key + [
                    "-keyout", path("\(name).key"), "-out", path("\(name).crt"), "-days", "3", "-subj", subject,
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                ]
            )
        }
        let leaves: [(name: String, subject: String, extensions: String)] = [
            ("server", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
            ("wrong-name", "/CN=wrong.example", "subjectAltName=DNS:wrong.example\nextendedKeyUsage=serverAuth\n"),
            ("client", "/CN=channels-redis client", "extendedKeyUsage=clientAuth\n"),
        ]
        for leaf in leaves {
            let extensions = path("\(leaf.name).ext")
            try leaf.extensions.write(toFile: extensions, atomically: true, encoding: .utf8)
            try await run(["req"] + key + ["-keyout", path("\(leaf.name).key"), "-out", path("\(leaf.name).csr"), "-subj", leaf.subject])
            try await run([
                "x509", "-req", "-in", path("\(leaf.name).csr"), "-CA", path("ca.crt"), "-CAkey", path("ca.key"),
                "-CAcreateserial", "-out", path("\(leaf.name).crt"), "-days", "3", "-extfile", extensions,
            ])
        }
        // redis-server runs as this user and reads the keys; nothing else needs them.
        return TLSCertificates(directory: directory)
    }
}
