import Foundation

/// The fixtures' lock: `Synchronization.Mutex`'s `withLock` shape on an `NSLock`.
///
/// On Linux `Synchronization.Mutex` is built on raw futex system calls that ThreadSanitizer cannot
/// see, so `swift test --sanitize=thread` would report every fixture handoff as a race. `NSLock`
/// is a pthread mutex, which the sanitizer understands. A test file gets it with `import ChannelsRedisTestSupport`; in a
/// file that imports Synchronization too (for `Atomic`), `Mutex` still names this one.
package final class Mutex<Value>: @unchecked Sendable {
    // @unchecked Sendable: `value` is only touched while `lock` is held.
    private let lock = NSLock()
    private var value: Value

    package init(_ value: Value) { self.value = value }

    package func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
