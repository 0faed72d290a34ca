internal import CHiredis
import Logging

/// What a ``SentinelClient`` tells its shard. Loop thread only.
protocol SentinelClientDelegate: AnyObject {
    /// A sentinel named the master: at a failover (`+switch-master`, `failover` true), or when the
    /// watch connection (re)connected and asked (`failover` false, so that a failover missed while
    /// no sentinel was reachable is noticed too).
    func sentinelClient(_ client: SentinelClient, reportedMaster master: RedisEndpoint.Address, failover: Bool)
}

/// A shard's link to a Sentinel set: it asks the sentinels where the master is, and watches them
/// for failovers. Loop-confined, like the shard that owns it.
///
/// - ``resolve(_:)`` asks `SENTINEL get-master-addr-by-name` on one short-lived connection,
///   sentinel after sentinel (starting with the last one that answered) until one names the
///   master; requests made meanwhile share the answer. Each sentinel gets the connect timeout.
/// - The watch is one connection to a sentinel, subscribed to `+switch-master` (through the glue,
///   as the shards' subscribers are: `directMessages`). Before it subscribes it asks for the master
///   too; nothing but the subscription follows. When it is lost it moves on to the next sentinel,
///   with the layer's reconnect backoff.
final class SentinelClient {
    // Not Sendable: loop-confined. Every entry point runs on the loop thread (the shard's calls,
    // hiredis callbacks, timers); a job handed to the loop carries it in a `LoopBound`.
    typealias Resolution = (Result<RedisEndpoint.Address, ChannelLayerError>) -> Void

    let settings: RedisEndpoint.Sentinel
    /// The endpoint's TLS context (`rediss+sentinel://`): the sentinels are reached over TLS too.
    private let tls: OpenSSLContext?
    private let loop: LibeventLoop
    private let connectTimeout: Duration
    private let retry: RedisPubSubChannelLayer.RetryParameters
    private let logger: Logger
    /// Unowned: the shard owns this client and closes it before it goes.
    unowned(unsafe) var delegate: (any SentinelClientDelegate)?

    /// The sentinel to ask first: the last one that answered.
    private var preferred = 0
    private var closed = false

    // The resolution under way, if any.
    private var query: HiredisConnection?
    /// Bumped for every query connection, so a job scheduled for an old one is ignored.
    private var queryGeneration = 0
    /// How many sentinels this resolution has asked, the current one included.
    private var queryTried = 0
    private var queryAwaitsAuth = false
    /// Why each sentinel asked so far did not name the master.
    private var queryFailures: [String] = []
    private var resolutions: [Resolution] = []

    // The watch.
    private var watch: HiredisConnection?
    private var watchIndex = 0
    /// Failed watch connects in a row: the backoff's attempt number.
    private var watchFailures = 0
    private var watchAwaitsAuth = false
    private var watchTimer: LoopTimer?
    /// Whether the watch lost its sentinel and has not subscribed again (warned once).
    private var watchLost = false

    init(
        settings: RedisEndpoint.Sentinel,
        tls: OpenSSLContext?,
        loop: LibeventLoop,
        configuration: RedisPubSubChannelLayer.Configuration,
        logger: Logger
    ) {
        self.settings = settings
        self.tls = tls
        self.loop = loop
        self.connectTimeout = configuration.connectTimeout
        self.retry = configuration.retry
        self.logger = logger
    }

    // MARK: Resolving

    /// Asks the sentinels where the master is; `completion` runs on the loop, never synchronously.
    func resolve(_ completion: @escaping Resolution) {
        loop.preconditionInLoop()
        resolutions.append(completion)
        guard query == nil, resolutions.count == 1 else { return }
        guard !closed else { return finish(.failure(ChannelLayerError.closed())) }
        queryTried = 0
        queryFailures = []
        askNextSentinel()
    }

    private func askNextSentinel() {
        guard queryTried < settings.sentinels.count else {
            let reasons = queryFailures.joined(separator: "; ")
            let error = ChannelLayerError(
                .connectionFailed,
                "no sentinel named a master for '\(settings.masterName)' (\(reasons))"
            )
            return finish(.failure(error))
        }
        let index = (preferred + queryTried) % settings.sentinels.count
        queryTried += 1
        queryGeneration &+= 1
        let connection = HiredisConnection(endpoint: settings.endpoint(index), tls: tls, loop: loop)
        connection.delegate = self
        query = connection
        // Never marked ready, so its connect timer bounds the whole exchange: a sentinel that
        // accepts the connection but does not answer costs one connect timeout.
        connection.connect(timeout: connectTimeout)
        guard connection.state == .connecting else { return }  // the failure comes as a job
        queryAwaitsAuth = sendAuth(on: connection)
        connection.command(["SENTINEL", "get-master-addr-by-name", settings.masterName])
    }

    private func queryAnswered(_ reply: UnsafePointer<redisReply>) {
        if queryAwaitsAuth {
            queryAwaitsAuth = false
            if reply.pointee.type == REDIS_REPLY_ERROR { queryEnded(.failure("AUTH failed: \(RedisReply.text(reply) ?? "error")")) }
            return
        }
        switch reply.pointee.type {
        case REDIS_REPLY_NIL:
            queryEnded(.failure("it monitors no master named '\(settings.masterName)'"))
        case REDIS_REPLY_ERROR:
            queryEnded(.failure(RedisReply.text(reply) ?? "error"))
        default:
            if let master = Self.address(reply) {
                queryEnded(.success(master))
            } else {
                queryEnded(.failure("unexpected reply to SENTINEL get-master-addr-by-name"))
            }
        }
    }

    private enum QueryOutcome {
        case success(RedisEndpoint.Address)
        case failure(String)
    }

    /// Ends the exchange with the current sentinel: outside the hiredis callback, which is still
    /// iterating the context's replies.
    private func queryEnded(_ outcome: QueryOutcome) {
        let generation = queryGeneration
        loop.execute(with: self) { client in
            guard client.queryGeneration == generation, let connection = client.query else { return }
            client.query = nil
            let sentinel = connection.endpoint.address
            connection.close()
            switch outcome {
            case .success(let master):
                client.preferred = (client.preferred + client.queryTried - 1) % client.settings.sentinels.count
                client.logger.debug("sentinel named the master", metadata: ["sentinel": "\(sentinel)", "master": "\(master)"])
                client.finish(.success(master))
            case .failure(let reason):
                client.queryFailures.append("\(sentinel): \(reason)")
                client.askNextSentinel()
            }
        }
    }

    private func finish(_ result: Result<RedisEndpoint.Address, ChannelLayerError>) {
        let waiting = resolutions
        resolutions = []
        // As a job: `resolve` promises never to call back synchronously.
        loop.execute(with: self) { _ in
            for completion in waiting { completion(result) }
        }
    }

    /// The node the last answer named is not the master: the next resolution starts with the next
    /// sentinel, so that one sentinel with a stale view cannot keep the shard on a replica.
    func answerWasStale() {
        loop.preconditionInLoop()
        preferred = (preferred + 1) % settings.sentinels.count
    }

    // MARK: Watching

    /// Starts the `+switch-master` watch, if it is not running. Idempotent.
    func startWatching() {
        loop.preconditionInLoop()
        guard !closed, watch == nil, watchTimer == nil else { return }
        connectWatch()
    }

    private func connectWatch() {
        watchTimer = nil
        // `directMessages`: the subscription and its events are parsed by the glue, as the shards' are.
        let connection = HiredisConnection(endpoint: settings.endpoint(watchIndex), tls: tls, loop: loop, directMessages: true)
        connection.delegate = self
        watch = connection
        connection.connect(timeout: connectTimeout)
        guard connection.state == .connecting else { return }
        watchAwaitsAuth = sendAuth(on: connection)
        connection.command(["SENTINEL", "get-master-addr-by-name", settings.masterName])
        connection.subscribe(["+switch-master"])
    }

    private func watchAnswered(_ reply: UnsafePointer<redisReply>) {
        if watchAwaitsAuth {
            watchAwaitsAuth = false
            if reply.pointee.type == REDIS_REPLY_ERROR {
                let error = ChannelLayerError(.connectionFailed, "AUTH to sentinel \(watch?.endpoint.address.description ?? "") failed")
                loop.execute(with: self) { client in client.watch?.fail(error) }
            }
            return
        }
        if let master = Self.address(reply) {
            delegate?.sentinelClient(self, reportedMaster: master, failover: false)
        }
    }

    private func watchSubscribed() {
        watch?.markReady()
        watchFailures = 0
        if watchLost {
            watchLost = false
            logger.info("watching the sentinels for failovers again", metadata: ["sentinel": "\(settings.sentinels[watchIndex])"])
        }
    }

    /// A `+switch-master` event: `<master name> <old ip> <old port> <new ip> <new port>`.
    private func watchReceived(_ payload: UnsafeRawBufferPointer) {
        let text = String(decoding: payload, as: UTF8.self)
        let fields = text.split(separator: " ")
        guard fields.count == 5, fields[0] == settings.masterName else { return }
        guard let port = Int(fields[4]), (1...65535).contains(port) else {
            logger.warning("ignored a malformed +switch-master event", metadata: ["event": "\(text)"])
            return
        }
        delegate?.sentinelClient(self, reportedMaster: .hostname(String(fields[3]), port: port), failover: true)
    }

    private func watchLostConnection(_ error: ChannelLayerError) {
        watch = nil
        guard !closed else { return }
        if !watchLost {
            watchLost = true
            logger.warning(
                "lost the sentinel watch; a failover is noticed by the ROLE checks until it is back",
                metadata: ["error": "\(error.message)"]
            )
        } else {
            logger.debug("sentinel watch connect failed", metadata: ["error": "\(error.message)"])
        }
        watchFailures += 1
        watchIndex = (watchIndex + 1) % settings.sentinels.count
        watchTimer = loop.scheduleTimer(after: retry.delay(forAttempt: watchFailures)) { [self] in connectWatch() }
    }

    // MARK: Teardown

    /// Closes both connections; a resolution under way fails with `layerClosed`. Idempotent.
    func close() {
        loop.preconditionInLoop()
        guard !closed else { return }
        closed = true
        watchTimer?.cancel()
        watchTimer = nil
        watch?.close()
        watch = nil
        queryGeneration &+= 1
        query?.close()
        query = nil
        if !resolutions.isEmpty { finish(.failure(ChannelLayerError.closed())) }
    }

    // MARK: Helpers

    /// Sends AUTH with the sentinels' credentials, if they have any; returns whether it did.
    private func sendAuth(on connection: HiredisConnection) -> Bool {
        guard let password = settings.password, !password.isEmpty else { return false }
        if let username = settings.username, !username.isEmpty {
            connection.command(["AUTH", username, password])
        } else {
            connection.command(["AUTH", password])
        }
        return true
    }

    /// The `[ip, port]` reply of `SENTINEL get-master-addr-by-name`.
    private static func address(_ reply: UnsafePointer<redisReply>) -> RedisEndpoint.Address? {
        guard reply.pointee.type == REDIS_REPLY_ARRAY, reply.pointee.elements == 2, let elements = reply.pointee.element,
            let host = elements[0].flatMap({ RedisReply.text(UnsafePointer($0)) }), !host.isEmpty,
            let portText = elements[1].flatMap({ RedisReply.text(UnsafePointer($0)) }),
            let port = Int(portText), (1...65535).contains(port)
        else { return nil }
        return .hostname(host, port: port)
    }
}

extension SentinelClient: HiredisConnectionDelegate {
    func connection(_ connection: HiredisConnection, didReceiveReply reply: UnsafePointer<redisReply>?) {
        guard let reply else { return }  // freeing
        if connection === query {
            queryAnswered(reply)
        } else if connection === watch {
            watchAnswered(reply)
        }
    }

    func connection(_ connection: HiredisConnection, didConfirm subscribed: Bool, channel: UnsafeRawBufferPointer) {
        guard connection === watch, subscribed else { return }
        watchSubscribed()
    }

    func connection(_ connection: HiredisConnection, didReceiveMessage payload: UnsafeRawBufferPointer, on channel: UnsafeRawBufferPointer) {
        guard connection === watch else { return }
        watchReceived(payload)
    }

    func connection(_ connection: HiredisConnection, didCloseWithError error: ChannelLayerError) {
        if connection === query {
            query = nil
            queryFailures.append(error.message)
            askNextSentinel()
        } else if connection === watch {
            watchLostConnection(error)
        }
    }
}
