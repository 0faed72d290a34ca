import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The lines of standard input as an `AsyncStream`, read on a thread of their own.
///
/// `read(2)` rather than `readLine()`: the reading thread sits in a blocking call for as long as
/// nobody types, and when the chat leaves (on `/quit` or Ctrl-C) the process exits while it still
/// sits there. Inside `readLine()` it would hold stdin's stdio lock, which `exit` may want; inside
/// `read(2)` it holds nothing.
enum InputLines {
    /// Starts reading and returns the lines, without their line breaks (`\n` or `\r\n`); the stream
    /// finishes at end of input (a closed pipe, Ctrl-D on a terminal). A last line without a line
    /// break still counts.
    static func standardInput() -> AsyncStream<String> {
        let (lines, continuation) = AsyncStream<String>.makeStream()
        let thread = Thread {
            var pending: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = chunk.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                pending += chunk[..<count]
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    continuation.yield(text(of: pending[..<newline]))
                    pending.removeSubrange(...newline)
                }
            }
            if !pending.isEmpty { continuation.yield(text(of: pending[...])) }
            continuation.finish()
        }
        thread.name = "chat-stdin"
        thread.start()
        return lines
    }

    private static func text(of line: ArraySlice<UInt8>) -> String {
        String(decoding: line.last == UInt8(ascii: "\r") ? line.dropLast() : line, as: UTF8.self)
    }
}
