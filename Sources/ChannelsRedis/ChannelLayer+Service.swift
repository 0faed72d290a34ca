public import ServiceLifecycle

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
        await runState.run(layer: "RedisPubSubChannelLayer") { await self.close() }
    }
}

extension InMemoryChannelLayer: Service {
    /// Runs the layer as a swift-service-lifecycle `Service`, as
    /// ``RedisPubSubChannelLayer/run()`` does: returns on graceful shutdown, cancellation or
    /// ``close()``, always with the layer closed; a second `run()` traps. So a test or a
    /// single-process setup can put the in-memory layer where the Redis layer goes.
    public func run() async throws {
        await runState.run(layer: "InMemoryChannelLayer") { await self.close() }
    }
}
