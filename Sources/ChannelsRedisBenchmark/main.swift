// channels-redis-bench: the Swift side of the ChannelsRedis benchmark (.ci/bench/run runs it next
// to the raw hiredis C baseline and Python channels_redis). Everything is in the other files; top
// level code stays here so that nothing in them becomes main-actor isolated.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

let status = await runBenchmark(Array(CommandLine.arguments.dropFirst()))
exit(status)
