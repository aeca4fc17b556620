import CZlib

/// Compresses a whole buffer into gzip, zlib or raw DEFLATE.
///
/// The proxy itself only inspects compressed messages, so this exists for tests and test support (building
/// `grpc-encoding: gzip` messages) and for any later need to re-compress. Output is unbounded: it is at most a few
/// bytes larger than `deflateBound` of the input.
public enum GzipDeflater {
    /// Compresses `input` in one call.
    ///
    /// - Parameters:
    ///   - input: The bytes to compress; at most 4 GiB.
    ///   - format: The container to produce.
    ///   - level: zlib level 0 (store) … 9 (best); `-1` is zlib's default (6).
    /// - Returns: The complete compressed stream.
    /// - Throws: ``ZlibError`` with ``ZlibError/Code/invalidArgument`` for a bad level or an input of 4 GiB or more,
    ///   ``ZlibError/Code/outOfMemory`` if zlib cannot allocate its state.
    public static func deflate(
        _ input: ArraySlice<UInt8>,
        format: CompressionFormat,
        level: Int = -1
    ) throws(ZlibError) -> [UInt8] {
        guard (-1...9).contains(level) else {
            throw ZlibError(.invalidArgument, message: "level \(level) is not in -1...9")
        }
        guard input.count <= Int(UInt32.max) else {
            throw ZlibError(.invalidArgument, message: "input of \(input.count) bytes exceeds zlib's 4 GiB limit")
        }
        let stream = try ZStream(deflating: format, level: Int32(level))
        return try stream.deflate(input)
    }
}
