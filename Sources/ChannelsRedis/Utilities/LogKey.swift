/// Log metadata keys, prefixed so they do not collide with the application's (postgres-nio's `psql_*`).
enum LogKey {
    static let shard = "cr_shard"
    static let host = "cr_host"
    static let channel = "cr_channel"
    static let error = "cr_error"
    static let delay = "cr_delay"
    static let waiting = "cr_waiting"
    static let channels = "cr_channels"
    static let dropped = "cr_dropped"
    static let unconsumedChannels = "cr_unconsumed_channels"
    static let unconsumedFor = "cr_unconsumed_for"
}
