import Logging
import NGHTTP2Support
import OpenSSLSupport

/// The upstream connections of one event loop, and the calls waiting for a stream.
///
/// A call goes to the first ready connection with room under the upstream's
/// SETTINGS_MAX_CONCURRENT_STREAMS; failing that, to a connection still connecting; failing that, a new
/// connection is opened while there are fewer than `maxConnectionsPerLoop`; otherwise the call waits
/// (FIFO) for a stream to free up. A connection attempt that fails fails the calls waiting on it with
/// UNAVAILABLE; the next call tries again, so the proxy recovers by itself when Milvus comes back.
final class UpstreamPool {
    unowned let loop: EventLoop
    let configuration: UpstreamConfiguration
    let sessionSettings: HTTP2SessionSettings
    let logger: Logger
    private(set) var connections: [UpstreamConnection] = []
    private var queue: [ProxiedCall] = []
    private let scheme: String
    /// Remaining upstream connection window below which another connection is opened (see ``start(_:)``).
    static let spreadBelowWindow = 16 * 1024
    private let tls: TLSContext?
    /// The loop's counters (upstream errors).
    let metrics: LoopMetrics?

    init(
        loop: EventLoop,
        configuration: UpstreamConfiguration,
        sessionSettings: HTTP2SessionSettings,
        tls: TLSContext?,
        metrics: LoopMetrics? = nil,
        logger: Logger
    ) {
        self.loop = loop
        self.metrics = metrics
        self.configuration = configuration
        self.sessionSettings = sessionSettings
        self.tls = tls
        self.logger = logger
        self.scheme = configuration.tls == nil ? "http" : "https"
    }

    var address: SocketAddress { self.configuration.address }

    /// The name TLS verifies when no server_name is configured: the upstream host.
    private var hostName: String {
        switch self.configuration.address {
        case .tcp(let host, _): host
        case .unix: "localhost"
        }
    }

    /// Finds or opens an upstream stream for the call.
    func start(_ call: ProxiedCall) {
        // The ready connection with the most room in the upstream's connection window. When even that
        // one's window is spent, another connection is opened (up to the limit) while the call still
        // goes out on this one: a gRPC server's connection window starts small (64 KiB), so requests
        // with bodies would otherwise queue behind one window; small calls never open more.
        var best: UpstreamConnection?
        for connection in self.connections where connection.state == .ready && connection.capacity > 0 {
            let window = connection.session.remoteConnectionWindow
            if best.map({ window > $0.session.remoteConnectionWindow }) ?? true { best = connection }
        }
        if let best {
            if best.session.remoteConnectionWindow < Self.spreadBelowWindow,
                self.connections.count < self.configuration.maxConnectionsPerLoop,
                !self.connections.contains(where: { $0.state == .connecting })
            {
                _ = try? self.connect()
            }
            self.open(call, on: best)
            return
        }
        if let connecting = self.connections.first(where: { $0.state == .connecting && $0.capacity > 0 }) {
            connecting.waiting.append(call)
            return
        }
        if self.connections.count < self.configuration.maxConnectionsPerLoop {
            do {
                let connection = try self.connect()
                connection.waiting.append(call)
            } catch {
                self.metrics?.recordUpstreamError(.connect)
                call.upstreamFailed(GRPCStatus(.unavailable, "upstream \(self.address) unreachable: \(error)"))
            }
            return
        }
        self.queue.append(call)
    }

    private func open(_ call: ProxiedCall, on connection: UpstreamConnection) {
        guard call.isWaitingForUpstream else { return }
        if !call.attach(to: connection, headers: self.upstreamHeaders(for: call)) {
            call.upstreamFailed(GRPCStatus(.unavailable, "upstream \(self.address) refused a new stream"))
        }
    }

    private func connect() throws -> UpstreamConnection {
        let socket = try Socket.connect(to: self.address)
        let session = try HTTP2Session(role: .client, settings: self.sessionSettings)
        let tls = try self.tls.map { context in
            try TLSConnection(context: context, serverName: self.configuration.tls?.serverName ?? self.hostName)
        }
        let connection = try UpstreamConnection(
            pool: self,
            socket: socket,
            session: session,
            tls: tls,
            connectTimeoutMilliseconds: self.configuration.connectTimeoutMilliseconds
        )
        self.connections.append(connection)
        return connection
    }

    /// The request headers as sent upstream: hop-by-hop fields dropped, the scheme set for the upstream
    /// transport; everything else (metadata, grpc-timeout, authorization) as the client sent it.
    private func upstreamHeaders(for call: ProxiedCall) -> [HeaderField] {
        if let authorization = self.configuration.authorization {
            // The guard's own credential replaces the client's: applications never hold Milvus passwords.
            var headers: [HeaderField] = []
            headers.reserveCapacity(call.requestHeaders.count + 1)
            for field in call.requestHeaders where !isHopByHop(field.name) && field.name != "authorization" {
                headers.append(field.name == ":scheme" ? HeaderField(":scheme", self.scheme) : field)
            }
            headers.append(HeaderField("authorization", authorization))
            return headers
        }
        if !call.requestHeaders.contains(where: {
            isHopByHop($0.name) || ($0.name == ":scheme" && $0.value != self.scheme)
        }) {
            return call.requestHeaders
        }
        var headers: [HeaderField] = []
        headers.reserveCapacity(call.requestHeaders.count)
        for field in call.requestHeaders where !isHopByHop(field.name) {
            if field.name == ":scheme" {
                headers.append(HeaderField(":scheme", self.scheme))
            } else {
                headers.append(field)
            }
        }
        return headers
    }

    // MARK: Connection events

    /// The upstream's SETTINGS arrived: open the waiting calls that fit under its stream limit; the
    /// rest go to the front of the queue, in order.
    func connectionReady(_ connection: UpstreamConnection) {
        let waiting = connection.waiting
        connection.waiting = []
        var overflow: [ProxiedCall] = []
        for call in waiting {
            if connection.capacity > 0 {
                self.open(call, on: connection)
            } else {
                overflow.append(call)
            }
        }
        self.queue.insert(contentsOf: overflow, at: 0)
        self.streamFreed(on: connection)
        if !self.queue.isEmpty, self.connections.count < self.configuration.maxConnectionsPerLoop {
            // More calls than this connection may carry: open another one for them.
            let queued = self.queue
            self.queue = []
            for call in queued { self.start(call) }
        }
    }

    /// A stream closed or the stream limit grew: start queued calls.
    func streamFreed(on connection: UpstreamConnection) {
        while !self.queue.isEmpty, connection.state == .ready, connection.capacity > 0 {
            let call = self.queue.removeFirst()
            self.open(call, on: connection)
        }
    }

    func connectionDraining(_ connection: UpstreamConnection) {
        // New calls go elsewhere; queued ones may need a new connection.
        let queued = self.queue
        self.queue = []
        for call in queued { self.start(call) }
    }

    func connectionClosed(_ connection: UpstreamConnection) {
        self.connections.removeAll { $0 === connection }
        // Queued calls would otherwise wait for a connection that is gone.
        let queued = self.queue
        self.queue = []
        for call in queued { self.start(call) }
    }

    /// Closes every upstream connection (loop shutdown).
    func closeAll() {
        for connection in self.connections { connection.connection.close(reason: nil) }
    }
}

@available(*, unavailable)
extension UpstreamPool: Sendable {}
