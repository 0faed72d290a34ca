// Small building blocks of the benchmark: the monotonic clock, threads, one-shot events, the
// JSON line, /proc readers. No Foundation: the bench should measure the layer, not a runtime.

import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - Clock

/// CLOCK_MONOTONIC in nanoseconds: the clock the C baseline and the Python peer stamp with.
@inline(__always)
func nowNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// The CPU time (user + system, every thread) this process has used, in nanoseconds: what a
/// workload costs, beside how long it took ("cpu_us_per_msg" in the JSON line).
func processCPUNs() -> UInt64 {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func ns(_ time: timeval) -> UInt64 { UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_usec) &* 1_000 }
    return ns(usage.ru_utime) &+ ns(usage.ru_stime)
}

/// Sleeps until the absolute CLOCK_MONOTONIC time `deadline` (no drift, no relative rounding).
func sleepUntil(_ deadline: UInt64) {
    var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
}

/// Asks the kernel to wake the calling thread on time (default timer slack is 50 µs). Best effort.
func minimizeTimerSlack() {
    let fd = open("/proc/thread-self/timerslack_ns", O_WRONLY)
    guard fd >= 0 else { return }
    _ = write(fd, "1", 1)
    close(fd)
}

// MARK: - Threads

private final class ThreadBody: Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// Runs `body` on a new detached OS thread (the pacer and the watchdog must not depend on the
/// cooperative pool they watch or feed).
func startThread(_ body: @escaping @Sendable () -> Void) {
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(
        &thread,
        nil,
        { raw in
            let body = Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue()
            body.body()
            return nil
        },
        box
    )
    guard rc == 0 else {
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        fatalError("pthread_create failed: \(rc)")
    }
    pthread_detach(thread)
}

// MARK: - Synchronization helpers

/// A one-shot event: `fire()` once (later calls do nothing), any number of `wait()`ers.
final class Event: Sendable {
    private struct State {
        var fired = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    func fire() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.fired else { return [] }
            state.fired = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    var isFired: Bool { state.withLock { $0.fired } }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.fired { return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Waits until fired or `seconds` passed; returns whether it was fired.
    func wait(seconds: Double) async -> Bool {
        if isFired { return true }
        let either = Event()
        let watcher = Task { [self] in
            await self.wait()
            either.fire()
        }
        let timer = Task {
            try? await Task.sleep(for: .nanoseconds(Int64(max(0, seconds) * 1e9)))
            either.fire()
        }
        await either.wait()
        timer.cancel()
        _ = watcher  // stays parked until this event fires, if ever: harmless at the end of a run
        return isFired
    }
}

/// Counts down from `count`; the call that reaches zero records the time and fires `done`.
final class Countdown: Sendable {
    private let remaining: Atomic<Int>
    private let endNs = Atomic<UInt64>(0)
    let done = Event()

    init(_ count: Int) {
        remaining = Atomic(count)
        if count <= 0 { done.fire() }
    }

    func arrive() {
        if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
            endNs.store(nowNs(), ordering: .releasing)
            done.fire()
        }
    }

    var finishedAt: UInt64 { endNs.load(ordering: .acquiring) }
    var left: Int { remaining.load(ordering: .relaxed) }
}

/// What the run is doing, for the watchdog's error line.
final class Progress: Sendable {
    let phase = Mutex("starting")
    let sent = Atomic<Int>(0)
    let received = Atomic<Int>(0)
    let subscribed = Atomic<Int>(0)

    func enter(_ name: String) { phase.withLock { $0 = name } }

    var summary: String {
        let phase = self.phase.withLock { $0 }
        return
            "\(phase) (sent \(sent.load(ordering: .relaxed)), received \(received.load(ordering: .relaxed)), channels subscribed \(subscribed.load(ordering: .relaxed)))"
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Output: exactly one JSON line, whoever (result or watchdog) gets there first

/// A JSON object written field by field, in order.
struct JSONLine {
    private var text = "{"

    mutating func add(_ key: String, _ value: String) {
        separate(key)
        text += Self.quoted(value)
    }

    mutating func add(_ key: String, _ value: Bool) {
        separate(key)
        text += value ? "true" : "false"
    }

    mutating func add(_ key: String, _ value: Int) {
        separate(key)
        text += String(value)
    }

    /// A number rounded to `digits` decimals (non-finite values become 0: JSON has no NaN).
    mutating func add(_ key: String, _ value: Double, digits: Int) {
        separate(key)
        guard value.isFinite else {
            text += "0"
            return
        }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        text += "\((value * scale).rounded() / scale)"
    }

    /// Adds the fields of `other`, in order, after this line's.
    mutating func append(contentsOf other: JSONLine) {
        let fields = other.text.dropFirst()
        guard !fields.isEmpty else { return }
        if text.count > 1 { text += "," }
        text += fields
    }

    var string: String { text + "}" }

    private mutating func separate(_ key: String) {
        if text.count > 1 { text += "," }
        text += Self.quoted(key) + ":"
    }

    static func quoted(_ string: String) -> String {
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// Prints the one result line unless another one was printed already; returns whether it printed.
private let reported = Mutex<Int32?>(nil)

@discardableResult
func report(_ line: String, status: Int32) -> Bool {
    let first = reported.withLock { state -> Bool in
        guard state == nil else { return false }
        state = status
        return true
    }
    guard first else { return false }
    print(line)
    fflush(nil)  // every stream: `stdout` itself is a C global Swift 6 will not touch
    return true
}

/// The status of the line printed so far, if any.
var reportedStatus: Int32? { reported.withLock { $0 } }

func errorLine(workload: String, _ message: String) -> String {
    var json = JSONLine()
    json.add("impl", "swift")
    json.add("workload", workload)
    json.add("ok", false)
    json.add("error", message)
    return json.string
}

func log(_ text: String) {
    var line = "channels-redis-bench: " + text + "\n"
    line.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
}

// MARK: - Watchdog

/// Exits the process with an error line when `deadline` passes: no workload may hang the runner.
final class Watchdog: Sendable {
    private let deadlineNs: Atomic<UInt64>
    private let workload: String
    private let progress: Progress

    init(workload: String, seconds: Double, progress: Progress) {
        self.workload = workload
        self.progress = progress
        self.deadlineNs = Atomic(nowNs() &+ UInt64(max(0, seconds) * 1e9))
        startThread { [self] in self.run() }
    }

    /// Moves the deadline (e.g. a short one for the teardown once the result is out).
    func rearm(seconds: Double) {
        deadlineNs.store(nowNs() &+ UInt64(max(0, seconds) * 1e9), ordering: .relaxed)
    }

    private func run() {
        // Wakes at most 4 times a second: the idle measurement counts this process's CPU.
        while case let now = nowNs(), now < deadlineNs.load(ordering: .relaxed) {
            sleepUntil(min(deadlineNs.load(ordering: .relaxed), now &+ 250_000_000))
        }
        if let status = reportedStatus {
            log("teardown did not finish in time; exiting")
            _exit(status)
        }
        report(errorLine(workload: workload, "timed out: \(progress.summary)"), status: 1)
        _exit(1)
    }
}

// MARK: - /proc

/// The whole text of a (small) file, or nil.
func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// VmRSS of this process in bytes.
func residentBytes() throws -> Int {
    guard let status = readSmallFile("/proc/self/status") else { throw BenchError("cannot read /proc/self/status") }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let digits = line.dropFirst(6).filter { $0.isNumber }
        if let kb = Int(String(digits)) { return kb * 1024 }
    }
    throw BenchError("no VmRSS in /proc/self/status")
}

// MARK: - Statistics

/// Nearest-rank percentile of sorted nanosecond samples, in microseconds (the C program's rule).
func percentileUs(_ sorted: [UInt64], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let rank = p / 100 * Double(sorted.count)
    var k = Int(rank)
    if Double(k) < rank { k += 1 }
    k = min(max(k, 1), sorted.count)
    return Double(sorted[k - 1]) / 1000
}

/// `total` split into `parts` near-equal shares, larger ones first.
func split(_ total: Int, into parts: Int) -> [Int] {
    let parts = max(1, parts)
    return (0..<parts).map { total / parts + ($0 < total % parts ? 1 : 0) }.filter { $0 > 0 }
}

/// The first error some task ran into (noncopyable Mutex/Atomic cannot be captured by escaping closures).
final class FirstError: Sendable {
    private let storage = Mutex<String?>(nil)

    func record(_ error: any Error) {
        storage.withLock { if $0 == nil { $0 = "\(error)" } }
    }

    var first: String? { storage.withLock { $0 } }
}

/// A shared counter.
final class Counter: Sendable {
    private let storage = Atomic<Int>(0)

    func add(_ amount: Int) { storage.add(amount, ordering: .relaxed) }

    var value: Int { storage.load(ordering: .relaxed) }
}

/// The largest value recorded so far, from any thread.
final class MaxTracker: Sendable {
    private let storage = Atomic<UInt64>(0)

    func record(_ value: UInt64) {
        var current = storage.load(ordering: .relaxed)
        while value > current {
            let (exchanged, original) = storage.compareExchange(expected: current, desired: value, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }

    var value: UInt64 { storage.load(ordering: .relaxed) }
}
