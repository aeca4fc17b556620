import CLinux
public import Logging
import Synchronization

/// The `admin:` section of guard.yaml: where the admin listener binds and its limits. Off unless configured;
/// loopback by default, because it serves the audit log.
public struct AdminConfiguration: Sendable, Equatable {
    /// The address to listen on (`127.0.0.1:19532` by default).
    public var listen: SocketAddress
    /// The whole life of one admin connection, request and answer included; a client that has not sent its
    /// request by then (slowloris) is closed.
    public var connectionTimeoutMilliseconds: Int
    /// Open admin connections at most; beyond that a new connection is accepted and closed at once.
    public var maxConnections: Int
    /// The bound on a request's line plus headers (431 beyond).
    public var maxHeadBytes: Int

    public init(
        listen: SocketAddress = .tcp(host: "127.0.0.1", port: 19532),
        connectionTimeoutMilliseconds: Int = 5_000,
        maxConnections: Int = 64,
        maxHeadBytes: Int = 8 * 1024
    ) {
        self.listen = listen
        self.connectionTimeoutMilliseconds = connectionTimeoutMilliseconds
        self.maxConnections = maxConnections
        self.maxHeadBytes = maxHeadBytes
    }
}

/// The admin listener: HTTP/1.1 on its own thread and event loop, one request per connection, for `/healthz`,
/// `/readyz`, `/metrics` and `/audit`.
///
/// Nothing here touches a proxy loop: the backend (policy checks with PBKDF2, audit queries) runs on this
/// thread, and metrics are read by locking each loop's table briefly. Start it with
/// ``start(configuration:backend:metrics:logger:)``, which binds before returning (a bad address fails at
/// once) and exposes ``boundPort``; stop it from any thread with ``shutdown()``, then ``join()``.
public final class AdminServer: Sendable {
    public let configuration: AdminConfiguration
    private let router: AdminRouter
    private let logger: Logger
    private let mailbox = LoopMailbox()
    /// The listening socket; closed by the admin thread when its loop ends.
    private let listener: Mutex<Socket?>
    private let listenerDescriptor: Int32
    private let thread = Mutex<LoopThread?>(nil)
    private let running = Atomic<Bool>(true)
    private let stopping = Atomic<Bool>(false)

    /// The TCP port the listener is bound to (the kernel's choice when configured with port 0).
    public let boundPort: Int

    private init(configuration: AdminConfiguration, router: AdminRouter, logger: Logger) throws {
        self.configuration = configuration
        self.router = router
        self.logger = logger
        let socket = try Socket.listen(on: configuration.listen, backlog: 128)
        self.listenerDescriptor = socket.descriptor
        self.boundPort = Int(socket.localPort ?? 0)
        self.listener = Mutex(socket)
    }

    /// Binds the admin listener and starts its thread.
    /// - Throws: ``ProxyError`` when the address can't be bound, or the thread or its loop can't start.
    public static func start(
        configuration: AdminConfiguration,
        backend: any AdminBackend,
        metrics: ProxyMetrics,
        logger: Logger
    ) throws -> AdminServer {
        let server = try AdminServer(
            configuration: configuration,
            router: AdminRouter(backend: backend, metrics: metrics),
            logger: logger
        )
        try server.launch()
        logger.info(
            "admin listener started",
            metadata: ["listen": "\(configuration.listen)", "port": "\(server.boundPort)"]
        )
        return server
    }

    private func launch() throws {
        try self.thread.withLock { $0 = try self.makeThread() }
    }

    private func makeThread() throws -> LoopThread {
        try LoopThread(name: "guard-admin") { [self] in
            defer {
                self.listener.withLock { socket in
                    socket?.close()
                    socket = nil
                }
                self.running.store(false, ordering: .releasing)
            }
            do {
                let loop = try EventLoop(mailbox: self.mailbox)
                let worker = try AdminWorker(
                    loop: loop,
                    listener: self.listenerDescriptor,
                    configuration: self.configuration,
                    router: self.router,
                    logger: self.logger
                )
                withExtendedLifetime(worker) { loop.run() }
            } catch {
                self.logger.critical("admin loop failed to start", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Whether the admin thread is still running.
    public var isRunning: Bool { self.running.load(ordering: .acquiring) }

    /// Stops the listener: open admin connections are closed and the thread ends. Safe from any thread;
    /// repeated calls do nothing. Does not wait; see ``join()``.
    public func shutdown() {
        guard !self.stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        self.mailbox.send(.shutdown(deadline: EventLoop.now()))
    }

    /// Waits for the admin thread to end (after ``shutdown()``). Call from any thread but the admin thread.
    public func join() {
        self.thread.withLock { thread in
            thread?.join()
            thread = nil
        }
    }
}

/// The admin thread's state: its loop, the listening socket's registration and the open connections. Lives on
/// the admin thread only.
final class AdminWorker: LoopHandler {
    let loop: EventLoop
    let configuration: AdminConfiguration
    let router: AdminRouter
    let logger: Logger
    /// Where answers other than `/healthz` are worked out, off the admin loop, so that a slow one (an `/audit`
    /// query over a large store, a password check, `/readyz`'s probe of the upstream) does not hold up the others:
    /// `/audit` on a thread of its own, the rest on another. `/healthz` is answered on the loop.
    let auditAnswers: OffLoopExecutor
    let otherAnswers: OffLoopExecutor
    /// Password checks of credentials not verified lately, before their answers: client networks take turns, and
    /// one network may have ``checksPerNetwork`` queued. A caller whose credential is verified already never waits
    /// here (``AdminBackend/isVerified(authorization:)``).
    let credentialChecks: OffLoopExecutor
    static let checksPerNetwork = 16
    private let listener: Int32
    private var listenerToken: UInt64 = 0
    private var connections: [ObjectIdentifier: AdminConnection] = [:]
    /// Connections waiting for an answer worked out off the loop, by request number.
    private var answering: [UInt64: AdminConnection] = [:]
    private var lastRequest: UInt64 = 0

    init(
        loop: EventLoop,
        listener: Int32,
        configuration: AdminConfiguration,
        router: AdminRouter,
        logger: Logger
    ) throws {
        self.loop = loop
        self.listener = listener
        self.configuration = configuration
        self.router = router
        self.logger = logger
        self.auditAnswers = try OffLoopExecutor(name: "guard-admin-aud", capacity: configuration.maxConnections)
        self.otherAnswers = try OffLoopExecutor(name: "guard-admin-job", capacity: configuration.maxConnections)
        self.credentialChecks = try OffLoopExecutor(
            name: "guard-admin-pw",
            capacity: configuration.maxConnections,
            capacityPerKey: Self.checksPerNetwork
        )
        self.listenerToken = try loop.register(listener, events: CLINUX_EPOLLIN, handler: self)
        loop.onMessage = { [unowned self] message in self.receive(message) }
    }

    /// The listening socket is readable: accept what is waiting (at most 64 per wake-up, so that a flood does
    /// not starve the connections already open).
    func handleEvents(_ events: UInt32) {
        for _ in 0..<64 {
            let socket: Socket?
            do {
                socket = try Socket.accept(listener: self.listener)
            } catch {
                self.logger.warning("admin accept failed", metadata: ["error": "\(error)"])
                return
            }
            guard let socket else { return }
            if self.connections.count >= self.configuration.maxConnections {
                // At the limit, a connection whose answer is out makes room, else the oldest one whose request has
                // not arrived yet: slow clients holding every slot made /healthz fail 20 probes of 27 (a review).
                // With none, the new one is closed at once (accepting and closing empties the backlog, which
                // refusing to accept would not).
                let victim =
                    self.connections.values.first(where: \.isLingering)
                    ?? self.connections.values.filter(\.isReading).min { $0.openedAt < $1.openedAt }
                self.logger.notice("admin connection limit reached", metadata: ["peer": "\(socket.peer)"])
                guard let victim else {
                    socket.close()
                    continue
                }
                victim.close()
            }
            do {
                let connection = try AdminConnection(worker: self, socket: socket)
                self.connections[ObjectIdentifier(connection)] = connection
            } catch {
                self.logger.warning("cannot register an admin connection", metadata: ["error": "\(error)"])
            }
        }
    }

    /// The number of admin connections open now.
    var openConnections: Int { self.connections.count }

    func connectionClosed(_ connection: AdminConnection) {
        self.connections[ObjectIdentifier(connection)] = nil
        if let request = connection.pendingRequest { self.stopAwaiting(request) }
    }

    /// The answer to `request` was delivered, or nobody waits for it any more.
    func stopAwaiting(_ request: UInt64) {
        self.answering[request] = nil
    }

    /// Numbers a request whose answer is worked out off the loop, and remembers who waits for it.
    func awaitAnswer(for connection: AdminConnection) -> UInt64 {
        self.lastRequest += 1
        self.answering[self.lastRequest] = connection
        return self.lastRequest
    }

    private func receive(_ message: LoopMessage) {
        switch message {
        case .shutdown:
            // The admin listener has nothing to drain: answers are short and clients retry.
            self.loop.unregister(self.listener, token: self.listenerToken)
            for connection in Array(self.connections.values) { connection.close() }
            self.auditAnswers.stop()
            self.otherAnswers.stop()
            self.credentialChecks.stop()
            self.loop.stop()
        case .adminAnswered(let request, let response, let principal):
            // The connection may have timed out or been closed by its client meanwhile.
            self.answering[request]?.deliver(response, principal: principal)
        case .policyChanged, .serverTLSChanged, .credentialVerified, .audited, .resolved, .decoded:
            break  // proxy-loop messages; the admin loop is never sent them
        }
    }
}

@available(*, unavailable)
extension AdminWorker: Sendable {}
