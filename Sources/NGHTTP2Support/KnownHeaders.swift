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

    /// Buckets by length and first byte, so a lookup compares at most a few candidates (their bytes
    /// kept beside them for a plain `memcmp`).
    private static let buckets: [Int: [(bytes: [UInt8], string: String)]] = {
        var buckets: [Int: [(bytes: [UInt8], string: String)]] = [:]
        for name in table {
            buckets[Self.key(name.utf8.count, name.utf8.first ?? 0), default: []].append((Array(name.utf8), name))
        }
        return buckets
    }()

    private static func key(_ count: Int, _ first: UInt8) -> Int { count << 8 | Int(first) }

    /// The bytes as a `String`: a shared constant when they spell a known header, else a new string.
    static func string(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        if let first = bytes.first, let candidates = Self.buckets[Self.key(bytes.count, first)] {
            for candidate in candidates {
                let equal = candidate.bytes.withUnsafeBufferPointer { known in
                    memcmp(known.baseAddress!, bytes.baseAddress!, bytes.count) == 0
                }
                if equal { return candidate.string }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
