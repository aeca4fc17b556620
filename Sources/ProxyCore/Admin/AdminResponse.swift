import MilvusCatalog

/// One admin response: status, content type, extra header fields and body. The server adds
/// `Content-Length`, `Cache-Control: no-store` and `Connection: close` when it serializes it.
public struct AdminResponse: Sendable, Equatable {
    /// An extra header field (e.g. `WWW-Authenticate`).
    public struct Field: Sendable, Equatable {
        public var name: String
        public var value: String

        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public var status: Int
    public var contentType: String
    public var fields: [Field]
    public var body: [UInt8]

    public init(status: Int, contentType: String, fields: [Field] = [], body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.fields = fields
        self.body = body
    }

    /// A `text/plain` response.
    public static func text(_ status: Int, _ text: String, fields: [Field] = []) -> AdminResponse {
        AdminResponse(status: status, contentType: "text/plain; charset=utf-8", fields: fields, body: Array(text.utf8))
    }

    /// A JSON response with `body` as it is (the caller produced valid JSON).
    public static func json(_ status: Int, _ body: String) -> AdminResponse {
        AdminResponse(status: status, contentType: "application/json", body: Array(body.utf8))
    }

    /// A JSON error body `{"error": message}`, for 4xx/5xx answers such as a bad audit filter (400) or an
    /// unavailable store (503).
    public static func error(_ status: Int, _ message: String) -> AdminResponse {
        .json(status, "{\"error\":\(Self.jsonString(message))}")
    }

    /// `text` as a JSON string literal (RFC 8259 §7): quotes, backslashes and control characters escaped.
    public static func jsonString(_ text: String) -> String {
        JSONString.quoted(text)
    }

    /// The bytes on the wire: status line, header fields, and the body unless `includeBody` is false (HEAD,
    /// whose `Content-Length` still gives the GET body's size, RFC 9110 §9.3.2).
    func serialized(includeBody: Bool = true) -> [UInt8] {
        var head = "HTTP/1.1 \(self.status) \(Self.reason(self.status))\r\n"
        head += "Content-Type: \(self.contentType)\r\n"
        head += "Content-Length: \(self.body.count)\r\n"
        head += "Cache-Control: no-store\r\n"
        for field in self.fields { head += "\(field.name): \(field.value)\r\n" }
        head += "Connection: close\r\n\r\n"
        var bytes = Array(head.utf8)
        if includeBody { bytes += self.body }
        return bytes
    }

    /// The reason phrase of the statuses the admin listener uses (RFC 9110 §15).
    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }
}
