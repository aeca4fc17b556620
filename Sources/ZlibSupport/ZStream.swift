import CZlib

/// Owns one heap-allocated `z_stream` for a single inflate or deflate run.
///
/// zlib stores a back pointer to the `z_stream` and checks it on every call, so the struct must not move: it lives in
/// memory allocated here, never in a Swift variable passed with `&`. `deinit` ends the stream and frees the memory.
final class ZStream {
    private enum Direction {
        case inflating
        case deflating
    }

    private let stream: UnsafeMutablePointer<z_stream>
    private let direction: Direction

    /// Starts an inflate stream for `format`.
    ///
    /// - Throws: ``ZlibError`` if zlib cannot initialise (out of memory, version mismatch).
    init(inflating format: CompressionFormat) throws(ZlibError) {
        self.stream = .allocate(capacity: 1)
        self.stream.initialize(to: z_stream())
        self.direction = .inflating
        let rc = czlib_inflateInit2(self.stream, format.windowBits)
        guard rc == Z_OK else {
            self.stream.deinitialize(count: 1)
            self.stream.deallocate()
            throw Self.initError(rc)
        }
    }

    /// Starts a deflate stream for `format` at `level`.
    ///
    /// - Throws: ``ZlibError`` if zlib cannot initialise.
    init(deflating format: CompressionFormat, level: Int32) throws(ZlibError) {
        self.stream = .allocate(capacity: 1)
        self.stream.initialize(to: z_stream())
        self.direction = .deflating
        let rc = czlib_deflateInit2(self.stream, level, format.windowBits)
        guard rc == Z_OK else {
            self.stream.deinitialize(count: 1)
            self.stream.deallocate()
            throw Self.initError(rc)
        }
    }

    deinit {
        switch self.direction {
        case .inflating: inflateEnd(self.stream)
        case .deflating: deflateEnd(self.stream)
        }
        self.stream.deinitialize(count: 1)
        self.stream.deallocate()
    }

    private static func initError(_ rc: Int32) -> ZlibError {
        rc == Z_MEM_ERROR
            ? ZlibError(.outOfMemory, message: "zlib could not allocate its state")
            : ZlibError(.internalError, message: "zlib initialisation failed with \(rc)")
    }

    /// zlib's message for the last failure, or `fallback`.
    private func message(or fallback: String) -> String {
        guard let msg = self.stream.pointee.msg else { return fallback }
        return String(cString: msg)
    }

    /// Inflates all of `input`, growing the output up to `limit` bytes.
    ///
    /// - Precondition: `limit == maxOutputBytes + 1`; reaching `limit` means the output is too large.
    /// Output zlib is given room for per call, so that `shouldContinue` is asked at least every so many bytes.
    static let stepBytes = 4 << 20

    func inflate(
        _ input: ArraySlice<UInt8>,
        limit: Int,
        maxOutputBytes: Int,
        shouldContinue: () -> Bool = { true }
    ) throws(ZlibError) -> [UInt8] {
        var output: [UInt8] = []
        var produced = 0
        let result: Result<Void, ZlibError> = input.withUnsafeBufferPointer { inBuffer in
            self.stream.pointee.next_in = UnsafeMutablePointer(mutating: inBuffer.baseAddress)
            self.stream.pointee.avail_in = UInt32(inBuffer.count)
            while true {
                if produced == output.count {
                    // Double, starting at 4× the input (typical text ratios), never beyond the limit.
                    let grown = Swift.min(limit, Swift.max(output.count * 2, inBuffer.count * 4, 4096))
                    output.append(contentsOf: repeatElement(0, count: grown - output.count))
                }
                guard shouldContinue() else {
                    return .failure(ZlibError(.cancelled, message: "inflating was cancelled"))
                }
                let rc = output.withUnsafeMutableBufferPointer { outBuffer in
                    let space = Swift.min(outBuffer.count - produced, Self.stepBytes)
                    self.stream.pointee.next_out = outBuffer.baseAddress.map { $0 + produced }
                    self.stream.pointee.avail_out = UInt32(clamping: space)
                    let rc = CZlib.inflate(self.stream, Z_NO_FLUSH)
                    produced += Int(UInt32(clamping: space)) - Int(self.stream.pointee.avail_out)
                    return rc
                }
                // The room given was filled: zlib may hold more output, whatever is left of the input.
                let filled = self.stream.pointee.avail_out == 0
                if produced > maxOutputBytes {
                    return .failure(
                        ZlibError(.outputTooLarge, message: "output exceeds the bound of \(maxOutputBytes) bytes")
                    )
                }
                switch rc {
                case Z_STREAM_END:
                    guard self.stream.pointee.avail_in == 0 else {
                        return .failure(ZlibError(.corrupt, message: "trailing bytes after the end of the stream"))
                    }
                    return .success(())
                case Z_OK, Z_BUF_ERROR:
                    // No more input and room left for output: zlib wants bytes that are not there.
                    if self.stream.pointee.avail_in == 0 && !filled {
                        return .failure(ZlibError(.truncated, message: "input ends inside the compressed stream"))
                    }
                case Z_NEED_DICT:
                    return .failure(ZlibError(.corrupt, message: "stream needs a preset dictionary"))
                case Z_DATA_ERROR:
                    return .failure(ZlibError(.corrupt, message: self.message(or: "invalid compressed data")))
                case Z_MEM_ERROR:
                    return .failure(ZlibError(.outOfMemory, message: "zlib ran out of memory"))
                default:
                    return .failure(ZlibError(.internalError, message: self.message(or: "inflate returned \(rc)")))
                }
            }
        }
        try result.get()
        output.removeLast(output.count - produced)
        return output
    }

    /// Deflates all of `input` with `Z_FINISH`.
    func deflate(_ input: ArraySlice<UInt8>) throws(ZlibError) -> [UInt8] {
        let bound = Int(deflateBound(self.stream, UInt(input.count)))
        var output = [UInt8](repeating: 0, count: bound + 16)
        var produced = 0
        let rc: Int32 = input.withUnsafeBufferPointer { inBuffer in
            output.withUnsafeMutableBufferPointer { outBuffer in
                self.stream.pointee.next_in = UnsafeMutablePointer(mutating: inBuffer.baseAddress)
                self.stream.pointee.avail_in = UInt32(inBuffer.count)
                self.stream.pointee.next_out = outBuffer.baseAddress
                self.stream.pointee.avail_out = UInt32(clamping: outBuffer.count)
                let rc = CZlib.deflate(self.stream, Z_FINISH)
                produced = outBuffer.count - Int(self.stream.pointee.avail_out)
                return rc
            }
        }
        guard rc == Z_STREAM_END else {
            throw ZlibError(.internalError, message: self.message(or: "deflate returned \(rc)"))
        }
        output.removeLast(output.count - produced)
        return output
    }
}

@available(*, unavailable)
extension ZStream: Sendable {}
