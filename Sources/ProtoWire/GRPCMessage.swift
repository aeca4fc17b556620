/// One complete gRPC length-prefixed message, as ``GRPCFrameDecoder`` yields it.
public struct GRPCMessage: Hashable, Sendable {
    /// The compressed flag: `true` means the payload is compressed with the stream's `grpc-encoding`.
    public let compressed: Bool
    /// The message bytes, without the 5-byte prefix. A slice of the caller's buffer when the message arrived
    /// whole in one `ArraySlice`/`[UInt8]` chunk (no copy), else of the decoder's own buffer.
    public let payload: ArraySlice<UInt8>
    /// Byte offset of the message's 5-byte prefix in the stream (counting every byte given to the decoder).
    public let streamOffset: Int

    /// Creates a message.
    public init(compressed: Bool, payload: ArraySlice<UInt8>, streamOffset: Int) {
        self.compressed = compressed
        self.payload = payload
        self.streamOffset = streamOffset
    }

    /// Where the first message of a body starting with `bytes` ends, counting its 5-byte prefix; nil until the prefix
    /// is there. For readers that look only at the start of a body (``GRPCFrameDecoder`` reads whole streams).
    public static func firstMessageEnd(in bytes: ArraySlice<UInt8>) -> Int? {
        guard bytes.count >= 5 else { return nil }
        return 5 + bytes.dropFirst().prefix(4).reduce(0) { $0 << 8 | Int($1) }
    }
}
