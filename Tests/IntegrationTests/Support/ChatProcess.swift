import ChannelsRedisTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The `chat` binary that `swift build --build-tests` put next to the test bundle.
enum ChatBinary {
    /// - Throws: ``FixtureError`` `.notFound`, naming the folders it looked in.
    static func path() throws -> String {
        var folders: [String] = []
        if let override = ProcessInfo.processInfo.environment["CHAT_BINARY"] {
            guard access(override, X_OK) == 0 else {
                throw FixtureError(.notFound, "CHAT_BINARY=\(override) is not an executable file")
            }
            return override
        }
        // The test bundle is `<scratch>/<triple>/debug/<package>PackageTests.xctest` (a file on Linux, a folder on macOS,
        // where Bundle.main is the xctest runner): the chat is its sibling.
        // (Not `Bundle.allBundles`: Foundation leaks what it builds for it, which LeakSanitizer reports.)
        let candidates = [Bundle.main.executablePath, CommandLine.arguments.first, "/proc/self/exe"].compactMap { $0 }
        for candidate in candidates {
            guard let resolved = realpath(candidate, nil) else { continue }
            var folder = URL(fileURLWithPath: String(cString: resolved)).deletingLastPathComponent()
            free(resolved)
            if folder.lastPathComponent == "MacOS" {  // inside an .xctest bundle
                folder = folder.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            }
            let path = folder.appendingPathComponent("chat").path
            if access(path, X_OK) == 0 {
                return path
            }
            if !folders.contains(folder.path) { folders.append(folder.path) }
        }
        throw FixtureError(
            .notFound,
            "the chat binary is not next to the test bundle (looked in \(folders.joined(separator: ", "))): build it with "
                + "`swift build --build-tests` using the same --scratch-path as `swift test`, or set CHAT_BINARY"
        )
    }
}

/// A running `chat`: lines in on its stdin, its stdout collected line by line.
///
/// `.pipes` gives it Unix socket pairs for stdin, stdout and stderr; `.terminal` a pseudo-terminal for all three, as a
/// terminal emulator would (so the terminal's own echo of typed lines shows up in ``transcript`` too, but never as a
/// time-stamped chat line). `Sendable`: the child is a ``ChildProcess``, its input a ``ChildInput``, its output an
/// ``OutputBuffer``, and the count of lines matched so far lives in a `Mutex`.
final class ChatProcess: Sendable {
    enum Connection: Sendable {
        case pipes, terminal
    }

    enum Input: Sendable {
        /// A descriptor the test writes to.
        case interactive
        /// `/dev/null` (pipes only), as the demo script starts its bot.
        case null
    }

    let connection: Connection
    private let child: ChildProcess
    private let input: ChildInput
    private let output = OutputBuffer()
    /// How many of the stamped lines ``expectLine(_:timeout:sourceLocation:)`` has gone past.
    private let matchedLines = Mutex(0)

    static func start(redis: String, room: String, name: String, via connection: Connection) throws -> ChatProcess {
        try start(arguments: ["--redis", redis, "--room", room, "--name", name], via: connection)
    }

    static func start(arguments: [String], via connection: Connection, input: Input = .interactive) throws -> ChatProcess {
        try ChatProcess(executable: try ChatBinary.path(), arguments: arguments, connection: connection, input: input)
    }

    private init(executable: String, arguments: [String], connection: Connection, input: Input) throws {
        self.connection = connection
        switch connection {
        case .pipes:
            let stdinPair = try ChildProcess.socketPair()
            let stdoutPair = try ChildProcess.socketPair()
            let stderrPair = try ChildProcess.socketPair()
            defer { ChildProcess.closeAll([stdinPair[1], stdoutPair[1], stderrPair[1]]) }
            do {
                child = try ChildProcess.spawn(
                    executable: executable,
                    arguments: arguments,
                    standardInput: input == .null ? .null : .descriptor(stdinPair[1]),
                    standardOutput: .descriptor(stdoutPair[1]),
                    standardError: .descriptor(stderrPair[1])
                )
            } catch {
                ChildProcess.closeAll([stdinPair[0], stdoutPair[0], stderrPair[0]])
                throw error
            }
            if input == .null { close(stdinPair[0]) }
            self.input = ChildInput(input == .null ? -1 : stdinPair[0], name: "the chat's input")
            output.startReading(stdoutPair[0], into: .stdout, name: "chat")
            output.startReading(stderrPair[0], into: .stderr, name: "chat")
        case .terminal:
            let (controller, terminal) = try Self.pseudoTerminal()
            defer { close(terminal) }
            let reader = dup(controller)
            guard reader >= 0 else {
                let error = FixtureError.systemCall("dup")
                close(controller)
                throw error
            }
            _ = fcntl(reader, F_SETFD, FD_CLOEXEC)
            do {
                child = try ChildProcess.spawn(
                    executable: executable,
                    arguments: arguments,
                    standardInput: .descriptor(terminal),
                    standardOutput: .descriptor(terminal),
                    standardError: .descriptor(terminal)
                )
            } catch {
                ChildProcess.closeAll([controller, reader])
                throw error
            }
            self.input = ChildInput(controller, kind: .terminal, name: "the chat's input")
            // Reads end with EIO once the chat, the only holder of the terminal side left, has exited.
            output.startReading(reader, into: .stdout, name: "chat")
            output.end(.stderr)
        }
    }

    deinit {
        child.kill()
        input.close()
    }

    /// A controller and terminal pair from `posix_openpt`, both close-on-exec, the terminal in its default modes
    /// (canonical input, echo, `\n` written as `\r\n`).
    private static func pseudoTerminal() throws -> (controller: Int32, terminal: Int32) {
        let controller = PseudoTerminalCalls.openController(O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard controller >= 0 else { throw FixtureError.systemCall("posix_openpt") }
        var name = [CChar](repeating: 0, count: 128)
        guard PseudoTerminalCalls.grant(controller) == 0, PseudoTerminalCalls.unlock(controller) == 0,
            PseudoTerminalCalls.name(controller, &name, name.count) == 0
        else {
            let error = FixtureError.systemCall("grantpt/unlockpt/ptsname_r")
            close(controller)
            throw error
        }
        let path = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let terminal = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard terminal >= 0 else {
            let error = FixtureError.systemCall("open(\(path))")
            close(controller)
            throw error
        }
        return (controller, terminal)
    }

    var isRunning: Bool { child.isRunning }

    /// The chat's time-stamped lines so far, without the `HH:MM:SS ` stamp.
    var lines: [String] { Self.stampedLines(in: output.bytes(.stdout)) }

    /// Everything on stdout (on a terminal: everything, echo included) so far.
    var transcript: String { output.text(.stdout) + output.text(.stderr) }

    /// Everything on stderr so far (pipes only).
    var standardError: String { output.text(.stderr) }

    /// Waits for a line, after those matched before, that reads `text` after its time stamp.
    ///
    /// - Throws: ``FixtureError`` `.timedOut` (with the transcript) when none comes within `timeout`.
    func expectLine(_ text: String, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await expectLine(timeout: timeout, describedAs: "'\(text)'", sourceLocation: sourceLocation) { $0 == text }
    }

    /// Waits for a line, after those matched before, whose text after its time stamp starts with `prefix`.
    func expectLine(prefix: String, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await expectLine(timeout: timeout, describedAs: "starting with '\(prefix)'", sourceLocation: sourceLocation) { $0.hasPrefix(prefix) }
    }

    private func expectLine(
        timeout: Duration,
        describedAs description: String,
        sourceLocation: SourceLocation,
        _ matches: @Sendable (String) -> Bool
    ) async throws {
        let timeout = timeout * TestTime.scale
        let deadline = ContinuousClock.now + timeout
        while !matchLine(where: matches) {
            if ContinuousClock.now >= deadline {
                let error = FixtureError(.timedOut, "no line \(description) within \(timeout); the chat printed:\n\(transcript)")
                Issue.record(error, sourceLocation: sourceLocation)
                throw error
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Moves past the first stamped line after those already passed that `matches`; false if there is none yet.
    private func matchLine(where matches: (String) -> Bool) -> Bool {
        matchedLines.withLock { matched in
            let lines = self.lines
            guard let index = lines[matched...].firstIndex(where: matches) else { return false }
            matched = index + 1
            return true
        }
    }

    /// Types `line` and a line break.
    func type(_ line: String) throws {
        try input.write(Array(line.utf8) + [UInt8(ascii: "\n")])
    }

    /// Ends the chat's input: closes the pipe, or types Ctrl-D on the terminal.
    func endInput() throws {
        switch connection {
        case .pipes: input.close()
        case .terminal: try input.write([0x04])
        }
    }

    func send(_ signal: Int32) {
        child.send(signal)
    }

    /// Waits for the chat to exit and for its output to be read to the end; `nil` if it still runs after `timeout`.
    func waitForExit(timeout: Duration = .seconds(15)) async throws -> ChildProcess.Termination? {
        try await output.waitForExit(of: child, timeout: timeout)
    }

    /// The complete lines of `bytes` that start with an `HH:MM:SS ` stamp, without it.
    private static func stampedLines(in bytes: [UInt8]) -> [String] {
        var lines: [String] = []
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast() {
            let text = String(decoding: line.last == UInt8(ascii: "\r") ? line.dropLast() : line, as: UTF8.self)
            let stamp = Array(text.utf8.prefix(9))
            let digits = [0, 1, 3, 4, 6, 7].allSatisfy { stamp.count == 9 && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(stamp[$0]) }
            guard digits, stamp[2] == UInt8(ascii: ":"), stamp[5] == UInt8(ascii: ":"), stamp[8] == UInt8(ascii: " ") else { continue }
            lines.append(String(text.dropFirst(9)))
        }
        return lines
    }
}

/// `posix_openpt`, `grantpt`, `unlockpt` and `ptsname_r`, looked up at run time: Swift's Glibc module does not see them
/// (glibc declares them only for `_XOPEN_SOURCE`/`_GNU_SOURCE`), as ``ChildProcess`` does for `posix_spawn`'s closefrom.
private enum PseudoTerminalCalls {
    private typealias Open = @convention(c) (Int32) -> Int32
    private typealias OnDescriptor = @convention(c) (Int32) -> Int32
    private typealias Name = @convention(c) (Int32, UnsafeMutablePointer<CChar>?, Int) -> Int32

    private static func function<Function>(_ name: String, as type: Function.Type) -> Function {
        guard let symbol = dlsym(nil, name) else { preconditionFailure("libc has no \(name)") }
        return unsafeBitCast(symbol, to: type)
    }

    static func openController(_ flags: Int32) -> Int32 { function("posix_openpt", as: Open.self)(flags) }
    static func grant(_ fd: Int32) -> Int32 { function("grantpt", as: OnDescriptor.self)(fd) }
    static func unlock(_ fd: Int32) -> Int32 { function("unlockpt", as: OnDescriptor.self)(fd) }
    static func name(_ fd: Int32, _ buffer: UnsafeMutablePointer<CChar>, _ length: Int) -> Int32 {
        function("ptsname_r", as: Name.self)(fd, buffer, length)
    }
}
