/// Maps a parsed admin request to its response. No I/O of its own: it calls the ``AdminBackend`` and renders
/// the ``ProxyMetrics``, so it runs on the admin thread.
///
/// `/healthz` answers without credentials (a liveness probe must not need a secret). Every other path,
/// unknown ones included, first needs a principal whose roles allow `admin`, so an anonymous client learns
/// nothing beyond "credentials required".
struct AdminRouter: Sendable {
    let backend: any AdminBackend
    let metrics: ProxyMetrics

    /// The challenge sent with every 401 (RFC 9110 §11.6.1, RFC 7617).
    static let challenge = AdminResponse.Field("WWW-Authenticate", "Basic realm=\"milvus-guard\"")

    /// The answer to a request the parser refused.
    func respond(to failure: AdminRequestParser.Failure) -> AdminResponse {
        switch failure {
        case .methodNotAllowed:
            .text(405, "method not allowed: only GET and HEAD\n", fields: [AdminResponse.Field("Allow", "GET, HEAD")])
        case .headTooLarge:
            .text(431, "request head larger than the limit\n")
        case .bodyNotAccepted:
            .text(400, "bad request: admin requests carry no body\n")
        case .malformed:
            .text(400, "bad request\n")
        }
    }

    /// The answer to a valid request, and for the log who it was served to: the principal, or the backend's
    /// reason for refusing the credentials (never sent to the client), or `-` for `/healthz`.
    /// `client`: the requester's address without the port.
    func respond(to request: AdminRequest, client: String) -> (response: AdminResponse, principal: String) {
        if request.path == "/healthz" { return (.text(200, "ok\n"), "-") }
        switch self.authorize(request, client: client) {
        case .success(let principal): return self.respond(to: request, principal: principal)
        case .failure(let refusal): return (refusal.response, refusal.principal)
        }
    }

    /// A refused admin request: its answer (401 or 403), and for the log why.
    struct Refusal: Error {
        let response: AdminResponse
        let principal: String
    }

    /// Who sent `request`, if the policy lets them use the admin endpoints; the 401 or 403 otherwise. May hash a
    /// password: off the admin loop.
    func authorize(_ request: AdminRequest, client: String) -> Result<String, Refusal> {
        switch self.backend.authorizeAdmin(authorization: request.authorization, client: client) {
        case .allowed(let name):
            return .success(name)
        case .unauthenticated(let reason):
            return .failure(
                Refusal(
                    response: .text(401, "authentication required\n", fields: [Self.challenge]),
                    principal: "refused: \(reason)"
                )
            )
        case .forbidden(let reason):
            return .failure(
                Refusal(
                    response: .text(403, "forbidden: the admin action is not allowed for this user\n"),
                    principal: "refused: \(reason)"
                )
            )
        }
    }

    /// The answer to a request from `principal`, whom the policy lets use the admin endpoints.
    func respond(to request: AdminRequest, principal: String) -> (response: AdminResponse, principal: String) {
        switch request.path {
        case "/readyz":
            if let problem = self.backend.readinessProblem() {
                return (.text(503, "not ready: \(problem)\n"), principal)
            }
            return (.text(200, "ready\n"), principal)
        case "/metrics":
            var text = self.metrics.render()
            let extra = self.backend.extraMetrics()
            if !extra.isEmpty {
                text += extra
                if !extra.hasSuffix("\n") { text += "\n" }
            }
            let response = AdminResponse(
                status: 200,
                contentType: "text/plain; version=0.0.4; charset=utf-8",
                body: Array(text.utf8)
            )
            return (response, principal)
        case "/audit":
            return (self.backend.audit(parameters: request.query), principal)
        default:
            return (.text(404, "not found\n"), principal)
        }
    }
}
