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
///
/// An upstream named by a host name (`milvus:19530`) is resolved on the resolver thread, never on the loop
/// (getaddrinfo blocks while DNS answers, and a loop serves many clients): calls wait in the queue for the first
/// answer; later the last address is used and refreshed behind the calls every
/// ``UpstreamResolution/lifetimeNanoseconds``, and at once after connects to all its addresses failed.
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
    /// The upstream's address when it needs no DNS (a Unix path or a numeric host); nil for a name.
    private let numericAddress: Socket.ResolvedAddress?
    /// Runs getaddrinfo for a name, off the loop.
    private let resolver: OffLoopExecutor
    /// The last answer for a name.
    private var resolution: UpstreamResolution<Socket.ResolvedAddress>?
    private var resolving = false

    init(
        loop: EventLoop,
        configuration: UpstreamConfiguration,
        sessionSettings: HTTP2SessionSettings,
        tls: TLSContext?,
        resolver: OffLoopExecutor,
        metrics: LoopMetrics? = nil,
        logger: Logger
    ) {
        self.loop = loop
        self.resolver = resolver
        self.numericAddress = Socket.numericAddress(configuration.address)
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
                !self.connections.contains(where: { $0.state == .connecting }),
                case .ready(let target) = self.target()
            {
                _ = try? self.connect(to: target)
            }
            self.open(call, on: best)
            return
        }
        if let connecting = self.connections.first(where: { $0.state == .connecting && $0.capacity > 0 }) {
            connecting.waiting.append(call)
            return
        }
        if self.connections.count < self.configuration.maxConnectionsPerLoop {
            switch self.target() {
            case .pending:
                self.queue.append(call)
            case .failed(let reason):
                self.metrics?.recordUpstreamError(.connect)
                call.upstreamFailed(GRPCStatus(.unavailable, "upstream \(self.address) unreachable: \(reason)"))
            case .ready(let target):
                do {
                    let connection = try self.connect(to: target)
                    connection.waiting.append(call)
                } catch {
                    self.addressFailed()
                    self.metrics?.recordUpstreamError(.connect)
                    call.upstreamFailed(GRPCStatus(.unavailable, "upstream \(self.address) unreachable: \(error)"))
                }
            }
            return
        }
        self.queue.append(call)
    }

    // MARK: Resolution

    private enum Target {
        case ready(Socket.ResolvedAddress)
        /// A name is being resolved: wait in the queue.
        case pending
        case failed(String)
    }

    /// Where to connect now, without blocking the loop.
    private func target() -> Target {
        if let numeric = self.numericAddress { return .ready(numeric) }
        if let resolution = self.resolution {
            if resolution.isDue(now: EventLoop.now()) { _ = self.startResolution() }
            return .ready(resolution.current)  // the last answer meanwhile
        }
        return self.startResolution() ? .pending : .failed("the resolver's queue is full")
    }

    /// A connect to the address in use failed: see ``UpstreamResolution/connectFailed()``.
    private func addressFailed() {
        self.resolution?.connectFailed()
    }

    /// Asks the resolver thread for the upstream's address; its answer comes back as ``LoopMessage/resolved``.
    private func startResolution() -> Bool {
        guard !self.resolving else { return true }
        let address = self.address
        let mailbox = self.loop.mailbox
        self.resolving =
            self.resolver.submit {
                let result: Result<[Socket.ResolvedAddress], ProxyError>
                do {
                    result = .success(try Socket.resolveAll(address))
                } catch let error as ProxyError {
                    result = .failure(error)
                } catch {
                    result = .failure(ProxyError("\(error)"))
                }
                mailbox.send(.resolved(address, result))
            } == nil
        return self.resolving
    }

    /// The resolver's answer: connect the calls that waited for it, or fail them when there is no address at all.
    func resolved(_ address: SocketAddress, _ result: Result<[Socket.ResolvedAddress], ProxyError>) {
        guard address == self.address else { return }
        self.resolving = false
        switch result {
        case .success(let addresses):
            self.resolution = UpstreamResolution(addresses: addresses, now: EventLoop.now())
        case .failure(let error):
            self.metrics?.recordUpstreamError(.connect)
            self.logger.warning(
                "cannot resolve the upstream",
                metadata: ["upstream": "\(address)", "error": "\(error)"]
            )
            if self.resolution != nil {
                // Keep the last address; try the name again in a while.
                self.resolution?.resolutionFailed(now: EventLoop.now())
                return
            }
            guard self.connections.isEmpty else { return }
            let queued = self.queue
            self.queue = []
            for call in queued {
                call.upstreamFailed(GRPCStatus(.unavailable, "upstream \(address) unreachable: \(error)"))
            }
            return
        }
        let queued = self.queue
        self.queue = []
        for call in queued { self.start(call) }
    }

    private func open(_ call: ProxiedCall, on connection: UpstreamConnection) {
        guard call.isWaitingForUpstream else { return }
        if !call.attach(to: connection, headers: self.upstreamHeaders(for: call)) {
            call.upstreamFailed(GRPCStatus(.unavailable, "upstream \(self.address) refused a new stream"))
        }
    }

    private func connect(to target: Socket.ResolvedAddress) throws -> UpstreamConnection {
        let socket = try Socket.connect(to: target, for: self.address)
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

    func connectionClosed(_ connection: UpstreamConnection, neverConnected: Bool = false) {
        self.connections.removeAll { $0 === connection }
        if neverConnected { self.addressFailed() }
        // Queued calls would otherwise wait for a connection that is gone.
        let queued = self.queue
        self.queue = []
        for call in queued { self.start(call) }
    }

    /// Once a second (the worker's housekeeping): keepalive PINGs on connections with calls whose upstream has
    /// been silent, closing those that did not answer in time, and closing connections idle for too long.
    func housekeeping(now: UInt64) {
        // A copy: closing a connection removes it from `connections`.
        for connection in self.connections {
            connection.housekeeping(now: now, configuration: self.configuration)
        }
    }

    /// Closes every upstream connection (loop shutdown).
    func closeAll() {
        for connection in self.connections { connection.connection.close(reason: nil) }
    }
}

@available(*, unavailable)
extension UpstreamPool: Sendable {}

/// The addresses a name resolved to, which one is in use, and when to resolve the name again.
///
/// A failed connect moves to the next address (IPv4 after IPv6, say); once every address failed in a row, the
/// name is due for another resolution (it may point elsewhere now: a restarted Milvus). A fresh answer lives
/// ``lifetimeNanoseconds``; a failed resolution keeps the last answer and tries again after a tenth of that.
struct UpstreamResolution<Address> {
    static var lifetimeNanoseconds: UInt64 { 30_000_000_000 }

    /// Never empty; the one in use first.
    private(set) var addresses: [Address]
    private(set) var refreshAt: UInt64
    private var failuresInARow = 0

    /// - Precondition: `addresses` is not empty.
    init(addresses: [Address], now: UInt64) {
        precondition(!addresses.isEmpty, "a resolution has at least one address")
        self.addresses = addresses
        self.refreshAt = now + Self.lifetimeNanoseconds
    }

    var current: Address { self.addresses[0] }

    func isDue(now: UInt64) -> Bool { now >= self.refreshAt }

    mutating func connectFailed() {
        self.addresses.append(self.addresses.removeFirst())
        self.failuresInARow += 1
        if self.failuresInARow >= self.addresses.count {
            self.refreshAt = 0
            self.failuresInARow = 0
        }
    }

    mutating func resolutionFailed(now: UInt64) {
        self.refreshAt = now + Self.lifetimeNanoseconds / 10
    }
}
