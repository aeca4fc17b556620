/// How many messages each side of an RPC sends (from the `stream` keywords in `milvus.proto`).
public enum StreamingKind: String, Hashable, Sendable {
    /// One request message, one response message.
    case unary
    /// One request message, a stream of responses (DumpMessages).
    case serverStreaming
    /// Streams both ways (CreateReplicateStream).
    case bidiStreaming
}
