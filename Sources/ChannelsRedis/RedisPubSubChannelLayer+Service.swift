public import ServiceLifecycle
import Synchronization

extension RedisPubSubChannelLayer: Service {
    /// Runs the layer as a swift-service-lifecycle `Service`: returns once the service group shuts
    /// down gracefully (SIGTERM, say), the task is cancelled, or the layer was closed otherwise, and
    /// always with the layer closed (connections torn down, consumers ended with `layerClosed`).
    ///
    /// Running is optional: a layer that is never run works the same and is closed with
    /// ``close()``. Calling `run()` a second time is a programming error and traps, as in
    /// `PostgresClient` and `ValkeyClient`.
    ///
    /// ```swift
    /// let layer = try RedisPubSubChannelLayer(hosts: ["redis://127.0.0.1:6379"], logger: logger)
    /// let group = ServiceGroup(
    ///     configuration: .init(services: [layer, app], gracefulShutdownSignals: [.sigterm], logger: logger)
    /// )
    /// try await group.run()
    /// ```
    public func run() async throws {
        precondition(
            !runState.running.exchange(true, ordering: .relaxed),
            "RedisPubSubChannelLayer.run() was called twice; a layer runs at most once"
        )
        await withTaskCancellationOrGracefulShutdownHandler {
            await runState.closed.wait()
        } onCancelOrGracefulShutdown: {
            Task { await self.close() }
        }
        await close()  // waits for the teardown when someone else started it
    }
}
