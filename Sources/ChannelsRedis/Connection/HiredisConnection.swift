internal import CHiredis
internal import CHiredisIO

#if canImport(Glibc)
    import Glibc
#endif

/// What a ``HiredisConnection`` tells its owner. All calls arrive on the loop thread.
protocol HiredisConnectionDelegate: AnyObject {
    /// A reply to a normal command, in the order the commands were sent; `nil` when the context is
    /// being freed and the command will never be answered.
    func connection(_ connection: HiredisConnection, didReceiveReply reply: UnsafePointer<redisReply>?)
    /// A "message" push, on a connection made with `directMessages` (it skipped hiredis's reader).
    /// The buffers are valid during the call only.
    func connection(_ connection: HiredisConnection, didReceiveMessage payload: UnsafeRawBufferPointer, on channel: UnsafeRawBufferPointer)
    /// A subscribe (`subscribed`) or unsubscribe confirmation, on a connection made with
    /// `directMessages` (see ``HiredisConnection/subscribe(_:unsubscribe:)``). The buffer is valid
    /// during the call only.
    func connection(_ connection: HiredisConnection, didConfirm subscribed: Bool, channel: UnsafeRawBufferPointer)
    /// The context is gone (failed connect, connect timeout, server closed, I/O error).
    /// Not called for ``HiredisConnection/close()``.
    func connection(_ connection: HiredisConnection, didCloseWithError error: ChannelLayerError)
}

/// One hiredis async context, re-created on every (re)connect: hiredis 0.14.1 cannot reuse a
/// context after an error.
///
/// Loop-confined: every method runs on the loop thread.
final class HiredisConnection {
    // Not Sendable: loop-confined. Every method checks `loop.preconditionInLoop()` or is called
    // from a hiredis callback (which runs on the loop thread); a job handed back to the loop carries
    // it in a `LoopBound`.
    enum State: Equatable {
        /// No context.
        case idle
        /// A context exists; the connect or the owner's handshake has not finished.
        case connecting
        /// The owner finished its handshake (``markReady()``).
        case ready
    }

    /// The server of the current context, or of the last one: the endpoint given at `init`, or the
    /// node a Sentinel named (``connect(timeout:to:)``).
    private(set) var endpoint: RedisEndpoint
    /// The endpoint's TLS context (`rediss://`), shared with the shard's other connection.
    private let tls: OpenSSLContext?
    let loop: LibeventLoop
    /// Unowned: the delegate (the shard) owns this connection and frees its context before it goes,
    /// so no weak load is needed on every reply.
    unowned(unsafe) var delegate: (any HiredisConnectionDelegate)?

    private(set) var state: State = .idle
    private(set) var context: UnsafeMutablePointer<redisAsyncContext>?
    private var connectTimer: LoopTimer?
    /// Bumped for every context, so work scheduled for an old context is ignored.
    private(set) var generation = 0
    /// True while we free the context ourselves, so hiredis's callbacks know it was us.
    private var closingByUs = false

    /// Whether "message" pushes come to `didReceiveMessage` straight from the read buffer
    /// (`chr_io_deliver_messages`) instead of through hiredis's reader, and
    /// subscriptions are kept out of hiredis (``subscribe(_:unsubscribe:)``, `didConfirm`): for a
    /// subscriber, which sends nothing whose reply could look like a push.
    let directMessages: Bool

    /// Whether this connection speaks sharded pub/sub (a Redis Cluster primary's connections): a publisher's
    /// ``publish(channel:payload:)`` sends SPUBLISH, and a subscriber (with `directMessages`) takes `smessage`,
    /// `ssubscribe`, `sunsubscribe` and SSUBSCRIBE's errors past hiredis (`chr_io_deliver_shard_pushes`; see
    /// HiredisConnection+Sharded.swift).
    let sharded: Bool

    init(endpoint: RedisEndpoint, tls: OpenSSLContext? = nil, loop: LibeventLoop, directMessages: Bool = false, sharded: Bool = false) {
        self.endpoint = endpoint
        self.tls = tls
        self.loop = loop
        self.directMessages = directMessages
        self.sharded = sharded
    }

    var isReady: Bool { state == .ready }

    /// Creates a new context and starts connecting. Commands may be queued right away; hiredis
    /// writes them once the socket connects (over TLS: once the handshake is done, `tls.c`).
    ///
    /// Failure is reported through the delegate, never synchronously.
    ///
    /// - Parameter node: The server to connect to instead of the endpoint's address: the master a
    ///   Sentinel named. It becomes ``endpoint`` (for messages and comparisons) until the next connect.
    func connect(timeout: Duration, to node: RedisEndpoint? = nil) {
        loop.preconditionInLoop()
        precondition(state == .idle, "connect() on a connection that has a context")
        if let node { endpoint = node }
        generation &+= 1
        let generation = self.generation

        let created: UnsafeMutablePointer<redisAsyncContext>?
        switch endpoint.address.kind {
        case .tcp(let host, let port):
            // Note: redisAsyncConnect resolves names with a blocking getaddrinfo on this thread.
            // Numeric addresses (the usual case) resolve without I/O.
            created = redisAsyncConnect(host, Int32(port))
        case .unix(let path):
            created = redisAsyncConnectUnix(path)
        case .sentinel:
            // The shard asks the sentinels first and passes the master as `node`.
            reportFailureLater(generation: generation, ChannelLayerError(.connectionFailed, "cannot connect to \(endpoint): no master was resolved"))
            return
        }
        guard let context = created, context.pointee.err == 0 else {
            // The one case where hiredis hands us a context with `err` set and no callbacks to come:
            // we free it ourselves.
            let reason = created.map { Self.errorText($0) } ?? "out of memory"
            if let created { redisAsyncFree(created) }
            reportFailureLater(generation: generation, ChannelLayerError(.connectionFailed, "cannot connect to \(endpoint): \(reason)"))
            return
        }
        self.context = context
        self.state = .connecting
        context.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        if case .tcp = endpoint.address.kind {
            // TCP only: on a Unix socket the TCP_KEEPIDLE setsockopt fails and hiredis records that
            // as an error on the context, which then breaks on its first read.
            _ = redisEnableKeepAlive(&context.pointee.c)
        }
        if chr_io_attach(context, loop.ioLoop) != REDIS_OK {
            redisAsyncFree(context)
            self.context = nil
            self.state = .idle
            reportFailureLater(generation: generation, ChannelLayerError(.connectionFailed, "cannot attach \(endpoint) to the event loop"))
            return
        }
        if let tls {
            var error = [CChar](repeating: 0, count: 256)
            let checkHostname: Int32 = tls.settings.verification.verifiesHostname ? 1 : 0
            let serverName = tls.serverName ?? endpoint.address.host ?? ""
            if chr_io_use_tls(context, tls.pointer, serverName, checkHostname, &error, error.count) != REDIS_OK {
                redisAsyncFree(context)
                self.context = nil
                self.state = .idle
                let reason = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                reportFailureLater(generation: generation, ChannelLayerError(.connectionFailed, "cannot connect to \(endpoint): \(reason)"))
                return
            }
        }
        if directMessages {
            chr_io_deliver_messages(context, hiredisMessageTrampoline)
            chr_io_handle_subscriptions(context, hiredisSubscriptionTrampoline)
        }
        if directMessages, sharded { deliverShardPushes(context) }
        redisAsyncSetConnectCallback(context, hiredisConnectTrampoline)
        redisAsyncSetDisconnectCallback(context, hiredisDisconnectTrampoline)
        // Strongly held, like the shard's timers (no weak references: see RedisShard); cancelled
        // by markReady() and close().
        connectTimer = loop.scheduleTimer(after: timeout) { [self] in
            guard self.generation == generation, self.state == .connecting else { return }
            let handshaking = self.context.map { chr_io_tls_handshaking($0) != 0 } ?? false
            let during = handshaking ? " during the TLS handshake (does this port speak TLS?)" : ""
            self.fail(ChannelLayerError(.timeout, "connecting to \(self.endpoint) timed out after \(timeout)\(during)"))
        }
    }

    /// The owner's handshake succeeded: stop the connect timer.
    func markReady() {
        loop.preconditionInLoop()
        guard state == .connecting else { return }
        state = .ready
        connectTimer?.cancel()
        connectTimer = nil
    }

    /// Frees the context now. Pending replies are delivered as `nil` during this call; the delegate's
    /// `didCloseWithError` is not called. Idempotent.
    func close() {
        loop.preconditionInLoop()
        connectTimer?.cancel()
        connectTimer = nil
        guard let context else {
            state = .idle
            return
        }
        closingByUs = true
        // Not inside a hiredis callback (all our calls come from jobs and timers), so this frees
        // immediately, running pending callbacks with NULL replies first.
        redisAsyncFree(context)
        closingByUs = false
        self.context = nil
        state = .idle
        generation &+= 1
    }

    /// Tears the context down and reports `error` to the delegate (liveness failure, protocol error).
    func fail(_ error: ChannelLayerError) {
        loop.preconditionInLoop()
        guard state != .idle else { return }
        close()
        delegate!.connection(self, didCloseWithError: error)
    }

    // MARK: Commands

    /// Sends a normal command; its reply arrives at `didReceiveReply`.
    ///
    /// - Returns: false if there is no context or hiredis refused (disconnecting).
    @discardableResult
    func command(_ arguments: [String]) -> Bool {
        send(arguments)
    }

    /// Sends one SUBSCRIBE (or UNSUBSCRIBE) of `channels`; each confirmation arrives at `didConfirm`.
    ///
    /// Formatted in C and kept out of hiredis's subscription table (`chr_io_subscribe`): hiredis
    /// would keep a dict entry, an sds copy of the name and a callback for every channel, and parse
    /// every confirmation into reply objects to look one up. Connections made with `directMessages` only.
    ///
    /// - Returns: false if there is no context or hiredis refused (disconnecting, out of memory).
    @discardableResult
    func subscribe(_ channels: ArraySlice<String>, unsubscribe: Bool = false) -> Bool {
        loop.preconditionInLoop()
        precondition(directMessages, "subscribe(_:unsubscribe:) needs a connection made with directMessages")
        guard let context, !channels.isEmpty else { return false }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(channels.reduce(0) { $0 + $1.utf8.count })
        var ends: [Int] = []
        ends.reserveCapacity(channels.count)
        for channel in channels {
            bytes.append(contentsOf: channel.utf8)
            ends.append(bytes.count)
        }
        return bytes.withUnsafeBytes { names in
            ends.withUnsafeBufferPointer { ends in
                chr_io_subscribe(context, unsubscribe ? 1 : 0, names.baseAddress, ends.baseAddress, ends.count) == REDIS_OK
            }
        }
    }

    /// `PUBLISH channel payload` for each payload of `batch`, in order, with one reply for the
    /// whole run at `didReceiveReply`: the reply to the last PUBLISH, after which
    /// ``takeRejectedPublishes()`` tells how many of the others Redis refused.
    ///
    /// The commands are formatted in C (`chr_io_publish`), not by hiredis's own formatting
    /// (`redisFormatSdsCommandArgv`, an `sdscatfmt` per argument), and the run calls back into Swift
    /// once instead of once per reply (the trampoline and the run bookkeeping): per-message work on
    /// the loop thread that a batch does not need.
    ///
    /// - Returns: how many were handed to hiredis: all of them, or 0 if there is no context or
    ///   hiredis refused because it is disconnecting.
    ///
    /// With `asking` (a cluster primary's publisher following `-ASK`), each SPUBLISH goes after an ASKING in the same
    /// write; the glue consumes ASKING's `+OK`.
    func publish(channel: String, batch: PayloadBatch, asking: Bool = false) -> Int {
        batch.withUnsafeStorage { bytes, ends in publish(channel: channel, bytes: bytes, ends: ends, sharded: sharded, asking: asking) }
    }

    /// `PUBLISH channel payload`, its reply at `didReceiveReply`. Returns 1, or 0 as above.
    func publish(channel: String, payload: ArraySlice<UInt8>, asking: Bool = false) -> Int {
        publish(channel: channel, payload: payload, sharded: sharded, asking: asking)
    }

    /// `PUBLISH` (or, with `sharded`, `SPUBLISH`) `channel payload`, whatever the connection's own kind: a liveness
    /// probe on a cluster primary is a plain PUBLISH to the subscriber's plain subscription.
    func publish(channel: String, payload: ArraySlice<UInt8>, sharded: Bool, asking: Bool = false) -> Int {
        payload.withUnsafeBytes { bytes in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: 1) { ends in
                ends[0] = bytes.count
                return publish(channel: channel, bytes: bytes, ends: UnsafeBufferPointer(ends), sharded: sharded, asking: asking)
            }
        }
    }

    private func publish(channel: String, bytes: UnsafeRawBufferPointer, ends: UnsafeBufferPointer<Int>, sharded: Bool, asking: Bool) -> Int {
        loop.preconditionInLoop()
        guard let context, !ends.isEmpty else { return 0 }
        var channel = channel
        return channel.withUTF8 { name in
            chr_io_publish(
                context,
                hiredisReplyTrampoline,
                context.pointee.data,
                sharded ? 1 : 0,
                asking ? 1 : 0,
                name.baseAddress,
                name.count,
                bytes.baseAddress,
                ends.baseAddress,
                ends.count
            )
        }
    }

    /// How many PUBLISHes before the last of the run just answered Redis refused, and the last
    /// refusal's text. Call it in every reply callback of a publish run (it resets the count).
    func takeRejectedPublishes() -> (count: Int, text: String, receivers: Int) {
        loop.preconditionInLoop()
        guard let context else { return (0, "", 0) }
        let receivers = Int(chr_io_take_receivers(context))
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 128) { text in
            let count = chr_io_take_rejected(context, text.baseAddress, text.count)
            return (count, count == 0 ? "" : String(cString: text.baseAddress!), receivers)
        }
    }

    /// SPUBLISH runs: the positions in the run just answered of the refused SPUBLISHes before its last (at most
    /// `count`, the refusals ``takeRejectedPublishes()`` reported), and how many refusals were not redirects. Call it
    /// after ``takeRejectedPublishes()`` in every reply callback of an SPUBLISH run that had refusals (it resets).
    func takeRefusedPositions(count: Int) -> (positions: [Int], other: Int) {
        loop.preconditionInLoop()
        guard let context, count > 0 else { return ([], 0) }
        var other = 0
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: count) { buffer in
            let written = chr_io_take_refused(context, buffer.baseAddress, count, &other)
            return (Array(buffer[..<written]), other)
        }
    }

    private static func command(
        _ context: UnsafeMutablePointer<redisAsyncContext>,
        count: Int,
        argv: UnsafeMutablePointer<UnsafePointer<CChar>?>,
        lengths: UnsafePointer<Int>
    ) -> Bool {
        let privdata: UnsafeMutableRawPointer? = context.pointee.data
        return redisAsyncCommandArgv(context, hiredisReplyTrampoline, privdata, Int32(count), argv, lengths) == REDIS_OK
    }

    private func send(_ arguments: [String]) -> Bool {
        loop.preconditionInLoop()
        guard let context, !arguments.isEmpty else { return false }
        return Self.withArgv(arguments) { count, argv, lengths in Self.command(context, count: count, argv: argv, lengths: lengths) }
    }

    /// `arguments` as hiredis's argv and lengths, valid during `body`.
    static func withArgv(
        _ arguments: [String],
        _ body: (Int, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> Bool
    ) -> Bool {
        // Argument buffers only need to live for the call: hiredis formats them into its own buffer.
        // One contiguous buffer for all arguments, pointers into it.
        var joined: [UInt8] = []
        var offsets: [Int] = []
        var lengths: [Int] = []
        for argument in arguments {
            offsets.append(joined.count)
            joined.append(contentsOf: argument.utf8)
            lengths.append(joined.count - offsets.last!)
        }
        joined.append(0)
        return joined.withUnsafeBufferPointer { (bytes: UnsafeBufferPointer<UInt8>) -> Bool in
            var argv: [UnsafePointer<CChar>?] = offsets.map { offset in
                UnsafeRawPointer(bytes.baseAddress! + offset).assumingMemoryBound(to: CChar.self)
            }
            return argv.withUnsafeMutableBufferPointer { (argvBuffer: inout UnsafeMutableBufferPointer<UnsafePointer<CChar>?>) -> Bool in
                lengths.withUnsafeBufferPointer { (lengthBuffer: UnsafeBufferPointer<Int>) -> Bool in
                    body(arguments.count, argvBuffer.baseAddress!, lengthBuffer.baseAddress!)
                }
            }
        }
    }

    // MARK: Callbacks from hiredis (via the trampolines below)

    fileprivate func connectCallback(status: Int32, errorText: String) {
        guard status != REDIS_OK else { return }
        // hiredis frees the context when this callback returns, and no disconnect callback follows.
        // Freeing or disconnecting here would be a use-after-free: only record and schedule.
        context = nil
        state = .idle
        connectTimer?.cancel()
        connectTimer = nil
        let generation = self.generation
        reportFailureLater(generation: generation, ChannelLayerError(.connectionFailed, "cannot connect to \(endpoint): \(errorText)"))
    }

    fileprivate func disconnectCallback(status: Int32, errorText: String) {
        // Runs inside the free: the context dies when this returns.
        context = nil
        guard !closingByUs else { return }
        state = .idle
        connectTimer?.cancel()
        connectTimer = nil
        let reason = status == REDIS_OK ? "connection closed" : errorText
        reportFailureLater(generation: generation, ChannelLayerError(.connectionLost, "lost connection to \(endpoint): \(reason)"))
    }

    fileprivate func replyCallback(_ reply: UnsafePointer<redisReply>?) {
        delegate!.connection(self, didReceiveReply: reply)
    }

    fileprivate func messageCallback(payload: UnsafeRawBufferPointer, channel: UnsafeRawBufferPointer) {
        delegate!.connection(self, didReceiveMessage: payload, on: channel)
    }

    fileprivate func subscriptionCallback(subscribed: Bool, channel: UnsafeRawBufferPointer) {
        delegate!.connection(self, didConfirm: subscribed, channel: channel)
    }

    private func reportFailureLater(generation: Int, _ error: ChannelLayerError) {
        // Through the job queue, so the owner never runs inside a hiredis callback.
        loop.execute(with: self) { connection in
            guard connection.generation == generation, connection.state == .idle else { return }
            connection.generation &+= 1
            connection.delegate!.connection(connection, didCloseWithError: error)
        }
    }

    fileprivate static func errorText(_ context: UnsafePointer<redisAsyncContext>) -> String {
        guard let text = context.pointee.errstr else { return "unknown error" }
        let message = String(cString: text)
        return message.isEmpty ? "unknown error" : message
    }
}

extension LibeventLoop {
    /// The hiredis ↔ libevent glue of this loop, for attaching contexts. Loop thread only.
    var ioLoop: OpaquePointer {
        preconditionInLoop()
        return io!
    }
}

// MARK: - C trampolines
//
// File-scope functions, never closures written inside isolated code. Each gets its connection back
// from `ac->data` (set to an unretained pointer; the owner keeps the connection alive for as long
// as the context exists, because it frees every context before dropping its connections).

private func connection(of context: UnsafePointer<redisAsyncContext>?) -> HiredisConnection? {
    guard let data = context?.pointee.data else { return nil }
    return Unmanaged<HiredisConnection>.fromOpaque(data).takeUnretainedValue()
}

private func hiredisConnectTrampoline(_ context: UnsafePointer<redisAsyncContext>?, _ status: Int32) {
    guard let context, let owner = connection(of: context) else { return }
    owner.connectCallback(status: status, errorText: HiredisConnection.errorText(context))
}

private func hiredisDisconnectTrampoline(_ context: UnsafePointer<redisAsyncContext>?, _ status: Int32) {
    guard let context, let owner = connection(of: context) else { return }
    owner.disconnectCallback(status: status, errorText: HiredisConnection.errorText(context))
}

// The per-reply trampolines borrow the connection without retaining it: the owner keeps it alive
// (above), so no atomic retain/release pair is needed per reply.

@inline(__always)
private func withReply(
    _ context: UnsafeMutablePointer<redisAsyncContext>?,
    _ reply: UnsafeMutableRawPointer?,
    _ body: (HiredisConnection, UnsafePointer<redisReply>?) -> Void
) {
    guard let data = context?.pointee.data else { return }
    Unmanaged<HiredisConnection>.fromOpaque(data)._withUnsafeGuaranteedRef { owner in
        body(owner, reply.map { UnsafePointer($0.assumingMemoryBound(to: redisReply.self)) })
    }
}

private func hiredisReplyTrampoline(
    _ context: UnsafeMutablePointer<redisAsyncContext>?,
    _ reply: UnsafeMutableRawPointer?,
    _ privdata: UnsafeMutableRawPointer?
) {
    withReply(context, reply) { owner, reply in owner.replyCallback(reply) }
}

private func hiredisSubscriptionTrampoline(
    _ context: UnsafeMutablePointer<redisAsyncContext>?,
    _ subscribed: Int32,
    _ channel: UnsafePointer<CChar>?,
    _ channelLength: Int
) {
    guard let data = context?.pointee.data else { return }
    Unmanaged<HiredisConnection>.fromOpaque(data)._withUnsafeGuaranteedRef { owner in
        owner.subscriptionCallback(subscribed: subscribed != 0, channel: UnsafeRawBufferPointer(start: channel, count: channelLength))
    }
}

private func hiredisMessageTrampoline(
    _ context: UnsafeMutablePointer<redisAsyncContext>?,
    _ channel: UnsafePointer<CChar>?,
    _ channelLength: Int,
    _ payload: UnsafePointer<CChar>?,
    _ payloadLength: Int
) {
    guard let data = context?.pointee.data else { return }
    Unmanaged<HiredisConnection>.fromOpaque(data)._withUnsafeGuaranteedRef { owner in
        owner.messageCallback(
            payload: UnsafeRawBufferPointer(start: payload, count: payloadLength),
            channel: UnsafeRawBufferPointer(start: channel, count: channelLength)
        )
    }
}
