/// The bounds every decoder in ProtoWire enforces.
///
/// A decoder must bound what an attacker can make it do: how much it buffers (``maxMessageSize``) and how
/// deeply it recurses (``maxDepth``), and how many values of one repeated field it keeps (``maxRepeatedValues``). The varint length is fixed by the encoding (``maxVarintLength``).
public struct WireLimits: Hashable, Sendable {
    /// The longest varint protobuf allows: 10 bytes carry 64 bits (protobuf encoding spec, "Base 128 Varints").
    public static let maxVarintLength = 10

    /// The largest field number: 2^29 − 1.
    public static let maxFieldNumber: UInt32 = 0x1FFF_FFFF

    /// The largest message, in bytes, a decoder accepts. gRPC frame lengths above it are refused before buffering.
    public var maxMessageSize: Int
    /// How many nested messages deep a decoder descends; the top-level message has depth 0.
    public var maxDepth: Int
    /// How many values of one repeated field a decoder that keeps them (names, map entries) accepts: each costs
    /// memory beyond its bytes on the wire (an empty string is 2 bytes there, a 16-byte `String` kept).
    public var maxRepeatedValues: Int

    /// Creates limits.
    ///
    /// - Parameters:
    ///   - maxMessageSize: bytes; Milvus's own default `proxy.grpc.serverMaxRecvSize` is 512 MiB.
    ///   - maxDepth: nested messages; 32 by default, far more than any Milvus request needs (3).
    ///   - maxRepeatedValues: values of one repeated field; 65,536 by default, more than the collections of a whole
    ///     Milvus instance (`rootCoord.maxCollectionNum` is 65,536) or the partitions of a collection (1,024).
    public init(maxMessageSize: Int = 512 * 1024 * 1024, maxDepth: Int = 32, maxRepeatedValues: Int = 65_536) {
        precondition(maxMessageSize >= 0 && maxDepth >= 0 && maxRepeatedValues >= 0, "limits must not be negative")
        self.maxMessageSize = maxMessageSize
        self.maxDepth = maxDepth
        self.maxRepeatedValues = maxRepeatedValues
    }

    /// 512 MiB messages (Milvus's `proxy.grpc.serverMaxRecvSize`), depth 32, 65,536 values of a repeated field.
    public static let `default` = WireLimits()
}
