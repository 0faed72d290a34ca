import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Where the chat's lines go: standard output, one `write(2)` per line, each line stamped with the
/// local time.
///
/// Writing whole lines with `write(2)` instead of `print` makes the output line-buffered whether
/// standard output is a terminal, a pipe or a file: a program reading the chat through a pipe sees
/// each line as soon as it happens, not when a 4 KiB stdio buffer fills up (the chat never writes
/// to stdout through stdio, so there is no stdio buffer to configure). The lock keeps lines from
/// different tasks whole.
///
/// Lines are `HH:MM:SS name: text` for chat text and `HH:MM:SS *** text` for notices (joins,
/// leaves, renames, `/who`, the connection to Redis). Text from the room is shown with control
/// characters escaped (`\n`, `\u{1B}`), so a message is always one line and cannot drive the terminal.
final class Terminal: Sendable {
    private let lock = Mutex(())

    /// A chat line: `HH:MM:SS sender: text`.
    func message(from sender: String, _ text: String) {
        line("\(Self.sanitized(sender)): \(Self.sanitized(text))")
    }

    /// A notice: `HH:MM:SS *** text`.
    func notice(_ text: String) {
        line("*** " + Self.sanitized(text))
    }

    private func line(_ text: String) {
        let bytes = Array("\(Self.clock()) \(text)\n".utf8)
        lock.withLock { _ in
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return  // stdout is gone (EPIPE: SIGPIPE is ignored); nothing sensible is left to do with the line
                }
            }
        }
    }

    /// The local time as `HH:MM:SS`.
    private static func clock() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        return [parts.tm_hour, parts.tm_min, parts.tm_sec].map { $0 < 10 ? "0\($0)" : "\($0)" }.joined(separator: ":")
    }

    /// `text` with control characters (newlines, escapes) shown as Swift escapes.
    static func sanitized(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: ChatNames.isControl) else { return text }
        return ChatNames.shown(text)
    }
}
