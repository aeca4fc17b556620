/// One parsed admin request: a GET or HEAD without a body (RFC 9112 §3, §5).
struct AdminRequest: Sendable, Equatable {
    /// The only methods the admin listener serves.
    enum Method: String, Sendable {
        case get = "GET"
        case head = "HEAD"
    }

    var method: Method
    /// The percent-decoded path, e.g. `/audit`.
    var path: String
    /// The percent-decoded query parameters (`+` is a space). Each name appears once: a repeated name is
    /// rejected by the parser.
    var query: [String: String]
    /// Header fields by lower-cased name. A repeated field's values are joined with `, ` (RFC 9110 §5.3),
    /// except `authorization`, `host` and `content-length`, which the parser rejects when repeated.
    var headers: [String: String]

    /// The `Authorization` header's value, if any.
    var authorization: String? { self.headers["authorization"] }
}
