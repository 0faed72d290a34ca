import Foundation

/// Shadows `Synchronization.Mutex` for the whole test module, with the same `withLock` shape.
///
/// On Linux `Synchronization.Mutex` is built on raw futex system calls that ThreadSanitizer cannot
/// see, so `swift test --sanitize=thread` would report every fixture handoff as a race. `NSLock`
/// is a pthread mutex, which the sanitizer understands.
final class Mutex<Value>: @unchecked Sendable {
    // @unchecked Sendable: `value` is only touched while `lock` is held.
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
