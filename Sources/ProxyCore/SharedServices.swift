import Synchronization

/// What the event loops share across threads: budgets, the authentication-failure limiter and the thread
/// that verifies passwords. Each piece is Sendable; loops use them without waiting on one another for long.
final class SharedServices: Sendable {
    /// The process-wide budget of request bytes held for inspection.
    let heldBudget: HeldBytesBudget
    /// The part of ``heldBudget`` that callers not proven yet may take together (a password still being checked, a
    /// credential that failed, none and an `anonymous` without roles): a quarter, and a sixteenth of that per client
    /// network (``ClientNetwork``). Each of them is held to 64 KiB of a request (``ProxiedCall/unprovenHoldLimit``, or
    /// up to the stream window while a password is checked), but one address with 170 connections of 100 streams
    /// each held 1.1 GB that way, and every other client's calls were refused RESOURCE_EXHAUSTED (a red-team run).
    /// Now such callers run out first, those of one network before the others, and proven ones keep the rest.
    let unprovenBudget: HeldBytesBudget
    private let unprovenPerNetwork = Mutex<[String: Int]>([:])
    let unprovenNetworkLimit: Int
    /// The process-wide budget of response bytes waiting for slow clients whose upstream connection window was
    /// already given back (``ProxiedCall``), as large as ``heldBudget``.
    let responseBudget: HeldBytesBudget
    /// Failed authentications per client address, over all loops (a client's connections may land on any).
    let failures: Mutex<FailureLimiter>
    /// Refused calls per client address, over all loops; used only when ``limitsRefusals``.
    let refusals: Mutex<FailureLimiter>
    /// Whether ``Limits/refusalsPerWindow`` is set (not 0).
    let limitsRefusals: Bool
    /// New connections per client address, over all loops; used only when ``limitsNewConnections``.
    let newConnections: Mutex<FailureLimiter>
    /// Whether ``Limits/newConnectionsPerWindow`` is set (not 0).
    let limitsNewConnections: Bool
    /// Runs PBKDF2 off the loops; one thread, so a flood of password guesses costs at most one core. Checks are
    /// queued per client network (``ClientNetwork``: an IPv4 /24, an IPv6 /64), and the networks take turns
    /// (``OffLoopExecutor``).
    let verifier: OffLoopExecutor
    /// Password checks one client network may have queued: with turns, more only wait longer themselves, so this
    /// bounds one network's share of the queue, not anyone else's wait.
    static let passwordChecksPerClient = 64
    /// Runs getaddrinfo for upstream host names, so DNS never blocks a loop (and never waits behind PBKDF2).
    let resolver: OffLoopExecutor
    /// Inflates and decodes compressed request messages off the loops (``RequestGate/Decoding/isCostly``): within the
    /// ratio limit a 2.5 MB message may inflate to 512 MiB, which held a loop for 2 s. Client networks take turns;
    /// one may have ``decodesPerNetwork`` queued. One thread per two event loops (``decoderThreads(loops:)``), so that
    /// one long inflation does not hold everyone's compressed requests on a large machine, while a flood of them
    /// takes at most half the loops' cores.
    let decoder: OffLoopExecutor
    static let decodesPerNetwork = 16
    static let decodesQueued = 64
    /// The audit log and what goes in it; nil when auditing is off.
    let audit: ProxyAudit?
    /// The audit log's ``AuditLog/lost`` count the loops have logged so far (each increase is logged once).
    let lostRecordsReported = Atomic<Int>(0)
    /// Client connections open over all loops, against ``Limits/clientConnections``.
    let openClients = Atomic<Int>(0)
    let clientLimit: Int
    /// Client connections open per client address (IP), against ``Limits/connectionsPerClient``. Only addresses
    /// with a connection open are in it.
    private let openPerAddress = Mutex<[String: Int]>([:])
    let perAddressLimit: Int

    /// Decoder threads for `loops` event loops: one per two, at least one.
    static func decoderThreads(loops: Int) -> Int { max(1, loops / 2) }

    init(limits: Limits, audit: ProxyAudit?, loops: Int = 1) throws {
        self.audit = audit
        self.clientLimit = limits.clientConnections
        self.perAddressLimit = limits.connectionsPerClient
        self.heldBudget = HeldBytesBudget(limit: limits.heldBytesTotal)
        self.unprovenBudget = HeldBytesBudget(limit: max(ProxiedCall.unprovenHoldLimit, limits.heldBytesTotal / 4))
        self.unprovenNetworkLimit = max(ProxiedCall.unprovenHoldLimit, self.unprovenBudget.limit / 16)
        self.responseBudget = HeldBytesBudget(limit: limits.heldBytesTotal)
        self.failures = Mutex(
            FailureLimiter(
                threshold: limits.authFailuresPerWindow,
                windowNanoseconds: UInt64(limits.authFailureWindowMilliseconds) * 1_000_000
            )
        )
        self.limitsRefusals = limits.refusalsPerWindow > 0
        self.refusals = Mutex(
            FailureLimiter(
                threshold: max(1, limits.refusalsPerWindow),
                windowNanoseconds: UInt64(limits.refusalWindowMilliseconds) * 1_000_000
            )
        )
        self.limitsNewConnections = limits.newConnectionsPerWindow > 0
        self.newConnections = Mutex(
            FailureLimiter(
                threshold: max(1, limits.newConnectionsPerWindow),
                windowNanoseconds: UInt64(limits.newConnectionWindowMilliseconds) * 1_000_000
            )
        )
        self.verifier = try OffLoopExecutor(
            name: "guard-verifier",
            capacity: 1024,
            capacityPerKey: Self.passwordChecksPerClient
        )
        self.resolver = try OffLoopExecutor(name: "guard-resolver", capacity: 256)
        self.decoder = try OffLoopExecutor(
            name: "guard-decode",  // with workers, guard-decode-N: Linux keeps 15 characters of a thread's name
            capacity: Self.decodesQueued,
            capacityPerKey: Self.decodesPerNetwork,
            workers: Self.decoderThreads(loops: loops)
        )
    }

    /// Takes `count` bytes of a request of a caller not proven yet, from `network`'s share and the whole
    /// ``unprovenBudget``; false (and nothing taken) when either is spent.
    func reserveUnproven(_ count: Int, network: String) -> Bool {
        self.unprovenPerNetwork.withLock { held in
            let current = held[network, default: 0]
            guard current + count <= self.unprovenNetworkLimit, self.unprovenBudget.reserve(count) else { return false }
            held[network] = current + count
            return true
        }
    }

    func releaseUnproven(_ count: Int, network: String) {
        guard count > 0 else { return }
        self.unprovenBudget.release(count)
        self.unprovenPerNetwork.withLock { held in
            let left = held[network, default: 0] - count
            held[network] = left > 0 ? left : nil
        }
    }

    /// Takes a place for a new client connection from `host` (nil: no address to count, a Unix socket); nil when
    /// admitted, else the limit that refused it. A connection admitted must be given back with ``releaseClient(host:)``.
    func admitClient(host: String?) -> ConnectionRefusalKind? {
        guard self.openClients.wrappingAdd(1, ordering: .relaxed).newValue <= self.clientLimit else {
            self.openClients.wrappingSubtract(1, ordering: .relaxed)
            return .clientConnections
        }
        guard let host else { return nil }
        let now = EventLoop.now()
        if self.limitsRefusals, self.refusals.withLock({ $0.isBlocked(host, now: now) }) {
            self.openClients.wrappingSubtract(1, ordering: .relaxed)
            return .refusalsPerMinute
        }
        // Every connection the address opens counts, those this refuses too: one that keeps connecting stays shut
        // out until the window it started is over, and no longer.
        if self.limitsNewConnections, self.newConnections.withLock({ $0.recordFailure(host, now: now) > $0.threshold })
        {
            self.openClients.wrappingSubtract(1, ordering: .relaxed)
            return .newConnectionsPerMinute
        }
        let admitted = self.openPerAddress.withLock { open -> Bool in
            let count = open[host, default: 0]
            guard count < self.perAddressLimit else { return false }
            open[host] = count + 1
            return true
        }
        guard admitted else {
            self.openClients.wrappingSubtract(1, ordering: .relaxed)
            return .connectionsPerClient
        }
        return nil
    }

    /// Gives back the place of a client connection admitted with the same `host`.
    func releaseClient(host: String?) {
        self.openClients.wrappingSubtract(1, ordering: .relaxed)
        guard let host else { return }
        self.openPerAddress.withLock { open in
            guard let count = open[host] else { return }
            if count <= 1 { open.removeValue(forKey: host) } else { open[host] = count - 1 }
        }
    }

    /// Connections open from `host` (for tests and diagnostics).
    func openConnections(from host: String) -> Int {
        self.openPerAddress.withLock { $0[host, default: 0] }
    }

    /// Stops the verifier thread (after the loops have stopped).
    func stop() {
        self.verifier.stop()
        self.resolver.stop()
        self.decoder.stop()
    }
}
