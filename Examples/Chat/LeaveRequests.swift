import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Why the chat leaves the room.
enum LeaveReason: Sendable {
    /// End of input: a closed pipe, or Ctrl-D on a terminal.
    case endOfInput
    /// The user typed `/quit`.
    case quitCommand
    /// SIGINT (Ctrl-C), SIGTERM or SIGHUP.
    case signal(Int32)
}

/// The requests to leave, from the input loop and from signals, as one stream.
///
/// Signals are caught with Dispatch signal sources, not a C handler: the signal is ignored at the
/// process level (so its default action, ending the process, never runs) and the source delivers it
/// as an ordinary event, on which the chat leaves the room cleanly: a leave notice to the room, the
/// layer closed, exit status 0. A second signal while the chat is leaving (say Redis is down and the
/// leave notice waits to be sent) ends the process at once, with status 128 + the signal.
final class LeaveRequests: Sendable {
    let requests: AsyncStream<LeaveReason>
    private let continuation: AsyncStream<LeaveReason>.Continuation
    private let sources = Mutex<[any DispatchSourceSignal]>([])
    private let signalled = Atomic<Int>(0)

    init() {
        (requests, continuation) = AsyncStream.makeStream()
    }

    /// Asks the chat to leave.
    func request(_ reason: LeaveReason) {
        continuation.yield(reason)
    }

    /// Turns SIGINT, SIGTERM and SIGHUP into leave requests from now on.
    func catchSignals() {
        // The sources are made inside the lock, so that they never leave it (they are not Sendable).
        sources.withLock { sources in
            for number in [SIGINT, SIGTERM, SIGHUP] {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { [self] in
                    if signalled.add(1, ordering: .relaxed).newValue > 1 {
                        _exit(128 + number)  // the second one: the user does not want to wait
                    }
                    request(.signal(number))
                }
                source.resume()
                sources.append(source)
            }
        }
    }
}
