import ChannelsRedisTestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// One RESP2 reply.
///
/// A Redis error reply is a value (`.error`), not a thrown error: tests often expect one.
enum RESPValue: Sendable, Equatable, CustomStringConvertible {
    case simple(String)
    case error(String)
    case integer(Int)
    /// A bulk string; `nil` is the null bulk string.
    case bulk([UInt8]?)
    /// An array; `nil` is the null array.
    case array([RESPValue]?)

    /// A simple string, or a bulk string decoded as UTF-8.
    var string: String? {
        switch self {
        case .simple(let string): string
        case .bulk(let bytes?): String(decoding: bytes, as: UTF8.self)
        default: nil
        }
    }

    var integer: Int? {
        if case .integer(let value) = self {
            return value
        }
        return nil
    }

    var array: [RESPValue]? {
        if case .array(let values?) = self {
            return values
        }
        return nil
    }

    /// The message of an error reply.
    var errorMessage: String? {
        if case .error(let message) = self {
            return message
        }
        return nil
    }

    /// The null bulk string or the null array.
    var isNull: Bool { self == .bulk(nil) || self == .array(nil) }

    var description: String {
        switch self {
        case .simple(let string): string
        case .error(let message): "(error) \(message)"
        case .integer(let value): "(integer) \(value)"
        case .bulk(nil), .array(nil): "(nil)"
        case .bulk(let bytes?): "\"\(String(decoding: bytes, as: UTF8.self))\""
        case .array(let values?): "[" + values.map(\.description).joined(separator: ", ") + "]"
        }
    }
}

/// A tiny blocking RESP2 client for the tests' own checks on a server: one connection per command.
///
/// ```swift
/// let channels = try await RESPClient.command(["PUBSUB", "CHANNELS", "*"], port: server.port)
/// ```
enum RESPClient {
    /// Sends one command to 127.0.0.1:`port` on a connection of its own, after `AUTH password` if one is given, and
    /// returns the reply. Runs on a dedicated thread, never on the cooperative pool.
    ///
    /// - Parameter timeout: for the whole exchange: connect, AUTH, send, reply.
    /// - Throws: ``FixtureError`` `.timedOut`, `.connectionRefused`, `.connectionClosed`, `.authenticationFailed`,
    ///   `.protocolViolation`.
    static func command(
        _ arguments: [String],
        port: Int,
        password: String? = nil,
        timeout: Duration = .seconds(5)
    ) async throws -> RESPValue {
        try await command(arguments.map { Array($0.utf8) }, port: port, password: password, timeout: timeout)
    }

    /// ``command(_:port:password:timeout:)`` with arguments as raw bytes, for payloads that are not UTF-8.
    ///
    /// ```swift
    /// let receivers = try await RESPClient.command([Array("PUBLISH".utf8), Array(channel.utf8), [0xC1, 0xFF]], port: port)
    /// ```
    static func command(
        _ arguments: [[UInt8]],
        port: Int,
        password: String? = nil,
        timeout: Duration = .seconds(5)
    ) async throws -> RESPValue {
        try await onDedicatedThread(name: "fixture-resp") {
            try commandBlocking(arguments, port: port, password: password, timeout: timeout)
        }
    }

    /// ``command(_:port:password:timeout:)`` on the calling thread.
    static func commandBlocking(_ arguments: [String], port: Int, password: String? = nil, timeout: Duration) throws -> RESPValue {
        try commandBlocking(arguments.map { Array($0.utf8) }, port: port, password: password, timeout: timeout)
    }

    /// ``command(_:port:password:timeout:)`` with raw-byte arguments, on the calling thread.
    static func commandBlocking(_ arguments: [[UInt8]], port: Int, password: String? = nil, timeout: Duration) throws -> RESPValue {
        let deadline = ContinuousClock.now + timeout
        let fd: Int32
        do {
            fd = try LoopbackSocket.connect(port: port, deadline: deadline)
        } catch let error as FixtureError where error.kind == .timedOut {
            throw FixtureError(.timedOut, "connect to 127.0.0.1:\(port) did not complete within \(timeout)")
        }
        defer { close(fd) }
        var reader = RESPReader(fd: fd, port: port, deadline: deadline, timeout: timeout)
        if let password {
            try LoopbackSocket.sendAll(fd, encode(["AUTH", password]), deadline: deadline, port: port)
            let reply = try reader.readValue()
            if let message = reply.errorMessage {
                throw FixtureError(.authenticationFailed, "AUTH on 127.0.0.1:\(port) was refused: \(message)")
            }
        }
        try LoopbackSocket.sendAll(fd, encode(arguments), deadline: deadline, port: port)
        return try reader.readValue()
    }

    /// `arguments` as a RESP array of bulk strings.
    static func encode(_ arguments: [String]) -> [UInt8] {
        encode(arguments.map { Array($0.utf8) })
    }

    /// `arguments` as a RESP array of bulk strings.
    static func encode(_ arguments: [[UInt8]]) -> [UInt8] {
        var bytes = Array("*\(arguments.count)\r\n".utf8)
        for argument in arguments {
            bytes += Array("$\(argument.count)\r\n".utf8)
            bytes += argument
            bytes += [UInt8(ascii: "\r"), UInt8(ascii: "\n")]
        }
        return bytes
    }
}

/// Reads RESP2 values from a non-blocking socket until a deadline.
private struct RESPReader {
    let fd: Int32
    let port: Int
    let deadline: ContinuousClock.Instant
    let timeout: Duration
    private var buffer: [UInt8] = []
    private var start = 0

    init(fd: Int32, port: Int, deadline: ContinuousClock.Instant, timeout: Duration) {
        self.fd = fd
        self.port = port
        self.deadline = deadline
        self.timeout = timeout
    }

    mutating func readValue(depth: Int = 0) throws -> RESPValue {
        guard depth < 64 else {
            throw violation("arrays nested deeper than 64")
        }
        let line = try readLine()
        guard let type = line.first else {
            throw violation("an empty line")
        }
        let text = String(decoding: line.dropFirst(), as: UTF8.self)
        switch type {
        case UInt8(ascii: "+"):
            return .simple(text)
        case UInt8(ascii: "-"):
            return .error(text)
        case UInt8(ascii: ":"):
            guard let value = Int(text) else {
                throw violation("integer \(text)")
            }
            return .integer(value)
        case UInt8(ascii: "$"):
            guard let length = Int(text) else {
                throw violation("bulk length \(text)")
            }
            if length < 0 {
                return .bulk(nil)
            }
            let bytes = try readExactly(length + 2)
            guard bytes.suffix(2) == [UInt8(ascii: "\r"), UInt8(ascii: "\n")] else {
                throw violation("a bulk string not ended by CRLF")
            }
            return .bulk(Array(bytes.prefix(length)))
        case UInt8(ascii: "*"):
            guard let count = Int(text) else {
                throw violation("array length \(text)")
            }
            if count < 0 {
                return .array(nil)
            }
            var values: [RESPValue] = []
            values.reserveCapacity(count)
            for _ in 0..<count {
                values.append(try readValue(depth: depth + 1))
            }
            return .array(values)
        default:
            throw violation("type byte \(type)")
        }
    }

    private mutating func readLine() throws -> ArraySlice<UInt8> {
        // Counted from `start`, which fill() may move when it compacts the buffer.
        var scanned = 0
        while true {
            let from = start + scanned
            if buffer.count - from >= 2 {
                for index in from..<(buffer.count - 1) where buffer[index] == UInt8(ascii: "\r") && buffer[index + 1] == UInt8(ascii: "\n") {
                    let line = buffer[start..<index]
                    start = index + 2
                    return line
                }
                scanned = buffer.count - 1 - start
            }
            try fill()
        }
    }

    private mutating func readExactly(_ count: Int) throws -> ArraySlice<UInt8> {
        while buffer.count - start < count {
            try fill()
        }
        defer { start += count }
        return buffer[start..<(start + count)]
    }

    private mutating func fill() throws {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        while true {
            guard try LoopbackSocket.waitFor(fd, events: Int16(POLLIN), deadline: deadline) else {
                throw FixtureError(.timedOut, "127.0.0.1:\(port) sent no (complete) reply within \(timeout)")
            }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let received = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if received > 0 {
                buffer += chunk.prefix(received)
                return
            }
            if received == 0 {
                throw FixtureError(.connectionClosed, "127.0.0.1:\(port) closed the connection before its reply was complete")
            }
            let error = errno
            if error == EAGAIN || error == EWOULDBLOCK || error == EINTR {
                continue
            }
            if error == ECONNRESET {
                throw FixtureError(.connectionClosed, "127.0.0.1:\(port) reset the connection", errorNumber: error)
            }
            throw FixtureError.systemCall("recv", errorNumber: error)
        }
    }

    private func violation(_ what: String) -> FixtureError {
        FixtureError(.protocolViolation, "127.0.0.1:\(port) sent \(what), which is not RESP2")
    }
}
