extension RedisPubSubChannelLayer.Configuration {
    /// The cluster a `redis-cluster://` host names, checked with every other setting; `nil` when the hosts are
    /// servers (``validated()`` then checks them).
    ///
    /// A cluster URL must be the only host: the cluster's own slot map shards the channels, so there is nothing for
    /// channels_redis's consistent hash over several hosts to do.
    func validatedCluster() throws(ChannelLayerError) -> RedisClusterEndpoint? {
        guard hosts.contains(where: RedisClusterEndpoint.isClusterURL) else { return nil }
        guard hosts.count == 1 else {
            throw ChannelLayerError(
                .invalidConfiguration,
                "a redis-cluster:// URL must be the only host (list several seed nodes in it: redis-cluster://host1:port,host2:port)"
            )
        }
        let cluster = try RedisClusterEndpoint(url: hosts[0]).validated()
        // Every other setting is checked as for a server: with a stand-in host, since the cluster URL is not one.
        var others = self
        others.hosts = ["redis://127.0.0.1"]
        _ = try others.validated()
        return cluster
    }
}
