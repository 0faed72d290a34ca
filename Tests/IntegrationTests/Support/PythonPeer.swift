import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Runs Python channels_redis peers from `Tests/IntegrationTests/Python/` with the package's `.venv`, for the
/// wire-compatibility tests.
///
/// The venv comes from `bash .ci/test`; when it is missing the tests fail with a message saying so, they do not skip.
///
/// ```swift
/// let result = try await PythonPeer.run(script: "receive_one.py", arguments: [server.url, "chat"], timeout: .seconds(30))
/// #expect(result.status == 0, "\(result.stderr)")
///
/// let peer = try PythonPeer.start(script: "echo_peer.py", arguments: [server.url])
/// defer { peer.terminate() }
/// #expect(try await peer.readLine() == "ready")
/// try peer.writeLine(#"{"type": "chat.message"}"#)
/// ```
enum PythonPeer {
    /// The package's root directory: this file is `<root>/Tests/IntegrationTests/Support/PythonPeer.swift`.
    static let packageRoot: String = {
        var path = #filePath
        if let resolved = realpath(path, nil) {
            path = String(cString: resolved)
            free(resolved)
        }
        var components = path.split(separator: "/", omittingEmptySubsequences: false)
        components.removeLast(4)
        return components.joined(separator: "/")
    }()

    /// Where the peers' scripts live.
    static var scriptsDirectory: String { packageRoot + "/Tests/IntegrationTests/Python" }

    /// `<package root>/.venv/bin/python3`.
    ///
    /// - Throws: ``FixtureError`` `.notFound` when the venv is missing.
    static func python() throws -> String {
        let path = packageRoot + "/.venv/bin/python3"
        guard access(path, X_OK) == 0 else {
            throw FixtureError(.notFound, "\(path) is missing: run `bash .ci/test` once to create .venv with channels-redis 4.3.0")
        }
        return path
    }

    /// `script` itself if it is an absolute path, else the file of that name in ``scriptsDirectory``.
    static func scriptPath(_ script: String) -> String {
        script.hasPrefix("/") ? script : scriptsDirectory + "/" + script
    }

    /// Runs `script` to its end with stdin closed and returns its exit status (128 + signal if killed) and output.
    ///
    /// - Throws: ``FixtureError`` `.notFound` (no venv, no script), `.timedOut` (killed after `timeout`; the message has its
    ///   output so far).
    static func run(
        script: String,
        arguments: [String] = [],
        environment: [String: String] = [:],
        timeout: Duration = .seconds(60)
    ) async throws -> (status: Int32, stdout: String, stderr: String) {
        let process = try start(script: script, arguments: arguments, environment: environment)
        process.closeInput()
        guard let termination = try await process.waitForExit(timeout: timeout) else {
            process.terminate()
            throw FixtureError(
                .timedOut,
                "python \(script) did not finish within \(timeout); its stdout:\n\(process.standardOutput)\nits stderr:\n\(process.standardError)"
            )
        }
        return (termination.shellStatus, process.standardOutput, process.standardError)
    }

    /// Starts `script` and returns a handle to talk to it line by line; it is killed when the handle is released.
    ///
    /// The child runs unbuffered (`-u`), so each line it prints arrives at once.
    ///
    /// - Parameter environment: added to ours.
    static func start(script: String, arguments: [String] = [], environment: [String: String] = [:]) throws -> PythonProcess {
        let python = try python()
        let path = scriptPath(script)
        guard access(path, R_OK) == 0 else {
            throw FixtureError(.notFound, "Python peer script \(path) does not exist")
        }
        var fullEnvironment = ProcessInfo.processInfo.environment
        fullEnvironment["PYTHONUNBUFFERED"] = "1"
        fullEnvironment["PYTHONDONTWRITEBYTECODE"] = "1"
        fullEnvironment.merge(environment) { _, new in new }
        return try PythonProcess(python: python, script: path, arguments: arguments, environment: fullEnvironment)
    }
}

/// A running Python peer: lines in on stdin, lines out from stdout, stderr collected.
///
/// `Sendable`: the child is a ``ChildProcess``; stdin's descriptor and the output collected by the reader threads live in
/// `Mutex`es. The reader threads hold only the output buffer, so releasing the handle kills the child.
final class PythonProcess: Sendable {
    let script: String
    private let child: ChildProcess
    private let input: Mutex<Int32>
    private let output = OutputBuffer()

    fileprivate init(python: String, script: String, arguments: [String], environment: [String: String]) throws {
        self.script = script
        // Socket pairs rather than pipes: close-on-exec from the start (Swift's Glibc module has no pipe2), and stdin can be
        // written with MSG_NOSIGNAL, so a peer that died fails the write instead of raising SIGPIPE in the test process.
        let inputPair = try Self.socketPair()
        let stdoutPipe: [Int32]
        let stderrPipe: [Int32]
        do {
            stdoutPipe = try Self.socketPair()
        } catch {
            Self.closeAll(inputPair)
            throw error
        }
        do {
            stderrPipe = try Self.socketPair()
        } catch {
            Self.closeAll(inputPair + stdoutPipe)
            throw error
        }
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(
                executable: python,
                arguments: ["-u", script] + arguments,
                environment: environment,
                standardInput: .descriptor(inputPair[1]),
                standardOutput: .descriptor(stdoutPipe[1]),
                standardError: .descriptor(stderrPipe[1])
            )
        } catch {
            Self.closeAll(inputPair + stdoutPipe + stderrPipe)
            throw error
        }
        Self.closeAll([inputPair[1], stdoutPipe[1], stderrPipe[1]])
        self.child = child
        self.input = Mutex(inputPair[0])
        OutputBuffer.startReading(stdoutPipe[0], into: output, stream: .stdout)
        OutputBuffer.startReading(stderrPipe[0], into: output, stream: .stderr)
    }

    deinit {
        closeInput()
        child.kill()
    }

    private static func closeAll(_ descriptors: [Int32]) {
        for fd in descriptors {
            close(fd)
        }
    }

    /// Two connected, close-on-exec Unix stream sockets: [ours, the child's].
    private static func socketPair() throws -> [Int32] {
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw FixtureError.systemCall("socketpair")
        }
        return pair
    }

    var pid: Int32 { child.pid }

    /// Everything the peer printed to stdout so far, read lines included.
    var standardOutput: String { output.text(.stdout) }

    /// Everything the peer printed to stderr so far.
    var standardError: String { output.text(.stderr) }

    /// The next line of stdout, without its line break.
    ///
    /// - Throws: ``FixtureError`` `.timedOut` if no line comes within `timeout`, `.connectionClosed` if stdout ends first;
    ///   both messages carry the peer's stderr.
    func readLine(timeout: Duration = .seconds(10)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            switch output.nextLine() {
            case .line(let line):
                return line
            case .endOfOutput:
                let termination = try await child.waitForExit(timeout: .seconds(2))
                throw FixtureError(
                    .connectionClosed,
                    "python \(script) closed stdout (\(termination.map { "\($0)" } ?? "still running")) before a line came; "
                        + "its stderr:\n\(standardError)"
                )
            case .notYet:
                if ContinuousClock.now >= deadline {
                    throw FixtureError(.timedOut, "python \(script) printed no line within \(timeout); its stderr:\n\(standardError)")
                }
                try await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    /// Writes `line` and a line break to the peer's stdin.
    ///
    /// - Throws: ``FixtureError`` `.connectionClosed` when the peer no longer reads its stdin.
    func writeLine(_ line: String) throws {
        try input.withLock { fd in
            guard fd >= 0 else {
                throw FixtureError(.connectionClosed, "stdin of python \(script) is already closed")
            }
            var bytes = Array(line.utf8)
            bytes.append(UInt8(ascii: "\n"))
            var offset = 0
            while offset < bytes.count {
                let sent = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if sent > 0 {
                    offset += sent
                } else if errno != EINTR {
                    throw FixtureError(.connectionClosed, "python \(script) does not read its stdin: \(FixtureError.systemCall("send"))")
                }
            }
        }
    }

    /// Closes the peer's stdin (it reads EOF). Idempotent.
    func closeInput() {
        input.withLock { fd in
            if fd >= 0 {
                close(fd)
                fd = -1
            }
        }
    }

    /// SIGTERM, SIGKILL after 2 s, reap. Idempotent.
    @discardableResult
    func terminate() -> ChildProcess.Termination {
        closeInput()
        return child.terminate(gracePeriod: .seconds(2))
    }

    /// Waits for the peer to exit and for its output to be read to the end; `nil` if it still runs after `timeout`.
    func waitForExit(timeout: Duration) async throws -> ChildProcess.Termination? {
        let deadline = ContinuousClock.now + timeout
        guard let termination = try await child.waitForExit(timeout: timeout) else {
            return nil
        }
        // The reader threads may still be draining the pipes; a grandchild holding them open must not hang us.
        while !output.isComplete && ContinuousClock.now < deadline + .seconds(2) {
            try await Task.sleep(for: .milliseconds(5))
        }
        return termination
    }
}

/// The peer's stdout and stderr as the reader threads collect them.
private final class OutputBuffer: Sendable {
    enum Stream: Sendable {
        case stdout, stderr
    }

    enum NextLine {
        case line(String)
        case notYet
        case endOfOutput
    }

    private struct State: Sendable {
        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        /// How much of `stdout` ``nextLine()`` has handed out.
        var consumed = 0
        var stdoutEnded = false
        var stderrEnded = false
    }

    private let state = Mutex(State())

    /// Reads `fd` to its end on a thread of its own, then closes it.
    static func startReading(_ fd: Int32, into buffer: OutputBuffer, stream: Stream) {
        let thread = Thread {
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = read(fd, &chunk, chunk.count)
                if count > 0 {
                    buffer.append(chunk.prefix(count), to: stream)
                } else if count == 0 || errno != EINTR {
                    break
                }
            }
            close(fd)
            buffer.end(stream)
        }
        thread.name = "fixture-python-\(stream)"
        thread.start()
    }

    var isComplete: Bool { state.withLock { $0.stdoutEnded && $0.stderrEnded } }

    func text(_ stream: Stream) -> String {
        state.withLock { String(decoding: stream == .stdout ? $0.stdout : $0.stderr, as: UTF8.self) }
    }

    func nextLine() -> NextLine {
        state.withLock { state in
            let unread = state.stdout[state.consumed...]
            if let newline = unread.firstIndex(of: UInt8(ascii: "\n")) {
                var line = state.stdout[state.consumed..<newline]
                if line.last == UInt8(ascii: "\r") {
                    line = line.dropLast()
                }
                state.consumed = newline + 1
                return .line(String(decoding: line, as: UTF8.self))
            }
            guard state.stdoutEnded else {
                return .notYet
            }
            if unread.isEmpty {
                return .endOfOutput
            }
            // A last line without a line break.
            state.consumed = state.stdout.count
            return .line(String(decoding: unread, as: UTF8.self))
        }
    }

    private func append(_ bytes: ArraySlice<UInt8>, to stream: Stream) {
        state.withLock { state in
            if stream == .stdout {
                state.stdout += bytes
            } else {
                state.stderr += bytes
            }
        }
    }

    private func end(_ stream: Stream) {
        state.withLock { state in
            if stream == .stdout {
                state.stdoutEnded = true
            } else {
                state.stderrEnded = true
            }
        }
    }
}
