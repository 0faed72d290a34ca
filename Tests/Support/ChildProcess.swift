import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A child process of the test process (redis-server, a Python peer), signalled and reaped by its pid.
///
/// Two things make these children safe for tests that run in parallel in one process:
/// - A child inherits no descriptor but the three it is given: hiredis 0.14 opens its sockets without `SOCK_CLOEXEC`, and a
///   redis-server that inherited a client's socket would keep that connection open after the client closed it, which would
///   make every disconnect test lie.
/// - Every child is started through `setpriv --pdeathsig KILL` (util-linux, always on Debian), so a test process that
///   crashes or is killed takes its servers and peers with it instead of leaving them running. Linux sends that signal
///   when the *thread* that spawned the child exits, not the process, so all spawns run on one thread that lives as long
///   as the process (``SpawnThread``).
///
/// `Sendable`: `pid` never changes, and the exit status lives in a `Mutex`; the pid is signalled and reaped only while that
/// lock is held, so a signal can never reach a pid the kernel has recycled.
package final class ChildProcess: Sendable {
    /// How a child ended.
    package enum Termination: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)
        /// `waitpid` said there was no such child: someone else reaped it.
        case unknown

        /// The shell's convention: the exit code, or 128 + the signal number.
        package var shellStatus: Int32 {
            switch self {
            case .exited(let code): code
            case .signaled(let signal): 128 + signal
            case .unknown: -1
            }
        }

        package var description: String {
            switch self {
            case .exited(let code): "exited with status \(code)"
            case .signaled(let signal): "killed by signal \(signal)"
            case .unknown: "reaped elsewhere"
            }
        }
    }

    /// Where one of the child's standard descriptors goes.
    package enum Redirection: Sendable {
        /// `/dev/null`.
        case null
        /// A file opened for appending (created if missing).
        case appendingTo(String)
        /// A descriptor of ours, duplicated into the child; the caller closes its copy afterwards.
        case descriptor(Int32)
    }

    package let pid: Int32
    package let executable: String
    private let termination = Mutex<Termination?>(nil)

    private init(pid: Int32, executable: String) {
        self.pid = pid
        self.executable = executable
    }

    deinit {
        if reapIfExited() == nil {
            kill()
        }
    }

    /// Starts `executable` with `arguments`.
    ///
    /// - Parameters:
    ///   - environment: the child's whole environment; `nil` passes ours on.
    /// - Throws: ``FixtureError`` `.startFailed` when `posix_spawn` fails.
    package static func spawn(
        executable: String,
        arguments: [String],
        environment: [String: String]? = nil,
        standardInput: Redirection = .null,
        standardOutput: Redirection = .null,
        standardError: Redirection = .null
    ) throws -> ChildProcess {
        var argv = [executable] + arguments
        var path = executable
        if let setpriv = setprivPath {
            argv = [setpriv, "--pdeathsig", "KILL", "--"] + argv
            path = setpriv
        }
        let environmentStrings = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let redirections = [(Int32(0), standardInput), (Int32(1), standardOutput), (Int32(2), standardError)]
        let pid = try SpawnThread.shared.perform { [path, argv] in
            try posixSpawn(path: path, argv: argv, environment: environmentStrings, redirections: redirections)
        }
        return ChildProcess(pid: pid, executable: executable)
    }

    /// The first executable file named `name` in `$PATH` or `extraDirectories`.
    package static func locate(_ name: String, extraDirectories: [String] = []) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + extraDirectories
        for directory in directories where !directory.isEmpty {
            let candidate = directory + "/" + name
            if access(candidate, X_OK) == 0 {
                return candidate
            }
        }
        return nil
    }

    /// Sends `signal` unless the child has been reaped.
    package func send(_ signal: Int32) {
        termination.withLock { termination in
            if termination == nil {
                _ = Glibc.kill(pid, signal)
            }
        }
    }

    /// How the child ended, reaping it if it has just exited; `nil` while it runs. Never blocks.
    @discardableResult
    package func reapIfExited() -> Termination? {
        termination.withLock { termination in
            if let termination {
                return termination
            }
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                termination = Self.decode(status)
            } else if result < 0 && errno == ECHILD {
                termination = .unknown
            }
            return termination
        }
    }

    package var isRunning: Bool { reapIfExited() == nil }

    /// SIGKILL, then reaps the child; returns how it ended. Blocks only the few milliseconds the kernel takes.
    @discardableResult
    package func kill() -> Termination {
        send(SIGKILL)
        return waitBlocking(for: .seconds(30)) ?? .unknown
    }

    /// SIGTERM (and SIGCONT, in case it is stopped), then SIGKILL if it has not exited after `gracePeriod`; reaps it.
    @discardableResult
    package func terminate(gracePeriod: Duration = .seconds(3)) -> Termination {
        send(SIGTERM)
        send(SIGCONT)
        if let termination = waitBlocking(for: gracePeriod) {
            return termination
        }
        return kill()
    }

    /// Waits for the child to exit, polling; `nil` if it still runs after `timeout`.
    ///
    /// - Throws: `CancellationError` when the task is cancelled.
    package func waitForExit(timeout: Duration) async throws -> Termination? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let termination = reapIfExited() {
                return termination
            }
            if ContinuousClock.now >= deadline {
                return nil
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Two connected, close-on-exec Unix stream sockets, `[ours, the child's]`, for one of a child's standard streams.
    ///
    /// Socket pairs rather than pipes: close-on-exec from the start (Swift's Glibc module has no `pipe2`), and the child's
    /// stdin can be written with `MSG_NOSIGNAL` (``ChildInput``), so a child that died fails the write instead of raising
    /// SIGPIPE in the test process.
    package static func socketPair() throws -> [Int32] {
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw FixtureError.systemCall("socketpair")
        }
        return pair
    }

    /// Closes each of `descriptors`.
    package static func closeAll(_ descriptors: [Int32]) {
        for fd in descriptors {
            close(fd)
        }
    }

    private func waitBlocking(for timeout: Duration) -> Termination? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let termination = reapIfExited() {
                return termination
            }
            if ContinuousClock.now >= deadline {
                return nil
            }
            usleep(1000)
        }
    }

    private static func decode(_ status: Int32) -> Termination {
        let signal = status & 0x7F
        return signal == 0 ? .exited((status >> 8) & 0xFF) : .signaled(signal)
    }

    private static let setprivPath: String? = locate("setpriv", extraDirectories: ["/usr/bin", "/bin"])

    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34+): Swift's Glibc module does not see it, because it is
    /// declared only under `_GNU_SOURCE`, so it is looked up at run time.
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

    private static func addCloseFrom(_ actions: inout posix_spawn_file_actions_t, _ lowest: Int32) {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else {
            // Older glibc: children inherit only descriptors opened without close-on-exec.
            return
        }
        let function = unsafeBitCast(symbol, to: AddCloseFrom.self)
        _ = function(&actions, lowest)
    }

    private static func posixSpawn(
        path: String,
        argv: [String],
        environment: [String],
        redirections: [(Int32, Redirection)]
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (target, redirection) in redirections {
            switch redirection {
            case .null:
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            case .appendingTo(let file):
                posix_spawn_file_actions_addopen(&actions, target, file, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            case .descriptor(let fd):
                posix_spawn_file_actions_adddup2(&actions, fd, target)
            }
        }
        addCloseFrom(&actions, 3)

        // The spawning thread's signal mask and ignored signals would otherwise carry over into the child.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        let cEnvironment: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in cArguments + cEnvironment {
                free(pointer)
            }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, path, &actions, &attributes, cArguments, cEnvironment)
        guard result == 0 else {
            throw FixtureError(.startFailed, "could not start \(argv.joined(separator: " ")): \(String(cString: strerror(result)))")
        }
        return pid
    }
}

/// The one thread every child process is spawned from; it never exits (see ``ChildProcess``).
///
/// `Sendable`: the job queue is in a `Mutex`, the semaphore is thread-safe, and jobs run only on the thread.
private final class SpawnThread: Sendable {
    static let shared = SpawnThread()

    private let jobs = Mutex<[@Sendable () -> Void]>([])
    private let jobAvailable = DispatchSemaphore(value: 0)

    private init() {
        let thread = Thread { [self] in
            while true {
                jobAvailable.wait()
                let job = jobs.withLock { $0.removeFirst() }
                job()
            }
        }
        thread.name = "fixture-spawner"
        thread.start()
    }

    /// Runs `body` on the spawn thread and returns its result; blocks the caller for as long as `body` runs.
    func perform<Value: Sendable>(_ body: @escaping @Sendable () throws -> Value) throws -> Value {
        let outcome = Outcome<Value>()
        let done = DispatchSemaphore(value: 0)
        jobs.withLock {
            $0.append {
                outcome.result.withLock { $0 = Result(catching: body) }
                done.signal()
            }
        }
        jobAvailable.signal()
        done.wait()
        return try outcome.result.withLock { $0! }.get()
    }

    private final class Outcome<Value: Sendable>: Sendable {
        let result = Mutex<Result<Value, any Error>?>(nil)
    }
}
