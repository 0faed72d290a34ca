internal import CHiredis
internal import CHiredisIO
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One libevent `event_base` running on a dedicated thread.
///
/// Every libevent and hiredis call of a layer happens on this thread. Other threads hand work to it
/// with ``execute(_:)``: a mutex-protected queue plus `event_active` on a user event, which drains
/// the whole batch per wake-up (so a burst of sends costs one wake-up, not one per send).
///
/// The thread itself creates and frees the `event_base`, so no libevent call ever happens elsewhere.
final class LibeventLoop: @unchecked Sendable {
    // @unchecked Sendable: `base`, `timerObjects`, `spare` and `jobsRun` are touched only on the
    // loop thread (checked by `preconditionInLoop()`); `thread` is set in `init`, before the loop
    // is shared, and used under `detachLock` after. Everything else other threads touch is behind
    // a LockedValue or an Atomic; `event_active` on the wake event from another thread is legal
    // because `evthread_use_pthreads()` runs before the first base is created.
    private struct Queue {
        var jobs: [@Sendable () -> Void] = []
        var stopped = false
    }

    private let queue = LockedValue(Queue())
    private let threadID = Atomic<UInt>(0)
    private(set) var base: OpaquePointer?
    /// The hiredis ↔ libevent glue's state for `base` (CHiredisIO), made and freed with it.
    private(set) var io: OpaquePointer?
    private let wakeEvent = LockedValue<UnsafeSendablePointer?>(nil)
    private var timerObjects: [ObjectIdentifier: LoopTimer] = [:]
    private var spare: [@Sendable () -> Void] = []
    /// Jobs run so far (loop thread only): with the I/O glue's count, whether a poll found work.
    private var jobsRun: UInt64 = 0
    /// `Configuration.busyPoll`; `.zero`: sleep in `epoll_wait` as soon as there is nothing to do.
    private let busyPoll: Duration
    /// `Configuration.replyPoll`; `.zero`: publishes do not make the loop poll.
    private let replyPoll: Duration
    /// Set (loop thread only) when a PUBLISH was handed to hiredis or a PUBLISH's reply was read;
    /// the polling loop reads and clears it once per pass (one clock read per pass, not per publish).
    private var publishActivity = false
    private var thread: pthread_t?
    private let exited = LockedValue<ExitState>(ExitState())

    private struct ExitState: Sendable {
        var done = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Starts the thread and returns once its `event_base` exists.
    ///
    /// - Parameters:
    ///   - busyPoll: how long the thread keeps polling after it last found work before it sleeps
    ///     (see `runPolling`); `.zero` sleeps at once.
    ///   - replyPoll: how long the thread keeps polling after a PUBLISH was written or a PUBLISH's
    ///     reply read (see `runPolling`); `.zero`: publishes do not make it poll.
    init(name: String, busyPoll: Duration = .zero, replyPoll: Duration = .zero) throws(ChannelLayerError) {
        self.busyPoll = max(busyPoll, .zero)
        self.replyPoll = max(replyPoll, .zero)
        LibeventLoop.globalSetup
        let start = ThreadStart(loop: self, name: name)
        var thread = pthread_t()
        let box = Unmanaged.passRetained(start).toOpaque()
        let rc = pthread_create(
            &thread,
            nil,
            { raw in
                let start = Unmanaged<ThreadStart>.fromOpaque(raw!).takeRetainedValue()
                start.loop.threadMain(start)
                return nil
            },
            box
        )
        guard rc == 0 else {
            Unmanaged<ThreadStart>.fromOpaque(box).release()
            throw ChannelLayerError(.systemFailure, "could not start the event loop thread (pthread_create: \(rc))")
        }
        self.thread = thread
        // Wait for the thread to create its base: a short, bounded spin on a condition that the new
        // thread sets within microseconds. Initialisers cannot await.
        while true {
            let state = start.ready.withLock { $0 }
            if state.done {
                if let error = state.error {
                    pthread_join(thread, nil)
                    self.thread = nil
                    throw ChannelLayerError(.systemFailure, error)
                }
                break
            }
            sched_yield()
        }
    }

    /// Process-wide setup, once, before the first `event_base_new`.
    private static let globalSetup: Void = {
        // Makes `event_active` from other threads legal.
        evthread_use_pthreads()
        // hiredis writes with plain write(); a peer that went away would otherwise kill the process.
        signal(SIGPIPE, SIG_IGN)
    }()

    private struct ReadyState: Sendable {
        var done = false
        var error: String?
    }

    private final class ThreadStart: @unchecked Sendable {
        // @unchecked Sendable: handed from the creating thread to the new one exactly once.
        let loop: LibeventLoop
        let name: String
        let ready = LockedValue<ReadyState>(ReadyState())
        init(loop: LibeventLoop, name: String) {
            self.loop = loop
            self.name = name
        }
    }

    private func threadMain(_ start: ThreadStart) {
        threadID.store(UInt(pthread_self()), ordering: .releasing)
        chiredis_set_thread_name(String(start.name.prefix(15)))
        guard let base = event_base_new() else {
            start.ready.withLock { $0 = ReadyState(done: true, error: "event_base_new failed") }
            return
        }
        self.base = base
        let context = Unmanaged.passUnretained(self).toOpaque()
        guard
            let wake = event_new(
                base,
                -1,
                Int16(EV_PERSIST),
                { _, _, context in
                    Unmanaged<LibeventLoop>.fromOpaque(context!).takeUnretainedValue().drain()
                },
                context
            )
        else {
            event_base_free(base)
            self.base = nil
            start.ready.withLock { $0 = ReadyState(done: true, error: "event_new failed") }
            return
        }
        guard let io = chr_io_loop_create(base) else {
            event_free(wake)
            event_base_free(base)
            self.base = nil
            start.ready.withLock { $0 = ReadyState(done: true, error: "chr_io_loop_create failed") }
            return
        }
        self.io = io
        let sendableWake = UnsafeSendablePointer(wake)
        wakeEvent.withLock { $0 = sendableWake }
        start.ready.withLock { $0 = ReadyState(done: true, error: nil) }

        if busyPoll == .zero && replyPoll == .zero {
            // Without EVLOOP_NO_EXIT_ON_EMPTY the loop returns as soon as hiredis drops its events.
            event_base_loop(base, Int32(EVLOOP_NO_EXIT_ON_EMPTY))
        } else {
            runPolling(base: base, io: io)
        }

        // Stopped: no job is accepted any more. Run what was queued before the stop (jobs check the
        // state they act on, so they fail cleanly), then free every timer, the wake event and base.
        let leftover = queue.withLock { state -> [@Sendable () -> Void] in
            state.stopped = true
            defer { state.jobs = [] }
            return state.jobs
        }
        for job in leftover { job() }
        for timer in Array(timerObjects.values) { timer.cancel() }
        wakeEvent.withLock { $0 = nil }
        event_free(wake)
        // Every context was freed by its owner before the loop stopped (layers close their shards
        // on the loop before shutting it down), so no connection points into `io` any more.
        chr_io_loop_free(io)
        self.io = nil
        event_base_free(base)
        self.base = nil
        let waiters = exited.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.done = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Whether the caller runs on the loop thread.
    var inLoop: Bool {
        let id = threadID.load(ordering: .acquiring)
        return id != 0 && pthread_equal(pthread_self(), pthread_t(id)) != 0
    }

    /// Traps when not called on the loop thread, in release builds too (NIO's
    /// `preconditionInEventLoop`): hiredis and libevent state touched from another thread is a
    /// memory-safety bug, not a recoverable error. The check is an atomic load and `pthread_equal`.
    @inline(__always)
    func preconditionInLoop(file: StaticString = #fileID, line: UInt = #line) {
        precondition(inLoop, "must be called on the loop thread", file: file, line: line)
    }

    /// Runs `job` on the loop thread, after the jobs submitted before it.
    ///
    /// - Returns: `false` if the loop is stopped; the job is then dropped without running, and the
    ///   caller must fail whatever it was waiting for.
    @discardableResult
    func execute(_ job: @escaping @Sendable () -> Void) -> Bool {
        let (accepted, wake) = queue.withLock { state -> (Bool, Bool) in
            if state.stopped { return (false, false) }
            state.jobs.append(job)
            return (true, state.jobs.count == 1)
        }
        if wake {
            // The pointer lives behind its own lock: the loop thread clears it before freeing the
            // event, so a wake-up racing the final teardown finds nil instead of freed memory.
            wakeEvent.withLock { event in
                if let event { event_active(event.pointer, Int32(EV_READ), 0) }
            }
        }
        return accepted
    }

    /// A PUBLISH was handed to hiredis, or a PUBLISH's reply was read: with `replyPoll` set, the loop
    /// polls instead of sleeping for that long after it. Loop thread only; one store, no clock read.
    @inline(__always)
    func notePublishActivity() {
        publishActivity = true
    }

    /// The loop with polling (`Configuration.replyPoll`, `Configuration.busyPoll`): it polls without
    /// sleeping until a deadline, and only past it blocks in `epoll_wait`. The deadline moves to
    /// `replyPoll` after the last pass that wrote a PUBLISH or read a PUBLISH's reply, and (only with
    /// `busyPoll` set) to `busyPoll` after the last pass that did anything at all (a read, a write,
    /// a job).
    ///
    /// Why: waking a sleeping thread costs 10-30 µs on each side on a virtual machine, and a round
    /// trip through the layer wakes the loop twice (a sender's job, Redis's reply); a loop that is
    /// still polling when they come needs no wake-up. `replyPoll` polls only while a reply is likely
    /// to come soon: after a PUBLISH was written its reply (and, on a subscribed channel, the message)
    /// is one Redis round trip away, and after a reply the resumed sender's next PUBLISH often follows
    /// within tens of microseconds. An idle layer publishes nothing (liveness probes do not count),
    /// so it never polls. Between empty polls the thread yields its core to any other runnable thread
    /// (the consumers, Redis on a small machine), which would otherwise wait for the poll to give it
    /// up (see Benchmarks.md).
    ///
    /// Every `event_base_loopbreak` comes from a job run inside `event_base_loop`, so the break
    /// flag is seen here before the next call (which would clear it).
    private func runPolling(base: OpaquePointer, io: OpaquePointer) {
        var pollUntil = ContinuousClock.now
        var polling = false
        var lastActivity = chr_io_activity(io) &+ jobsRun
        while event_base_got_break(base) == 0 {
            let flags = polling ? EVLOOP_NONBLOCK | EVLOOP_NO_EXIT_ON_EMPTY : EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY
            guard event_base_loop(base, Int32(flags)) >= 0 else { return }  // as the plain loop: stop on error
            let now = ContinuousClock.now
            let activity = chr_io_activity(io) &+ jobsRun
            if activity != lastActivity {
                lastActivity = activity
                if busyPoll > .zero { pollUntil = max(pollUntil, now + busyPoll) }
            } else if polling {
                sched_yield()
            }
            if publishActivity {
                publishActivity = false
                pollUntil = max(pollUntil, now + replyPoll)
            }
            polling = now < pollUntil
        }
    }

    /// CPU time the loop thread has used so far, or `nil` once it was joined or detached (tests
    /// check that a polling loop goes back to sleep).
    func threadCPUTime() -> Duration? {
        detachLock.withLock { detached -> Duration? in
            guard !detached, let thread else { return nil }
            var clock = clockid_t()
            var used = timespec()
            guard pthread_getcpuclockid(thread, &clock) == 0, clock_gettime(clock, &used) == 0 else { return nil }
            return .seconds(used.tv_sec) + .nanoseconds(used.tv_nsec)
        }
    }

    private func drain() {
        while true {
            var batch = spare
            queue.withLock { state in
                swap(&batch, &state.jobs)
            }
            if batch.isEmpty {
                spare = batch
                return
            }
            jobsRun &+= UInt64(batch.count)
            for job in batch { job() }
            batch.removeAll(keepingCapacity: true)
            spare = batch
        }
    }

    /// Stops the loop after the jobs already queued, and waits until the thread has exited.
    ///
    /// Safe to call more than once and from any thread but the loop thread.
    func shutdown() async {
        let accepted = execute { [self] in
            if let base { event_base_loopbreak(base) }
        }
        _ = accepted
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = exited.withLock { state -> Bool in
                if state.done { return true }
                state.waiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
        joinThread()
    }

    /// Stops the loop without waiting; the thread detaches itself and exits after teardown.
    ///
    /// Used when a layer is dropped without `close()`.
    func shutdownInBackground() {
        execute { [self] in
            if let base { event_base_loopbreak(base) }
        }
        detachLock.withLock { detached in
            if !detached, let thread {
                pthread_detach(thread)
                detached = true
            }
        }
    }

    private let detachLock = LockedValue(false)

    private func joinThread() {
        detachLock.withLock { detached in
            if !detached, let thread {
                pthread_join(thread, nil)
                detached = true
            }
        }
    }

    // MARK: Timers

    /// Schedules `body` on the loop after `delay`. Loop thread only.
    @discardableResult
    func scheduleTimer(after delay: Duration, _ body: @escaping () -> Void) -> LoopTimer {
        preconditionInLoop()
        let timer = LoopTimer(loop: self, body: body)
        guard let base else { return timer }
        let raw = Unmanaged.passUnretained(timer).toOpaque()
        guard
            let event = event_new(
                base,
                -1,
                0,
                { _, _, raw in
                    Unmanaged<LoopTimer>.fromOpaque(raw!).takeUnretainedValue().fire()
                },
                raw
            )
        else { return timer }
        timer.event = event
        timerObjects[ObjectIdentifier(timer)] = timer
        var tv = timeval(duration: delay)
        event_add(event, &tv)
        return timer
    }

    fileprivate func forget(_ timer: LoopTimer) {
        timerObjects[ObjectIdentifier(timer)] = nil
    }
}

// MARK: - Task executor

/// Tasks can prefer the loop thread (`withTaskExecutorPreference`), as SwiftNIO's event loops allow:
/// then resuming them from a hiredis callback is a local enqueue instead of a thread wake-up, and
/// their calls into the layer skip the cross-thread queue. Such tasks must not block.
extension LibeventLoop: TaskExecutor {
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let accepted = execute { [self] in job.runSynchronously(on: asUnownedTaskExecutor()) }
        // After shutdown there is no loop thread: run the job on the global executor instead, so
        // the task (which can only find the layer closed) is not lost.
        if !accepted { Task.detached { job.runSynchronously(on: globalConcurrentExecutor.asUnownedTaskExecutor()) } }
    }
}

/// A one-shot libevent timer. Loop thread only; the loop keeps it alive until it fires or is cancelled.
final class LoopTimer {
    // Not Sendable: loop-confined; created, fired and cancelled only on the loop thread.
    fileprivate var event: OpaquePointer?
    private let loop: LibeventLoop
    private var body: (() -> Void)?

    fileprivate init(loop: LibeventLoop, body: @escaping () -> Void) {
        self.loop = loop
        self.body = body
    }

    var isActive: Bool { event != nil }

    fileprivate func fire() {
        let body = self.body
        release()
        body?()
    }

    /// Cancels the timer if it has not fired yet. Loop thread only; idempotent.
    func cancel() {
        loop.preconditionInLoop()
        release()
    }

    private func release() {
        if let event {
            event_free(event)  // event_free deletes a pending event first
            self.event = nil
        }
        body = nil
        loop.forget(self)
    }
}

extension timeval {
    init(duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let clamped = max(0, seconds)
        self.init(tv_sec: Int(clamped), tv_usec: seconds < 0 ? 0 : Int(attoseconds / 1_000_000_000_000))
    }
}

/// Carries an `OpaquePointer` into a `LockedValue`. The pointee is only used on the loop thread, except
/// for the thread-safe `event_active`.
private struct UnsafeSendablePointer: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
}
