import Glibc

/// Header names and values every gRPC call carries, as static strings: a received field that matches one
/// reuses it instead of allocating a new `String` (long ones like `content-type: application/grpc` or a
/// Milvus `:path` would otherwise allocate on every call).
enum KnownHeaders {
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

    /// Every entry's bytes, one after another, and where each starts: plain integers and one buffer, so a lookup
    /// retains nothing (an array of `(bytes, string)` pairs costs a retain and a release per candidate visited).
    private static let bytes: [UInt8] = Self.table.flatMap { Array($0.utf8) }
    private static let offsets: [Int] = Self.table.reduce(into: [0]) { $0.append($0.last! + $1.utf8.count) }
    /// Table indices ordered by length; those of length `n` are `byLength[first[n]..<first[n + 1]]`.
    private static let byLength: [Int] = Self.table.indices.sorted {
        Self.table[$0].utf8.count < Self.table[$1].utf8.count
    }
    private static let first: [Int] = {
        let longest = Self.table.map(\.utf8.count).max() ?? 0
        var first = [Int](repeating: 0, count: longest + 2)
        for length in 0...longest + 1 {
            first[length] = Self.byLength.firstIndex { Self.table[$0].utf8.count >= length } ?? Self.byLength.count
        }
        return first
    }()

    /// The shared constant the bytes spell, if they spell a known header name or value
    /// (``HeaderStringCache`` makes the other strings).
    static func string(matching bytes: UnsafeBufferPointer<UInt8>) -> String? {
        let count = bytes.count
        guard let base = bytes.baseAddress, count > 0, count + 1 < Self.first.count else { return nil }
        let found = Self.bytes.withUnsafeBufferPointer { all -> Int? in
            guard let start = all.baseAddress else { return nil }
            for candidate in Self.byLength[Self.first[count]..<Self.first[count + 1]]
            where memcmp(start + Self.offsets[candidate], base, count) == 0 {
                return candidate
            }
            return nil
        }
        return found.map { Self.table[$0] }
    }
}
