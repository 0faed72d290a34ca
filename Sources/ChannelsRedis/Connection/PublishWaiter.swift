/// Who waits for PUBLISHes: one `send` (count 1) or one `send(contentsOf:)`. Resumed once Redis
/// confirmed them all, or at the first failure; later replies are ignored. Loop-confined.
///
/// Not final only for ``ClusterPublishWaiter`` (cluster mode's redirects); every member here is `final`, so the
/// plain publish path dispatches statically and carries nothing of the cluster's.
class PublishWaiter {
    /// Publishes not answered yet.
    final var remaining: Int
    /// The receiver counts of the replies so far, summed.
    final var receivers: Int
    /// Not an optional cleared on resume: an `Optional` of the generic `LoopContinuation` is copied
    /// and tested through unspecialised value witnesses (generic metadata lookups), on the loop
    /// thread for every reply run.
    final let continuation: RedisShard.PublishContinuation
    /// Not yet resumed (set only here and by ``ClusterPublishWaiter``).
    final var isPending = true

    /// - Parameter receivers: receivers counted before this waiter (a redirected batch's confirmed part).
    init(count: Int, continuation: RedisShard.PublishContinuation, receivers: Int = 0) {
        self.remaining = count
        self.receivers = receivers
        self.continuation = continuation
    }

    /// `count` more PUBLISHes were confirmed, reaching `receivers` subscriber connections in all.
    final func succeeded(count: Int, receivers: Int) {
        remaining -= count
        self.receivers += receivers
        if remaining == 0, isPending {
            isPending = false
            continuation.resume(returning: self.receivers)
        }
    }

    final func fail(_ error: ChannelLayerError) {
        guard isPending else { return }
        isPending = false
        continuation.resume(throwing: error)
    }
}
