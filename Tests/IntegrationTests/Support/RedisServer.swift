import ChannelsRedisTestSupport
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A `redis-server` of the test's own on a free loopback port, started and stopped by its pid.
///
/// Never connect to a server the test did not start (a system redis may listen on 6379). A missing `redis-server` is a
/// failure, not a skip. Fault tests kill, pause and restart the server; `restart()` keeps the port, so clients configured
/// with ``url`` reconnect to the new process.
///
/// ```swift
/// let server = try await RedisServer.start(arguments: ["--requirepass", "secret"])
/// defer { server.stop() }
/// #expect(try await server.command(["PING"]) == .simple("PONG"))
/// server.kill9()
/// try await server.restart()
/// ```
///
/// `Sendable` without `@unchecked`: every stored property is a `let` of a `Sendable` type and the mutable state (port,
/// current process, pid) lives in one `Mutex`. Signals go through ``ChildProcess``, which sends them only while the
/// process is unreaped, so a late `pause()` can never hit a recycled pid.
final class RedisServer: Sendable {
    /// How long a launch may take before it counts as failed. Generous: under a sanitizer the suite
    /// starts some 370 tests at once on 2 cores, and a redis-server was seen to take over 10 s to
    /// bind then (its work is microseconds; the wait is for a core).
    static let readinessTimeout: Duration = .seconds(30)

    /// The `redis-server` binary.
    let executable: String
    /// The arguments given to ``start(arguments:)``, passed on to every launch.
    let extraArguments: [String]
    /// The `--requirepass` among ``extraArguments``, used by ``command(_:password:timeout:)``.
    let password: String?
    /// A temporary directory of this server's own: its log and working directory; removed when the server is released.
    let directory: String
    /// redis-server's stdout and stderr, every launch appended, each after a `--- fixture:` marker line.
    let logPath: String
    /// The configuration file given to ``start(arguments:configuration:)``, if any (a sentinel rewrites it).
    let configurationPath: String?

    private let state: Mutex<State>

    private struct State: Sendable {
        var port: Int
        var process: ChildProcess?
        var lastPID: Int32 = 0
        var launches = 0
    }

    private init(executable: String, extraArguments: [String], port: Int, configuration: String?) throws {
        self.executable = executable
        self.extraArguments = extraArguments
        if let index = extraArguments.firstIndex(of: "--requirepass"), index + 1 < extraArguments.count {
            self.password = extraArguments[index + 1]
        } else {
            self.password = nil
        }
        var template = Array((NSTemporaryDirectory() + "/channels-redis-test-XXXXXX").utf8CString)
        guard let created = mkdtemp(&template) else {
            throw FixtureError.systemCall("mkdtemp")
        }
        self.directory = String(cString: created)
        self.logPath = directory + "/redis-server.log"
        if let configuration {
            let path = directory + "/redis.conf"
            try configuration.write(toFile: path, atomically: true, encoding: .utf8)
            self.configurationPath = path
        } else {
            self.configurationPath = nil
        }
        self.state = Mutex(State(port: port))
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Starts a `redis-server` on a free port of 127.0.0.1 and waits until it answers.
    ///
    /// Runs it with `--port P --bind 127.0.0.1 --save "" --appendonly no --daemonize no --protected-mode no
    /// --loglevel warning --dir <temporary directory>` and then `arguments`. Tries another port when the chosen one was
    /// taken in the meantime.
    ///
    /// - Parameters:
    ///   - arguments: more `redis-server` arguments, e.g. `["--requirepass", "secret"]`.
    ///   - configuration: the text of a configuration file to start it with (written to its directory and passed first),
    ///     e.g. a sentinel's `sentinel monitor …` lines with `arguments: ["--sentinel"]`.
    /// - Throws: ``FixtureError`` `.notFound` when there is no `redis-server`; `.startFailed` (with the log's tail) when
    ///   it does not come up within ``readinessTimeout``.
    static func start(arguments extra: [String] = [], configuration: String? = nil) async throws -> RedisServer {
        let executable = try locateExecutable()
        var lastError: (any Error)?
        for _ in 0..<8 {
            let server = try RedisServer(
                executable: executable,
                extraArguments: extra,
                port: try LoopbackSocket.freeServerPort(),
                configuration: configuration
            )
            do {
                try await server.launch()
                return server
            } catch let error as FixtureError where error.kind == .addressInUse {
                lastError = error
            }
        }
        throw FixtureError(.startFailed, "redis-server found every port taken; last: \(lastError.map { "\($0)" } ?? "-")")
    }

    /// Starts a `redis-server` on `port` of 127.0.0.1, which the caller found free (``RedisCluster`` needs the port's
    /// bus port, `port + 10000`, free as well), and waits until it answers. Runs it as ``start(arguments:)`` does.
    ///
    /// - Throws: as ``start(arguments:)``, and `.addressInUse` when the port was taken in the meantime.
    static func start(port: Int, arguments extra: [String]) async throws -> RedisServer {
        let server = try RedisServer(executable: try locateExecutable(), extraArguments: extra, port: port, configuration: nil)
        try await server.launch()
        return server
    }

    private static func locateExecutable() throws -> String {
        guard let executable = ChildProcess.locate("redis-server", extraDirectories: ["/usr/bin", "/usr/local/bin"]) else {
            throw FixtureError(.notFound, "redis-server not found: install it with `apt-get install -y redis-server` or run `bash .ci/test`")
        }
        return executable
    }

    /// The port, the same across restarts.
    var port: Int { state.withLock { $0.port } }

    /// `redis://127.0.0.1:<port>`.
    var url: String { "redis://127.0.0.1:\(port)" }

    /// `redis://:<password>@127.0.0.1:<port>`.
    func url(password: String) -> String { "redis://:\(password)@127.0.0.1:\(port)" }

    /// The pid of the current process, or of the last one after it was stopped or killed.
    var pid: Int32 { state.withLock { $0.lastPID } }

    /// Whether a process of this server is running (a paused one counts).
    var isRunning: Bool { state.withLock { $0.process?.isRunning ?? false } }

    /// SIGKILL by pid and reap: the server vanishes without closing its connections cleanly.
    func kill9() {
        takeProcess()?.kill()
    }

    /// SIGTERM, SIGKILL after a grace period, reap. Idempotent.
    func stop() {
        takeProcess()?.terminate(gracePeriod: .seconds(3))
    }

    /// Starts the server again on the same port with the same arguments and waits until it answers; stops the running
    /// process first if there is one.
    ///
    /// Retries for a few seconds while the port is still taken.
    func restart() async throws {
        stop()
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            do {
                try await launch()
                return
            } catch let error as FixtureError where error.kind == .addressInUse && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// SIGSTOP: the kernel still accepts connections and data, but the server answers nothing until ``resume()``.
    func pause() {
        state.withLock { $0.process?.send(SIGSTOP) }
    }

    /// SIGCONT after ``pause()``.
    func resume() {
        state.withLock { $0.process?.send(SIGCONT) }
    }

    /// Sends one command on a connection of its own and returns the reply; a Redis error is an `.error` value.
    ///
    /// ```swift
    /// let killed = try await server.command(["CLIENT", "KILL", "TYPE", "pubsub"])
    /// ```
    ///
    /// - Parameter password: for `AUTH`; `nil` uses the server's `--requirepass`, if any. For an unauthenticated command on
    ///   a server with a password, use ``RESPClient/command(_:port:password:timeout:)``.
    func command(_ arguments: [String], password: String? = nil, timeout: Duration = .seconds(5)) async throws -> RESPValue {
        try await RESPClient.command(arguments, port: port, password: password ?? self.password, timeout: timeout)
    }

    /// ``command(_:password:timeout:)`` with arguments as raw bytes, for payloads that are not UTF-8.
    func command(_ arguments: [[UInt8]], password: String? = nil, timeout: Duration = .seconds(5)) async throws -> RESPValue {
        try await RESPClient.command(arguments, port: port, password: password ?? self.password, timeout: timeout)
    }

    /// The last `lines` lines of the log.
    func logTail(lines: Int = 30) -> String {
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "(no log at \(logPath))"
        return log.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    private func takeProcess() -> ChildProcess? {
        state.withLock { state in
            defer { state.process = nil }
            return state.process
        }
    }

    private func launchArguments(port: Int) -> [String] {
        (configurationPath.map { [$0] } ?? []) + [
            "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--protected-mode", "no", "--loglevel", "warning", "--dir", directory,
        ] + extraArguments
    }

    /// Starts one process on the current port and waits until it, and not some other process, answers there.
    private func launch() async throws {
        let (port, launch) = state.withLock { state in
            state.launches += 1
            return (state.port, state.launches)
        }
        let marker = "--- fixture: launch \(launch) of redis-server on 127.0.0.1:\(port)\n"
        appendToLog(marker)
        let process = try ChildProcess.spawn(
            executable: executable,
            arguments: launchArguments(port: port),
            standardOutput: .appendingTo(logPath),
            standardError: .appendingTo(logPath)
        )
        state.withLock { state in
            state.process = process
            state.lastPID = process.pid
        }
        do {
            try await waitUntilReady(process, port: port, marker: marker)
        } catch {
            state.withLock { state in
                if state.process === process {
                    state.process = nil
                }
            }
            process.kill()
            throw error
        }
    }

    private func waitUntilReady(_ process: ChildProcess, port: Int, marker: String) async throws {
        let deadline = ContinuousClock.now + Self.readinessTimeout
        var lastProblem = "nothing tried yet"
        while true {
            if let termination = process.reapIfExited() {
                let log = logSince(marker)
                if log.contains("Address already in use") {
                    throw FixtureError(.addressInUse, "redis-server could not bind 127.0.0.1:\(port): it is in use")
                }
                throw FixtureError(.startFailed, "redis-server \(termination) before it was ready on port \(port); its log:\n\(log)")
            }
            do {
                // INFO rather than PING: its process_id proves that our process answers, not another one on the same port.
                let reply = try await RESPClient.command(["INFO", "server"], port: port, password: password, timeout: .milliseconds(500))
                if let info = reply.string, Self.processID(in: info) == process.pid {
                    return
                }
                lastProblem = "INFO server answered \(reply.errorMessage ?? "with another process_id than \(process.pid)")"
            } catch {
                lastProblem = "\(error)"
            }
            if ContinuousClock.now >= deadline {
                throw FixtureError(
                    .startFailed,
                    "redis-server (pid \(process.pid)) did not answer on 127.0.0.1:\(port) within \(Self.readinessTimeout): \(lastProblem); "
                        + "its log:\n\(logSince(marker))"
                )
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    private static func processID(in info: String) -> Int32? {
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("process_id:") {
            return Int32(line.dropFirst("process_id:".count).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    private func appendToLog(_ text: String) {
        let fd = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            return
        }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    private func logSince(_ marker: String) -> String {
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        guard let range = log.range(of: marker, options: .backwards) else {
            return logTail()
        }
        let lines = log[range.upperBound...].split(separator: "\n", omittingEmptySubsequences: false)
        return lines.suffix(30).joined(separator: "\n")
    }
}
