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

    /// Cluster mode: what to do instead of failing when Redis redirects the whole publish to another node
    /// (`-MOVED`, `-ASK`); it then owns the continuation. `nil` elsewhere.
    private var redirect: RedirectHandler?
    private let total: Int

    typealias RedirectHandler = (ClusterRedirect, RedisShard.PublishContinuation) -> Void

    init(count: Int, continuation: RedisShard.PublishContinuation, redirect: RedirectHandler? = nil) {
        self.remaining = count
        self.total = count
        self.continuation = continuation
        self.redirect = redirect
    }

    /// Hands the publish to its redirect handler when Redis refused all of it (`refused` of this waiter's PUBLISHes,
    /// in one run, none confirmed yet) with a redirect; returns whether it did. The waiter is then no longer pending.
    func followRedirect(_ redirect: ClusterRedirect, refused: Int) -> Bool {
        guard isPending, let handler = self.redirect, refused == total, remaining == total else { return false }
        isPending = false
        self.redirect = nil
        handler(redirect, continuation)
        return true
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
