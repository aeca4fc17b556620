import Glibc

/// Header names and values every gRPC call carries, as static strings: a received field that matches one
/// reuses it instead of allocating a new `String` (long ones like `content-type: application/grpc` or a
/// Milvus `:path` would otherwise allocate on every call).
///
/// The lookup is a `switch` on the length, then a `memcmp` against each literal of that length: it touches no
/// array, so it retains nothing and runs no lazy-global check (a table in static arrays cost about six retains and
/// releases per header field). ``table`` lists the same strings; KnownHeadersTests check that each one is found.
enum KnownHeaders {
    /// The strings the lookup knows, for tests and documentation; the `switch` in ``string(matching:)`` must list
    /// each of them.
    static let table: [String] = [
        ":method", "POST", ":scheme", "http", "https", ":path", ":authority", ":status", "200",
        "content-type", "application/grpc", "te", "trailers", "user-agent", "grpc-timeout", "grpc-encoding",
        "grpc-accept-encoding", "identity,deflate,gzip", "grpc-status", "0", "grpc-message", "authorization",
        "dbname", "client-request-id", "client-request-unixmsec", "identifier", "content-length",
        "/milvus.proto.milvus.MilvusService/Search", "/milvus.proto.milvus.MilvusService/Query",
        "/milvus.proto.milvus.MilvusService/Insert", "/milvus.proto.milvus.MilvusService/Upsert",
        "/milvus.proto.milvus.MilvusService/Delete", "/milvus.proto.milvus.MilvusService/DropCollection",
        "/milvus.proto.milvus.MilvusService/HasCollection", "/milvus.proto.milvus.MilvusService/DescribeCollection",
        "/milvus.proto.milvus.MilvusService/GetLoadState", "/milvus.proto.milvus.MilvusService/Connect",
    ]

    /// The shared constant the bytes spell, if they spell a known header name or value
    /// (``HeaderStringCache`` makes the other strings).
    static func string(matching bytes: UnsafeBufferPointer<UInt8>) -> String? {
        guard let base = bytes.baseAddress else { return nil }
        // Only called with a literal of `bytes.count` UTF-8 bytes.
        func same(_ literal: StaticString) -> Bool {
            memcmp(literal.utf8Start, base, bytes.count) == 0
        }
        switch bytes.count {
        case 1:
            if same("0") { return "0" }
        case 2:
            if same("te") { return "te" }
        case 3:
            if same("200") { return "200" }
        case 4:
            if same("POST") { return "POST" }
            if same("http") { return "http" }
        case 5:
            if same("https") { return "https" }
            if same(":path") { return ":path" }
        case 6:
            if same("dbname") { return "dbname" }
        case 7:
            if same(":method") { return ":method" }
            if same(":scheme") { return ":scheme" }
            if same(":status") { return ":status" }
        case 8:
            if same("trailers") { return "trailers" }
        case 10:
            if same(":authority") { return ":authority" }
            if same("user-agent") { return "user-agent" }
            if same("identifier") { return "identifier" }
        case 11:
            if same("grpc-status") { return "grpc-status" }
        case 12:
            if same("content-type") { return "content-type" }
            if same("grpc-timeout") { return "grpc-timeout" }
            if same("grpc-message") { return "grpc-message" }
        case 13:
            if same("grpc-encoding") { return "grpc-encoding" }
            if same("authorization") { return "authorization" }
        case 14:
            if same("content-length") { return "content-length" }
        case 16:
            if same("application/grpc") { return "application/grpc" }
        case 17:
            if same("client-request-id") { return "client-request-id" }
        case 20:
            if same("grpc-accept-encoding") { return "grpc-accept-encoding" }
        case 21:
            if same("identity,deflate,gzip") { return "identity,deflate,gzip" }
        case 23:
            if same("client-request-unixmsec") { return "client-request-unixmsec" }
        case 40:
            if same("/milvus.proto.milvus.MilvusService/Query") { return "/milvus.proto.milvus.MilvusService/Query" }
        case 41:
            if same("/milvus.proto.milvus.MilvusService/Search") { return "/milvus.proto.milvus.MilvusService/Search" }
            if same("/milvus.proto.milvus.MilvusService/Insert") { return "/milvus.proto.milvus.MilvusService/Insert" }
            if same("/milvus.proto.milvus.MilvusService/Upsert") { return "/milvus.proto.milvus.MilvusService/Upsert" }
            if same("/milvus.proto.milvus.MilvusService/Delete") { return "/milvus.proto.milvus.MilvusService/Delete" }
        case 42:
            if same("/milvus.proto.milvus.MilvusService/Connect") {
                return "/milvus.proto.milvus.MilvusService/Connect"
            }
        case 47:
            if same("/milvus.proto.milvus.MilvusService/GetLoadState") {
                return "/milvus.proto.milvus.MilvusService/GetLoadState"
            }
        case 48:
            if same("/milvus.proto.milvus.MilvusService/HasCollection") {
                return "/milvus.proto.milvus.MilvusService/HasCollection"
            }
        case 49:
            if same("/milvus.proto.milvus.MilvusService/DropCollection") {
                return "/milvus.proto.milvus.MilvusService/DropCollection"
            }
        case 53:
            if same("/milvus.proto.milvus.MilvusService/DescribeCollection") {
                return "/milvus.proto.milvus.MilvusService/DescribeCollection"
            }
        default: break
        }
        return nil
    }
}
