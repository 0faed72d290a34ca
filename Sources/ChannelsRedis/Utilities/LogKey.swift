/// Log metadata keys: prefixed so they do not collide with the application's (postgres-nio's
/// `psql_*`), dotted like swift-log's own conventions, and stable: dashboards and alerts match them.
enum LogKey {
    static let shard = "channels_redis.shard"
    static let cluster = "channels_redis.cluster"
    static let host = "channels_redis.host"
    static let channel = "channels_redis.channel"
    static let error = "channels_redis.error"
    static let delay = "channels_redis.delay"
    static let waiting = "channels_redis.waiting"
    static let channels = "channels_redis.channels"
    static let dropped = "channels_redis.dropped"
    static let undecodable = "channels_redis.undecodable"
    static let unconsumedChannels = "channels_redis.unconsumed_channels"
    static let unconsumedFor = "channels_redis.unconsumed_for"
}
