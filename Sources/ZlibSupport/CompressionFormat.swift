/// The container around a DEFLATE stream (RFC 1951).
///
/// gRPC's `grpc-encoding: gzip` is ``gzip`` (RFC 1952) and `grpc-encoding: deflate` is ``deflate``, the zlib wrapper
/// of RFC 1950 (grpc-core and grpc-go both use it). ``rawDeflate`` exists for HTTP peers that send bare DEFLATE.
public enum CompressionFormat: Hashable, Sendable {
    /// RFC 1952: a gzip header, DEFLATE data and a CRC-32 + length trailer. Exactly one member is accepted.
    case gzip
    /// RFC 1950: a two-byte zlib header, DEFLATE data and an Adler-32 trailer.
    case deflate
    /// RFC 1951 DEFLATE data with no header or checksum.
    case rawDeflate

    /// zlib's `windowBits` for this format: 15 is a 32 KiB window, +16 selects gzip, a negative value raw DEFLATE.
    var windowBits: Int32 {
        switch self {
        case .gzip: 15 + 16
        case .deflate: 15
        case .rawDeflate: -15
        }
    }
}
