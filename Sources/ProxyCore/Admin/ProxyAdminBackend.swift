public import AuditStore
import Glibc
import GuardPolicy
import MilvusCatalog
import Synchronization

/// The admin listener's view of the running guard: callers are checked against the policy in force
/// (a user or API key whose roles grant the `admin` action), /audit reads the audit store, /readyz probes
/// Milvus and the store. Runs on the admin thread, never on a proxy loop, so it may block.
public final class ProxyAdminBackend: AdminBackend {
    private let server: ProxyServer
    private let audit: ProxyAudit?
    /// Opens a reader of the audit store (one per request: SQLite connections are cheap, and a reader
    /// sees the writer's commits).
    private let openReader: @Sendable () throws(AuditStoreError) -> any AuditReader
    private let upstream: SocketAddress
    private let verifications = Mutex(VerificationCache(ttlNanoseconds: 60 * 1_000_000_000, capacity: 256))
    private let failures = Mutex(FailureLimiter(threshold: 20))

    public init(
        server: ProxyServer,
        audit: ProxyAudit?,
        openReader: @escaping @Sendable () throws(AuditStoreError) -> any AuditReader
    ) {
        self.server = server
        self.audit = audit
        self.openReader = openReader
        self.upstream = server.configuration.upstream.address
    }

    // MARK: Authorization

    /// `Authorization: Basic base64(user:password)` or `Bearer <api key>` (or `Bearer user:password`). After 20
    /// failed verifications in a minute from one client address, that address is refused without a check.
    public func authorizeAdmin(authorization: String?, client: String) -> AdminAuthorization {
        guard let authorization, !authorization.isEmpty else {
            return .unauthenticated(reason: "no credentials")
        }
        let credential: Credential?
        if authorization.hasPrefix("Basic ") {
            credential = Credential(authorization: String(authorization.dropFirst(6)))
        } else if authorization.hasPrefix("Bearer ") {
            let token = String(authorization.dropFirst(7))
            if let colon = token.firstIndex(of: ":"), colon != token.startIndex {
                credential = .password(
                    user: String(token[..<colon]),
                    password: String(token[token.index(after: colon)...])
                )
            } else {
                credential = token.isEmpty ? nil : .apiKey(token)
            }
        } else {
            credential = nil
        }
        guard let credential else { return .unauthenticated(reason: "malformed authorization header") }
        // One read: a verification cached under a generation must have been made against that policy.
        let (active, generation) = self.server.currentPolicyAndGeneration
        let policy = active.policy
        let now = EventLoop.now()
        let key = VerificationCache.key(for: authorization)
        var outcome = self.verifications.withLock { $0.lookup(key, now: now, generation: generation) }
        if outcome == nil {
            // 20 failures a minute per client address, as on the gRPC port.
            let limitKey = client
            if self.failures.withLock({ $0.isBlocked(limitKey, now: now) }) {
                return .unauthenticated(reason: "too many failed attempts; try again in a minute")
            }
            let verified = Authenticator.verify(credential, policy: policy)
            switch verified {
            case .authenticated:
                self.verifications.withLock { $0.store(verified, for: key, now: now, generation: generation) }
            case .rejected:
                _ = self.failures.withLock { $0.recordFailure(limitKey, now: now) }
            }
            outcome = verified
        }
        switch outcome {
        case .authenticated(let principal)?:
            return Self.admits(principal, in: policy)
        case .rejected(let reason)?:
            return .unauthenticated(reason: reason)
        case nil:
            return .unauthenticated(reason: "not verified")
        }
    }

    /// Whether `principal`'s roles grant the `admin` action.
    private static func admits(_ principal: Principal, in policy: Policy) -> AdminAuthorization {
        guard policy.enforcedRuleSet.grantsActionClass(.admin, to: principal) != nil else {
            return .forbidden(reason: "\(principal.name) is not granted the admin action on *")
        }
        return .allowed(principal: principal.name)
    }

    public func cachedAuthorization(authorization: String?) -> AdminAuthorization? {
        guard let authorization, !authorization.isEmpty else { return nil }
        let (active, generation) = self.server.currentPolicyAndGeneration
        let key = VerificationCache.key(for: authorization)
        let cached = self.verifications.withLock {
            $0.lookup(key, now: EventLoop.now(), generation: generation, renewing: true)
        }
        guard case .authenticated(let principal)? = cached else { return nil }
        return Self.admits(principal, in: active.policy)
    }

    // MARK: Routes

    /// GET /audit: the `milvus-guard audit` filters as query parameters (`since`, `until`, `user`, `db`,
    /// `collection`, `rpc`, `decision`, `outcome`, `limit`, `after_id`), JSON lines as the CLI prints them, wrapped in
    /// an array.
    public func audit(parameters: [String: String]) -> AdminResponse {
        guard self.audit != nil else { return .error(404, "auditing is off") }
        let allowed: Set<String> = [
            "since", "until", "user", "db", "collection", "rpc", "decision", "outcome", "limit", "after_id",
        ]
        if let unknown = parameters.keys.sorted().first(where: { !allowed.contains($0) }) {
            return .error(400, "unknown parameter \"\(unknown)\" (use \(allowed.sorted().joined(separator: ", ")))")
        }
        let now = AuditTime.nowMilliseconds()
        var query = AuditQuery()
        for (name, bound) in [("since", \AuditQuery.since), ("until", \AuditQuery.until)] {
            guard let text = parameters[name] else { continue }
            guard let value = AuditTime.parseBound(text, now: now) else {
                return .error(400, "\(name): not a duration (30m, 1h, 7d) or an RFC 3339 time: \"\(text)\"")
            }
            query[keyPath: bound] = value
        }
        query.user = parameters["user"]
        query.database = parameters["db"]
        query.collection = parameters["collection"]
        query.rpc = parameters["rpc"]
        if let decision = parameters["decision"], !AuditQuery.decisions.contains(decision) {
            return .error(
                400,
                "decision: must be one of \(AuditQuery.decisions.joined(separator: ", ")), got \"\(decision)\""
            )
        }
        query.decision = parameters["decision"]
        if let text = parameters["outcome"] {
            guard let outcome = AuditEntry.Outcome(rawValue: text) else {
                return .error(400, "outcome: must be ok, failed or unknown, got \"\(text)\"")
            }
            query.outcome = outcome
        }
        if let text = parameters["limit"] {
            guard let limit = Int(text), (1...10_000).contains(limit) else {
                return .error(400, "limit: must be 1...10000, got \"\(text)\"")
            }
            query.limit = limit
        }
        if let text = parameters["after_id"] {
            guard let afterID = Int64(text), afterID >= 0 else {
                return .error(400, "after_id: must be a record id (0 or more), got \"\(text)\"")
            }
            query.afterID = afterID
        }
        do {
            let entries = try self.openReader().query(query)
            return .json(200, "[" + entries.map { $0.jsonLine() }.joined(separator: ",\n") + "]\n")
        } catch {
            return .error(503, "audit store unavailable: \(error.message)")
        }
    }

    /// Ready when Milvus accepts a connection and the audit store can be written.
    public func readinessProblem() -> String? {
        if let audit = self.audit, !audit.log.isWritable {
            return audit.log.failure.map { "audit store not writable: \($0.message)" } ?? "audit store not writable"
        }
        if let problem = Self.probe(self.upstream, timeoutMilliseconds: 1_000) {
            return "upstream \(self.upstream) unreachable: \(problem)"
        }
        return nil
    }

    /// The client CRLs' earliest nextUpdate, when there are CRLs: alert well before it (a CRL past it refuses every
    /// client of its CA).
    private func crlMetric() -> String {
        guard let nextUpdate = self.server.clientCRLNextUpdate else { return "" }
        return """
            # HELP milvus_guard_tls_client_crl_next_update_seconds The earliest nextUpdate of the client CRLs in force \
            (tls.client_crl), in Unix seconds: publish newer CRLs and reload before it, or every client of that CA is \
            refused.
            # TYPE milvus_guard_tls_client_crl_next_update_seconds gauge
            milvus_guard_tls_client_crl_next_update_seconds \(nextUpdate)

            """
    }

    public func extraMetrics() -> String {
        let generation = self.server.currentPolicyAndGeneration.generation
        let reloads = self.server.reloadCounts
        let policy = """
            # HELP milvus_guard_policy_generation The policy in force: 1 for the one the guard started with, one more for \
            each reload applied.
            # TYPE milvus_guard_policy_generation gauge
            milvus_guard_policy_generation \(generation)
            # HELP milvus_guard_policy_reloads_total Reloads (SIGHUP, milvus-guard reload) by result: applied; rejected \
            (the config or a policy file does not load); unrecorded (the audit store could not record it, tried again).
            # TYPE milvus_guard_policy_reloads_total counter
            milvus_guard_policy_reloads_total{result="applied"} \(reloads.applied)
            milvus_guard_policy_reloads_total{result="rejected"} \(reloads.rejected)
            milvus_guard_policy_reloads_total{result="unrecorded"} \(reloads.unrecorded)
            # HELP milvus_guard_policy_reload_pending 1 while a reload waits for the audit store to record it (the old \
            policy stays in force until then).
            # TYPE milvus_guard_policy_reload_pending gauge
            milvus_guard_policy_reload_pending \(reloads.pending ? 1 : 0)

            """ + self.crlMetric()
        guard let audit = self.audit else { return policy }
        let committed = audit.log.committed
        return policy + """
            # HELP milvus_guard_audit_batches_total Audit transactions committed (group commit).
            # TYPE milvus_guard_audit_batches_total counter
            milvus_guard_audit_batches_total \(committed.batches)
            # HELP milvus_guard_audit_records_total Audit records committed.
            # TYPE milvus_guard_audit_records_total counter
            milvus_guard_audit_records_total \(committed.records)
            # HELP milvus_guard_audit_records_lost_total Audit records nobody waited for (outcomes, refusals) that \
            were never written (queue full, held beyond 64 MiB, a failed sync, or refused by SQLite for good).
            # TYPE milvus_guard_audit_records_lost_total counter
            milvus_guard_audit_records_lost_total \(audit.log.lost)
            # HELP milvus_guard_audit_queue_depth Audit records queued, being written, or held over from failed batches.
            # TYPE milvus_guard_audit_queue_depth gauge
            milvus_guard_audit_queue_depth \(audit.log.queueDepth)
            # HELP milvus_guard_audit_writable Whether the audit store could write its last batch (1) or not (0).
            # TYPE milvus_guard_audit_writable gauge
            milvus_guard_audit_writable \(audit.log.isWritable ? 1 : 0)

            """
    }

    /// Connects to `address` and closes again; nil on success, else why not.
    static func probe(_ address: SocketAddress, timeoutMilliseconds: Int32) -> String? {
        let socket: Socket
        do {
            socket = try Socket.connect(to: address)
        } catch {
            return "\(error)"
        }
        defer { socket.close() }
        var descriptor = pollfd(fd: socket.descriptor, events: Int16(POLLOUT), revents: 0)
        guard poll(&descriptor, 1, timeoutMilliseconds) == 1 else { return "connect timed out" }
        return socket.connectionError()
    }
}
