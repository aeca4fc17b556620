import Testing
import ZlibSupport

/// `gzip.compress(b"hello, milvus-guard", mtime=0)` from CPython 3.
private let pythonGzip: [UInt8] = [
    31, 139, 8, 0, 0, 0, 0, 0, 2, 3, 203, 72, 205, 201, 201, 215, 81, 200, 205, 204, 41, 43, 45, 214, 77, 47, 77, 44,
    74, 1, 0, 142, 158, 231, 191, 19, 0, 0, 0,
]
/// `zlib.compress(b"hello, milvus-guard")` from CPython 3: the RFC 1950 framing of `grpc-encoding: deflate`.
private let pythonZlib: [UInt8] = [
    120, 156, 203, 72, 205, 201, 201, 215, 81, 200, 205, 204, 41, 43, 45, 214, 77, 47, 77, 44, 74, 1, 0, 71, 116, 7, 65,
]
/// `gzip.compress(b"", mtime=0)`: a valid gzip member holding nothing.
private let pythonEmptyGzip: [UInt8] = [31, 139, 8, 0, 0, 0, 0, 0, 2, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0]

private let formats: [CompressionFormat] = [.gzip, .deflate, .rawDeflate]

@Suite("GzipInflater")
struct GzipInflaterTests {
    @Test("Inflates gzip and zlib data produced by Python")
    func pythonVectors() throws {
        let expected = Array("hello, milvus-guard".utf8)
        #expect(try GzipInflater.inflate(pythonGzip[...], format: .gzip, maxOutputBytes: 1024) == expected)
        #expect(try GzipInflater.inflate(pythonZlib[...], format: .deflate, maxOutputBytes: 1024) == expected)
        #expect(try GzipInflater.inflate(pythonEmptyGzip[...], format: .gzip, maxOutputBytes: 0) == [])
    }

    @Test("Round-trips through the deflater", arguments: formats)
    func roundTrip(format: CompressionFormat) throws {
        var generator = SystemRandomNumberGenerator()
        for size in [0, 1, 100, 65_537, 300_000] {
            // Half random, half repetitive: exercises both stored and Huffman-coded blocks.
            let random = (0..<size / 2).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let input = random + [UInt8](repeating: 7, count: size - size / 2)
            let compressed = try GzipDeflater.deflate(input[...], format: format)
            let inflater = GzipInflater(format: format, maxOutputBytes: size)
            #expect(try inflater.inflate(compressed[...]) == input)
        }
    }

    @Test("Accepts input that sits in the middle of a larger buffer")
    func slice() throws {
        let buffer = [0xAA, 0xBB] + pythonGzip + [0xCC]
        let output = try GzipInflater.inflate(buffer[2..<(buffer.count - 1)], format: .gzip, maxOutputBytes: 100)
        #expect(output == Array("hello, milvus-guard".utf8))
    }

    @Test("Output exactly at the bound is accepted; one byte more is not", arguments: formats)
    func exactBound(format: CompressionFormat) throws {
        let input = [UInt8](repeating: 0x41, count: 10_000)
        let compressed = try GzipDeflater.deflate(input[...], format: format)
        #expect(try GzipInflater.inflate(compressed[...], format: format, maxOutputBytes: 10_000) == input)
        let error = #expect(throws: ZlibError.self) {
            try GzipInflater.inflate(compressed[...], format: format, maxOutputBytes: 9_999)
        }
        #expect(error?.code == .outputTooLarge)
    }

    @Test("Output past the 4 MiB step comes whole, and a truncated stream of that size is still truncated")
    func largeOutput() throws {
        // 13 MiB of a pattern: inflated in steps of 4 MiB.
        let input = (0..<(13 << 20)).map { UInt8(truncatingIfNeeded: $0 % 251) }
        let compressed = try GzipDeflater.deflate(input[...], format: .gzip)
        #expect(try GzipInflater.inflate(compressed[...], format: .gzip, maxOutputBytes: 16 << 20) == input)
        let cut = #expect(throws: ZlibError.self) {
            try GzipInflater.inflate(compressed.dropLast(8), format: .gzip, maxOutputBytes: 16 << 20)
        }
        #expect(cut?.code == .truncated)
    }

    @Test("shouldContinue stops an inflation within 4 MiB of output")
    func cancelled() throws {
        let bomb = try GzipDeflater.deflate([UInt8](repeating: 0, count: 64 << 20)[...], format: .gzip, level: 9)
        var asked = 0
        let error = #expect(throws: ZlibError.self) {
            try GzipInflater.inflate(bomb[...], format: .gzip, maxOutputBytes: 64 << 20) {
                asked += 1
                return asked < 3
            }
        }
        #expect(error?.code == .cancelled)
        #expect(asked == 3)
    }

    @Test("A zip bomb fails at the bound instead of expanding")
    func zipBomb() throws {
        // 64 MiB of zeros compress to about 64 KiB; the bound is 1 MiB.
        let bomb = try GzipDeflater.deflate([UInt8](repeating: 0, count: 64 << 20)[...], format: .gzip, level: 9)
        #expect(bomb.count < 100_000)
        let error = #expect(throws: ZlibError.self) {
            try GzipInflater.inflate(bomb[...], format: .gzip, maxOutputBytes: 1 << 20)
        }
        #expect(error?.code == .outputTooLarge)
    }

    @Test("Every proper prefix of a stream is truncated", arguments: [CompressionFormat.gzip, .deflate])
    func truncated(format: CompressionFormat) throws {
        let compressed = try GzipDeflater.deflate(Array("truncate me, truncate me, please".utf8)[...], format: format)
        for length in 0..<compressed.count {
            let error = #expect(throws: ZlibError.self) {
                try GzipInflater.inflate(compressed.prefix(length), format: format, maxOutputBytes: 1000)
            }
            #expect(error?.code == .truncated, "prefix \(length)")
        }
    }

    @Test("Empty input is truncated, not an empty message", arguments: formats)
    func empty(format: CompressionFormat) {
        let error = #expect(throws: ZlibError.self) {
            try GzipInflater.inflate([], format: format, maxOutputBytes: 10)
        }
        #expect(error?.code == .truncated)
    }

    @Test("A corrupt header, body or checksum is rejected")
    func corrupt() {
        var badMagic = pythonGzip
        badMagic[0] = 0x1E
        var badCRC = pythonGzip
        badCRC[badCRC.count - 6] ^= 0xFF
        var badAdler = pythonZlib
        badAdler[badAdler.count - 1] ^= 0x01
        let cases: [([UInt8], CompressionFormat)] = [
            (badMagic, .gzip),
            (badCRC, .gzip),
            (badAdler, .deflate),
            (pythonGzip, .deflate),  // the wrong container
            (pythonZlib, .gzip),
            ([0xFF, 0xFF, 0xFF, 0xFF], .rawDeflate),  // reserved block type 3
        ]
        for (input, format) in cases {
            let error = #expect(throws: ZlibError.self) {
                try GzipInflater.inflate(input[...], format: format, maxOutputBytes: 1000)
            }
            #expect(error?.code == .corrupt)
        }
    }

    @Test("Trailing bytes and a second gzip member are rejected")
    func trailing() {
        for input in [pythonGzip + [0], pythonGzip + pythonGzip] {
            let error = #expect(throws: ZlibError.self) {
                try GzipInflater.inflate(input[...], format: .gzip, maxOutputBytes: 1000)
            }
            #expect(error?.code == .corrupt)
        }
    }

    @Test("Garbage never crashes")
    func garbage() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let input = (0..<Int.random(in: 1...64, using: &generator)).map { _ in UInt8.random(in: 0...255) }
            for format in formats {
                _ = try? GzipInflater.inflate(input[...], format: format, maxOutputBytes: 4096)
            }
        }
    }

    @Test("Bad arguments are reported, not trapped")
    func arguments() {
        let inflateError = #expect(throws: ZlibError.self) {
            try GzipInflater.inflate(pythonGzip[...], format: .gzip, maxOutputBytes: -1)
        }
        #expect(inflateError?.code == .invalidArgument)
        let deflateError = #expect(throws: ZlibError.self) {
            try GzipDeflater.deflate([1, 2, 3], format: .gzip, level: 10)
        }
        #expect(deflateError?.code == .invalidArgument)
    }
}
