import ChannelsRedisTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The fixtures' own tests: if these fail, no other integration test can be trusted.
@Suite(.timeLimit(.minutes(3)))
struct FixtureTests {
    // MARK: - RedisServer

    @Test func serverAnswersPingPublishAndClientList() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }

        #expect(server.url == "redis://127.0.0.1:\(server.port)")
        #expect(server.pid > 0)
        #expect(server.isRunning)
        #expect(try await server.command(["PING"]) == .simple("PONG"))
        #expect(try await server.command(["PUBLISH", "fixture.channel", "hello"]) == .integer(0))
        let numsub = try await server.command(["PUBSUB", "NUMSUB", "fixture.channel"])
        #expect(numsub == .array([.bulk(Array("fixture.channel".utf8)), .integer(0)]))
        let clients = try #require(try await server.command(["CLIENT", "LIST"]).string)
        #expect(clients.contains("cmd=client|list"))
        #expect(try await server.command(["NO-SUCH-COMMAND"]).errorMessage?.hasPrefix("ERR") == true)
    }

    @Test func binaryArgumentsRoundTripUnchanged() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }

        let payload: [UInt8] = [0xC1, 0xFF, 0x00, 0x0D, 0x0A, 0x80]
        #expect(try await server.command([Array("SET".utf8), Array("fixture.key".utf8), payload]) == .simple("OK"))
        #expect(try await server.command(["GET", "fixture.key"]) == .bulk(payload))
        #expect(try await server.command(["GET", "fixture.missing"]) == .bulk(nil))
    }

    @Test func serverWithPasswordRefusesUnauthenticatedCommands() async throws {
        let server = try await RedisServer.start(arguments: ["--requirepass", "s3cret"])
        defer { server.stop() }

        #expect(server.password == "s3cret")
        #expect(server.url(password: "s3cret") == "redis://:s3cret@127.0.0.1:\(server.port)")
        #expect(try await server.command(["PING"]) == .simple("PONG"))
        let unauthenticated = try await RESPClient.command(["PING"], port: server.port)
        #expect(unauthenticated.errorMessage?.hasPrefix("NOAUTH") == true)
        let error = try await #require(throws: FixtureError.self) {
            try await server.command(["PING"], password: "wrong")
        }
        #expect(error.kind == .authenticationFailed)
    }

    @Test func killedServerRestartsOnTheSamePort() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let port = server.port
        let firstPID = server.pid

        server.kill9()
        #expect(!server.isRunning)
        #expect(kill(firstPID, 0) == -1, "the killed process must be reaped, not left a zombie")
        let refused = try await #require(throws: FixtureError.self) { try await server.command(["PING"]) }
        #expect(refused.kind == .connectionRefused)

        try await server.restart()
        #expect(server.port == port)
        #expect(server.pid != firstPID)
        #expect(server.isRunning)
        #expect(try await server.command(["PING"]) == .simple("PONG"))

        // restart() of a running server stops it first.
        let secondPID = server.pid
        try await server.restart()
        #expect(server.pid != secondPID)
        #expect(try await server.command(["PING"]) == .simple("PONG"))
    }

    @Test func pausedServerAnswersNothingUntilResumed() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }

        server.pause()
        let error = try await #require(throws: FixtureError.self) {
            try await server.command(["PING"], timeout: .milliseconds(300))
        }
        #expect(error.kind == .timedOut)
        server.resume()
        #expect(try await server.command(["PING"]) == .simple("PONG"))
    }

    @Test func stoppedServerRefusesConnectionsAndStopIsIdempotent() async throws {
        let server = try await RedisServer.start()
        let pid = server.pid
        server.pause()
        server.stop()  // Must not hang on a stopped process.
        server.stop()
        #expect(!server.isRunning)
        #expect(kill(pid, 0) == -1)
        let error = try await #require(throws: FixtureError.self) { try await server.command(["PING"]) }
        #expect(error.kind == .connectionRefused)
    }

    @Test func serverThatCannotStartFailsWithItsLog() async throws {
        let error = try await #require(throws: FixtureError.self) {
            _ = try await RedisServer.start(arguments: ["--no-such-option", "1"])
        }
        #expect(error.kind == .startFailed)
        #expect(error.message.contains("no-such-option"), "the error should quote redis-server's log: \(error.message)")
    }

    @Test func serverInheritsNoDescriptorOfTheTestProcess() async throws {
        // A socket without close-on-exec, like the ones hiredis 0.14 opens.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        let ours = try #require(try ProcessStats.openFileDescriptors()[fd])

        let server = try await RedisServer.start()
        defer { server.stop() }
        let theirs = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(server.pid)/fd").map { name in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(server.pid)/fd/\(name)")) ?? ""
        }
        #expect(!theirs.contains(ours), "redis-server inherited \(ours)")
    }

    // MARK: - TCPProxy and friends

    @Test func proxyForwardsUntilBlackholedAndAgainAfterRestore() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let proxy = try TCPProxy(targetPort: server.port)
        proxy.start()
        defer { proxy.stop() }

        #expect(try await RESPClient.command(["PING"], port: proxy.port) == .simple("PONG"))
        #expect(proxy.acceptedConnections == 1)

        proxy.blackhole()
        #expect(proxy.isBlackholed)
        let error = try await #require(throws: FixtureError.self) {
            try await RESPClient.command(["PING"], port: proxy.port, timeout: .milliseconds(500))
        }
        #expect(error.kind == .timedOut)

        proxy.restore()
        #expect(!proxy.isBlackholed)
        #expect(try await RESPClient.command(["PING"], port: proxy.port) == .simple("PONG"))
    }

    @Test func blackholedConnectionStaysOpenWithoutDeliveringAnything() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let proxy = try TCPProxy(targetPort: server.port)
        proxy.start()
        defer { proxy.stop() }

        try await onDedicatedThread {
            let fd = try LoopbackSocket.connect(port: proxy.port, deadline: .now + .seconds(2))
            defer { close(fd) }
            try #require(try exchangePing(fd))

            proxy.blackhole()
            try LoopbackSocket.sendAll(fd, RESPClient.encode(["PING"]), deadline: .now + .seconds(1), port: proxy.port)
            // Neither a reply nor an EOF: the path is silently dead.
            #expect(try !LoopbackSocket.waitFor(fd, events: Int16(POLLIN), deadline: .now + .milliseconds(400)))

            // The server still sees the client: no FIN crossed.
            let clients = try RESPClient.commandBlocking(["CLIENT", "LIST"], port: server.port, timeout: .seconds(2)).string ?? ""
            #expect(clients.split(separator: "\n").count >= 2)

            proxy.restore()
            #expect(try LoopbackSocket.waitFor(fd, events: Int16(POLLIN), deadline: .now + .seconds(2)))
            var byte: UInt8 = 0
            #expect(recv(fd, &byte, 1, 0) <= 0, "restore() closes black-holed connections")
        }
    }

    @Test func dropAllClosesEveryConnection() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let proxy = try TCPProxy(targetPort: server.port)
        proxy.start()
        defer { proxy.stop() }

        try await onDedicatedThread {
            let fd = try LoopbackSocket.connect(port: proxy.port, deadline: .now + .seconds(2))
            defer { close(fd) }
            try #require(try exchangePing(fd))
            #expect(proxy.activeConnections == 1)

            proxy.dropAll()
            #expect(proxy.activeConnections == 0)
            #expect(try LoopbackSocket.waitFor(fd, events: Int16(POLLIN), deadline: .now + .seconds(2)))
            var byte: UInt8 = 0
            #expect(recv(fd, &byte, 1, 0) == 0)
        }
        #expect(try await RESPClient.command(["PING"], port: proxy.port) == .simple("PONG"))
    }

    @Test func proxyResetsClientsWhileTheServerIsDown() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let proxy = try TCPProxy(targetPort: server.port)
        proxy.start()
        defer { proxy.stop() }

        server.kill9()
        let error = try await #require(throws: FixtureError.self) {
            try await RESPClient.command(["PING"], port: proxy.port, timeout: .seconds(2))
        }
        #expect(error.kind == .connectionClosed, "\(error)")

        try await server.restart()
        #expect(try await RESPClient.command(["PING"], port: proxy.port) == .simple("PONG"))
    }

    @Test func proxyStopsWhenReleased() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        var proxy: TCPProxy? = try TCPProxy(targetPort: server.port)
        proxy?.start()
        let port = try #require(proxy?.port)
        #expect(try await RESPClient.command(["PING"], port: port) == .simple("PONG"))

        proxy = nil
        let error = try await #require(throws: FixtureError.self) { try await RESPClient.command(["PING"], port: port) }
        #expect(error.kind == .connectionRefused)
    }

    @Test func silentListenerAcceptsButNeverAnswers() async throws {
        let silent = try SilentListener()
        defer { silent.stop() }

        let error = try await #require(throws: FixtureError.self) {
            try await RESPClient.command(["PING"], port: silent.port, timeout: .milliseconds(300))
        }
        #expect(error.kind == .timedOut)
        #expect(silent.acceptedConnections == 1)
    }

    @Test func connectToHangingListenerHangsForMoreThanThreeSeconds() async throws {
        let hanging = try HangingConnectListener()
        defer { hanging.close() }

        let start = ContinuousClock.now
        let error = try await #require(throws: FixtureError.self) {
            try await onDedicatedThread {
                let fd = try LoopbackSocket.connect(port: hanging.port, deadline: .now + .milliseconds(3_500))
                close(fd)
            }
        }
        #expect(error.kind == .timedOut)
        #expect(ContinuousClock.now - start >= .milliseconds(3_400))

        // A second client hangs too (the listener never drains its queue).
        let again = try await #require(throws: FixtureError.self) {
            try await RESPClient.command(["PING"], port: hanging.port, timeout: .milliseconds(500))
        }
        #expect(again.kind == .timedOut)
    }

    @Test func unusedPortRefusesConnections() async throws {
        let port = TCPProxy.unusedPort()
        let error = try await #require(throws: FixtureError.self) { try await RESPClient.command(["PING"], port: port) }
        #expect(error.kind == .connectionRefused)
    }

    // MARK: - ProcessStats

    @Test func processStatsAreSane() throws {
        let snapshot = try ProcessStats.snapshot()
        #expect(snapshot.openFileDescriptors > 0)
        #expect(snapshot.threads >= 1)
        #expect(snapshot.residentBytes > 1 << 20)
        #expect(snapshot.residentBytes < 16 << 30)

        let fd = try LoopbackSocket.makeTCPSocket()
        let target = try ProcessStats.openFileDescriptors()[fd]
        close(fd)
        #expect(target?.hasPrefix("socket:[") == true)
        #expect(try ProcessStats.openFileDescriptors()[fd] != target)
    }

    @Test func threadCountSeesANewThread() async throws {
        let before = try ProcessStats.threadCount()
        let release = DispatchSemaphore(value: 0)
        let thread = Thread { release.wait() }
        thread.start()
        defer { release.signal() }
        // Other tests start threads too, so only "more than before" is certain.
        try await eventually { try ProcessStats.threadCount() > before }
    }

    // MARK: - eventually

    @Test func eventuallyWaitsUntilTheConditionHolds() async throws {
        var checks = 0
        try await eventually {
            checks += 1
            return checks == 3
        }
        #expect(checks == 3)
        var attempts = 0
        let value = try await eventuallyValue {
            attempts += 1
            return attempts == 2 ? "done" : nil
        }
        #expect(value == "done")
    }

    @Test func eventuallyFailsTheTestWhenTheConditionNeverHolds() async throws {
        try await withKnownIssue {
            try await eventually(timeout: .milliseconds(60), "something that never happens") { false }
        } matching: { issue in
            issue.comments.contains { $0.rawValue.contains("something that never happens") }
        }
    }

    // MARK: - PythonPeer

    @Test func pythonPeerRunsChannelsRedis() async throws {
        let script = try TemporaryFile(
            "fixture",
            suffix: ".py",
            contents: """
                import importlib.metadata, sys
                import channels_redis.pubsub
                print(importlib.metadata.version("channels-redis"), sys.argv[1])
                """.utf8
        )
        defer { script.remove() }
        let result = try await PythonPeer.run(script: script.path, arguments: ["argument"], timeout: .seconds(60))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "4.3.0 argument\n")
    }

    @Test func pythonPeerExchangesLines() async throws {
        let script = try TemporaryFile(
            "fixture",
            suffix: ".py",
            contents: """
                import sys
                print("ready")
                for line in sys.stdin:
                    print(line.strip().upper())
                print("bye", file=sys.stderr)
                """.utf8
        )
        defer { script.remove() }
        let peer = try PythonPeer.start(script: script.path)
        defer { peer.terminate() }

        #expect(try await peer.readLine() == "ready")
        try peer.writeLine("hello")
        #expect(try await peer.readLine() == "HELLO")
        peer.closeInput()
        #expect(try await peer.waitForExit(timeout: .seconds(10)) == .exited(0))
        #expect(peer.standardError == "bye\n")
        let error = try await #require(throws: FixtureError.self) { try await peer.readLine() }
        #expect(error.kind == .connectionClosed)
    }

    @Test func pythonPeerReportsAMissingScript() async throws {
        let error = try #require(throws: FixtureError.self) { try PythonPeer.start(script: "no-such-peer.py") }
        #expect(error.kind == .notFound)
    }

    @Test func terminatedPythonPeerIsReaped() async throws {
        let script = try TemporaryFile("fixture", suffix: ".py", contents: "import time\nprint('sleeping')\ntime.sleep(600)\n".utf8)
        defer { script.remove() }
        let peer = try PythonPeer.start(script: script.path)
        #expect(try await peer.readLine() == "sleeping")
        let pid = peer.pid
        #expect(peer.terminate() == .signaled(SIGTERM))
        #expect(kill(pid, 0) == -1)
    }
}

/// Sends PING on `fd` and reads until PONG's line arrives.
private func exchangePing(_ fd: Int32) throws -> Bool {
    try LoopbackSocket.sendAll(fd, RESPClient.encode(["PING"]), deadline: .now + .seconds(2), port: 0)
    var received: [UInt8] = []
    let deadline = ContinuousClock.now + .seconds(2)
    while received.count < 7 {
        guard try LoopbackSocket.waitFor(fd, events: Int16(POLLIN), deadline: deadline) else {
            return false
        }
        var chunk = [UInt8](repeating: 0, count: 64)
        let count = recv(fd, &chunk, chunk.count, 0)
        guard count > 0 else {
            return false
        }
        received += chunk.prefix(count)
    }
    return received == Array("+PONG\r\n".utf8)
}
