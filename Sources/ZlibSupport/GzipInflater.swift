import CZlib

/// Decompresses one whole gzip, zlib or raw DEFLATE buffer with a hard bound on the output size.
///
/// The proxy inflates `grpc-encoding: gzip` messages only to inspect them, so the bound is the point: the output
/// buffer grows by doubling and never past `maxOutputBytes + 1` bytes, so a zip bomb costs at most that much memory
/// before it fails with ``ZlibError/Code/outputTooLarge``. Trailing bytes after the end of the stream (including a
/// second gzip member) are rejected as ``ZlibError/Code/corrupt``: the proxy must never inspect less than the
/// upstream would decode.
public struct GzipInflater: Sendable {
    /// The container format the input must have.
    public let format: CompressionFormat
    /// The largest output accepted, in bytes.
    public let maxOutputBytes: Int

    /// Creates an inflater configuration; it holds no zlib state between calls.
    ///
    /// - Precondition: `maxOutputBytes` is not negative and is less than `Int.max`.
    public init(format: CompressionFormat, maxOutputBytes: Int) {
        precondition(maxOutputBytes >= 0 && maxOutputBytes < Int.max, "maxOutputBytes out of range")
        self.format = format
        self.maxOutputBytes = maxOutputBytes
    }

    /// Inflates `input` with this configuration. See ``inflate(_:format:maxOutputBytes:)``.
    ///
    /// - Throws: ``ZlibError`` as described there.
    public func inflate(_ input: ArraySlice<UInt8>) throws(ZlibError) -> [UInt8] {
        try Self.inflate(input, format: self.format, maxOutputBytes: self.maxOutputBytes)
    }

    /// Inflates a complete compressed buffer.
    ///
    /// - Parameters:
    ///   - input: The whole compressed stream; nothing may follow its end.
    ///   - format: The container format to expect.
    ///   - maxOutputBytes: The largest output accepted. At most one byte more than this is ever allocated for output.
    /// - Returns: The decompressed bytes; at most `maxOutputBytes` of them.
    /// - Throws: ``ZlibError`` with ``ZlibError/Code/outputTooLarge`` past the bound, ``ZlibError/Code/truncated``
    ///   when the input ends early (an empty input included), ``ZlibError/Code/corrupt`` for invalid data or trailing
    ///   bytes, ``ZlibError/Code/invalidArgument`` for a negative bound or an input of 4 GiB or more.
    ///   - shouldContinue: Asked before every 4 MiB of output: `false` stops with ``ZlibError/Code/cancelled`` (a
    ///     request whose call has ended is not inflated to its end).
    public static func inflate(
        _ input: ArraySlice<UInt8>,
        format: CompressionFormat,
        maxOutputBytes: Int,
        shouldContinue: () -> Bool = { true }
    ) throws(ZlibError) -> [UInt8] {
        guard maxOutputBytes >= 0, maxOutputBytes < Int.max else {
            throw ZlibError(.invalidArgument, message: "maxOutputBytes must be in 0..<Int.max")
        }
        guard input.count <= Int(UInt32.max) else {
            throw ZlibError(.invalidArgument, message: "input of \(input.count) bytes exceeds zlib's 4 GiB limit")
        }
        guard !input.isEmpty else {
            throw ZlibError(.truncated, message: "empty input")
        }
        let stream = try ZStream(inflating: format)
        return try stream.inflate(
            input,
            limit: maxOutputBytes + 1,
            maxOutputBytes: maxOutputBytes,
            shouldContinue: shouldContinue
        )
    }
}
