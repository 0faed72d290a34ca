import ChannelsRedisTestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Small POSIX TCP helpers for the fixtures, on 127.0.0.1 only: the tests never send traffic anywhere else.
///
/// Every socket is created close-on-exec, so child processes (redis-server, Python peers) never inherit one.
enum LoopbackSocket {
    /// 127.0.0.1 in network byte order.
    static let loopbackAddress: in_addr_t = in_addr_t(0x7F00_0001).bigEndian

    /// Ports for servers that must be restarted on the same port come from below Linux's ephemeral range (32768–60999):
    /// a port from `bind(0)` can be handed out again as the local port of some client's outgoing connection (the library
    /// reconnecting, say), which would stop the restarted server from binding it.
    static let serverPortRange = 20_000..<32_000

    static func address(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port)).bigEndian
        address.sin_addr.s_addr = loopbackAddress
        return address
    }

    /// A new TCP socket, close-on-exec, non-blocking if asked.
    static func makeTCPSocket(nonBlocking: Bool = false) throws -> Int32 {
        var type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        if nonBlocking {
            type |= Int32(SOCK_NONBLOCK.rawValue)
        }
        let fd = socket(AF_INET, type, 0)
        guard fd >= 0 else {
            throw FixtureError.systemCall("socket")
        }
        return fd
    }

    /// Binds `fd` to 127.0.0.1:`port` (0 lets the kernel choose).
    static func bind(_ fd: Int32, port: Int, reuseAddress: Bool = false) throws {
        if reuseAddress {
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = address(port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let error = errno
            if error == EADDRINUSE {
                throw FixtureError(.addressInUse, "127.0.0.1:\(port) is in use", errorNumber: error)
            }
            throw FixtureError.systemCall("bind(127.0.0.1:\(port))", errorNumber: error)
        }
    }

    /// The local port `fd` is bound to.
    static func localPort(of fd: Int32) throws -> Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0 else {
            throw FixtureError.systemCall("getsockname")
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A listening socket on 127.0.0.1:`port` (0: a free port) and the port it got.
    static func listen(port: Int = 0, backlog: Int32 = 128, nonBlocking: Bool = false) throws -> (fd: Int32, port: Int) {
        let fd = try makeTCPSocket(nonBlocking: nonBlocking)
        do {
            try bind(fd, port: port, reuseAddress: true)
            guard Glibc.listen(fd, backlog) == 0 else {
                throw FixtureError.systemCall("listen")
            }
            return (fd, try localPort(of: fd))
        } catch {
            close(fd)
            throw error
        }
    }

    /// A port in ``serverPortRange`` that nothing was bound to a moment ago.
    ///
    /// Nothing holds it afterwards, so a server started on it must be ready to retry on another one.
    static func freeServerPort() throws -> Int {
        for _ in 0..<200 {
            let port = Int.random(in: serverPortRange)
            let fd = try makeTCPSocket()
            defer { close(fd) }
            do {
                // The same options redis-server binds with, so "free" here means "redis-server can bind it".
                try bind(fd, port: port, reuseAddress: true)
                return port
            } catch let error as FixtureError where error.kind == .addressInUse {
                continue
            }
        }
        throw FixtureError(.addressInUse, "found no free port in 127.0.0.1:\(serverPortRange) after 200 tries")
    }

    /// Starts a non-blocking connect to 127.0.0.1:`port`; the socket is writable once it completes.
    static func startConnect(port: Int) throws -> Int32 {
        let fd = try makeTCPSocket(nonBlocking: true)
        var address = address(port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result != 0 && errno != EINPROGRESS {
            let error = errno
            close(fd)
            throw connectError(port: port, errorNumber: error)
        }
        return fd
    }

    /// A non-blocking socket connected to 127.0.0.1:`port`, or ``FixtureError`` `.timedOut` / `.connectionRefused`.
    static func connect(port: Int, deadline: ContinuousClock.Instant) throws -> Int32 {
        let fd = try startConnect(port: port)
        do {
            guard try waitFor(fd, events: Int16(POLLOUT), deadline: deadline) else {
                throw FixtureError(.timedOut, "connect to 127.0.0.1:\(port) did not complete in time")
            }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 {
                throw connectError(port: port, errorNumber: error)
            }
            return fd
        } catch {
            close(fd)
            throw error
        }
    }

    private static func connectError(port: Int, errorNumber: Int32) -> FixtureError {
        if errorNumber == ECONNREFUSED {
            return FixtureError(.connectionRefused, "connection to 127.0.0.1:\(port) refused", errorNumber: errorNumber)
        }
        if errorNumber == ECONNRESET {
            // Accepted, then reset before we saw the connect complete (TCPProxy does this while its target is down).
            return FixtureError(.connectionClosed, "connection to 127.0.0.1:\(port) was reset", errorNumber: errorNumber)
        }
        return FixtureError.systemCall("connect(127.0.0.1:\(port))", errorNumber: errorNumber)
    }

    /// Waits until `fd` has one of `events` (or an error/hang-up); false if `deadline` passed first.
    static func waitFor(_ fd: Int32, events: Int16, deadline: ContinuousClock.Instant) throws -> Bool {
        while true {
            var descriptor = pollfd(fd: fd, events: events, revents: 0)
            let result = poll(&descriptor, 1, milliseconds(until: deadline))
            if result > 0 {
                return true
            }
            if result == 0 {
                if ContinuousClock.now >= deadline {
                    return false
                }
                continue
            }
            if errno != EINTR {
                throw FixtureError.systemCall("poll")
            }
        }
    }

    /// Writes all of `bytes` to the non-blocking socket `fd` before `deadline`; never raises SIGPIPE.
    static func sendAll(_ fd: Int32, _ bytes: [UInt8], deadline: ContinuousClock.Instant, port: Int) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent > 0 {
                offset += sent
                continue
            }
            let error = errno
            if error == EAGAIN || error == EWOULDBLOCK || error == EINTR {
                guard try waitFor(fd, events: Int16(POLLOUT), deadline: deadline) else {
                    throw FixtureError(.timedOut, "127.0.0.1:\(port) did not take our request in time")
                }
                continue
            }
            if error == EPIPE || error == ECONNRESET {
                throw FixtureError(.connectionClosed, "127.0.0.1:\(port) closed the connection", errorNumber: error)
            }
            throw FixtureError.systemCall("send", errorNumber: error)
        }
    }

    /// Closes `fd` with an RST instead of a FIN, like a peer whose connection was reset.
    static func reset(_ fd: Int32) {
        var lingerOption = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &lingerOption, socklen_t(MemoryLayout<linger>.size))
        close(fd)
    }

    /// Milliseconds from now until `deadline` for `poll`, rounded up, never negative.
    static func milliseconds(until deadline: ContinuousClock.Instant) -> Int32 {
        let remaining = ContinuousClock.now.duration(to: deadline)
        if remaining <= .zero {
            return 0
        }
        let (seconds, attoseconds) = remaining.components
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: milliseconds)
    }
}
