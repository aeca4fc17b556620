/// Everything the proxy needs to run, already validated. `GuardCLI` builds it from guard.yaml and the
/// command-line overrides; tests build it directly.
public struct ProxyConfiguration: Sendable, Equatable {
    /// Where clients connect: `host:port` (IPv4 or `[v6]:port`).
    public var listen: SocketAddress
    /// The Milvus the proxy forwards to.
    public var upstream: UpstreamConfiguration
    /// Event-loop threads; each owns its own listening socket (SO_REUSEPORT), connections and sessions.
    public var threads: Int
    /// Serve clients over TLS (ALPN h2) when set.
    public var tls: ServerTLSConfiguration?
    public var limits: Limits

    public init(
        listen: SocketAddress,
        upstream: UpstreamConfiguration,
        threads: Int,
        tls: ServerTLSConfiguration? = nil,
        limits: Limits = Limits()
    ) {
        self.listen = listen
        self.upstream = upstream
        self.threads = threads
        self.tls = tls
        self.limits = limits
    }
}

/// A TCP (`host:port`) or Unix-domain socket address.
public enum SocketAddress: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: UInt16)
    case unix(path: String)

    /// Parses `host:port`, `[v6]:port` or `unix:/path`; nil when the text is none of these.
    public init?(parsing text: String) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty, path.utf8.count < 108 else { return nil }
            self = .unix(path: path)
            return
        }
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            guard !host.contains(":") else { return nil }
        }
        guard !host.isEmpty, !portText.isEmpty, portText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let port = UInt16(portText)
        else { return nil }
        self = .tcp(host: String(host), port: port)
    }

    /// Whether only this machine can reach it: a Unix socket, `localhost`, `::1` or an IPv4 address in 127.0.0.0/8.
    public var isLoopback: Bool {
        switch self {
        case .unix: return true
        case .tcp(let host, _):
            if host == "localhost" || host == "::1" { return true }
            let parts = host.split(separator: ".", omittingEmptySubsequences: false)
            return parts.count == 4 && parts[0] == "127"
                && parts.allSatisfy { part in
                    UInt8(part).map { _ in part.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } } ?? false
                }
        }
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        }
    }
}

/// How to reach Milvus.
public struct UpstreamConfiguration: Sendable, Equatable {
    public var address: SocketAddress
    /// Speak TLS to the upstream, verifying its certificate, when set.
    public var tls: ClientTLSConfiguration?
    /// How many HTTP/2 connections one event loop may open to the upstream. Streams are spread over them
    /// within the upstream's SETTINGS_MAX_CONCURRENT_STREAMS; calls beyond that wait for a free stream.
    public var maxConnectionsPerLoop: Int
    /// How long a connection attempt may take before the calls waiting on it fail with UNAVAILABLE.
    public var connectTimeoutMilliseconds: Int
    /// While calls are open on a connection and nothing has been read from it for this long, the guard sends a
    /// PING; 0 never. Like gRPC's `keepalive_time` (pymilvus uses 55 s), so that a Milvus that went away without
    /// closing the connection (a host that died, a firewall that dropped the flow) fails its calls instead of
    /// leaving them hanging.
    public var keepaliveMilliseconds: Int
    /// How long the answer to that PING may take before the connection is closed and its calls fail with
    /// UNAVAILABLE (which clients retry, on a new connection).
    public var keepaliveTimeoutMilliseconds: Int
    /// A connection without calls that has read nothing for this long is closed; 0 never. Firewalls and NAT
    /// gateways drop idle flows silently (AWS NLB after 350 s); the next call then opens a fresh connection.
    public var idleTimeoutMilliseconds: Int
    /// The `authorization` value the guard sends to Milvus instead of the client's (`upstream.auth` in
    /// guard.yaml: base64 of `user:password`), so that applications never hold Milvus passwords. When nil,
    /// the client's `authorization` goes upstream unchanged.
    public var authorization: String?

    public init(
        address: SocketAddress,
        tls: ClientTLSConfiguration? = nil,
        maxConnectionsPerLoop: Int = 8,
        connectTimeoutMilliseconds: Int = 5_000,
        keepaliveMilliseconds: Int = 55_000,
        keepaliveTimeoutMilliseconds: Int = 20_000,
        idleTimeoutMilliseconds: Int = 300_000,
        authorization: String? = nil
    ) {
        self.address = address
        self.tls = tls
        self.maxConnectionsPerLoop = maxConnectionsPerLoop
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.keepaliveMilliseconds = keepaliveMilliseconds
        self.keepaliveTimeoutMilliseconds = keepaliveTimeoutMilliseconds
        self.idleTimeoutMilliseconds = idleTimeoutMilliseconds
        self.authorization = authorization
    }
}

/// Certificate and key (PEM files) for serving clients over TLS.
public struct ServerTLSConfiguration: Sendable, Equatable {
    public var certificatePath: String
    public var keyPath: String
    /// When set, clients must present a certificate signed by this CA (mTLS).
    public var clientCAPath: String?
    /// With ``clientCAPath``: CRLs (PEM) client certificates are checked against, one in force for every CA of a
    /// client's chain. Read again, with the other files, by each reload (``ProxyServer/loadServerTLS()``).
    public var clientCRLPath: String?

    public init(certificatePath: String, keyPath: String, clientCAPath: String? = nil, clientCRLPath: String? = nil) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.clientCAPath = clientCAPath
        self.clientCRLPath = clientCRLPath
    }
}

/// Trust settings for TLS to the upstream.
public struct ClientTLSConfiguration: Sendable, Equatable {
    /// PEM bundle of trusted CAs; nil means the system's default trust store.
    public var caPath: String?
    /// SNI and the name the certificate must carry; defaults to the upstream host.
    public var serverName: String?

    public init(caPath: String? = nil, serverName: String? = nil) {
        self.caPath = caPath
        self.serverName = serverName
    }
}

/// Resource limits. Defaults follow Milvus (512 MiB messages) and common HTTP/2 servers.
public struct Limits: Sendable, Equatable {
    /// The largest gRPC message a client may send (Milvus's `proxy.grpc.serverMaxRecvSize`).
    public var maxMessageBytes: Int = 536_870_912
    /// SETTINGS_MAX_CONCURRENT_STREAMS advertised to clients.
    public var maxConcurrentStreams: Int = 100
    /// SETTINGS_MAX_HEADER_LIST_SIZE advertised to clients; larger header lists are refused.
    public var maxHeaderListBytes: Int = 65_536
    /// A client connection with no open stream for this long is closed with GOAWAY.
    public var idleTimeoutMilliseconds: Int = 300_000
    /// A client must finish the TLS handshake and send the HTTP/2 preface within this long after
    /// connecting, or it is disconnected (checked once a second).
    public var handshakeTimeoutMilliseconds: Int = 10_000
    /// A call's request (from its HEADERS to its last byte) must arrive within this long, or the call is refused with
    /// DEADLINE_EXCEEDED and its held bytes let go; 0 never. A client's own `grpc-timeout` may end it sooner. Without
    /// it, a caller that never finishes a request holds its bytes (up to ``heldBytesPerConnection``) for as long as it
    /// keeps the stream open, and nothing is recorded; the refusal is recorded like any other.
    public var requestTimeoutMilliseconds: Int = 120_000
    /// On SIGTERM/SIGINT, calls in flight get this long to finish before the proxy exits.
    public var drainTimeoutMilliseconds: Int = 30_000
    /// Request bytes one client connection may have held for inspection at once (a request is held until
    /// it is complete and decided). A call that would go beyond it is refused with RESOURCE_EXHAUSTED.
    public var heldBytesPerConnection: Int = 576 << 20
    /// Request bytes all connections together may have held at once; beyond it, RESOURCE_EXHAUSTED.
    public var heldBytesTotal: Int = 1 << 30
    /// HTTP/2 stream-level receive window (both sides); memory held per stream is bounded by it.
    public var streamWindowBytes: Int = 1 << 20
    /// HTTP/2 connection-level receive window (both sides).
    public var connectionWindowBytes: Int = 16 << 20
    /// Failed authentications one client address may make per ``authFailureWindowMilliseconds``; further
    /// attempts from that address get RESOURCE_EXHAUSTED until the window is over.
    public var authFailuresPerWindow: Int = 20
    /// The window of ``authFailuresPerWindow``.
    public var authFailureWindowMilliseconds: Int = 60_000
    /// How long a successful password or API-key verification is reused (a reload forgets them all).
    public var credentialCacheMilliseconds: Int = 300_000
    /// Client connections the whole process keeps open at once; a connection beyond it is accepted and closed at
    /// once, so descriptors stay free for Milvus connections and the audit store.
    public var clientConnections: Int = 10_000
    /// Client connections one client address (IP) may keep open at once, so that a few addresses can't take all
    /// of ``clientConnections``; a connection beyond it is accepted and closed at once. Unix-socket clients are
    /// not counted per address (they have none).
    public var connectionsPerClient: Int = 1_000
    /// Refused calls one client address may cause per ``refusalWindowMilliseconds`` (denied by the policy, no or
    /// wrong credential, malformed, not gRPC); 0: no limit. From the limit on, each of its connections gets a GOAWAY
    /// at its next refusal and closes once its calls are done, and new connections from it are closed at once until
    /// the window is over. Every refusal is a record in the audit store: this bounds how fast a client that can
    /// reach the port, even without a credential, makes the store grow.
    public var refusalsPerWindow: Int = 1_000
    /// The window of ``refusalsPerWindow``.
    public var refusalWindowMilliseconds: Int = 60_000
    /// New client connections one client address (IP) may open per ``newConnectionWindowMilliseconds``; 0: no limit.
    /// From the limit on, its new connections are accepted and closed at once until the window is over; the
    /// connections it has open are not touched. A TLS handshake costs the guard several times what it costs the
    /// client (an RSA-2048 signature is 0.28 ms, its verification 0.02 ms), so without it one address that connects
    /// and disconnects in a loop could keep cores busy. Unix-socket clients are not counted (they have no address).
    public var newConnectionsPerWindow: Int = 1_000
    /// The window of ``newConnectionsPerWindow``.
    public var newConnectionWindowMilliseconds: Int = 60_000
    /// Tests only: the largest header block both sessions send, instead of the one worked out from
    /// ``maxHeaderListBytes`` (``ProxyWorker/headerBlockMargin``), to drive a block that can't be sent.
    var sendHeaderBlockOverride: Int?

    public init() {}
}
