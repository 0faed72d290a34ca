#if canImport(Glibc)
import Glibc
#endif

extension RedisServer {
    /// Sends one command whose arguments are raw bytes (for binary payloads that are not valid
    /// UTF-8) and returns the first line of the reply (`:1`, `+OK`, `-ERR …`).
    func command(bytes arguments: [[UInt8]], timeout: Duration = .seconds(5)) async throws -> String {
        let port = self.port
        return try await onDedicatedThread(name: "fixture-resp-binary") {
            let deadline = ContinuousClock.now + timeout
            let fd = try LoopbackSocket.connect(port: port, deadline: deadline)
            defer { close(fd) }
            var request = Array("*\(arguments.count)\r\n".utf8)
            for argument in arguments {
                request += Array("$\(argument.count)\r\n".utf8) + argument + [13, 10]
            }
            try LoopbackSocket.sendAll(fd, request, deadline: deadline, port: port)
            var reply: [UInt8] = []
            var byte: UInt8 = 0
            while !(reply.count >= 2 && reply[reply.count - 2] == 13 && reply[reply.count - 1] == 10) {
                guard try LoopbackSocket.waitFor(fd, events: Int16(POLLIN), deadline: deadline) else {
                    throw FixtureError(.timedOut, "no reply from 127.0.0.1:\(port) within \(timeout)")
                }
                let count = read(fd, &byte, 1)
                if count == 1 {
                    reply.append(byte)
                } else if count == 0 {
                    throw FixtureError(.connectionClosed, "127.0.0.1:\(port) closed the connection")
                } else if errno != EAGAIN && errno != EINTR {
                    throw FixtureError.systemCall("read")
                }
            }
            return String(decoding: reply.dropLast(2), as: UTF8.self)
        }
    }
}
