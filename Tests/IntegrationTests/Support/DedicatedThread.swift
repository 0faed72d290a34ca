import Foundation

/// Runs `body` on a new thread of its own and resumes the caller with its result.
///
/// Blocking system calls (`poll` with a timeout, `recv` on a paused server, `waitpid`) must not sit on Swift's cooperative
/// thread pool: it has one thread per core (two on CI), and tests running in parallel that block those threads starve every
/// other task in the process, the library's own included, which turns a slow test into a hang. A fresh thread costs tens of
/// microseconds, nothing next to a test's I/O.
///
/// Cancelling the caller does not interrupt `body`: give it its own deadline.
///
/// ```swift
/// let reply = try await onDedicatedThread { try RESPClient.commandBlocking(["PING"], port: port, timeout: .seconds(1)) }
/// ```
func onDedicatedThread<Value: Sendable, Failure: Error>(
    name: String = "fixture-blocking",
    _ body: @escaping @Sendable () throws(Failure) -> Value
) async throws(Failure) -> Value {
    let result: Result<Value, Failure> = await withCheckedContinuation { continuation in
        let thread = Thread {
            continuation.resume(returning: Result { () throws(Failure) -> Value in try body() })
        }
        thread.name = name
        thread.start()
    }
    return try result.get()
}
