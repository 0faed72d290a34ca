import Foundation
import Testing

/// How much longer the tests' waits may take than their written timeouts: `CHANNELS_REDIS_TEST_TIME_SCALE`
/// (a whole number, default 1). `.ci/test` sets 3 for the sanitizer runs, where ThreadSanitizer slows the whole suite,
/// its redis-servers and chat processes included, several times on 2 cores. Only the deadlines grow: a condition that
/// holds early still returns at once.
enum TestTime {
    static let scale: Int = {
        let text = ProcessInfo.processInfo.environment["CHANNELS_REDIS_TEST_TIME_SCALE"] ?? ""
        return max(1, Int(text) ?? 1)
    }()
}

/// Polls `condition` until it returns true; if it has not within `timeout`, fails the test at the caller's line and throws.
///
/// Use it instead of a sleep whenever a test waits for something to happen elsewhere: a resubscription, a reconnect, a
/// message. A check that throws counts as "not yet", and its last error is part of the failure's message.
///
/// ```swift
/// try await eventually("the layer resubscribed") {
///     try await server.command(["PUBSUB", "NUMSUB", channel]).array?.last?.integer == 1
/// }
/// ```
///
/// - Parameters:
///   - timeout: how long to keep trying.
///   - interval: the pause between two checks.
///   - comment: what is awaited, for the failure's message.
/// - Throws: an `ExpectationFailedError` after recording the failure (so it is reported once), or `CancellationError`.
func eventually(
    timeout: Duration = .seconds(10),
    pollingEvery interval: Duration = .milliseconds(15),
    _ comment: Comment? = nil,
    isolation: isolated (any Actor)? = #isolation,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    _ = try await eventuallyValue(timeout: timeout, pollingEvery: interval, comment, sourceLocation: sourceLocation) {
        try await condition() ? true : nil
    }
}

/// Polls `produce` until it returns a value and returns that value; if none comes within `timeout`, fails the test at the
/// caller's line and throws.
///
/// ```swift
/// let message = try await eventuallyValue { try await peer.poll() }
/// ```
///
/// See ``eventually(timeout:pollingEvery:_:isolation:sourceLocation:_:)``.
func eventuallyValue<Value>(
    timeout: Duration = .seconds(10),
    pollingEvery interval: Duration = .milliseconds(15),
    _ comment: Comment? = nil,
    isolation: isolated (any Actor)? = #isolation,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ produce: () async throws -> Value?
) async throws -> Value {
    let clock = ContinuousClock()
    let timeout = timeout * TestTime.scale
    let deadline = clock.now + timeout
    var checks = 0
    var lastError: (any Error)?
    while true {
        checks += 1
        do {
            if let value = try await produce() {
                return value
            }
            lastError = nil
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            lastError = error
        }
        if clock.now >= deadline {
            break
        }
        try await Task.sleep(for: interval)
    }
    var message = "Condition did not hold within \(timeout) (\(checks) checks)"
    if let comment {
        message += ": \(comment.rawValue)"
    }
    if let lastError {
        message += "; the last check threw: \(lastError)"
    }
    let conditionHeld = false
    try #require(conditionHeld, Comment(rawValue: message), sourceLocation: sourceLocation)
    preconditionFailure("#require(false) returned")
}
