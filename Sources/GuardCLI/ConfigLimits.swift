/// The accepted range of every bounded setting, in one place so the parser, the overrides and
/// docs/configuration.md agree. Durations are in milliseconds, sizes in bytes.
enum ConfigLimits {
    /// `threads` / `--threads`.
    static let threads = 1...256
    /// `upstream.max_connections`: HTTP/2 connections per event loop.
    static let maxConnections = 1...256
    /// `upstream.connect_timeout`: 10ms...10m.
    static let connectTimeout = 10...600_000
    /// `upstream.keepalive`: 0 (never)...1h; checked once a second.
    static let upstreamKeepalive = 0...3_600_000
    /// `upstream.keepalive_timeout`: 1s...10m.
    static let upstreamKeepaliveTimeout = 1_000...600_000
    /// `upstream.idle_timeout`: 0 (never)...24h; checked once a second.
    static let upstreamIdleTimeout = 0...86_400_000
    /// `limits.max_message_bytes`: 1 KiB...2 GiB (a gRPC length prefix is 32 bits; Milvus allows 512 MiB).
    static let maxMessageBytes = 1_024...(2 << 30)
    /// `limits.max_concurrent_streams`: SETTINGS_MAX_CONCURRENT_STREAMS, at least one stream.
    static let maxConcurrentStreams = 1...Int(Int32.max)
    /// `limits.max_header_list_bytes`: 1 KiB...16 MiB of SETTINGS_MAX_HEADER_LIST_SIZE.
    static let maxHeaderListBytes = 1_024...(16 << 20)
    /// `limits.idle_timeout`: 1s...24h.
    static let idleTimeout = 1_000...86_400_000
    /// `limits.handshake_timeout`: 1s...5m.
    static let handshakeTimeout = 1_000...300_000
    /// `limits.request_timeout`: 0 (never)...24h.
    static let requestTimeout = 0...86_400_000
    /// `limits.drain_timeout`: 0s (close at once)...1h.
    static let drainTimeout = 0...3_600_000
    /// HTTP/2 windows (RFC 9113 §6.9.2): 65535, the protocol's initial window, up to 2^31-1.
    static let windowBytes = 65_535...Int(Int32.max)
    /// `limits.held_bytes_per_connection` and `limits.held_bytes_total`: 64 KiB...64 GiB of requests held
    /// for inspection.
    static let heldBytes = 65_536...(64 << 30)
    /// `audit.commit_delay`: 0 (commit at once)...100ms; it adds up to this much to a mutation's latency.
    static let commitDelay = 0...100
    /// `audit.commit_siblings`: other calls in progress from which the commit delay applies.
    static let commitSiblings = 1...1_000_000
    /// `limits.auth_failures_per_minute`: failed authentications per client address before it is refused.
    static let authFailures = 1...1_000_000
    /// `limits.refusals_per_minute`: refused calls per client address before its connections are closed; 0: no limit.
    static let refusals = 0...1_000_000
    /// `limits.new_connections_per_minute`: connections one client address may open in a minute; 0: no limit.
    static let newConnections = 0...10_000_000
    /// `limits.credential_cache`: how long a verified credential is reused, 0s (never)...24h.
    static let credentialCache = 0...86_400_000
    /// `limits.client_connections`: client connections open at once, over all event loops.
    static let clientConnections = 1...10_000_000
    /// `limits.connections_per_client`: client connections open at once from one address.
    static let connectionsPerClient = 1...10_000_000
    /// A Unix-domain socket path must fit `sockaddr_un.sun_path` (108 bytes with its NUL).
    static let unixPathBytes = 107
}
