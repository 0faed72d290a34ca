import ChannelsRedisTestSupport
import Logging

/// A swift-log handler that keeps every record, for tests that check what the layer logs.
struct RecordingLogHandler: LogHandler {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    final class Store: Sendable {
        private let records = Mutex<[Record]>([])

        func append(_ record: Record) { records.withLock { $0.append(record) } }

        var all: [Record] { records.withLock { $0 } }

        func at(_ level: Logger.Level) -> [Record] { all.filter { $0.level == level } }
    }

    let store: Store
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    /// A logger that records into a new store, and the store.
    static func logger(label: String = "test") -> (Logger, Store) {
        let store = Store()
        return (Logger(label: label, factory: { _ in RecordingLogHandler(store: store) }), store)
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        store.append(Record(level: event.level, message: "\(event.message)", metadata: merged))
    }
}
