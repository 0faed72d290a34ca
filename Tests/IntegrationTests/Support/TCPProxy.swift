import ChannelsRedisTestSupport
import Dispatch
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP proxy on a free 127.0.0.1 port that forwards to 127.0.0.1:`targetPort` and can fake network faults.
///
/// - ``blackhole()``: every connection stays open but nothing gets through in either direction; bytes are read and
///   dropped. Neither end sees a FIN or an RST: a half-open path that only an application-level timeout can detect.
///   Connections made while black-holed are accepted and black-holed too.
/// - ``restore()``: forward again; the black-holed connections are closed then (each end sees EOF), so clients reconnect.
/// - ``dropAll()``: close every connection now (each end sees EOF).
///
/// When the target refuses a new connection (the server is down), the proxy resets the client's connection.
///
/// ```swift
/// let proxy = try TCPProxy(targetPort: server.port)
/// proxy.start()
/// defer { proxy.stop() }
/// let layer = RedisPubSubChannelLayer(hosts: [proxy.url])
/// proxy.blackhole()
/// ```
///
/// Each command returns once the proxy's thread has carried it out: when ``blackhole()`` returns, no further byte is
/// forwarded. Releasing the proxy stops it.
final class TCPProxy: Sendable {
    private let engine: ProxyEngine

    /// Binds a free port on 127.0.0.1; forwarding begins with ``start()``.
    convenience init(targetPort: Int) throws {
        try self.init(targetPort: targetPort, blackholed: false)
    }

    /// With `trickle`, bytes towards the client go out a few at a time (1 to 17 bytes, cycling),
    /// with a pause after each, so the client's reads end inside replies at every kind of place.
    convenience init(targetPort: Int, trickle: Bool) throws {
        try self.init(targetPort: targetPort, blackholed: false, trickle: trickle)
    }

    fileprivate init(targetPort: Int, blackholed: Bool, trickle: Bool = false) throws {
        engine = try ProxyEngine(targetPort: targetPort, blackholed: blackholed, trickle: trickle)
    }

    deinit {
        engine.stop()
    }

    /// Where connections are forwarded.
    var targetPort: Int { engine.targetPort }

    /// The proxy's own port on 127.0.0.1.
    var port: Int { engine.port }

    /// `redis://127.0.0.1:<port>`.
    var url: String { "redis://127.0.0.1:\(port)" }

    /// Starts forwarding on a thread of its own. Idempotent.
    func start() { engine.start() }

    /// Stops forwarding in both directions for every connection, present and future, without closing any.
    func blackhole() { engine.perform(.blackhole) }

    /// Forwards new connections again and closes the black-holed ones.
    func restore() { engine.perform(.restore) }

    /// Closes every connection now.
    func dropAll() { engine.perform(.dropAll) }

    /// Sends `bytes` to every connected client as if the server had sent them.
    func inject(_ bytes: [UInt8]) { engine.perform(.inject(bytes)) }

    /// Closes every connection and the listening socket, and ends the thread. Idempotent.
    func stop() { engine.stop() }

    /// Whether connections are black-holed now.
    var isBlackholed: Bool { engine.isBlackholed }

    /// Connections open now (black-holed ones included).
    var activeConnections: Int { engine.activeConnections }

    /// Connections accepted since ``start()``.
    var acceptedConnections: Int { engine.acceptedConnections }

    /// A port on 127.0.0.1 where nothing listens: connecting is refused.
    ///
    /// The port stays bound (not listening) by a socket kept for the life of the process, so nothing else can take it.
    static func unusedPort() -> Int {
        do {
            let fd = try LoopbackSocket.makeTCPSocket()
            try LoopbackSocket.bind(fd, port: 0)
            let port = try LoopbackSocket.localPort(of: fd)
            reservedPorts.withLock { $0.append(fd) }
            return port
        } catch {
            preconditionFailure("could not reserve a port on 127.0.0.1: \(error)")
        }
    }

    private static let reservedPorts = Mutex<[Int32]>([])
}

/// The proxy's sockets and thread; the thread holds the engine, not the ``TCPProxy``, so releasing the proxy stops it.
///
/// `Sendable`: the connections belong to the engine's thread alone; other threads talk to it through commands queued in a
/// `Mutex` and a wake-up pipe, and wait on a semaphore until the thread has carried each one out.
private final class ProxyEngine: Sendable {
    let targetPort: Int
    let port: Int
    let trickle: Bool

    private let listener: Int32
    private let wakeReader: Int32
    private let wakeWriter: Int32
    private let shared: Mutex<Shared>
    private let exited = DispatchSemaphore(value: 0)

    private struct Shared: Sendable {
        var blackholed: Bool
        var pending: [PendingCommand] = []
        var started = false
        var stopped = false
        var descriptorsClosed = false
        var activeConnections = 0
        var acceptedConnections = 0
    }

    enum Command: Sendable {
        case blackhole, restore, dropAll, stop
        /// Bytes sent to every client as if the server had sent them, after what is pending.
        case inject([UInt8])
    }

    private struct PendingCommand: Sendable {
        var command: Command
        var done: DispatchSemaphore
    }

    init(targetPort: Int, blackholed: Bool, trickle: Bool) throws {
        self.targetPort = targetPort
        self.trickle = trickle
        (listener, port) = try LoopbackSocket.listen(nonBlocking: true)
        // A socket pair rather than a pipe: Swift's Glibc module has no pipe2, and this one is close-on-exec from the start.
        var pipeEnds: [Int32] = [0, 0]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        guard socketpair(AF_UNIX, type, 0, &pipeEnds) == 0 else {
            let error = FixtureError.systemCall("socketpair")
            close(listener)
            throw error
        }
        wakeReader = pipeEnds[0]
        wakeWriter = pipeEnds[1]
        shared = Mutex(Shared(blackholed: blackholed))
    }

    func start() {
        let shouldStart = shared.withLock { shared in
            defer { shared.started = true }
            return !shared.started && !shared.stopped
        }
        guard shouldStart else {
            return
        }
        let thread = Thread { [self] in
            run()
            exited.signal()
        }
        thread.name = "fixture-tcp-proxy"
        thread.start()
    }

    func stop() {
        let (wasRunning, mustClose) = shared.withLock { shared in
            let running = shared.started && !shared.stopped
            shared.stopped = true
            defer { shared.descriptorsClosed = true }
            return (running, !shared.descriptorsClosed)
        }
        if wasRunning {
            let done = DispatchSemaphore(value: 0)
            shared.withLock { $0.pending.append(PendingCommand(command: .stop, done: done)) }
            wake()
            exited.wait()
        }
        if mustClose {
            close(listener)
            close(wakeReader)
            close(wakeWriter)
        }
    }

    var isBlackholed: Bool { shared.withLock { $0.blackholed } }
    var activeConnections: Int { shared.withLock { $0.activeConnections } }
    var acceptedConnections: Int { shared.withLock { $0.acceptedConnections } }

    func perform(_ command: Command) {
        let done = DispatchSemaphore(value: 0)
        let queued = shared.withLock { shared in
            guard shared.started && !shared.stopped else {
                // Not running: only the mode matters, for when it starts.
                switch command {
                case .blackhole: shared.blackholed = true
                case .restore: shared.blackholed = false
                case .dropAll, .stop, .inject: break
                }
                return false
            }
            shared.pending.append(PendingCommand(command: command, done: done))
            return true
        }
        if queued {
            wake()
            done.wait()
        }
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWriter, &byte, 1)
    }

    // MARK: - The proxy's thread

    private func run() {
        var relays: [Relay] = []
        var blackholed = shared.withLock { $0.blackholed }
        var accepted = 0
        while true {
            let commands = shared.withLock { shared in
                defer { shared.pending.removeAll() }
                return shared.pending
            }
            var stopping = false
            for pending in commands {
                switch pending.command {
                case .blackhole:
                    blackholed = true
                    for relay in relays {
                        relay.blackhole()
                    }
                case .restore:
                    blackholed = false
                    relays.removeAll { relay in
                        guard relay.isBlackholed else {
                            return false
                        }
                        relay.closeBoth()
                        return true
                    }
                case .dropAll:
                    for relay in relays {
                        relay.closeBoth()
                    }
                    relays.removeAll()
                case .inject(let bytes):
                    for relay in relays {
                        relay.inject(bytes)
                    }
                case .stop:
                    for relay in relays {
                        relay.closeBoth()
                    }
                    relays.removeAll()
                    stopping = true
                }
                shared.withLock { shared in
                    shared.blackholed = blackholed
                    shared.activeConnections = relays.count
                }
                pending.done.signal()
            }
            if stopping {
                return
            }

            var descriptors = [
                pollfd(fd: wakeReader, events: Int16(POLLIN), revents: 0),
                pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
            ]
            var owners: [(relay: Relay, side: Relay.Side)] = []
            for relay in relays {
                for side in [Relay.Side.client, .upstream] {
                    let events = relay.events(for: side)
                    if events != 0 {
                        descriptors.append(pollfd(fd: relay.descriptor(side), events: events, revents: 0))
                        owners.append((relay, side))
                    }
                }
            }
            if poll(&descriptors, nfds_t(descriptors.count), -1) < 0 {
                if errno == EINTR {
                    continue
                }
                preconditionFailure("TCPProxy poll failed: \(FixtureError.systemCall("poll"))")
            }
            if descriptors[0].revents != 0 {
                var drain = [UInt8](repeating: 0, count: 256)
                while read(wakeReader, &drain, drain.count) > 0 {}
            }
            for (index, owner) in owners.enumerated() where descriptors[index + 2].revents != 0 {
                owner.relay.handle(owner.side, revents: descriptors[index + 2].revents)
            }
            if descriptors[1].revents != 0 {
                while true {
                    // accept, not accept4 (not in Swift's Glibc module); ChildProcess closes inherited descriptors anyway.
                    let client = accept(listener, nil, nil)
                    guard client >= 0 else {
                        break
                    }
                    _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                    _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
                    accepted += 1
                    if let relay = makeRelay(client: client, blackholed: blackholed) {
                        relays.append(relay)
                    }
                }
            }
            relays.removeAll { $0.isFinished }
            shared.withLock { [count = relays.count, accepted] shared in
                shared.activeConnections = count
                shared.acceptedConnections = accepted
            }
        }
    }

    private func makeRelay(client: Int32, blackholed: Bool) -> Relay? {
        if blackholed {
            return Relay(client: client, upstream: -1, blackholed: true)
        }
        do {
            let upstream = try LoopbackSocket.connect(port: targetPort, deadline: .now + .seconds(1))
            return Relay(client: client, upstream: upstream, blackholed: false, trickle: trickle)
        } catch {
            // Like the server's kernel refusing it, as closely as a connection already accepted allows.
            LoopbackSocket.reset(client)
            return nil
        }
    }
}

/// One proxied connection: the client's socket and ours to the target. Used on the proxy's thread only.
private final class Relay {
    enum Side {
        case client, upstream
    }

    private static let bufferLimit = 1 << 20

    private var client: Int32
    private var upstream: Int32
    /// Read from the client, not yet written upstream.
    private var toUpstream: [UInt8] = []
    /// Read from upstream, not yet written to the client.
    private var toClient: [UInt8] = []
    private(set) var isBlackholed: Bool
    /// See `TCPProxy.init(targetPort:trickle:)`.
    private let trickle: Bool
    private var trickleStep = 0

    init(client: Int32, upstream: Int32, blackholed: Bool, trickle: Bool = false) {
        self.client = client
        self.upstream = upstream
        self.isBlackholed = blackholed
        self.trickle = trickle
    }

    var isFinished: Bool { client < 0 && upstream < 0 }

    func descriptor(_ side: Side) -> Int32 { side == .client ? client : upstream }

    func events(for side: Side) -> Int16 {
        guard descriptor(side) >= 0 else {
            return 0
        }
        if isBlackholed {
            return Int16(POLLIN)
        }
        var events: Int16 = 0
        if (side == .client ? toUpstream : toClient).count < Self.bufferLimit {
            events |= Int16(POLLIN)
        }
        if !(side == .client ? toClient : toUpstream).isEmpty {
            events |= Int16(POLLOUT)
        }
        return events
    }

    /// Queues `bytes` for the client as if upstream had sent them.
    func inject(_ bytes: [UInt8]) {
        guard !isBlackholed, client >= 0 else {
            return
        }
        toClient += bytes
        flush(.client)
    }

    func blackhole() {
        isBlackholed = true
        toUpstream.removeAll()
        toClient.removeAll()
    }

    func handle(_ side: Side, revents: Int16) {
        let fd = descriptor(side)
        guard fd >= 0 else {
            return
        }
        if isBlackholed {
            // Drop whatever arrives. An end that closes is closed on our side only: no FIN crosses a dead path.
            if !discardInput(fd) {
                close(fd)
                setDescriptor(side, -1)
            }
            return
        }
        if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let received = recv(fd, &chunk, chunk.count, 0)
            if received > 0 {
                if side == .client {
                    toUpstream += chunk.prefix(received)
                } else {
                    toClient += chunk.prefix(received)
                }
                flush(side == .client ? .upstream : .client)
            } else if received == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                // One end went away: pass on what it sent, then close the other end too.
                flush(side == .client ? .upstream : .client)
                closeBoth()
                return
            }
        }
        if revents & Int16(POLLOUT) != 0 {
            flush(side)
        }
    }

    func closeBoth() {
        if client >= 0 {
            close(client)
            client = -1
        }
        if upstream >= 0 {
            close(upstream)
            upstream = -1
        }
    }

    /// Writes what is pending towards `side` as far as the socket takes it now.
    private func flush(_ side: Side) {
        let fd = descriptor(side)
        guard fd >= 0 else {
            return
        }
        let pending = side == .client ? toClient : toUpstream
        guard !pending.isEmpty else {
            return
        }
        var count = pending.count
        if trickle && side == .client {
            trickleStep += 1
            count = min(count, trickleStep % 17 + 1)
        }
        let sent = pending.withUnsafeBytes { send(fd, $0.baseAddress, count, Int32(MSG_NOSIGNAL)) }
        if trickle && side == .client && sent > 0 { usleep(100) }  // let the client read this piece alone
        if sent > 0 {
            if side == .client {
                toClient.removeFirst(sent)
            } else {
                toUpstream.removeFirst(sent)
            }
        } else if sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
            closeBoth()
        }
    }

    /// Reads and drops everything available; false once the peer has closed.
    private func discardInput(_ fd: Int32) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let received = recv(fd, &chunk, chunk.count, 0)
            if received > 0 {
                continue
            }
            return received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        }
    }

    private func setDescriptor(_ side: Side, _ fd: Int32) {
        if side == .client {
            client = fd
        } else {
            upstream = fd
        }
    }
}

/// Accepts TCP connections on a free 127.0.0.1 port and never writes a byte: a server that has hung after `accept`.
///
/// What clients send is read and dropped; connections stay open until ``stop()``.
///
/// ```swift
/// let silent = try SilentListener()
/// defer { silent.stop() }
/// // A client that connects to silent.port waits for a greeting that never comes.
/// ```
final class SilentListener: Sendable {
    private let proxy: TCPProxy

    init() throws {
        proxy = try TCPProxy(targetPort: 0, blackholed: true)
        proxy.start()
    }

    var port: Int { proxy.port }
    var url: String { proxy.url }
    var acceptedConnections: Int { proxy.acceptedConnections }
    var activeConnections: Int { proxy.activeConnections }

    /// Closes every connection and the listening socket. Idempotent.
    func stop() { proxy.stop() }
}

/// A port on 127.0.0.1 where `connect()` itself hangs: the handshake never completes.
///
/// A listening socket with backlog 0 that never accepts, its accept queue filled by a connection of our own: Linux then
/// drops every further SYN, and the connecting side keeps retransmitting it (after 1 s, 3 s, 7 s, …) until its own
/// timeout. The initializer checks that this happened: a connect of its own must still be pending after 300 ms.
///
/// ```swift
/// let hanging = try HangingConnectListener()
/// defer { hanging.close() }
/// // A client with a 1 s connect timeout fails after 1 s instead of being refused.
/// ```
///
/// `Sendable`: the descriptors live in a `Mutex` and are closed once.
final class HangingConnectListener: Sendable {
    let port: Int
    private let descriptors: Mutex<[Int32]>

    init() throws {
        let (listener, port) = try LoopbackSocket.listen(backlog: 0)
        self.port = port
        var descriptors = [listener]
        var saturated = false
        for _ in 0..<8 {
            let filler: Int32
            do {
                filler = try LoopbackSocket.startConnect(port: port)
            } catch {
                for fd in descriptors {
                    Glibc.close(fd)
                }
                throw error
            }
            descriptors.append(filler)
            // The first connect must complete (it is what fills the queue); one after it that has not completed after
            // 300 ms is stuck in SYN-SENT: the queue is full and SYNs are dropped.
            let first = descriptors.count == 2
            let deadline = ContinuousClock.now + (first ? .seconds(5) : .milliseconds(300))
            let completed = (try? LoopbackSocket.waitFor(filler, events: Int16(POLLOUT), deadline: deadline)) ?? false
            if !completed {
                saturated = !first
                break
            }
        }
        self.descriptors = Mutex(descriptors)
        guard saturated else {
            close()
            throw FixtureError(.startFailed, "could not fill the accept queue of 127.0.0.1:\(port): connects to it do not hang on this kernel")
        }
    }

    deinit {
        close()
    }

    var url: String { "redis://127.0.0.1:\(port)" }

    /// Closes the listener and its filler connections. Idempotent.
    func close() {
        let toClose = descriptors.withLock { descriptors in
            defer { descriptors.removeAll() }
            return descriptors
        }
        for fd in toClose {
            Glibc.close(fd)
        }
    }
}
