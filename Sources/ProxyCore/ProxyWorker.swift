import AuditStore
import CLinux
import GuardPolicy
import Logging
import MilvusCatalog
import NGHTTP2Support
import OpenSSLSupport
import Synchronization

/// Everything one event-loop thread owns: the loop, its share of the listening socket, its client
/// connections and its upstream pool. Created and used on that thread only.
final class ProxyWorker: LoopHandler {
    let loop: EventLoop
    let configuration: ProxyConfiguration
    let logger: Logger
    let pool: UpstreamPool
    private let listener: Int32
    private var listenerToken: UInt64 = 0
    private var clients: [ObjectIdentifier: ClientConnection] = [:]
    private let serverSettings: HTTP2SessionSettings
    /// The context new client connections are made from: the server's, shared by every loop (a context is shared
    /// safely), then the one a reload builds and sends to every loop (``LoopMessage/serverTLSChanged(_:)``).
    private(set) var serverTLS: TLSContext?
    /// Bumped with each ``serverTLS`` a reload brings.
    private(set) var tlsGeneration = 0
    private var draining = false
    private var drainDeadline: UInt64 = 0
    /// True while the listener is not watched after an accept failed for lack of descriptors or memory.
    private var acceptPaused = false
    /// Connections closed at accept since the last log line, by the limit that refused them (indexed by
    /// ``ConnectionRefusalKind``), with the address of the last one.
    private var closedAtAccept = [(count: Int, address: String?)](
        repeating: (0, nil),
        count: ConnectionRefusalKind.allCases.count
    )
    /// Mutations refused because the audit store could not write their request record.
    var storeRefusals = OncePerSecondLog()
    /// Outcome and refusal records dropped because the audit queue was full.
    var droppedRecords = OncePerSecondLog()
    /// Client connections TLS ended (``auditTLSFailure(_:reason:)``).
    var tlsFailures = OncePerSecondLog()
    /// Calls whose message the decoder thread is inflating and decoding, by request number (never reused), until
    /// its outcome arrives, even if the call ends meanwhile.
    private var offLoopDecodes: [UInt64: ProxiedCall] = [:]
    private var lastOffLoopDecode: UInt64 = 0

    /// What all loops share (held-bytes budget, failure limiter, verifier thread).
    let services: SharedServices
    /// The policy in force on this loop, and its generation.
    private(set) var active: ActivePolicy
    private(set) var generation: Int
    /// Successful verifications on this loop (see ``VerificationCache``).
    var verifications: VerificationCache
    /// Calls waiting for a password verification, by the cache key of their `authorization` value: one
    /// PBKDF2 serves every call that presented the same credential meanwhile.
    var awaitingVerification: [[UInt8]: [ProxiedCall]] = [:]
    /// Mutations waiting for their request record to be durable, by audit token.
    var awaitingAudit: [UInt64: ProxiedCall] = [:]
    var auditTokens: UInt64 = 0
    /// Records were queued during this loop iteration; the writer is woken at its end.
    var auditWakeDue = false
    /// Call ids: a random prefix per loop and a counter.
    let callIDPrefix: UInt64
    var callCounter: UInt64 = 0
    /// Receives the audit writer's results for this loop.
    let auditListener: LoopAuditListener
    /// This loop's counters.
    let metrics: LoopMetrics

    var heldBudget: HeldBytesBudget { self.services.heldBudget }

    init(
        loop: EventLoop,
        listener: Int32,
        configuration: ProxyConfiguration,
        services: SharedServices,
        policy: ActivePolicy,
        generation: Int,
        serverTLS: TLSContext?,
        metrics: LoopMetrics,
        logger: Logger
    ) throws {
        self.loop = loop
        self.metrics = metrics
        self.auditListener = LoopAuditListener(mailbox: loop.mailbox)
        let random = (try? Crypto.randomBytes(count: 8)) ?? []
        self.callIDPrefix = random.reduce(UInt64(0)) { $0 << 8 | UInt64($1) } ^ EventLoop.now()
        self.services = services
        self.active = policy
        self.generation = generation
        self.verifications = VerificationCache(
            ttlNanoseconds: UInt64(configuration.limits.credentialCacheMilliseconds) * 1_000_000
        )
        self.listener = listener
        self.configuration = configuration
        self.logger = logger
        let limits = configuration.limits
        var settings = HTTP2SessionSettings()
        settings.maxConcurrentStreams = UInt32(clamping: limits.maxConcurrentStreams)
        settings.streamWindowBytes = UInt32(clamping: limits.streamWindowBytes)
        settings.connectionWindowBytes = UInt32(clamping: limits.connectionWindowBytes)
        settings.maxHeaderListBytes = UInt32(clamping: limits.maxHeaderListBytes)
        settings.maxContinuations = Self.maxContinuations(forHeaderListBytes: limits.maxHeaderListBytes)
        var upstreamSettings = settings
        upstreamSettings.maxHeaderListBytes = UInt32(clamping: Self.upstreamHeaderListBytes(limits))
        upstreamSettings.maxContinuations = Self.maxContinuations(
            forHeaderListBytes: Self.upstreamHeaderListBytes(limits)
        )
        // What one side accepted must be sendable to the other: nghttp2 sends no header block over 64 KiB unless
        // told otherwise, and a larger one was accepted, then never sent (a client waited forever for trailers
        // Milvus had sent; a request with 70 KB of metadata was refused as if Milvus had refused it).
        settings.maxSendHeaderBlockBytes = Self.upstreamHeaderListBytes(limits) + Self.headerBlockMargin
        upstreamSettings.maxSendHeaderBlockBytes =
            limits.maxHeaderListBytes + Self.headerBlockMargin + (configuration.upstream.authorization?.utf8.count ?? 0)
        if let override = limits.sendHeaderBlockOverride {
            settings.maxSendHeaderBlockBytes = override
            upstreamSettings.maxSendHeaderBlockBytes = override
        }
        self.serverSettings = settings
        self.serverTLS = serverTLS
        self.pool = UpstreamPool(
            loop: loop,
            configuration: configuration.upstream,
            sessionSettings: upstreamSettings,
            tls: try configuration.upstream.tls.map { try TLSContexts.client($0) },
            resolver: services.resolver,
            metrics: metrics,
            logger: logger
        )
        try self.watchListener()
        loop.onMessage = { [unowned self] message in self.receive(message) }
        loop.onIterationEnd = { [unowned self] in self.wakeAuditWriter() }
        self.scheduleHousekeeping()
    }

    /// The header-list limit toward Milvus (its response headers and trailers): `limits.max_header_list_bytes`, and
    /// at least 1 MiB, so that a client's small limit does not cut Milvus's answers short.
    static func upstreamHeaderListBytes(_ limits: Limits) -> Int { max(limits.maxHeaderListBytes, 1 << 20) }

    /// Added to a header list limit to give the send limit of the session that forwards such lists: nghttp2's
    /// measure of a block (``HTTP2SessionSettings/maxSendHeaderBlockBytes``) is at most the list size plus 17 bytes,
    /// and the proxy adds little to what it forwards (the upstream `authorization`, counted apart, and `:scheme`).
    static let headerBlockMargin = 4096

    /// CONTINUATION frames a client's header block may take (CVE-2024-28182): nghttp2's 8 (9 frames, 144 KiB with
    /// 16 KiB frames) unless `limits.max_header_list_bytes` needs more. A header list of n bytes encodes into fewer
    /// than n bytes, so n / 16 KiB frames (and one to spare) carry any list within the limit; with 8 only, blocks
    /// over about 144 KB closed the client's connection whatever the limit said.
    static func maxContinuations(forHeaderListBytes bytes: Int) -> Int {
        max(HTTP2SessionSettings().maxContinuations, bytes / 16_384 + 1)
    }

    // MARK: Accepting

    func handleEvents(_ events: UInt32) {
        guard !self.draining, !self.acceptPaused else { return }
        for _ in 0..<64 {
            let socket: Socket?
            do {
                socket = try Socket.accept(listener: self.listener)
            } catch {
                // Out of descriptors (EMFILE, ENFILE) or memory: the connection stays in the backlog and the
                // listener stays readable, so retrying now would spin. Stop watching it for a while.
                self.pauseAccepting(error)
                return
            }
            guard let socket else { return }
            let host = ClientConnection.countedHost(of: socket.peer)
            if let refusal = self.services.admitClient(host: host) {
                // Logged by the housekeeping timer, once a second at most. `socket` closes as it goes.
                self.closedAtAccept[refusal.rawValue].count += 1
                self.closedAtAccept[refusal.rawValue].address = host
                self.metrics.recordConnectionRefused(refusal)
                continue
            }
            do {
                let session = try HTTP2Session(role: .server, settings: self.serverSettings)
                let tls = try self.serverTLS.map { try TLSConnection(context: $0) }
                let client = try ClientConnection(worker: self, socket: socket, session: session, tls: tls)
                self.clients[ObjectIdentifier(client)] = client
                self.metrics.connectionOpened()
                client.markDirty()  // our SETTINGS go out at once
            } catch {
                self.services.releaseClient(host: host)
                self.logger.warning("cannot set up a client connection", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Stops watching the listener for ``acceptPauseMilliseconds`` after an accept failed for lack of resources.
    private func pauseAccepting(_ error: any Error) {
        self.acceptPaused = true
        self.loop.unregister(self.listener, token: self.listenerToken)
        self.logger.warning(
            "accept failed: not accepting for \(Self.acceptPauseMilliseconds) ms",
            metadata: ["error": "\(error)"]
        )
        self.loop.schedule(afterMilliseconds: Self.acceptPauseMilliseconds) { [weak self] in
            guard let self, self.acceptPaused else { return }
            self.acceptPaused = false
            guard !self.draining else { return }
            do {
                try self.watchListener()
            } catch {
                self.pauseAccepting(error)
            }
        }
    }

    /// Registers the listening socket with this loop. Every loop waits on the one listening socket; EPOLLEXCLUSIVE
    /// wakes only one of them per connection.
    private func watchListener() throws {
        self.listenerToken = try self.loop.register(
            self.listener,
            events: CLINUX_EPOLLIN | CLINUX_EPOLLEXCLUSIVE,
            handler: self
        )
    }

    static let acceptPauseMilliseconds = 100

    func clientClosed(_ client: ClientConnection) {
        guard self.clients.removeValue(forKey: ObjectIdentifier(client)) != nil else { return }
        self.services.releaseClient(host: ClientConnection.countedHost(of: client.peer))
        self.metrics.connectionClosed()
        if self.draining { self.stopIfDrained() }
    }

    // MARK: Messages and timers

    private func receive(_ message: LoopMessage) {
        switch message {
        case .shutdown(let deadline):
            guard !self.draining else { return }
            self.draining = true
            self.drainDeadline = deadline
            self.loop.unregister(self.listener, token: self.listenerToken)
            for client in self.clients.values { client.beginShutdown() }
            self.stopIfDrained()
        case .policyChanged(let policy, let generation):
            guard generation > self.generation else { return }
            self.active = policy
            self.generation = generation
            self.logger.debug("policy reloaded", metadata: ["generation": "\(generation)"])
        case .serverTLSChanged(let context):
            guard self.serverTLS != nil else { return }
            self.serverTLS = context
            self.tlsGeneration += 1
            self.logger.debug("server TLS files reloaded")
        case .credentialVerified(let key, let outcome, let generation):
            self.credentialVerified(key: key, outcome: outcome, generation: generation)
        case .audited(let results):
            self.audited(results)
        case .resolved(let address, let result):
            self.pool.resolved(address, result)
        case .adminAnswered:
            break  // the admin loop's; a proxy loop is never sent it
        case .decoded(let request, let outcome):
            self.offLoopDecodes.removeValue(forKey: request)?.decodedOffLoop(outcome)
        }
    }

    /// Once a second: close idle clients, refuse requests not complete within `limits.request_timeout`; while draining, close clients whose calls are done and stop
    /// at the deadline.
    private func scheduleHousekeeping() {
        self.loop.schedule(afterMilliseconds: 1000) { [unowned self] in
            let now = EventLoop.now()
            let idleLimit = UInt64(self.configuration.limits.idleTimeoutMilliseconds) * 1_000_000
            let handshakeLimit = UInt64(self.configuration.limits.handshakeTimeoutMilliseconds) * 1_000_000
            let requestTimeout = self.configuration.limits.requestTimeoutMilliseconds
            for client in self.clients.values {
                client.closeIfStillHandshaking(now: now, limit: handshakeLimit)
                if requestTimeout > 0 { client.refuseUnfinishedRequests(now: now, timeoutMilliseconds: requestTimeout) }
                if !client.hasCalls && now - client.lastActivity > idleLimit { client.closeIfIdle() }
            }
            self.pool.housekeeping(now: now)
            for kind in ConnectionRefusalKind.allCases { self.logClosedAtAccept(kind) }
            if let (refused, error) = self.storeRefusals.endSecond() {
                self.logger.error(
                    "audit store unavailable: more mutations refused",
                    metadata: ["refused": "\(refused)", "error": "\(error)"]
                )
            }
            if let (failed, last) = self.tlsFailures.endSecond() {
                self.logger.notice(
                    "more TLS connections refused",
                    metadata: ["connections": "\(failed)", "last": "\(last)"]
                )
            }
            if let audit = self.services.audit {
                // Records the writer could not keep (the store refuses them for good, a failed sync, its WAL gone):
                // said when it happens, by whichever loop looks first, not only at exit (a red-team run saw the
                // only line at exit).
                let lost = audit.log.lost
                let reported = self.services.lostRecordsReported.exchange(lost, ordering: .relaxed)
                if lost > reported {
                    self.logger.error(
                        "audit records lost: records of calls that had ended were not written",
                        metadata: ["records": "\(lost - reported)", "since_start": "\(lost)"]
                    )
                }
            }
            if let (dropped, last) = self.droppedRecords.endSecond() {
                self.logger.warning(
                    "audit queue full: more records dropped",
                    metadata: ["dropped": "\(dropped)", "last": "\(last)"]
                )
            }
            if self.draining {
                self.stopIfDrained()
                if now >= self.drainDeadline {
                    self.logger.warning("drain timeout: closing connections with calls in flight")
                    for client in self.clients.values { client.connection.close(reason: "drain timeout") }
                    self.finish()
                    return
                }
            }
            self.scheduleHousekeeping()
        }
    }

    /// Logs, once a second at most, the connections closed at accept for one reason since the last time (`closed`,
    /// then reset), with the last address refused when the limit is per address.
    /// Logs the connections `kind` closed at accept since the last line, if any, with the limit and (for the
    /// per-address limits) the last address.
    private func logClosedAtAccept(_ kind: ConnectionRefusalKind) {
        let (closed, address) = self.closedAtAccept[kind.rawValue]
        guard closed > 0 else { return }
        self.closedAtAccept[kind.rawValue] = (0, nil)
        let limits = self.configuration.limits
        let (message, limit): (Logger.Message, Int) =
            switch kind {
            case .clientConnections:
                ("client connection limit reached: new connections closed", self.services.clientLimit)
            case .connectionsPerClient:
                ("per-address connection limit reached: new connections closed", self.services.perAddressLimit)
            case .refusalsPerMinute:
                ("refused-call limit reached: new connections from the address closed", limits.refusalsPerWindow)
            case .newConnectionsPerMinute:
                (
                    "new-connection limit reached: new connections from the address closed",
                    limits.newConnectionsPerWindow
                )
            }
        var metadata: Logger.Metadata = ["closed": "\(closed)", "limit": "\(limit)"]
        if kind != .clientConnections { metadata["address"] = "\(address ?? "")" }
        self.logger.warning(message, metadata: metadata)
    }

    private func stopIfDrained() {
        for client in self.clients.values { client.closeIfIdle() }
        if self.clients.isEmpty { self.finish() }
    }

    private func finish() {
        self.pool.closeAll()
        self.loop.stop()
    }
}

@available(*, unavailable)
extension ProxyWorker: Sendable {}

extension ProxyWorker {
    /// Inflates and decodes `decoding` on the decoder thread (client networks take turns there); the outcome comes
    /// back through the mailbox to ``ProxiedCall/decodedOffLoop(_:)``. False when the decoder has no room (the call
    /// is then refused).
    func decodeOffLoop(_ call: ProxiedCall, _ job: DecodeJob) -> Bool {
        self.lastOffLoopDecode += 1
        let request = self.lastOffLoopDecode
        let mailbox = self.loop.mailbox
        let refused = self.services.decoder.submit(key: call.client?.network ?? "") {
            guard let decoding = job.take() else {
                mailbox.send(.decoded(request: request, outcome: nil))  // the call ended meanwhile
                return
            }
            let outcome: DecodeOutcome
            do throws(RequestGate.Refusal) {
                outcome = .decoded(try decoding.decode { !job.isCancelled })
            } catch {
                outcome = .refused(error.status)
            }
            mailbox.send(.decoded(request: request, outcome: outcome))
        }
        guard refused == nil else { return false }
        self.offLoopDecodes[request] = call
        return true
    }
}
