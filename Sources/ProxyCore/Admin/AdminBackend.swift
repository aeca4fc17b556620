/// What the admin listener needs from the rest of the guard: the policy (who may use it), the audit store and
/// readiness. The integrator implements it (GuardCLI wires the policy and the store); ProxyCore only calls it.
///
/// Every method runs on the admin thread, one request at a time, never on a proxy loop, so an implementation
/// may block (PBKDF2 verification, a SQLite query) without slowing the proxy; a slow one only delays other
/// admin requests, each of which has its own deadline.
public protocol AdminBackend: Sendable {
    /// Checks a request's `Authorization` header (HTTP Basic `user:password`, or `Bearer <api key>`) against
    /// the policy: `.allowed` when the principal's roles allow the `admin` action, `.forbidden` when the
    /// credential is valid but they do not, `.unauthenticated` when it is missing or wrong. `client` is the
    /// requester's address without the port, the unit of a failure limit (keyed by the claimed user instead, anyone
    /// could lock a real admin out by failing in their name).
    func authorizeAdmin(authorization: String?, client: String) -> AdminAuthorization

    /// ``authorizeAdmin(authorization:client:)``'s answer when `authorization` was verified lately against the
    /// policy in force (nil otherwise): such a request is answered without a password hash and skips the queue of
    /// password checks (a flood of wrong passwords kept a monitor's `/readyz` waiting for 5 s and more). Each use
    /// renews the verification, so a monitor that keeps probing never falls back into that queue. Cheap; runs on
    /// the admin loop.
    func cachedAuthorization(authorization: String?) -> AdminAuthorization?

    /// `GET /audit` with its decoded query parameters (the `audit` CLI's filters, e.g. `user`, `since`):
    /// a JSON body, or ``AdminResponse/error(_:_:)`` with 400 (bad filter) or 503 (store unavailable).
    func audit(parameters: [String: String]) -> AdminResponse

    /// `GET /readyz`: nil when the guard is ready (upstream reachable, audit store writable), else the reason.
    func readinessProblem() -> String?

    /// Metrics the proxy's registry does not hold (e.g. `milvus_guard_audit_queue_depth`), already in the
    /// Prometheus text format with their HELP and TYPE lines, appended to `/metrics`; may be empty.
    func extraMetrics() -> String
}

extension AdminBackend {
    public func cachedAuthorization(authorization: String?) -> AdminAuthorization? { nil }
}

/// The outcome of checking an admin request's credentials.
public enum AdminAuthorization: Sendable, Equatable {
    /// The principal may use the admin endpoints.
    case allowed(principal: String)
    /// No credential, or a wrong one: 401 with `WWW-Authenticate: Basic realm="milvus-guard"`.
    case unauthenticated(reason: String)
    /// A valid principal whose roles do not allow `admin`: 403.
    case forbidden(reason: String)
}
