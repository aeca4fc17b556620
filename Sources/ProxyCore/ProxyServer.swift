import AuditStore
import CLinux
import Glibc
import GuardPolicy
public import Logging
import OpenSSLSupport
import Synchronization

/// The running proxy: N event loops sharing one listening socket, each with its own client
/// connections and upstream pool.
public final class ProxyServer: Sendable {
    public let configuration: ProxyConfiguration
    private let logger: Logger
    private let mailboxes: [LoopMailbox]
    private let port = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    /// The policy in force and its generation (bumped by every reload); loops that start late read it here.
    private let active: Mutex<(policy: ActivePolicy, generation: Int)>
    private let audit: ProxyAudit?
    /// Counters and histograms of every loop (rendered by the admin listener's /metrics).
    public let metrics: ProxyMetrics

    /// Validates what can be checked without binding (thread count, limits).
    /// - Parameter policy: what the loops enforce until the first ``reload(_:)``.
    /// - Throws: ``ProxyError`` naming the problem.
    /// - Parameter audit: where records go; nil turns auditing off.
    public init(
        configuration: ProxyConfiguration,
        policy: ActivePolicy,
        audit: ProxyAudit? = nil,
        logger: Logger
    ) throws {
        guard configuration.threads >= 1 else { throw ProxyError("threads must be at least 1") }
        // Load the TLS files once here, so that a bad certificate fails before anything starts; the loops share it.
        let digests = configuration.tls.flatMap(Self.fileDigests(of:))
        let serverTLS = try configuration.tls.map { try TLSContexts.server($0) }
        self.serverTLSInForce = Mutex(serverTLS.map { ServerTLSFiles(context: $0, digests: digests) })
        self.clientCRLNextUpdateState = Mutex(serverTLS?.revocationListsNextUpdate)
        _ = try configuration.upstream.tls.map { try TLSContexts.client($0) }
        self.configuration = configuration
        self.logger = logger
        self.mailboxes = (0..<configuration.threads).map { _ in LoopMailbox() }
        self.active = Mutex((policy, 1))
        self.audit = audit
        self.metrics = ProxyMetrics(loopCount: configuration.threads)
    }

    /// The earliest `nextUpdate` (Unix seconds) of the client CRLs in force (`tls.client_crl`), for /metrics and the
    /// log: a CRL past it refuses every client of its CA. nil without CRLs.
    public var clientCRLNextUpdate: Int64? { self.clientCRLNextUpdateState.withLock { $0 } }
    private let clientCRLNextUpdateState: Mutex<Int64?>
    /// The server TLS context in force (loops that start late take it) and the digests of its files.
    private let serverTLSInForce: Mutex<ServerTLSFiles?>

    /// The SHA-256 of the client CAs and CRLs in force, for policy records (``ServerTLSFiles/trustDigests``).
    public var clientTrustDigests: [String: String] { self.serverTLSInForce.withLock { $0?.trustDigests ?? [:] } }

    /// The policy in force now (for the admin listener).
    public var currentPolicy: ActivePolicy { self.active.withLock { $0.policy } }
    /// The policy in force and its generation (bumped by every reload), read together.
    var currentPolicyAndGeneration: (policy: ActivePolicy, generation: Int) { self.active.withLock { $0 } }

    /// Puts a new policy in force on every loop: calls decided from now on use it; calls already decided
    /// keep their decision. Cached credential verifications are forgotten (a changed password counts at
    /// once). Safe from any thread.
    public func reload(_ policy: ActivePolicy, serverTLS: ServerTLSFiles? = nil) {
        let generation = self.active.withLock { active in
            active = (policy, active.generation + 1)
            return active.generation
        }
        self.reloads.withLock {
            $0.applied += 1
            $0.pending = false
        }
        if let serverTLS {
            self.clientCRLNextUpdateState.withLock { $0 = serverTLS.context.revocationListsNextUpdate }
            self.serverTLSInForce.withLock { $0 = serverTLS }
        }
        for mailbox in self.mailboxes {
            // The TLS files first: a call the new policy judges has its connection's certificate checked again.
            if let serverTLS { mailbox.send(.serverTLSChanged(serverTLS.context)) }
            mailbox.send(.policyChanged(policy, generation: generation))
        }
    }

    /// Whether `configuration`'s files make a server TLS context (what a reload would build), for checking them
    /// before asking a running guard to reload.
    /// - Throws: ``ProxyError`` naming the file that does not load.
    public static func checkServerTLS(_ configuration: ServerTLSConfiguration) throws {
        _ = try TLSContexts.server(configuration)
    }

    /// A server TLS context, with the digests of the files it was built from.
    public struct ServerTLSFiles: Sendable {
        let context: TLSContext
        /// ``fileDigests(of:)``, read just before the context was built; nil when a file could not be read then.
        let digests: [String: [UInt8]]?

        /// The SHA-256 (hex) of the client CAs and CRLs, for policy records: `tls.client_ca`, `tls.client_crl`.
        public var trustDigests: [String: String] {
            var trust: [String: String] = [:]
            for key in ["client_ca", "client_crl"] {
                if let digest = self.digests?[key] { trust["tls.\(key)"] = Hex.encode(digest) }
            }
            return trust
        }
    }

    /// The server TLS context built anew from its files (certificate, key, client CAs and CRLs), for a reload; nil
    /// without TLS, or when the files are byte for byte those in force (a policy-only reload then leaves the TLS
    /// contexts, and the connections made from them, alone). Nothing changes until it is passed to
    /// ``reload(_:serverTLS:)``.
    /// - Throws: ``ProxyError`` naming the file that does not load.
    public func loadServerTLS() throws -> ServerTLSFiles? {
        guard let tls = self.configuration.tls else { return nil }
        let digests = Self.fileDigests(of: tls)
        if let digests, digests == self.serverTLSInForce.withLock({ $0?.digests }) { return nil }
        return ServerTLSFiles(context: try TLSContexts.server(tls), digests: digests)
    }

    /// The SHA-256 of each server TLS file, by its key in guard.yaml's `tls` (`cert`, `key`, `client_ca`,
    /// `client_crl`); nil when one can't be read (building the context then says why). The paths never change while
    /// the guard runs.
    static func fileDigests(of tls: ServerTLSConfiguration) -> [String: [UInt8]]? {
        var digests: [String: [UInt8]] = [:]
        let files = [
            ("cert", tls.certificatePath), ("key", tls.keyPath), ("client_ca", tls.clientCAPath),
            ("client_crl", tls.clientCRLPath),
        ]
        for case (let key, let path?) in files {
            guard let contents = Self.read(path) else { return nil }
            digests[key] = Crypto.sha256(contents)
        }
        return digests
    }

    /// A whole file, up to 64 MiB; nil when it can't be read or is larger.
    private static func read(_ path: String) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var contents: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0, contents.count + count <= 64 << 20 else { return nil }
            if count == 0 { return contents }
            contents += chunk[..<count]
        }
    }

    /// Names the audit record of the policy the server was made with, once it is written: the records of calls
    /// decided under it carry its sequence number. For the start, before ``run()``; after a reload it changes nothing
    /// (a reloaded policy comes with its own).
    public func recordedStartPolicy(sequence: Int64) {
        self.active.withLock { active in
            guard active.generation == 1 else { return }
            let policy = active.policy
            active.policy = ActivePolicy(policy: policy.policy, mode: policy.mode, recordSequence: sequence)
        }
    }

    /// A reload that was not applied: `pending` when it waits for the audit store to record it (it is tried again),
    /// else rejected for what the config or policy files say. For /metrics.
    public func reloadNotApplied(pending: Bool) {
        self.reloads.withLock {
            if pending {
                $0.unrecorded += 1
            } else {
                $0.rejected += 1
            }
            $0.pending = pending
        }
    }

    /// Reloads so far, by what became of them, and whether one waits for the audit store now.
    var reloadCounts: ReloadCounts { self.reloads.withLock { $0 } }

    struct ReloadCounts: Sendable {
        var applied = 0
        var rejected = 0
        var unrecorded = 0
        var pending = false
    }
    private let reloads = Mutex(ReloadCounts())

    /// The TCP port clients connect to, once ``run()`` has bound it (useful with port 0); 0 before.
    public var boundPort: Int { self.port.load(ordering: .acquiring) }

    /// The configured limits, with `clientConnections` lowered to what the descriptor limit (raised to its hard
    /// limit first) leaves after the upstream connections and a reserve for the store, the admin listener and
    /// each loop's own descriptors: running out of descriptors would also stop Milvus connections and audit writes.
    private func descriptorBoundLimits() -> Limits {
        var limits = self.configuration.limits
        let available = clinux_raise_descriptor_limit()
        guard available > 0 else { return limits }
        let threads = self.configuration.threads
        let reserve = 64 + threads * (self.configuration.upstream.maxConnectionsPerLoop + 8)
        let fitting = max(1, Int(clamping: available) - reserve)
        if fitting < limits.clientConnections {
            self.logger.warning(
                "limits.client_connections lowered to fit the descriptor limit",
                metadata: [
                    "configured": "\(limits.clientConnections)",
                    "used": "\(fitting)",
                    "descriptor-limit": "\(available)",
                ]
            )
            limits.clientConnections = fitting
        }
        return limits
    }

    /// Binds, starts the loops and blocks until a shutdown has drained.
    /// - Throws: ``ProxyError`` when the listen address can't be bound or a loop can't start.
    public func run() throws {
        let listener = try Socket.listen(on: self.configuration.listen)
        defer { listener.close() }
        let descriptor = listener.descriptor
        self.port.store(Int(listener.localPort ?? 0), ordering: .releasing)
        self.logger.info(
            "milvus-guard listening",
            metadata: [
                "listen": "\(self.configuration.listen)",
                "port": "\(self.boundPort)",
                "upstream": "\(self.configuration.upstream.address)",
                "upstream-tls": "\(self.configuration.upstream.tls != nil)",
                "tls": "\(self.configuration.tls != nil)",
                "threads": "\(self.configuration.threads)",
            ]
        )
        if self.configuration.tls == nil, !self.configuration.listen.isLoopback {
            self.logger.warning(
                """
                listening beyond loopback without TLS: clients' credentials (Milvus authorization metadata, API keys) \
                cross the network in clear; configure tls, or keep the guard on a trusted network
                """,
                metadata: ["listen": "\(self.configuration.listen)"]
            )
        }
        let services = try SharedServices(
            limits: self.descriptorBoundLimits(),
            audit: self.audit,
            loops: self.configuration.threads
        )
        defer { services.stop() }
        self.metrics.readBudgets { [services] in
            [
                ("requests", services.heldBudget.current), ("responses", services.responseBudget.current),
                ("unproven", services.unprovenBudget.current),
            ]
        }
        defer { self.metrics.readBudgets(from: nil) }
        var threads: [LoopThread] = []
        for (index, mailbox) in self.mailboxes.enumerated() {
            let configuration = self.configuration
            var logger = self.logger
            logger[metadataKey: "loop"] = "\(index)"
            threads.append(
                try LoopThread(name: "guard-loop-\(index)") { [logger] in
                    do {
                        let loop = try EventLoop(mailbox: mailbox)
                        let (policy, generation) = self.active.withLock { $0 }
                        let worker = try ProxyWorker(
                            loop: loop,
                            listener: descriptor,
                            configuration: configuration,
                            services: services,
                            policy: policy,
                            generation: generation,
                            serverTLS: self.serverTLSInForce.withLock { $0?.context },
                            metrics: self.metrics.forLoop(index),
                            logger: logger
                        )
                        withExtendedLifetime(worker) { loop.run() }
                    } catch {
                        logger.critical("event loop failed to start", metadata: ["error": "\(error)"])
                    }
                }
            )
        }
        for thread in threads { thread.join() }
        self.logger.info("milvus-guard stopped")
    }

    /// Starts a graceful shutdown: GOAWAY to every client, in-flight calls get the drain timeout.
    /// Safe from any thread, including a signal-handling thread; repeated calls do nothing.
    public func shutdown() {
        guard !self.stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        self.logger.info(
            "shutting down",
            metadata: ["drain-timeout-ms": "\(self.configuration.limits.drainTimeoutMilliseconds)"]
        )
        let deadline = EventLoop.now() + UInt64(self.configuration.limits.drainTimeoutMilliseconds) * 1_000_000
        for mailbox in self.mailboxes { mailbox.send(.shutdown(deadline: deadline)) }
    }
}

/// Failures of the proxy's own setup.
public struct ProxyError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
