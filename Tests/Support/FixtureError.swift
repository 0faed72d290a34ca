#if canImport(Glibc)
    import Glibc
#endif

/// An error from the test fixtures, with a message that says what went wrong and, where it can, what to do.
///
/// Tests that expect a failure match on ``kind``:
/// ```swift
/// let error = try await #require(throws: FixtureError.self) {
///     try await RESPClient.command(["PING"], port: proxy.port, timeout: .milliseconds(300))
/// }
/// #expect(error.kind == .timedOut)
/// ```
package struct FixtureError: Error, CustomStringConvertible {
    package enum Kind: Sendable, Equatable {
        /// Nothing answered before the deadline.
        case timedOut
        /// The peer refused the TCP connection (nothing listens on the port).
        case connectionRefused
        /// The peer closed the connection before the whole reply arrived.
        case connectionClosed
        /// The peer sent bytes that are not RESP2.
        case protocolViolation
        /// `AUTH` was refused.
        case authenticationFailed
        /// A program the tests need (redis-server, the venv's python3, a script) is missing.
        case notFound
        /// The port was taken by another process before the server could bind it.
        case addressInUse
        /// A process could not be started or died before it was ready.
        case startFailed
        /// A process the tests ran to its end exited with a failure status.
        case failed
        /// A system call failed.
        case systemCall
    }

    package var kind: Kind
    package var message: String
    /// The `errno` of the failed system call, when there was one.
    package var errorNumber: Int32?

    package init(_ kind: Kind, _ message: String, errorNumber: Int32? = nil) {
        self.kind = kind
        self.message = message
        self.errorNumber = errorNumber
    }

    /// An error for a failed system call, naming it and `errno`.
    package static func systemCall(_ call: String, errorNumber: Int32 = errno) -> FixtureError {
        FixtureError(.systemCall, "\(call) failed: \(String(cString: strerror(errorNumber))) (errno \(errorNumber))", errorNumber: errorNumber)
    }

    package var description: String { message }
}
