import Synchronization

/// The counters of cluster mode, part of a layer's ``LayerStatistics`` (all zero for a layer without a cluster).
final class ClusterStatistics: Sendable {
    /// Slot maps fetched (the first one included).
    let slotMapRefreshes = Atomic<Int>(0)
    /// Channels routed again to another primary after a redirect or a moved slot.
    let rehomedChannels = Atomic<Int>(0)
    /// `sunsubscribe` pushes the servers sent by themselves (a slot moved away).
    let unsubscribedByServer = Atomic<Int>(0)
    /// Publishes (a send, a batch, or the redirected part of one) sent again to another node after `-MOVED` or `-ASK`.
    let redirectedPublishes = Atomic<Int>(0)
    /// Runs of SPUBLISHes that Redis redirected only in part (the rest confirmed).
    let partiallyRedirectedRuns = Atomic<Int>(0)

    init() {}
}
