/// A value that may be carried to any thread but used only on its loop's thread: how a
/// loop-confined object (``RedisShard``, ``HiredisConnection``) rides in a job handed to
/// ``LibeventLoop/execute(_:)``, which must be `@Sendable`.
///
/// The confinement is checked, not commented: ``value`` is a `precondition` on the loop thread in
/// release builds too (as SwiftNIO's `NIOLoopBound`). The objects it carries are not `Sendable`
/// themselves, so the compiler refuses any other way of reaching them from another thread.
struct LoopBound<Value>: @unchecked Sendable {
    // @unchecked Sendable: `wrapped` is reachable only through `value`, which traps off the loop
    // thread, and the loop thread is one thread; the box itself is immutable.
    private let wrapped: Value
    let loop: LibeventLoop

    /// Wraps `value`; call on the loop thread (the value was in use there).
    init(_ value: Value, loop: LibeventLoop) {
        loop.preconditionInLoop()
        self.wrapped = value
        self.loop = loop
    }

    /// The value; traps unless called on the loop thread.
    var value: Value {
        loop.preconditionInLoop()
        return wrapped
    }
}

extension LibeventLoop {
    /// Runs `job` with `object` on the loop thread, after the jobs submitted before it: the way a
    /// loop-confined object hands work back to its own loop (through the job queue, never inline in
    /// a hiredis callback). Dropped, like every job, when the loop is stopped.
    @discardableResult
    func execute<Object: AnyObject>(with object: Object, _ job: @escaping (Object) -> Void) -> Bool {
        let bound = LoopBound(object, loop: self)
        let unbound = LoopBound(job, loop: self)
        return execute { unbound.value(bound.value) }
    }
}
