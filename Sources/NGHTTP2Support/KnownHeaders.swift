import Glibc

/// Header names and values every gRPC call carries, as static strings: a received field that matches one
/// reuses it instead of allocating a new `String` (long ones like `content-type: application/grpc` or a
/// Milvus `:path` would otherwise allocate on every call).
enum KnownHeaders {
    private static let table: [String] = [
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

    /// Candidates by length (the index), so a lookup is one array access and a `memcmp` or two; their
    /// bytes are kept beside them.
    private static let byLength: [[(bytes: [UInt8], string: String)]] = {
        let longest = table.map(\.utf8.count).max() ?? 0
        var byLength = [[(bytes: [UInt8], string: String)]](repeating: [], count: longest + 1)
        for name in table { byLength[name.utf8.count].append((Array(name.utf8), name)) }
        return byLength
    }()

    /// The shared constant the bytes spell, if they spell a known header name or value
    /// (``HeaderStringCache`` makes the other strings).
    static func string(matching bytes: UnsafeBufferPointer<UInt8>) -> String? {
        if let base = bytes.baseAddress, bytes.count > 0, bytes.count < Self.byLength.count {
            for candidate in Self.byLength[bytes.count] {
                let equal = candidate.bytes.withUnsafeBufferPointer { known in
                    memcmp(known.baseAddress!, base, bytes.count) == 0
                }
                if equal { return candidate.string }
            }
        }
        return nil
    }
}
