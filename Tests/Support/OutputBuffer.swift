import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A child's stdout and stderr as reader threads collect them, for ``PythonProcess`` and the chat tests' processes.
///
/// `Sendable`: everything is in a `Mutex`. The reader threads hold only the buffer, so releasing the process handle that
/// owns the child still kills it.
package final class OutputBuffer: Sendable {
    package enum Stream: Sendable {
        case stdout, stderr
    }

    package enum NextLine {
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

    package init() {}

    /// Reads `fd` into `stream` to its end (or to an error: EIO is how a pseudo-terminal whose other side is gone ends) on
    /// a thread of its own, `fixture-<name>-<stream>`, then closes it and marks `stream` ended.
    package func startReading(_ fd: Int32, into stream: Stream, name: String) {
        let thread = Thread { [self] in
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = read(fd, &chunk, chunk.count)
                if count > 0 {
                    append(chunk.prefix(count), to: stream)
                } else if count == 0 || errno != EINTR {
                    break
                }
            }
            close(fd)
            end(stream)
        }
        thread.name = "fixture-\(name)-\(stream)"
        thread.start()
    }

    /// Both streams have ended.
    package var isComplete: Bool { state.withLock { $0.stdoutEnded && $0.stderrEnded } }

    /// Everything `stream` carried so far, read lines included.
    package func text(_ stream: Stream) -> String {
        String(decoding: bytes(stream), as: UTF8.self)
    }

    /// The bytes `stream` carried so far.
    package func bytes(_ stream: Stream) -> [UInt8] {
        state.withLock { stream == .stdout ? $0.stdout : $0.stderr }
    }

    /// Marks `stream` ended: for a stream that no thread reads (a pseudo-terminal carries stderr with stdout).
    package func end(_ stream: Stream) {
        state.withLock { state in
            if stream == .stdout {
                state.stdoutEnded = true
            } else {
                state.stderrEnded = true
            }
        }
    }

    /// The next line of stdout after those handed out before, without its line break (`\n` or `\r\n`).
    package func nextLine() -> NextLine {
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

    /// Waits for `child`, whose output this is, to exit, then up to 2 s for the output to be read to the end (a grandchild
    /// holding the descriptors open must not hang the test); `nil` if `child` still runs after `timeout`.
    package func waitForExit(of child: ChildProcess, timeout: Duration) async throws -> ChildProcess.Termination? {
        guard let termination = try await child.waitForExit(timeout: timeout) else {
            return nil
        }
        let deadline = ContinuousClock.now + .seconds(2)
        while !isComplete && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        return termination
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
}
