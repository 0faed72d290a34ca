internal import CHiredis
internal import CHiredisIO

/// A sharded pub/sub push or refusal, as the fast path hands it over (`chr_io_deliver_shard_pushes`). The channel
/// (or error text) is valid during the call only.
enum ShardPush {
    /// `ssubscribe`: Redis confirmed a channel of an SSUBSCRIBE.
    case subscribed(channel: UnsafeRawBufferPointer)
    /// `sunsubscribe`: a confirmation of our SUNSUBSCRIBE, or the server's own push when the channel's slot moved
    /// to another node (or was deleted).
    case unsubscribed(channel: UnsafeRawBufferPointer)
    /// An error reply hiredis did not expect: the refusal of an SSUBSCRIBE or SUNSUBSCRIBE (`MOVED 1234 host:port`,
    /// `CROSSSLOT …`), without the `-`.
    case refused(text: UnsafeRawBufferPointer)
}

/// What a subscriber connection with sharded pushes tells its owner, besides ``HiredisConnectionDelegate``'s calls
/// (`smessage` pushes arrive as messages there).
protocol HiredisShardPushDelegate: HiredisConnectionDelegate {
    func connection(_ connection: HiredisConnection, didReceiveShardPush push: ShardPush)
}

extension HiredisConnection {
    /// Sends SSUBSCRIBE or SUNSUBSCRIBE past hiredis (`chr_io_raw_command`): hiredis 0.14.1's async API would queue a
    /// callback that the sharded pushes never answer, and misroute the next reply to it. Their replies come to the
    /// delegate as ``ShardPush`` values, in the order of the commands.
    ///
    /// - Returns: false if there is no context or it is disconnecting.
    @discardableResult
    func shardedSubscriptionCommand(_ arguments: [String]) -> Bool {
        loop.preconditionInLoop()
        precondition(sharded && directMessages, "sharded subscription commands need a sharded subscriber connection")
        guard let context, !arguments.isEmpty else { return false }
        return Self.withArgv(arguments) { count, argv, lengths in
            chr_io_raw_command(context, Int32(count), argv, lengths) == REDIS_OK
        }
    }

    func deliverShardPushes(_ context: UnsafeMutablePointer<redisAsyncContext>) {
        chr_io_deliver_shard_pushes(context, hiredisShardPushTrampoline)
    }
}

private func hiredisShardPushTrampoline(
    _ context: UnsafeMutablePointer<redisAsyncContext>?,
    _ kind: Int32,
    _ text: UnsafePointer<CChar>?,
    _ textLength: Int,
    _ count: Int64
) {
    guard let data = context?.pointee.data else { return }
    let bytes = UnsafeRawBufferPointer(start: text, count: textLength)
    let push: ShardPush
    switch UInt32(kind) {
    case CHR_IO_SHARD_SUBSCRIBE.rawValue: push = .subscribed(channel: bytes)
    case CHR_IO_SHARD_UNSUBSCRIBE.rawValue: push = .unsubscribed(channel: bytes)
    case CHR_IO_SHARD_ERROR.rawValue: push = .refused(text: bytes)
    default: return
    }
    Unmanaged<HiredisConnection>.fromOpaque(data)._withUnsafeGuaranteedRef { owner in
        (owner.delegate as? any HiredisShardPushDelegate)?.connection(owner, didReceiveShardPush: push)
    }
}
