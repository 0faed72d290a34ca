import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Runs the Python peers, the scripts in `Tests/Python/`, with the package's `.venv`: the reference implementation
/// (channels_redis 4.3.0, msgpack, cryptography) that the cross-checks and the wire-compatibility tests compare with.
///
/// The venv comes from `bash .ci/test`; when it is missing the tests fail with a message saying so, they do not skip:
/// compatibility with Python is the point of this library.
///
/// ```swift
/// let stdout = try await PythonPeer.output(script: "consistent_hash.py", arguments: [names.path, "200"])
///
/// let peer = try PythonPeer.start(script: "peer.py", arguments: ["--host", server.url])
/// defer { peer.terminate() }
/// #expect(try await peer.readLine() == "ready")
/// try peer.writeLine(#"{"id": "1", "cmd": "ping"}"#)
/// ```
package enum PythonPeer {
    /// The package's root directory: this file is `<root>/Tests/Support/PythonPeer.swift`.
    package static let packageRoot: String = {
        var path = #filePath
        if let resolved = realpath(path, nil) {
            path = String(cString: resolved)
            free(resolved)
        }
        var components = path.split(separator: "/", omittingEmptySubsequences: false)
        components.removeLast(3)
        return components.joined(separator: "/")
    }()

    /// Where the peers' scripts live.
    package static var scriptsDirectory: String { packageRoot + "/Tests/Python" }

    /// `<package root>/.venv/bin/python3`.
    ///
    /// - Throws: ``FixtureError`` `.notFound` when the venv is missing.
    package static func python() throws -> String {
        let path = packageRoot + "/.venv/bin/python3"
        guard access(path, X_OK) == 0 else {
            throw FixtureError(.notFound, "\(path) is missing: run `bash .ci/test` once to create .venv with channels-redis 4.3.0")
        }
        return path
    }

    /// `script` itself if it is an absolute path, else the file of that name in ``scriptsDirectory``.
    package static func scriptPath(_ script: String) -> String {
        script.hasPrefix("/") ? script : scriptsDirectory + "/" + script
    }

    /// Runs `script` to its end with stdin closed and returns its exit status (128 + signal if killed) and output.
    ///
    /// - Throws: ``FixtureError`` `.notFound` (no venv, no script), `.timedOut` (killed after `timeout`; the message has its
    ///   output so far).
    package static func run(
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

    /// Runs `script` to its end like ``run(script:arguments:environment:timeout:)`` and returns its stdout.
    ///
    /// - Throws: what `run` throws, and ``FixtureError`` `.failed` (with its stderr) when it exits with a status other than 0.
    package static func output(script: String, arguments: [String] = [], timeout: Duration = .seconds(60)) async throws -> String {
        let result = try await run(script: script, arguments: arguments, timeout: timeout)
        guard result.status == 0 else {
            throw FixtureError(.failed, "\(script) exited with \(result.status): \(result.stderr)")
        }
        return result.stdout
    }

    /// Starts `script` and returns a handle to talk to it line by line; it is killed when the handle is released.
    ///
    /// The child runs unbuffered (`-u`), so each line it prints arrives at once.
    ///
    /// - Parameter environment: added to ours.
    package static func start(script: String, arguments: [String] = [], environment: [String: String] = [:]) throws -> PythonProcess {
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
/// `Sendable`: the child is a ``ChildProcess``, stdin a ``ChildInput``, the output an ``OutputBuffer``, whose reader
/// threads hold only the buffer, so releasing the handle kills the child.
package final class PythonProcess: Sendable {
    package let script: String
    private let child: ChildProcess
    private let input: ChildInput
    private let output = OutputBuffer()

    fileprivate init(python: String, script: String, arguments: [String], environment: [String: String]) throws {
        self.script = script
        let inputPair = try ChildProcess.socketPair()
        let stdoutPair: [Int32]
        let stderrPair: [Int32]
        do {
            stdoutPair = try ChildProcess.socketPair()
        } catch {
            ChildProcess.closeAll(inputPair)
            throw error
        }
        do {
            stderrPair = try ChildProcess.socketPair()
        } catch {
            ChildProcess.closeAll(inputPair + stdoutPair)
            throw error
        }
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(
                executable: python,
                arguments: ["-u", script] + arguments,
                environment: environment,
                standardInput: .descriptor(inputPair[1]),
                standardOutput: .descriptor(stdoutPair[1]),
                standardError: .descriptor(stderrPair[1])
            )
        } catch {
            ChildProcess.closeAll(inputPair + stdoutPair + stderrPair)
            throw error
        }
        ChildProcess.closeAll([inputPair[1], stdoutPair[1], stderrPair[1]])
        self.child = child
        self.input = ChildInput(inputPair[0], name: "stdin of python \(script)")
        output.startReading(stdoutPair[0], into: .stdout, name: "python")
        output.startReading(stderrPair[0], into: .stderr, name: "python")
    }

    deinit {
        closeInput()
        child.kill()
    }

    package var pid: Int32 { child.pid }

    /// Everything the peer printed to stdout so far, read lines included.
    package var standardOutput: String { output.text(.stdout) }

    /// Everything the peer printed to stderr so far.
    package var standardError: String { output.text(.stderr) }

    /// The next line of stdout, without its line break.
    ///
    /// - Throws: ``FixtureError`` `.timedOut` if no line comes within `timeout`, `.connectionClosed` if stdout ends first;
    ///   both messages carry the peer's stderr.
    package func readLine(timeout: Duration = .seconds(10)) async throws -> String {
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
    package func writeLine(_ line: String) throws {
        try input.write(Array(line.utf8) + [UInt8(ascii: "\n")])
    }

    /// Closes the peer's stdin (it reads EOF). Idempotent.
    package func closeInput() {
        input.close()
    }

    /// SIGTERM, SIGKILL after 2 s, reap. Idempotent.
    @discardableResult
    package func terminate() -> ChildProcess.Termination {
        closeInput()
        return child.terminate(gracePeriod: .seconds(2))
    }

    /// Waits for the peer to exit and for its output to be read to the end; `nil` if it still runs after `timeout`.
    package func waitForExit(timeout: Duration) async throws -> ChildProcess.Termination? {
        try await output.waitForExit(of: child, timeout: timeout)
    }
}
