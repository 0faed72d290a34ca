import Synchronization

/// Counters of one layer, written on the loop thread and read anywhere.
final class LayerStatistics: Sendable {
    let published = Atomic<Int>(0)
    let received = Atomic<Int>(0)
    let delivered = Atomic<Int>(0)
    let dropped = Atomic<Int>(0)
    let undecodable = Atomic<Int>(0)
    let unroutable = Atomic<Int>(0)
    let reconnects = Atomic<Int>(0)
    let livenessFailures = Atomic<Int>(0)

    init() {}
}

extension Atomic where Value == Int {
    @inline(__always)
    func add(_ amount: Int) {
        _ = wrappingAdd(amount, ordering: .relaxed)
    }
}
