/// Hand-made HTTP/2 frames (RFC 9113 §4.1, §6) and HPACK blocks (RFC 7541), so the sessions can be tested
/// against bytes that no nghttp2 produced.
enum FrameBuilder {
    /// The client connection preface (RFC 9113 §3.4).
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    enum Kind: UInt8 {
        case data = 0x0
        case headers = 0x1
        case rstStream = 0x3
        case settings = 0x4
        case ping = 0x6
        case goaway = 0x7
        case windowUpdate = 0x8
        case continuation = 0x9
    }

    enum Flag {
        static let endStream: UInt8 = 0x1
        static let ack: UInt8 = 0x1
        static let endHeaders: UInt8 = 0x4
        static let padded: UInt8 = 0x8
    }

    /// A frame: 24-bit length, type, flags, 31-bit stream ID, payload (RFC 9113 §4.1).
    static func frame(_ kind: Kind, flags: UInt8 = 0, stream: Int32, payload: [UInt8]) -> [UInt8] {
        let length = payload.count
        return [
            UInt8(truncatingIfNeeded: length >> 16), UInt8(truncatingIfNeeded: length >> 8),
            UInt8(truncatingIfNeeded: length),
        ]
            + [kind.rawValue, flags] + self.uint32(UInt32(stream) & 0x7FFF_FFFF) + payload
    }

    /// SETTINGS with (identifier, value) pairs (RFC 9113 §6.5).
    static func settings(_ entries: [(UInt16, UInt32)] = [], ack: Bool = false) -> [UInt8] {
        var payload: [UInt8] = []
        for (identifier, value) in entries {
            payload += [UInt8(identifier >> 8), UInt8(identifier & 0xFF)] + self.uint32(value)
        }
        return self.frame(.settings, flags: ack ? Flag.ack : 0, stream: 0, payload: payload)
    }

    static func headers(stream: Int32, block: [UInt8], endStream: Bool, endHeaders: Bool = true) -> [UInt8] {
        let flags = (endStream ? Flag.endStream : 0) | (endHeaders ? Flag.endHeaders : 0)
        return self.frame(.headers, flags: flags, stream: stream, payload: block)
    }

    static func continuation(stream: Int32, block: [UInt8], endHeaders: Bool) -> [UInt8] {
        self.frame(.continuation, flags: endHeaders ? Flag.endHeaders : 0, stream: stream, payload: block)
    }

    /// DATA, optionally PADDED with `padding` zero bytes after the payload (RFC 9113 §6.1).
    static func data(stream: Int32, _ payload: [UInt8], endStream: Bool, padding: Int? = nil) -> [UInt8] {
        var flags = endStream ? Flag.endStream : 0
        var body = payload
        if let padding {
            flags |= Flag.padded
            body = [UInt8(padding)] + payload + [UInt8](repeating: 0, count: padding)
        }
        return self.frame(.data, flags: flags, stream: stream, payload: body)
    }

    static func rstStream(stream: Int32, errorCode: UInt32) -> [UInt8] {
        self.frame(.rstStream, stream: stream, payload: self.uint32(errorCode))
    }

    static func goaway(lastStreamID: Int32, errorCode: UInt32) -> [UInt8] {
        self.frame(.goaway, stream: 0, payload: self.uint32(UInt32(lastStreamID)) + self.uint32(errorCode))
    }

    static func windowUpdate(stream: Int32, increment: UInt32) -> [UInt8] {
        self.frame(.windowUpdate, stream: stream, payload: self.uint32(increment))
    }

    static func uint32(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }
}

/// HPACK representations (RFC 7541 §6), without Huffman coding.
enum HPACK {
    /// An indexed header field (§6.1): one entry of the static table, e.g. 3 = `:method POST`.
    static func indexed(_ index: Int) -> [UInt8] { self.integer(index, prefixBits: 7, pattern: 0x80) }

    /// A literal without indexing, with a literal name (§6.2.2).
    static func literal(_ name: String, _ value: String) -> [UInt8] {
        [0x00] + self.string(name) + self.string(value)
    }

    /// A literal without indexing whose name is entry `nameIndex` of the static table (§6.2.2).
    static func literal(nameIndex: Int, _ value: String) -> [UInt8] {
        self.integer(nameIndex, prefixBits: 4, pattern: 0x00) + self.string(value)
    }

    /// A string literal, not Huffman-coded (§5.2).
    static func string(_ text: String) -> [UInt8] {
        let bytes = Array(text.utf8)
        return self.integer(bytes.count, prefixBits: 7, pattern: 0x00) + bytes
    }

    /// An integer with an N-bit prefix (§5.1).
    static func integer(_ value: Int, prefixBits: Int, pattern: UInt8) -> [UInt8] {
        let limit = (1 << prefixBits) - 1
        guard value >= limit else { return [pattern | UInt8(value)] }
        var out = [pattern | UInt8(limit)]
        var rest = value - limit
        while rest >= 128 {
            out.append(UInt8(rest & 0x7F) | 0x80)
            rest >>= 7
        }
        out.append(UInt8(rest))
        return out
    }
}

/// One frame read back from a session's output.
struct ParsedFrame: Equatable {
    var type: UInt8
    var flags: UInt8
    var stream: Int32
    var payload: [UInt8]

    /// The error code of a RST_STREAM or GOAWAY frame.
    var errorCode: UInt32? {
        switch self.type {
        case FrameBuilder.Kind.rstStream.rawValue where self.payload.count == 4: Self.uint32(self.payload[...])
        case FrameBuilder.Kind.goaway.rawValue where self.payload.count >= 8: Self.uint32(self.payload[4...])
        default: nil
        }
    }

    /// Splits bytes into frames, skipping a leading client preface. Stops at an incomplete frame.
    static func parse(_ bytes: [UInt8]) -> [ParsedFrame] {
        var index = bytes.starts(with: FrameBuilder.preface) ? FrameBuilder.preface.count : 0
        var frames: [ParsedFrame] = []
        while bytes.count - index >= 9 {
            let length = Int(bytes[index]) << 16 | Int(bytes[index + 1]) << 8 | Int(bytes[index + 2])
            guard bytes.count - index - 9 >= length else { break }
            let stream = Int32(bitPattern: self.uint32(bytes[(index + 5)...]) & 0x7FFF_FFFF)
            frames.append(
                ParsedFrame(
                    type: bytes[index + 3],
                    flags: bytes[index + 4],
                    stream: stream,
                    payload: Array(bytes[(index + 9)..<(index + 9 + length)])
                )
            )
            index += 9 + length
        }
        return frames
    }

    private static func uint32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        let start = bytes.startIndex
        return UInt32(bytes[start]) << 24 | UInt32(bytes[start + 1]) << 16 | UInt32(bytes[start + 2]) << 8
            | UInt32(bytes[start + 3])
    }
}
