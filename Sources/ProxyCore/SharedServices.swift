import Synchronization

/// What the event loops share across threads: budgets, the authentication-failure limiter and the thread
/// that verifies passwords. Each piece is Sendable; loops use them without waiting on one another for long.
final class SharedServices: Sendable {
    /// The process-wide budget of request bytes held for inspection.
    let heldBudget: HeldBytesBudget
    /// Failed authentications per client address, over all loops (a client's connections may land on any).
    let failures: Mutex<FailureLimiter>
    /// Runs PBKDF2 off the loops; one thread, so a flood of password guesses costs at most one core.
    let verifier: OffLoopExecutor
    /// Runs getaddrinfo for upstream host names, so DNS never blocks a loop (and never waits behind PBKDF2).
    let resolver: OffLoopExecutor
    /// The audit log and what goes in it; nil when auditing is off.
    let audit: ProxyAudit?
    /// Client connections open over all loops, against ``Limits/clientConnections``.
    let openClients = Atomic<Int>(0)
    let clientLimit: Int

    init(limits: Limits, audit: ProxyAudit?) throws {
        self.audit = audit
        self.clientLimit = limits.clientConnections
        self.heldBudget = HeldBytesBudget(limit: limits.heldBytesTotal)
        self.failures = Mutex(
            FailureLimiter(
                threshold: limits.authFailuresPerWindow,
                windowNanoseconds: UInt64(limits.authFailureWindowMilliseconds) * 1_000_000
            )
        )
        self.verifier = try OffLoopExecutor(name: "guard-verifier", capacity: 1024)
        self.resolver = try OffLoopExecutor(name: "guard-resolver", capacity: 256)
    }

    /// Takes a place for a new client connection; false when ``clientLimit`` connections are open.
    func admitClient() -> Bool {
        if self.openClients.wrappingAdd(1, ordering: .relaxed).newValue <= self.clientLimit { return true }
        self.openClients.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    func releaseClient() {
        self.openClients.wrappingSubtract(1, ordering: .relaxed)
    }

    /// Stops the verifier thread (after the loops have stopped).
    func stop() {
        self.verifier.stop()
        self.resolver.stop()
    }
}
