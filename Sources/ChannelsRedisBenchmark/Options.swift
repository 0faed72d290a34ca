// Command line of channels-redis-bench: the interface .ci/bench/run documents for all programs.

let usageText = """
    usage: channels-redis-bench --port P [--host 127.0.0.1]
               --workload throughput|pingpong|latency|fanout|fanout-floor|send-floor|scale|memory
               [--count N] [--senders S] [--rate R] [--seconds S] [--members K] [--window W]
               [--layer redis|in-memory]
               [--extra-channels K] [--channels K] [--batch B] [--send-batch B] [--on-loop] [--resubscribe]
               [--idle-seconds S]
               [--busy-poll-us U] [--reply-poll-us U] [--tls-ca FILE] [--cluster HOST:PORT,…] [--spread K]
               [--stamp send|spawn]
               [--timeout S] [--json] [--dump-payload]

    Runs one workload through ChannelsRedis's public API against a Redis server and prints ONE
    JSON line (schema: the header of .ci/bench/run). Exit status 0 on success, 1 on a failed run,
    2 on bad arguments.

      fanout-floor       no Redis, no layer: the cheapest task hand-off a Swift fan-out can do, the
                         bound of the fanout rows. One producer thread hands the fanout workload's
                         message to --members consumer tasks (global executor), --count times, each
                         through a mutex, a deque and at most one waiting continuation, resumed
                         after the message went to every member; --host/--port are ignored
      send-floor         no Redis, no layer: the two hand-offs of an awaited send alone, the bound of
                         the "N tasks awaiting each send" rows. --senders tasks (global executor)
                         share --count round trips, each handing a request to one service thread
                         (a mutex, a queue, a condition variable it sleeps on when the queue is
                         empty) and awaiting its resume; --host/--port are ignored
      --window W         fanout-floor: the producer stays at most W messages ahead of the slowest
                         consumer (default 8, for the fanout workload's 8 awaiting senders, which
                         bound the PUBLISHes in flight rather than how far its consumers lag;
                         0: no limit)
      --layer L          fanout: "redis" (default: RedisPubSubChannelLayer on --host/--port) or
                         "in-memory" (InMemoryChannelLayer, the same channel buffers and groups with
                         no Redis and no loop thread; the senders' groupSend delivers inline); the
                         JSON line says "layer"

      --senders S        concurrent sender tasks (throughput, scale, fanout; default 8)
      --batch B          newChannel() calls in flight at once (scale, memory, fanout; default 1000)
      --on-loop          pingpong, latency, fanout: run the workload's tasks (fanout: the consumers)
                         on the layer's loop (layer.taskExecutor)
      --busy-poll-us U   the layer's Configuration.busyPoll in microseconds (default 0: off)
      --reply-poll-us U  the layer's Configuration.replyPoll in microseconds (default: the layer's, 50;
                         0: off); the JSON line says "reply_poll_us"
      --tls-ca FILE      connect over TLS (rediss://, --port is then the server's --tls-port), trusting
                         the CA certificate in FILE; the JSON line says "tls": true
      --send-batch B     throughput: each sender publishes B messages per send(contentsOf:) (default 1: send())
      --cluster SEEDS    use a Redis Cluster (redis-cluster://SEEDS, e.g. 127.0.0.1:7000,127.0.0.1:7001)
                         instead of --host/--port; the JSON line says "cluster": true and "primaries"
      --spread K         throughput: the messages go round-robin to K channels, each with its own
                         consumer; fanout: to K groups of --members members each (default 1)
      --resubscribe      memory: also kill the layer's subscriber connection (CLIENT KILL TYPE
                         pubsub, on the server given) and time the reconnect + resubscribe of
                         every channel ("resubscribe_seconds", includes the reconnect backoff;
                         "kill_seconds": the CLIENT KILL's own part, the server dropping the old
                         subscriptions; "resubscribe_cpu_seconds": this process's CPU after it)
      --idle-seconds S   memory: then leave the layer idle (its channels subscribed, liveness probes
                         on) for S seconds and report the CPU it used, "idle_cpu_percent" of one core
      --stamp send       latency: stamp each message in its task just before layer.send()
                         starts (default); "spawn": on the pacer thread before the task is
                         created, so the hop onto the cooperative pool counts as latency
      --dump-payload     print the hex of the serialized benchmark message and exit
    """

enum Workload: String, Sendable, CaseIterable {
    case throughput, pingpong, latency, fanout, scale, memory
    case fanoutFloor = "fanout-floor"
    case sendFloor = "send-floor"

    /// Runs with no Redis and no Redis layer (`runWithoutRedis`).
    var isFloor: Bool { self == .fanoutFloor || self == .sendFloor }
}

/// The layer a workload runs on (`--layer`).
enum LayerKind: String, Sendable {
    case redis
    case inMemory = "in-memory"
}

struct Options: Sendable {
    var host = "127.0.0.1"
    var port = 6379
    var workload: Workload?
    var workloadName = "?"
    var count = 5000
    var senders = 8
    var rate = 1000.0
    var seconds = 3.0
    var members = 10
    /// fanout-floor: messages the producer may be ahead of the slowest consumer; 0: no limit.
    var window = 8
    var windowGiven = false
    var layer = LayerKind.redis
    var extraChannels = 0
    var channels = 10_000
    var batch = 1000
    var sendBatch = 1
    var onLoop = false
    var busyPollMicroseconds = 0
    /// `nil`: the layer's default `Configuration.replyPoll`.
    var replyPollMicroseconds: Int?
    /// With TLS: the CA file the server's certificate chains to.
    var tlsCA: String?
    /// Cluster mode: the seeds, `host:port,host:port`.
    var clusterSeeds: String?
    var spread = 1
    var resubscribe = false
    var idleSeconds = 0.0
    var stampAtSpawn = false
    var timeout = 120.0
    var dumpPayload = false
    var help = false

    struct Invalid: Error {
        var message: String
    }

    init(_ arguments: [String]) throws(Invalid) {
        var index = 0
        func value(_ flag: String) throws(Invalid) -> String {
            index += 1
            guard index < arguments.count else { throw Invalid(message: "\(flag) needs a value") }
            return arguments[index]
        }
        func integer(_ flag: String, minimum: Int) throws(Invalid) -> Int {
            let text = try value(flag)
            guard let number = Int(text), number >= minimum else {
                throw Invalid(message: "\(flag) \(text): expected an integer ≥ \(minimum)")
            }
            return number
        }
        func positive(_ flag: String) throws(Invalid) -> Double {
            let text = try value(flag)
            guard let number = Double(text), number.isFinite, number > 0 else {
                throw Invalid(message: "\(flag) \(text): expected a positive number")
            }
            return number
        }
        while index < arguments.count {
            let flag = arguments[index]
            switch flag {
            case "-h", "--help": help = true
            case "--json": break  // always JSON; accepted for symmetry with the other programs
            case "--dump-payload": dumpPayload = true
            case "--resubscribe": resubscribe = true
            case "--stamp":
                switch try value(flag) {
                case "send": stampAtSpawn = false
                case "spawn": stampAtSpawn = true
                case let other: throw Invalid(message: "--stamp \(other): expected send or spawn")
                }
            case "--host": host = try value(flag)
            case "--port":
                port = try integer(flag, minimum: 1)
                guard port <= 65535 else { throw Invalid(message: "--port \(port): out of range") }
            case "--workload":
                let name = try value(flag)
                guard let parsed = Workload(rawValue: name) else { throw Invalid(message: "unknown workload \(name)") }
                workload = parsed
                workloadName = name
            case "--count": count = try integer(flag, minimum: 1)
            case "--senders": senders = try integer(flag, minimum: 1)
            case "--rate": rate = try positive(flag)
            case "--seconds": seconds = try positive(flag)
            case "--members": members = try integer(flag, minimum: 1)
            case "--window":
                window = try integer(flag, minimum: 0)
                windowGiven = true
            case "--layer":
                let name = try value(flag)
                guard let parsed = LayerKind(rawValue: name) else { throw Invalid(message: "--layer \(name): expected redis or in-memory") }
                layer = parsed
            case "--extra-channels": extraChannels = try integer(flag, minimum: 0)
            case "--channels": channels = try integer(flag, minimum: 1)
            case "--batch": batch = try integer(flag, minimum: 1)
            case "--send-batch": sendBatch = try integer(flag, minimum: 1)
            case "--on-loop": onLoop = true
            case "--busy-poll-us":
                busyPollMicroseconds = try integer(flag, minimum: 0)
                guard busyPollMicroseconds <= 1_000_000 else { throw Invalid(message: "--busy-poll-us: at most 1000000 (one second)") }
            case "--reply-poll-us":
                let microseconds = try integer(flag, minimum: 0)
                replyPollMicroseconds = microseconds
                guard microseconds <= 1_000_000 else { throw Invalid(message: "--reply-poll-us: at most 1000000 (one second)") }
            case "--idle-seconds": idleSeconds = try positive(flag)
            case "--timeout": timeout = try positive(flag)
            case "--tls-ca": tlsCA = try value(flag)
            case "--cluster": clusterSeeds = try value(flag)
            case "--spread": spread = try integer(flag, minimum: 1)
            default: throw Invalid(message: "unknown argument \(flag)")
            }
            index += 1
        }
        if workload == .latency && latencyTotal == 0 {
            throw Invalid(message: "--rate x --seconds sends nothing")
        }
        if windowGiven && workload != .fanoutFloor {
            throw Invalid(message: "--window is an option of --workload fanout-floor only")
        }
        if layer == .inMemory && workload != .fanout {
            throw Invalid(message: "--layer in-memory runs --workload fanout only")
        }
        if layer == .inMemory || workload?.isFloor == true {
            // What only the Redis layer has: refused rather than silently ignored.
            let redisOnly = [
                ("--on-loop", onLoop), ("--tls-ca", tlsCA != nil), ("--cluster", clusterSeeds != nil), ("--spread", spread > 1),
                ("--busy-poll-us", busyPollMicroseconds > 0), ("--reply-poll-us", replyPollMicroseconds != nil),
            ]
            if let (flag, _) = redisOnly.first(where: { $0.1 }) {
                let without = workload?.isFloor == true ? "--workload \(workloadName)" : "--layer in-memory"
                throw Invalid(message: "\(flag) needs the Redis layer, which \(without) does not use")
            }
        }
    }

    /// Messages of the latency workload: rate × seconds, rounded.
    var latencyTotal: Int { Int(rate * seconds + 0.5) }
}
