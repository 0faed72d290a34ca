import ChannelsRedis
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// The load spread over many channels (--spread K): what a Redis Cluster can share out between its primaries, run the
// same way against one server for the comparison (.ci/bench/run's cluster rows).

// MARK: - throughput over K channels

/// `count` messages round-robin to `spread` channels, `senders` tasks, one consumer per channel; clock from the
/// first send to the last receive.
func spreadThroughput(_ bench: Bench, into json: inout JSONLine) async throws {
    let layer = bench.layer
    let progress = bench.progress
    let count = bench.options.count
    let senders = bench.options.senders
    let spread = bench.options.spread
    progress.enter("spread: creating \(spread) channels")
    let channels = try await createChannels(bench, count: spread, keepNames: true)
    var sequences: [ChannelMessageSequence] = []
    for channel in channels {
        let messages = try await layer.messages(from: channel)
        var iterator = messages.makeAsyncIterator()
        try await warmUp(bench, channel: channel, iterator: &iterator)
        sequences.append(messages)
    }
    // Channel i gets messages i, i + spread, …: its share of `count`.
    let shares = (0..<spread).map { index in count / spread + (index < count % spread ? 1 : 0) }
    let consumers = Consumers(Array(zip(sequences, shares)), warmUp: false, preferring: nil, progress: progress)

    progress.enter("spread throughput")
    let message = Payload.message()
    let cpuStart = processCPUNs()
    let start = nowNs()
    try await sendSplit(count, senders: senders, progress: progress) { index in
        try await layer.send(message, to: channels[index % spread])
    }
    try await consumers.finish()
    let cpu = processCPUNs() - cpuStart
    let seconds = max(Double(consumers.finished.finishedAt - start) / 1e9, 1e-9)
    json.add("count", count)
    json.add("senders", senders)
    json.add("send_batch", 1)
    json.add("received", consumers.delivered.value)
    json.add("seconds", seconds, digits: 4)
    json.add("msgs_per_sec", Double(count) / seconds, digits: 1)
    json.add("cpu_us_per_msg", Double(cpu) / 1e3 / Double(count), digits: 3)
}

// MARK: - fan-out to K groups

/// `spread` groups of `members` local channels each; `count` group sends round-robin over the groups; clock until
/// every delivery arrived.
func spreadFanout(_ bench: Bench, into json: inout JSONLine) async throws {
    let layer = bench.layer
    let progress = bench.progress
    let count = bench.options.count
    let memberCount = bench.options.members
    let senders = bench.options.senders
    let spread = bench.options.spread
    let groups = (0..<spread).map { "benchgroup\(getpid())_\($0)" }
    progress.enter("spread fanout: creating \(spread) groups of \(memberCount)")
    var members: [(group: Int, sequence: ChannelMessageSequence)] = []
    for (index, group) in groups.enumerated() {
        for _ in 0..<memberCount {
            let channel = try await layer.newChannel()
            try await layer.groupAdd(group, channel: channel)
            members.append((index, try await layer.messages(from: channel)))
        }
    }
    let shares = (0..<spread).map { index in count / spread + (index < count % spread ? 1 : 0) }
    let consumers = Consumers(members.map { ($0.sequence, shares[$0.group]) }, warmUp: true, preferring: nil, progress: progress)
    progress.enter("spread fanout: warm-up")
    let message = Payload.message()
    for group in groups { try await layer.groupSend(message, to: group) }
    try await consumers.warmedUp()

    progress.enter("spread fanout")
    let cpuStart = processCPUNs()
    let start = nowNs()
    try await sendSplit(count, senders: senders, progress: progress) { index in
        try await layer.groupSend(message, to: groups[index % spread])
    }
    try await consumers.finish()
    let cpu = processCPUNs() - cpuStart
    let seconds = max(Double(consumers.finished.finishedAt - start) / 1e9, 1e-9)
    json.add("members", memberCount)
    json.add("groups", spread)
    json.add("count", count)
    json.add("senders", senders)
    json.add("deliveries", consumers.delivered.value)
    json.add("seconds", seconds, digits: 4)
    json.add("msgs_per_sec", Double(count) / seconds, digits: 1)
    json.add("deliveries_per_sec", Double(consumers.delivered.value) / seconds, digits: 1)
    json.add("cpu_us_per_msg", Double(cpu) / 1e3 / Double(max(count, 1)), digits: 3)
}
