#if canImport(Glibc)
    import Glibc
#endif

/// Our end of a child's stdin: bytes written whole, closed once.
///
/// `Sendable`: the descriptor lives in a `Mutex`, so a write never races the close.
package final class ChildInput: Sendable {
    /// What the descriptor is, which decides how bytes go out.
    package enum Kind: Sendable {
        /// One of ``ChildProcess/socketPair()``: written with `send(MSG_NOSIGNAL)`, so a child that died fails the write
        /// instead of raising SIGPIPE in the test process.
        case socket
        /// The controller side of a pseudo-terminal: written with `write`.
        case terminal
    }

    private let descriptor: Mutex<Int32>
    private let kind: Kind
    /// Names the input in error messages: "stdin of python peer.py".
    private let name: String

    /// Takes `fd` over; `-1` stands for an input that is closed from the start.
    package init(_ fd: Int32, kind: Kind = .socket, name: String) {
        descriptor = Mutex(fd)
        self.kind = kind
        self.name = name
    }

    deinit {
        close()
    }

    /// Writes all of `bytes`.
    ///
    /// - Throws: ``FixtureError`` `.connectionClosed` when the input is closed or the child no longer reads it.
    package func write(_ bytes: [UInt8]) throws {
        try descriptor.withLock { fd in
            guard fd >= 0 else {
                throw FixtureError(.connectionClosed, "\(name) is already closed")
            }
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { buffer in
                    kind == .socket
                        ? send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL))
                        : Glibc.write(fd, buffer.baseAddress, buffer.count)
                }
                if written > 0 {
                    offset += written
                } else if errno != EINTR {
                    let call = FixtureError.systemCall(kind == .socket ? "send" : "write")
                    throw FixtureError(.connectionClosed, "\(name) is not read any more: \(call)")
                }
            }
        }
    }

    /// Closes our end: the child reads EOF. Idempotent.
    package func close() {
        descriptor.withLock { fd in
            if fd >= 0 {
                Glibc.close(fd)
                fd = -1
            }
        }
    }
}
