// The workloads, through the public API of ChannelsRedis only (newChannel, send, messages(from:),
// groupAdd, groupSend, connectionEvents, statistics). Definitions, JSON fields and timing rules:
// the header of .ci/bench/run; the C baseline and the Python peer do the same work.

import ChannelsRedis
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - The message

/// `{"type": "test.message", "text": T}`: T is a 20-digit zero-padded CLOCK_MONOTONIC timestamp in
/// nanoseconds (zeros outside the latency workload) followed by 30 "x", 50 characters.
enum Payload {
    static let textLength = 50
    static let timestampDigits = 20

    static func text(_ timestamp: UInt64) -> String {
        String(unsafeUninitializedCapacity: textLength) { buffer in
            var rest = timestamp
            for index in stride(from: timestampDigits - 1, through: 0, by: -1) {
                buffer[index] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            }
            for index in timestampDigits..<textLength { buffer[index] = UInt8(ascii: "x") }
            return textLength
        }
    }

    static func message(_ timestamp: UInt64 = 0) -> ChannelMessage {
        ["type": "test.message", "text": .string(text(timestamp))]
    }

    /// The timestamp of a received benchmark message, or nil if it is not one.
    static func timestamp(of message: ChannelMessage) -> UInt64? {
        guard let text = message["text"]?.stringValue else { return nil }
        var value: UInt64 = 0
        var digits = 0
        for byte in text.utf8 {
            if digits == timestampDigits { break }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value &* 10 &+ UInt64(byte - UInt8(ascii: "0"))
            digits += 1
        }
        return digits == timestampDigits ? value : nil
    }

    /// The 76 bytes channels_redis (and the C baseline) publish: 82 a4"type" ac"test.message"
    /// a4"text" d9 32 <T>.
    static var expectedBytes: [UInt8] {
        var bytes: [UInt8] = [0x82, 0xA4] + Array("type".utf8) + [0xAC] + Array("test.message".utf8)
        bytes += [0xA4] + Array("text".utf8) + [0xD9, UInt8(textLength)]
        bytes += Array(text(0).utf8)
        return bytes
    }

    /// Fails when this library would not put the same bytes on the wire as the other programs.
    static func verify() throws {
        let bytes = try MessagePackSerializer().serialize(message())
        guard bytes == expectedBytes else {
            throw BenchError("the serialized message is not the benchmark payload: \(hex(bytes))")
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        var text = ""
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 15)])
        }
        return text
    }
}

// MARK: - Running

/// Starts an unstructured task on `executor`, or a plain `Task` (what a user writes) without one.
/// Tasks made with `Task(executorPreference: nil)` looked up an executor preference under the
/// task's status lock on every resume (Swift 6.3, `getPreferredTaskExecutor`): 7 % of group
/// fan-out's samples, under 1 % with plain tasks.
@discardableResult
func startTask<Success: Sendable>(
    preferring executor: (any TaskExecutor)?,
    _ body: sending @escaping @isolated(any) () async -> Success
) -> Task<Success, Never> {
    if let executor {
        Task(executorPreference: executor, operation: body)
    } else {
        Task(operation: body)
    }
}

struct Bench: Sendable {
    /// With --on-loop: the layer's loop thread, preferred by every task the workload runs.
    var preferredExecutor: (any TaskExecutor)? { options.onLoop ? layer.taskExecutor : nil }
    let options: Options
    let layer: RedisPubSubChannelLayer
    let progress: Progress
}

/// Parses the arguments, runs one workload, prints one JSON line; returns the exit status.
func runBenchmark(_ arguments: [String]) async -> Int32 {
    let options: Options
    do {
        options = try Options(arguments)
    } catch {
        log("bad arguments: \(error.message)")
        log(usageText)
        return 2
    }
    if options.help {
        print(usageText)
        return 0
    }
    if options.dumpPayload {
        print(Payload.hex(Payload.expectedBytes))
        return 0
    }
    guard let workload = options.workload else {
        log("--workload is required")
        log(usageText)
        return 2
    }

    let progress = Progress()
    let watchdog = Watchdog(workload: workload.rawValue, seconds: options.timeout, progress: progress)
    if workload.isFloor || options.layer == .inMemory {
        return await runWithoutRedis(options, workload: workload, progress: progress, watchdog: watchdog)
    }
    let address: RedisEndpoint.Address
    if let ca = options.tlsCA {
        address = .hostname(options.host, port: options.port, tls: RedisEndpoint.TLS(trustRoots: .certificateFile(ca)))
    } else {
        address = .hostname(options.host, port: options.port)
    }
    var configuration = RedisPubSubChannelLayer.Configuration(hosts: [RedisEndpoint(address: address).url])
    if let seeds = options.clusterSeeds { configuration.hosts = ["redis-cluster://\(seeds)"] }
    configuration.busyPoll = .microseconds(options.busyPollMicroseconds)
    if let replyPoll = options.replyPollMicroseconds { configuration.replyPoll = .microseconds(replyPoll) }
    // channels_redis's per-channel queues are unbounded; the bench must never lose a message to a
    // full buffer (it would wait for it forever), so every buffer holds a whole run.
    switch workload {
    case .throughput, .scale, .fanout: configuration.capacity = max(10_000, options.count + 1_000)
    case .latency: configuration.capacity = max(10_000, options.latencyTotal + 1_000)
    case .pingpong, .memory, .fanoutFloor, .sendFloor: break
    }
    let layer: RedisPubSubChannelLayer
    do {
        layer = try RedisPubSubChannelLayer(configuration: configuration)
    } catch {
        report(errorLine(workload: workload.rawValue, "\(error)"), status: 1)
        return 1
    }
    let bench = Bench(options: options, layer: layer, progress: progress)

    var json = JSONLine()
    json.add("impl", "swift")
    json.add("workload", workload.rawValue)
    var status: Int32 = 0
    do {
        try Payload.verify()
        var fields = JSONLine()
        switch workload {
        case .throughput where options.spread > 1: try await spreadThroughput(bench, into: &fields)
        case .throughput: try await throughput(bench, extraChannels: 0, into: &fields)
        case .fanout where options.spread > 1: try await spreadFanout(bench, into: &fields)
        case .scale: try await throughput(bench, extraChannels: options.extraChannels, into: &fields)
        case .pingpong:
            try await withTaskExecutorPreference(bench.preferredExecutor) { try await pingpong(bench, into: &fields) }
        case .latency:
            try await withTaskExecutorPreference(bench.preferredExecutor) { try await latency(bench, into: &fields) }
        case .fanout:
            try await fanout(layer, options: options, progress: progress, preferring: bench.preferredExecutor, into: &fields)
        case .fanoutFloor, .sendFloor: throw BenchError("\(workload.rawValue) runs without a layer")  // runWithoutRedis's
        case .memory: try await memory(bench, into: &fields)
        }
        json.add("ok", true)
        json.add("layer", LayerKind.redis.rawValue)
        json.add("on_loop", options.onLoop)
        json.add("busy_poll_us", options.busyPollMicroseconds)
        json.add("reply_poll_us", Int(configuration.replyPoll / .microseconds(1)))
        json.add("tls", options.tlsCA != nil)
        json.add("cluster", options.clusterSeeds != nil)
        json.add("spread", options.spread)
        if options.clusterSeeds != nil { json.add("primaries", layer.shardStatuses.filter { $0 != .retired }.count) }
        json.append(contentsOf: fields)
        let statistics = layer.statistics
        json.add("layer_dropped", statistics.droppedMessages)
        json.add("layer_reconnects", statistics.reconnects)
        report(json.string, status: 0)
    } catch {
        status = 1
        report(errorLine(workload: workload.rawValue, "\(error) [during \(progress.summary)]"), status: 1)
    }
    // The figures are out; the teardown is checked but may not hold the runner for long.
    watchdog.rearm(seconds: 10)
    await layer.close()
    return status
}

/// The workloads that need no Redis: fanout on `InMemoryChannelLayer` (`--layer in-memory`), fanout-floor and
/// send-floor (no layer at all). The line carries the fields of a Redis line that still mean something, with the
/// values a Redis run without those options has, so the report tells the rows apart by "layer" and "workload" alone.
func runWithoutRedis(_ options: Options, workload: Workload, progress: Progress, watchdog: Watchdog) async -> Int32 {
    var json = JSONLine()
    json.add("impl", "swift")
    json.add("workload", workload.rawValue)
    var layer: InMemoryChannelLayer?
    var status: Int32 = 0
    do {
        try Payload.verify()
        var fields = JSONLine()
        if workload == .fanoutFloor {
            try await fanoutFloor(options, progress: progress, into: &fields)
        } else if workload == .sendFloor {
            try await sendFloor(options, progress: progress, into: &fields)
        } else {
            // Buffers that hold a whole run, as the Redis layer's (runBenchmark says why).
            let inMemory = try InMemoryChannelLayer(configuration: .init(capacity: max(10_000, options.count + 1_000)))
            layer = inMemory
            try await fanout(inMemory, options: options, progress: progress, preferring: nil, into: &fields)
        }
        json.add("ok", true)
        json.add("layer", workload.isFloor ? "none" : options.layer.rawValue)
        json.add("on_loop", false)
        json.add("busy_poll_us", 0)
        json.add("tls", false)
        json.add("cluster", false)
        json.add("spread", 1)
        json.append(contentsOf: fields)
        if let layer { json.add("layer_dropped", layer.statistics.droppedMessages) }
        report(json.string, status: 0)
    } catch {
        status = 1
        report(errorLine(workload: workload.rawValue, "\(error) [during \(progress.summary)]"), status: 1)
    }
    watchdog.rearm(seconds: 10)
    await layer?.close()
    return status
}

// MARK: - Helpers

/// One message there and back before the clock starts (every program does this).
func warmUp(_ bench: Bench, channel: String, iterator: inout ChannelMessageSequence.AsyncIterator) async throws {
    bench.progress.enter("warm-up")
    try await bench.layer.send(Payload.message(), to: channel)
    guard let message = try await iterator.next() else { throw BenchError("the channel ended during the warm-up") }
    guard message == Payload.message() else { throw BenchError("the warm-up came back as \(message)") }
}

/// `count` newChannel() calls, `batch` of them in flight at any time; returns the names if asked.
@discardableResult
func createChannels(_ bench: Bench, count: Int, keepNames: Bool = false) async throws -> [String] {
    let layer = bench.layer
    let progress = bench.progress
    return try await withThrowingTaskGroup(of: String.self) { group in
        var names: [String] = []
        if keepNames { names.reserveCapacity(count) }
        var started = 0
        var done = 0
        while started < min(bench.options.batch, count) {
            group.addTask { try await layer.newChannel() }
            started += 1
        }
        while let name = try await group.next() {
            done += 1
            progress.subscribed.store(done, ordering: .relaxed)
            if keepNames { names.append(name) }
            if started < count {
                group.addTask { try await layer.newChannel() }
                started += 1
            }
        }
        return names
    }
}

// MARK: - throughput and scale

func throughput(_ bench: Bench, extraChannels: Int, into json: inout JSONLine) async throws {
    let layer = bench.layer
    let progress = bench.progress
    let count = bench.options.count
    let senders = bench.options.senders
    if bench.options.workload == .scale {
        progress.enter("subscribing \(extraChannels) extra channels")
        let start = nowNs()
        try await createChannels(bench, count: extraChannels)
        json.add("extra_channels", extraChannels)
        json.add("subscribe_seconds", Double(nowNs() - start) / 1e9, digits: 4)
    }
    let channel = try await layer.newChannel()
    let messages = try await layer.messages(from: channel)
    var warm = messages.makeAsyncIterator()
    try await warmUp(bench, channel: channel, iterator: &warm)

    progress.enter("throughput")
    let consumer = Task { () async throws -> UInt64 in
        var received = 0
        for try await _ in messages {
            received += 1
            if received & 1023 == 0 { progress.received.store(received, ordering: .relaxed) }
            if received == count { return nowNs() }
        }
        throw BenchError("the channel ended after \(received) of \(count) messages")
    }
    let message = Payload.message()
    let cpuStart = processCPUNs()
    let start = nowNs()
    try await withThrowingTaskGroup(of: Void.self) { group in
        let sendBatch = bench.options.sendBatch
        for share in split(count, into: senders) {
            group.addTask {
                if sendBatch > 1 {
                    // The batch API: one hand-off and one wait per `sendBatch` pipelined PUBLISHes.
                    var left = share
                    while left > 0 {
                        let chunk = min(sendBatch, left)
                        try await layer.send(contentsOf: repeatElement(message, count: chunk), to: channel)
                        progress.sent.add(chunk, ordering: .relaxed)
                        left -= chunk
                    }
                    return
                }
                for index in 1...share {
                    try await layer.send(message, to: channel)
                    if index & 1023 == 0 { progress.sent.add(1024, ordering: .relaxed) }
                }
                progress.sent.add(share & 1023, ordering: .relaxed)
            }
        }
        try await group.waitForAll()
    }
    let end = try await consumer.value
    let cpu = processCPUNs() - cpuStart
    let seconds = max(Double(end - start) / 1e9, 1e-9)
    json.add("count", count)
    json.add("senders", senders)
    json.add("send_batch", bench.options.sendBatch)
    json.add("seconds", seconds, digits: 4)
    json.add("msgs_per_sec", Double(count) / seconds, digits: 1)
    json.add("cpu_us_per_msg", Double(cpu) / 1e3 / Double(count), digits: 3)
}

// MARK: - pingpong

func pingpong(_ bench: Bench, into json: inout JSONLine) async throws {
    let layer = bench.layer
    let count = bench.options.count
    let channel = try await layer.newChannel()
    var iterator = try await layer.messages(from: channel).makeAsyncIterator()
    try await warmUp(bench, channel: channel, iterator: &iterator)

    bench.progress.enter("pingpong")
    let message = Payload.message()
    var rtts: [UInt64] = []
    rtts.reserveCapacity(count)
    let cpuStart = processCPUNs()
    let start = nowNs()
    for index in 0..<count {
        let sent = nowNs()
        try await layer.send(message, to: channel)
        guard try await iterator.next() != nil else { throw BenchError("the channel ended after \(index) messages") }
        rtts.append(nowNs() - sent)
        bench.progress.received.store(index + 1, ordering: .relaxed)
    }
    let seconds = max(Double(nowNs() - start) / 1e9, 1e-9)
    let cpu = processCPUNs() - cpuStart
    rtts.sort()
    json.add("count", count)
    json.add("seconds", seconds, digits: 4)
    json.add("msgs_per_sec", Double(count) / seconds, digits: 1)
    json.add("cpu_us_per_msg", Double(cpu) / 1e3 / Double(count), digits: 3)
    json.add("rtt_p50_us", percentileUs(rtts, 50), digits: 1)
    json.add("rtt_p99_us", percentileUs(rtts, 99), digits: 1)
}

// MARK: - latency

func latency(_ bench: Bench, into json: inout JSONLine) async throws {
    let layer = bench.layer
    let progress = bench.progress
    let rate = bench.options.rate
    let total = bench.options.latencyTotal
    let channel = try await layer.newChannel()
    let messages = try await layer.messages(from: channel)
    var warm = messages.makeAsyncIterator()
    try await warmUp(bench, channel: channel, iterator: &warm)

    progress.enter("latency")
    let allReceived = Event()
    let receiver = startTask(preferring: bench.preferredExecutor) { () -> (samples: [UInt64], last: UInt64, foreign: Int) in
        var samples: [UInt64] = []
        samples.reserveCapacity(total)
        var last: UInt64 = 0
        var foreign = 0
        do {
            for try await message in messages {
                let now = nowNs()
                if let stamp = Payload.timestamp(of: message) {
                    samples.append(now >= stamp ? now - stamp : 0)
                } else {
                    foreign += 1
                }
                last = now
                progress.received.store(samples.count, ordering: .relaxed)
                if samples.count == total {
                    allReceived.fire()
                    break
                }
            }
        } catch {
            log("latency receiver: \(error)")
        }
        return (samples, last, foreign)
    }

    // The pacer: an OS thread that sleeps to each absolute deadline start + i/rate (a late one
    // catches up, no drift) and starts one task per send there, without waiting for earlier sends.
    // With --stamp send (the default) each message is stamped inside its task just before
    // layer.send() starts: the latency is the layer's, and the hop from the pacer onto the
    // cooperative pool shows up as send lag instead. With --stamp spawn it is stamped on the pacer
    // thread before the task is created, so that hop counts as latency.
    let stampAtSpawn = bench.options.stampAtSpawn
    let preferred = bench.preferredExecutor
    let sendsDone = Countdown(total)
    let sendError = FirstError()
    let maxLag = MaxTracker()
    let lastSendStart = MaxTracker()
    let start = await withCheckedContinuation { (continuation: CheckedContinuation<UInt64, Never>) in
        startThread {
            minimizeTimerSlack()
            let start = nowNs()
            continuation.resume(returning: start)
            for index in 0..<total {
                let deadline = start + UInt64(Double(index) * 1e9 / rate)
                if nowNs() < deadline { sleepUntil(deadline) }
                let spawned = nowNs()
                startTask(preferring: preferred) {
                    let stamp = stampAtSpawn ? spawned : nowNs()
                    maxLag.record(stamp >= deadline ? stamp - deadline : 0)
                    lastSendStart.record(stamp)
                    do {
                        try await layer.send(Payload.message(stamp), to: channel)
                    } catch {
                        sendError.record(error)
                    }
                    sendsDone.arrive()
                }
                progress.sent.store(index + 1, ordering: .relaxed)
            }
        }
    }
    progress.enter("latency: waiting for the sends to complete")
    await sendsDone.done.wait()
    if let error = sendError.first { throw BenchError("a send failed: \(error)") }
    progress.enter("latency: waiting for stragglers")
    _ = await allReceived.wait(seconds: 2)
    receiver.cancel()
    let result = await receiver.value
    if result.foreign > 0 { throw BenchError("received \(result.foreign) messages that are not the benchmark's") }

    let samples = result.samples.sorted()
    let sendSeconds = Double(lastSendStart.value &- start) / 1e9
    let receiveSeconds = Double(result.last &- start) / 1e9
    json.add("rate", rate, digits: 3)
    json.add("seconds", bench.options.seconds, digits: 3)
    json.add("sent", total)
    json.add("received", samples.count)
    json.add("achieved_rate", sendSeconds > 0 ? Double(total - 1) / sendSeconds : 0, digits: 1)
    json.add("recv_rate", !samples.isEmpty && receiveSeconds > 0 ? Double(samples.count) / receiveSeconds : 0, digits: 1)
    json.add("p50_us", percentileUs(samples, 50), digits: 1)
    json.add("p99_us", percentileUs(samples, 99), digits: 1)
    json.add("p999_us", percentileUs(samples, 99.9), digits: 1)
    json.add("max_us", percentileUs(samples, 100), digits: 1)
    json.add("max_send_lag_us", Double(maxLag.value) / 1000, digits: 1)
    json.add("stamp", stampAtSpawn ? "spawn" : "send")
}

// MARK: - fanout

/// Generic over the layer: the Redis layer's rows, and the in-memory layer's (its channel buffers and groups without
/// Redis or the loop thread).
func fanout(
    _ layer: some ChannelLayer,
    options: Options,
    progress: Progress,
    preferring executor: (any TaskExecutor)?,
    into json: inout JSONLine
) async throws {
    let count = options.count
    let memberCount = options.members
    let senders = options.senders
    let group = "benchgroup\(getpid())"

    progress.enter("fanout: creating \(memberCount) members")
    let sequences = try await withThrowingTaskGroup(of: ChannelMessageSequence.self) { tasks in
        var all: [ChannelMessageSequence] = []
        all.reserveCapacity(memberCount)
        var started = 0
        func addMember() {
            tasks.addTask {
                let channel = try await layer.newChannel()
                try await layer.groupAdd(group, channel: channel)
                return try await layer.messages(from: channel)
            }
            started += 1
        }
        while started < min(options.batch, memberCount) { addMember() }
        while let sequence = try await tasks.next() {
            all.append(sequence)
            progress.subscribed.store(all.count, ordering: .relaxed)
            if started < memberCount { addMember() }
        }
        return all
    }

    // One consumer task per member; each takes the warm-up message, then `count` messages.
    let consumers = Consumers(sequences.map { ($0, count) }, warmUp: true, preferring: executor, progress: progress)
    progress.enter("fanout: warm-up")
    let message = Payload.message()
    try await layer.groupSend(message, to: group)
    try await consumers.warmedUp()

    progress.enter("fanout")
    let cpuStart = processCPUNs()
    let start = nowNs()
    try await sendSplit(count, senders: senders, progress: progress) { _ in try await layer.groupSend(message, to: group) }
    try await consumers.finish()
    let cpu = processCPUNs() - cpuStart
    let seconds = max(Double(consumers.finished.finishedAt - start) / 1e9, 1e-9)
    addFanoutFields(
        members: memberCount,
        count: count,
        senders: senders,
        deliveries: consumers.delivered.value,
        seconds: seconds,
        cpuNs: cpu,
        into: &json
    )
}

/// The figures of a fan-out line (fanout, and fanout-floor that bounds it): `count` group sends to `members`, CPU
/// per group send.
func addFanoutFields(members: Int, count: Int, senders: Int, deliveries: Int, seconds: Double, cpuNs: UInt64, into json: inout JSONLine) {
    json.add("members", members)
    json.add("count", count)
    json.add("senders", senders)
    json.add("deliveries", deliveries)
    json.add("seconds", seconds, digits: 4)
    json.add("msgs_per_sec", Double(count) / seconds, digits: 1)
    json.add("deliveries_per_sec", Double(deliveries) / seconds, digits: 1)
    json.add("cpu_us_per_msg", Double(cpuNs) / 1e3 / Double(max(count, 1)), digits: 3)
}

// MARK: - memory

func memory(_ bench: Bench, into json: inout JSONLine) async throws {
    let layer = bench.layer
    let options = bench.options
    let channels = options.channels
    // Connections, buffers and the loop exist before the first measurement.
    let channel = try await layer.newChannel()
    var iterator = try await layer.messages(from: channel).makeAsyncIterator()
    try await warmUp(bench, channel: channel, iterator: &iterator)

    bench.progress.enter("memory: creating \(channels) idle channels")
    let before = try residentBytes()
    let start = nowNs()
    try await createChannels(bench, count: channels)  // names dropped: only the layer's memory counts
    let subscribeSeconds = Double(nowNs() - start) / 1e9
    let after = try residentBytes()
    json.add("channels", channels)
    json.add("rss_before_bytes", before)
    json.add("rss_after_bytes", after)
    json.add("bytes_per_channel", Double(after - before) / Double(channels), digits: 1)
    json.add("subscribe_seconds", subscribeSeconds, digits: 4)

    if options.idleSeconds > 0 {
        // What an idle layer costs: its loop thread, timers and liveness probes, nothing sent.
        bench.progress.enter("memory: idle for \(options.idleSeconds) s")
        let cpuStart = processCPUNs()
        let idleStart = nowNs()
        try await Task.sleep(for: .milliseconds(Int(options.idleSeconds * 1000)))
        let wall = Double(nowNs() - idleStart)
        json.add("idle_seconds", wall / 1e9, digits: 3)
        json.add("idle_cpu_percent", Double(processCPUNs() - cpuStart) / wall * 100, digits: 4)
    }

    guard options.resubscribe else { return }
    // Kill the subscriber connection (not the server, which the runner owns) and time until the
    // layer reports it reconnected with every channel resubscribed; then prove one still receives.
    bench.progress.enter("memory: resubscribing after CLIENT KILL TYPE pubsub")
    var events = layer.connectionEvents().makeAsyncIterator()
    let killStart = nowNs()
    let reply = try redisCommand(host: options.host, port: options.port, "CLIENT KILL TYPE pubsub\r\n")
    // From here the server has dropped the old connection's subscriptions (the reply comes after):
    // what follows is the layer's reconnect and resubscribe, and the server's SUBSCRIBEs.
    let killedAt = nowNs()
    let cpuStart = processCPUNs()
    while let event = await events.next() {
        if case .reconnected = event { break }
    }
    let cpu = processCPUNs() - cpuStart
    let end = nowNs()
    let resubscribeSeconds = Double(end - killStart) / 1e9
    try await warmUp(bench, channel: channel, iterator: &iterator)
    json.add("resubscribe_seconds", resubscribeSeconds, digits: 4)
    json.add("kill_seconds", Double(killedAt - killStart) / 1e9, digits: 4)
    json.add("resubscribe_cpu_seconds", Double(cpu) / 1e9, digits: 4)
    json.add("killed_connections", Int(reply.dropFirst().prefix { $0 != "\r" }) ?? -1)
}

/// One inline command over a plain TCP connection (IPv4 literal hosts only); returns the first
/// reply line.
func redisCommand(host: String, port: Int, _ command: String) throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw BenchError("socket() failed: errno \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
        throw BenchError("--resubscribe needs an IPv4 address as --host, not \(host)")
    }
    let connected = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { throw BenchError("cannot connect to \(host):\(port): errno \(errno)") }
    var text = command
    let written = text.withUTF8 { write(fd, $0.baseAddress, $0.count) }
    guard written == command.utf8.count else { throw BenchError("short write to \(host):\(port)") }
    var reply: [UInt8] = []
    var byte: UInt8 = 0
    while read(fd, &byte, 1) == 1 {
        if byte == UInt8(ascii: "\n") { break }
        reply.append(byte)
    }
    let line = String(decoding: reply, as: UTF8.self)
    guard !line.hasPrefix("-") else { throw BenchError("\(command.dropLast(2)): \(line)") }
    return line
}

// MARK: - consumers

/// One consumer task per member sequence: each takes a warm-up message (with `warmUp`), then its `share` of the
/// messages. Used by fan-out and the spread workloads. `warmed` and `finished` count the members down, `delivered`
/// sums what they received, `error` keeps the first failure.
struct Consumers: Sendable {
    let warmed: Countdown
    let finished: Countdown
    let delivered = Counter()
    let error = FirstError()

    init(
        _ members: [(sequence: ChannelMessageSequence, share: Int)],
        warmUp: Bool,
        preferring executor: (any TaskExecutor)?,
        progress: Progress
    ) {
        let warmed = Countdown(warmUp ? members.count : 0)
        let finished = Countdown(members.count)
        self.warmed = warmed
        self.finished = finished
        let delivered = self.delivered
        let firstError = self.error
        for member in members {
            let (sequence, share) = member
            startTask(preferring: executor) {
                var iterator = sequence.makeAsyncIterator()
                var received = 0
                var warmedUp = !warmUp
                do {
                    if warmUp {
                        guard try await iterator.next() != nil else { throw BenchError("a member's channel ended during the warm-up") }
                        warmedUp = true
                        warmed.arrive()
                    }
                    while received < share {
                        guard try await iterator.next() != nil else { throw BenchError("a channel ended after \(received) of \(share) messages") }
                        received += 1
                    }
                } catch {
                    firstError.record(error)
                    if !warmedUp { warmed.arrive() }
                }
                delivered.add(received)
                progress.received.add(received, ordering: .relaxed)
                finished.arrive()
            }
        }
    }

    /// Waits until every member took its warm-up message; throws the first consumer's error.
    func warmedUp() async throws {
        await warmed.done.wait()
        if let error = error.first { throw BenchError(error) }
    }

    /// Waits until every member took its share; throws the first consumer's error.
    func finish() async throws {
        await finished.done.wait()
        if let error = error.first { throw BenchError(error) }
    }
}

/// Sends messages 0..<`count` split between `senders` tasks, each its own contiguous range, in order; `send(index)`
/// sends one. Returns when every task has sent its share.
func sendSplit(_ count: Int, senders: Int, progress: Progress, _ send: @escaping @Sendable (Int) async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        var first = 0
        for share in split(count, into: senders) {
            let from = first
            first += share
            tasks.addTask {
                for index in from..<(from + share) { try await send(index) }
                progress.sent.add(share, ordering: .relaxed)
            }
        }
        try await tasks.waitForAll()
    }
}
