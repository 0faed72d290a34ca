import ChannelsRedis
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// The bound of the awaited-send rows (#13, "N tasks awaiting each send ≥ 0.9–0.95× C"): the two hand-offs an awaited
// send makes, with nothing else in them: no Redis, no encoding, no layer. S sender tasks on the global executor (as
// the throughput workload's are) each hand a request to one service thread (the layer's loop thread's stand-in)
// through a pthread mutex and a queue, waking it with a condition variable when it sleeps, and await it; the thread
// takes everything queued at once and resumes each sender. The C program's window of S PUBLISHes does its whole round
// trip in one thread; what this costs is the price of the hop to a thread and back to a task, per message.

// MARK: - The service thread

/// The loop thread's stand-in: a queue of waiting senders under a pthread mutex, and a condition variable it sleeps
/// on while the queue is empty.
final class FloorServiceThread: @unchecked Sendable {
    // @unchecked Sendable: `waiting`, `sleeping` and `stopped` are read and written only while `mutex` is held; the
    // mutex and the condition variable are allocated once and freed only in deinit, after the thread has ended
    // (`stop()` waits for it).
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var waiting: [UnsafeContinuation<Void, Never>] = []
    private var sleeping = false
    private var stopped = false
    /// Times the thread went to sleep on an empty queue; each costs a wake-up by the next sender.
    private(set) var sleeps = 0
    let ended = Event()

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        waiting.reserveCapacity(1024)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    /// Starts the thread: until `stop()`, it takes every sender queued and resumes each, sleeping when none is.
    func start() {
        startThread { [self] in
            var batch: [UnsafeContinuation<Void, Never>] = []
            batch.reserveCapacity(1024)
            while true {
                pthread_mutex_lock(mutex)
                while waiting.isEmpty && !stopped {
                    sleeping = true
                    sleeps += 1
                    pthread_cond_wait(condition, mutex)
                    sleeping = false
                }
                if waiting.isEmpty && stopped {
                    pthread_mutex_unlock(mutex)
                    break
                }
                swap(&batch, &waiting)
                pthread_mutex_unlock(mutex)
                for sender in batch { sender.resume() }
                batch.removeAll(keepingCapacity: true)
            }
            ended.fire()
        }
    }

    /// The sender's round trip: queued for the thread, resumed by it.
    nonisolated(nonsending) func roundTrip() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            pthread_mutex_lock(mutex)
            waiting.append(continuation)
            if sleeping { pthread_cond_signal(condition) }
            pthread_mutex_unlock(mutex)
        }
    }

    /// Ends the thread once it has served every sender queued; returns when it has.
    func stop() async -> Int {
        pthread_mutex_lock(mutex)
        stopped = true
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
        await ended.wait()
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return sleeps
    }
}

// MARK: - The workload

/// `--workload send-floor --senders S --count N`: N round trips, split over S sender tasks each awaiting its own, through
/// one ``FloorServiceThread``. Clock and CPU (the process's, every thread) from the first round trip to the last.
func sendFloor(_ options: Options, progress: Progress, into json: inout JSONLine) async throws {
    let count = options.count
    let shares = split(count, into: options.senders)  // as the throughput workload splits its sends
    let service = FloorServiceThread()
    service.start()

    // Warm-up: the service thread and the cooperative pool's threads are running before the clock starts (the sender
    // tasks themselves start with the clock, as the throughput workload's do).
    progress.enter("send-floor: warm-up")
    for _ in 0..<64 { await service.roundTrip() }

    progress.enter("send-floor")
    let finished = Countdown(shares.count)
    let done = Counter()
    let cpuStart = processCPUNs()
    let start = nowNs()
    for share in shares {
        startTask(preferring: nil) {
            for _ in 0..<share { await service.roundTrip() }
            done.add(share)
            progress.received.add(share, ordering: .relaxed)
            finished.arrive()
        }
    }
    await finished.done.wait()
    let cpu = processCPUNs() - cpuStart
    let seconds = max(Double(finished.finishedAt - start) / 1e9, 1e-9)
    let sleeps = await service.stop()
    guard done.value == count else { throw BenchError("send-floor: \(done.value) of \(count) round trips") }
    json.add("count", count)
    json.add("senders", shares.count)
    json.add("send_batch", 1)
    json.add("seconds", seconds, digits: 4)
    json.add("msgs_per_sec", Double(count) / seconds, digits: 1)
    json.add("cpu_us_per_msg", Double(cpu) / 1e3 / Double(count), digits: 3)
    json.add("service_sleeps", sleeps)
}
