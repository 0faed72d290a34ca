/// Who waits for PUBLISHes: one `send` (count 1) or one `send(contentsOf:)`. Resumed once Redis
/// confirmed them all, or at the first failure; later replies are ignored. Loop-confined.
final class PublishWaiter {
    private var remaining: Int
    /// The receiver counts of the replies so far, summed.
    private var receivers = 0
    /// Not an optional cleared on resume: an `Optional` of the generic `LoopContinuation` is copied
    /// and tested through unspecialised value witnesses (generic metadata lookups), on the loop
    /// thread for every reply run.
    private let continuation: RedisShard.PublishContinuation
    /// Not yet resumed.
    private(set) var isPending = true

    init(count: Int, continuation: RedisShard.PublishContinuation) {
        self.remaining = count
        self.continuation = continuation
    }

    /// `count` more PUBLISHes were confirmed, reaching `receivers` subscriber connections in all.
    func succeeded(count: Int, receivers: Int) {
        remaining -= count
        self.receivers += receivers
        if remaining == 0, isPending {
            isPending = false
            continuation.resume(returning: self.receivers)
        }
    }

    func fail(_ error: ChannelLayerError) {
        guard isPending else { return }
        isPending = false
        continuation.resume(throwing: error)
    }
}
