import ChannelsRedisTestSupport
import Foundation
import Testing

@testable import ChannelsRedis

/// A redis-server with a TLS listener (certificates from ``TLSCertificates``) beside the fixture's
/// plain port, which the fixture uses for readiness and for `CLIENT KILL`; the layer only ever
/// connects to the TLS port.
private struct TLSServer {
    let server: RedisServer
    let tlsPort: Int
    let pki: TLSCertificates

    static func start(
        certificate: String? = nil,
        key: String? = nil,
        requireClientCertificates: Bool = false,
        extraArguments: [String] = []
    ) async throws -> TLSServer {
        let pki = try await TLSCertificates.shared()
        let tlsPort = try LoopbackSocket.freeServerPort()
        let arguments = pki.serverArguments(
            tlsPort: tlsPort,
            certificate: certificate,
            key: key,
            requireClientCertificates: requireClientCertificates
        )
        return TLSServer(server: try await RedisServer.start(arguments: arguments + extraArguments), tlsPort: tlsPort, pki: pki)
    }

    /// `rediss://[credentials@]host:tlsPort?ssl_ca_certs=<the test CA>` plus `parameters`.
    func url(host: String = "127.0.0.1", credentials: String = "", trusting ca: String? = nil, _ parameters: String = "") -> String {
        let userinfo = credentials.isEmpty ? "" : credentials + "@"
        return "rediss://\(userinfo)\(host):\(tlsPort)?ssl_ca_certs=\(ca ?? pki.caCertificate)\(parameters.isEmpty ? "" : "&" + parameters)"
    }
}

/// The connection error behind a send that could not be published: the send fails with it, or times
/// out with it as `underlying`.
private func connectionError(of url: String, within timeout: Duration = .seconds(20)) async throws -> ChannelLayerError {
    var configuration = faultConfiguration(url)
    configuration.connectTimeout = .seconds(2)
    let layer = try RedisPubSubChannelLayer(configuration: configuration)
    let deadline = ContinuousClock.now + timeout
    var found: ChannelLayerError?
    while found == nil, ContinuousClock.now < deadline {
        do {
            _ = try await layer.send(["type": "probe"], to: "tls.probe")
            Issue.record("a send over \(url) succeeded")
            break
        } catch let error as ChannelLayerError where error.code == .timeout {
            found = error.underlying as? ChannelLayerError
        } catch let error as ChannelLayerError where error.code == .connectionFailed || error.code == .connectionLost {
            found = error
        }
    }
    await layer.close()
    guard let found else { throw ChannelLayerError(.timeout, "no connection error for \(url) within \(timeout)") }
    return found
}

@Suite("TLS: rediss:// endpoints", .serialized, .timeLimit(.minutes(6)))
struct TLSTests {
    @Test(arguments: ["127.0.0.1", "localhost"])
    func sendsReceivesAndGroupsOverTLS(host: String) async throws {
        let tls = try await TLSServer.start()
        defer { tls.server.stop() }
        let layer = try RedisPubSubChannelLayer(configuration: faultConfiguration(tls.url(host: host)))
        let channel = try await layer.newChannel()
        #expect(try await layer.send(["type": "hello", "text": "over TLS"], to: channel) == 1)
        let message = try #require(try await layer.receive(from: channel, timeout: .seconds(10)))
        #expect(message["text"]?.stringValue == "over TLS")

        let other = try await layer.newChannel()
        try await layer.groupAdd("room", channel: channel)
        try await layer.groupAdd("room", channel: other)
        let big = String(repeating: "x", count: 200_000)  // many TLS records each way
        _ = try await layer.groupSend(["type": "group", "big": .string(big)], to: "room")
        for name in [channel, other] {
            let received = try #require(try await layer.receive(from: name, timeout: .seconds(10)))
            #expect(received["big"]?.stringValue == big)
        }
        // A burst, received in order.
        for index in 0..<500 { _ = try await layer.send(["type": "burst", "n": .int(Int64(index))], to: channel) }
        for index in 0..<500 {
            let received = try #require(try await layer.receive(from: channel, timeout: .seconds(10)))
            #expect(received["n"]?.intValue == index)
        }
        // The publisher and the subscriber are both on the TLS port, none on the plain one.
        #expect(try socketsConnected(toPort: tls.tlsPort) == 2)
        #expect(try socketsConnected(toPort: tls.server.port) == 0)
        await layer.close()
    }

    /// AUTH is queued before the socket connects: it must go out only once the handshake is done,
    /// encrypted, and be answered over TLS.
    @Test func authenticatesOverTLS() async throws {
        let tls = try await TLSServer.start(extraArguments: ["--requirepass", "s3cret"])
        defer { tls.server.stop() }
        let layer = try RedisPubSubChannelLayer(configuration: faultConfiguration(tls.url(credentials: ":s3cret")))
        let channel = try await layer.newChannel()
        _ = try await layer.send(["type": "authenticated"], to: channel)
        #expect(try await layer.receive(from: channel, timeout: .seconds(10))?["type"]?.stringValue == "authenticated")
        await layer.close()

        let wrong = try await connectionError(of: tls.url(credentials: ":wrong"))
        #expect(wrong.code == .connectionFailed)
        #expect(wrong.message.contains("WRONGPASS"), "\(wrong)")
    }

    @Test(arguments: ["pubsub", "normal"])
    func reconnectsAndResubscribesAfterClientKillOverTLS(type: String) async throws {
        let tls = try await TLSServer.start()
        defer { tls.server.stop() }
        let subscribed = try await SubscribedLayer(faultConfiguration(tls.url()))
        let (layer, events, channel, collector) = (subscribed.layer, subscribed.events, subscribed.channel, subscribed.collector)
        try await expectDelivery(layer, to: collector, channel: channel, group: "room")
        let killed = try await tls.server.command(["CLIENT", "KILL", "TYPE", type])
        #expect((killed.integer ?? 0) >= 1)
        try await eventually(timeout: .seconds(10)) { events.reconnects >= 1 }
        #expect(events.disconnects >= 1)
        try await expectDelivery(layer, to: collector, channel: channel, group: nil)
        try await expectDelivery(layer, to: collector, channel: channel, group: "room")
        await collector.stop()
        await layer.close()
    }

    @Test func survivesAServerRestartOverTLS() async throws {
        let tls = try await TLSServer.start()
        defer { tls.server.stop() }
        let subscribed = try await SubscribedLayer(faultConfiguration(tls.url()))
        let (layer, events, channel, collector) = (subscribed.layer, subscribed.events, subscribed.channel, subscribed.collector)
        try await expectDelivery(layer, to: collector, channel: channel, group: "room")
        tls.server.kill9()
        try await eventually { events.disconnects >= 1 }
        try await Task.sleep(for: .milliseconds(500))
        try await tls.server.restart()
        try await eventually(timeout: .seconds(10)) { events.reconnects >= 1 }
        try await expectDelivery(layer, to: collector, channel: channel, group: nil)
        try await expectDelivery(layer, to: collector, channel: channel, group: "room")
        await collector.stop()
        await layer.close()
    }

    @Test func livenessDetectsAStoppedServerOverTLS() async throws {
        let tls = try await TLSServer.start()
        defer {
            tls.server.resume()
            tls.server.stop()
        }
        let subscribed = try await SubscribedLayer(faultConfiguration(tls.url()), group: nil)
        let (layer, events, channel, collector) = (subscribed.layer, subscribed.events, subscribed.channel, subscribed.collector)
        tls.server.pause()
        try await eventually(timeout: .seconds(5)) { events.disconnects >= 1 }
        tls.server.resume()
        try await eventually(timeout: .seconds(10)) { events.reconnects >= 1 }
        try await expectDelivery(layer, to: collector, channel: channel, group: nil)
        await collector.stop()
        await layer.close()
    }

    @Test func refusesACertificateFromAnUntrustedCA() async throws {
        let tls = try await TLSServer.start()
        defer { tls.server.stop() }
        // A CA file that did not sign the server's certificate.
        let other = try await connectionError(of: tls.url(trusting: tls.pki.otherCACertificate))
        #expect(other.code == .connectionFailed)
        // (redis-server sends its CA with its certificate, so OpenSSL sees an untrusted root.)
        #expect(other.message.contains("TLS certificate verification failed: self-signed certificate in certificate chain"), "\(other)")
        // The default: the system's trust store, which does not know the test CA either.
        let system = try await connectionError(of: "rediss://127.0.0.1:\(tls.tlsPort)")
        #expect(system.code == .connectionFailed)
        #expect(system.message.contains("TLS certificate verification failed"), "\(system)")
        // The loudly named opt-out connects anyway.
        let layer = try RedisPubSubChannelLayer(configuration: faultConfiguration("rediss://127.0.0.1:\(tls.tlsPort)?ssl_cert_reqs=none"))
        let channel = try await layer.newChannel()
        _ = try await layer.send(["type": "insecure"], to: channel)
        #expect(try await layer.receive(from: channel, timeout: .seconds(10))?["type"]?.stringValue == "insecure")
        await layer.close()
    }

    @Test func refusesACertificateForAnotherName() async throws {
        let pki = try await TLSCertificates.shared()
        let tls = try await TLSServer.start(certificate: pki.wrongNameCertificate, key: pki.wrongNameKey)
        defer { tls.server.stop() }
        let byIP = try await connectionError(of: tls.url())
        #expect(byIP.code == .connectionFailed)
        #expect(byIP.message.contains("TLS certificate verification failed: IP address mismatch"), "\(byIP)")
        let byName = try await connectionError(of: tls.url(host: "localhost"))
        #expect(byName.message.contains("hostname mismatch (the certificate is not for localhost)"), "\(byName)")
        // The name the certificate is for, sent as SNI and checked, while connecting to 127.0.0.1.
        let named = try RedisPubSubChannelLayer(configuration: faultConfiguration(tls.url("ssl_server_name=wrong.example")))
        _ = try await named.send(["type": "named"], to: "tls.named")
        await named.close()
        // ssl_check_hostname=false: the chain is still verified, the name is not.
        let unchecked = try RedisPubSubChannelLayer(configuration: faultConfiguration(tls.url("ssl_check_hostname=false")))
        _ = try await unchecked.send(["type": "unchecked"], to: "tls.unchecked")
        await unchecked.close()
    }

    @Test func aPlainTextPortFailsTheHandshakeQuickly() async throws {
        let tls = try await TLSServer.start()
        defer { tls.server.stop() }
        let start = ContinuousClock.now
        let error = try await connectionError(of: "rediss://127.0.0.1:\(tls.server.port)?ssl_ca_certs=\(tls.pki.caCertificate)")
        let message = error.message
        // redis-server reads a ClientHello as an inline command and waits for its newline, so the
        // connect timeout (2 s here) ends the handshake, saying so. A plain-text server that answers
        // (a RESP error is no TLS record) fails the handshake at once.
        #expect(
            (error.code == .connectionFailed && message.contains("TLS handshake failed") && message.contains("plain-text port"))
                || (error.code == .timeout && message.contains("during the TLS handshake")),
            "\(error)"
        )
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test func mutualTLSNeedsTheClientCertificate() async throws {
        let tls = try await TLSServer.start(requireClientCertificates: true)
        defer { tls.server.stop() }
        let pki = tls.pki
        let layer = try RedisPubSubChannelLayer(
            configuration: faultConfiguration(tls.url("ssl_certfile=\(pki.clientCertificate)&ssl_keyfile=\(pki.clientKey)"))
        )
        let channel = try await layer.newChannel()
        _ = try await layer.send(["type": "mutual"], to: channel)
        #expect(try await layer.receive(from: channel, timeout: .seconds(10))?["type"]?.stringValue == "mutual")
        await layer.close()

        // Without it the server ends the connection: in TLS 1.3 after the client's side of the
        // handshake is done, with a "certificate required" alert, and then a reset (the client's
        // first command reached a closed socket), which can overtake the alert.
        let refused = try await connectionError(of: tls.url())
        #expect([.connectionFailed, .connectionLost].contains(refused.code))
        #expect(
            refused.message.contains("TLS error: tlsv13 alert certificate required")
                || refused.message.contains("TLS error: Connection reset by peer"),
            "\(refused)"
        )
    }

    @Test func aBadCertificateFileIsAConfigurationError() async throws {
        let pki = try await TLSCertificates.shared()
        let cases: [(parameters: String, reason: String)] = [
            ("ssl_ca_certs=/nonexistent/ca.crt", "cannot load the CA certificates in '/nonexistent/ca.crt'"),
            ("ssl_certfile=/nonexistent/client.crt", "cannot load the client certificate '/nonexistent/client.crt'"),
            (
                "ssl_certfile=\(pki.clientCertificate)&ssl_keyfile=\(pki.serverKey)",
                "cannot load the private key '\(pki.serverKey)': key values mismatch"
            ),
            ("ssl_certfile=\(pki.clientCertificate)", "cannot load the private key"),  // the key is not in the certificate file
        ]
        for (parameters, reason) in cases {
            let error = #expect(throws: ChannelLayerError.self, "\(parameters)") {
                try RedisPubSubChannelLayer(hosts: ["rediss://127.0.0.1:6380?\(parameters)"])
            }
            #expect(error?.code == .invalidConfiguration)
            #expect(error?.message.contains(reason) == true, "\(error.map(String.init(describing:)) ?? "")")
        }
    }

    @Test func noOpenSSLObjectOutlivesItsConnectionOver200Connections() async throws {
        let tls = try await TLSServer.start()
        defer { tls.server.stop() }
        let before = OpenSSLContext.connectionCounts
        // 100 layers, each a publisher and a subscriber: 200 handshakes and closes. Every other
        // layer's publisher is also killed by the server once, so a reconnect's new SSL replaces
        // one that ended in an error.
        for round in 0..<100 {
            let layer = try RedisPubSubChannelLayer(configuration: faultConfiguration(tls.url()))
            _ = try await layer.send(["type": "cycle"], to: "tls.cycle")
            if round.isMultiple(of: 2) {
                _ = try await tls.server.command(["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
                try await eventually(timeout: .seconds(10)) { (try? await layer.send(["type": "again"], to: "tls.cycle")) != nil }
            }
            await layer.close()
        }
        let after = OpenSSLContext.connectionCounts
        #expect(after.created - before.created >= 250, "made \(after.created - before.created)")
        #expect(after.created - after.freed == before.created - before.freed, "live SSL objects: \(after.created - after.freed)")
    }

    @Test func aPythonPeerSharesTheLayerOverTLS() async throws {
        let tls = try await TLSServer.start()
        defer { tls.server.stop() }
        let url = tls.url("ssl_cert_reqs=required")
        let layer = try RedisPubSubChannelLayer(configuration: faultConfiguration(url))
        let peer = try await InteropPeer.start(hosts: [url], prefix: "asgi", serializer: "msgpack", keys: [])
        try await closing(peer, and: layer) {
            let python = try await peer.newChannel()
            let swift = try await layer.newChannel()
            _ = try await layer.send(["type": "from.swift", "text": "hello python"], to: python)
            let received = try await peer.receive(from: python).message
            #expect(received["text"]?.stringValue == "hello python", "\(received)")
            try await peer.send(["type": "from.python", "text": "hello swift"], to: swift)
            #expect(try await layer.receive(from: swift, timeout: .seconds(15))?["text"]?.stringValue == "hello swift")

            try await peer.groupAdd("tls_room", channel: python)
            try await layer.groupAdd("tls_room", channel: swift)
            try await eventually(timeout: .seconds(10)) {
                let reply = try? await tls.server.command(["PUBSUB", "NUMSUB", "asgi__group__tls_room"])
                return reply?.array?.last?.integer == 2
            }
            _ = try await layer.groupSend(["type": "group", "text": "both"], to: "tls_room")
            #expect(try await peer.receive(from: python).message["text"]?.stringValue == "both")
            #expect(try await layer.receive(from: swift, timeout: .seconds(15))?["text"]?.stringValue == "both")
        }
    }
}
