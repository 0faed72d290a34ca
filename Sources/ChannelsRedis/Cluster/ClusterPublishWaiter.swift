/// Cluster mode's ``PublishWaiter``: it keeps its payloads, so that the SPUBLISHes Redis redirected (`-MOVED`, `-ASK`)
/// can be sent again, exactly those, while the others count as confirmed. Resumed with success only once every
/// payload was confirmed by some node; the redirected ones go to `retry` once every run of this waiter was answered.
/// Loop-confined.
final class ClusterPublishWaiter: PublishWaiter {
    /// Sends `payloads` (the redirected ones, in their order) again following `redirect`; `receivers` is what the
    /// confirmed ones reached. It owns the continuation then.
    typealias Retry = (
        _ redirect: ClusterRedirect, _ payloads: PubSubEngine.ClusterPayloads, _ receivers: Int, _ continuation: RedisShard.PublishContinuation
    ) -> Void

    let payloads: PubSubEngine.ClusterPayloads
    /// Each SPUBLISH is sent after ASKING: this waiter follows an `-ASK`.
    let asking: Bool
    private let retry: Retry
    /// How many payloads the runs answered so far covered: a run's positions start there. (The runs of one waiter
    /// are sent in payload order, one run of all or one run per payload, and answered in order.)
    private var answered = 0
    /// Indices into `payloads` that were redirected, ascending.
    private var redirected: [Int] = []
    private var lastRedirect: ClusterRedirect?

    init(payloads: PubSubEngine.ClusterPayloads, asking: Bool, receivers: Int, continuation: RedisShard.PublishContinuation, retry: @escaping Retry) {
        self.payloads = payloads
        self.asking = asking
        self.retry = retry
        super.init(count: payloads.count, continuation: continuation, receivers: receivers)
    }

    /// A run of `count` SPUBLISHes was answered: those at `redirectedPositions` (0-based in the run) were redirected
    /// with `redirect`, the others confirmed, reaching `receivers` subscriber connections.
    func answered(count: Int, receivers: Int, redirectedPositions: [Int], redirect: ClusterRedirect?) {
        guard isPending else { return }
        let start = answered
        answered += count
        remaining -= count
        self.receivers += receivers
        if let redirect, !redirectedPositions.isEmpty {
            redirected.append(contentsOf: redirectedPositions.map { start + $0 })
            lastRedirect = redirect
        }
        guard remaining == 0 else { return }
        isPending = false
        guard let lastRedirect else { return continuation.resume(returning: self.receivers) }
        retry(lastRedirect, payloads.subset(redirected), self.receivers, continuation)
    }
}

extension PubSubEngine.ClusterPayloads {
    var count: Int {
        switch self {
        case .one: 1
        case .batch(let batch): batch.count
        }
    }

    /// The payloads at `indices` (ascending, valid), in order.
    func subset(_ indices: [Int]) -> Self {
        switch self {
        case .one: return self
        case .batch(let batch):
            if indices.count == batch.count { return self }
            var subset = PayloadBatch(capacity: indices.count)
            for index in indices { subset.append { $0.append(contentsOf: batch[index]) } }
            return .batch(subset)
        }
    }
}
