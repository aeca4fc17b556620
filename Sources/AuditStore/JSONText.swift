/// The JSON this module writes and reads: the canonical form, the stored partitions and targets, and JSON lines.
///
/// Escaping follows Python's `json.dumps(…, ensure_ascii=False)` byte for byte, so a verifier written in Python
/// rebuilds the same canonical text: `"` and `\` are escaped, `\b \f \n \r \t` use their short forms, other
/// characters below U+0020 become `\u00XX` (lowercase hex), and everything else, non-ASCII included, is kept as
/// UTF-8.
enum JSONText {
    /// `text` as a JSON string literal, quotes included.
    static func quote(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + 2)
        Self.appendQuoted(text, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `text` as a JSON string literal to `out`.
    static func appendQuoted(_ text: String, to out: inout [UInt8]) {
        out.append(0x22)
        _ = Self.appendEscaped(text.utf8.span, to: &out)
        out.append(0x22)
    }

    /// Appends UTF-8 `bytes` as a JSON string literal to `out`.
    static func appendQuoted(bytes: ArraySlice<UInt8>, to out: inout [UInt8]) {
        out.append(0x22)
        _ = Self.appendEscaped(bytes.span, to: &out)
        out.append(0x22)
    }

    /// Appends UTF-8 `bytes` to `out` as the inside of a JSON string literal (no quotes): text that needs no
    /// escaping in one pass into `out`'s new capacity.
    /// - Returns: Whether anything was escaped (then what `out` got differs from `bytes`).
    static func appendEscaped(_ bytes: Span<UInt8>, to out: inout [UInt8]) -> Bool {
        guard Self.needsEscaping(bytes) else {
            Self.append(bytes, to: &out)
            return false
        }
        Self.appendEscaping(bytes, to: &out)
        return true
    }

    /// Appends `bytes` to `out` as they are.
    static func append(_ bytes: Span<UInt8>, to out: inout [UInt8]) {
        out.append(addingCapacity: bytes.count) { output in
            for index in bytes.indices { output.append(bytes[index]) }
        }
    }

    /// Whether any byte must be escaped. Works on bytes: the bytes that need escaping are all ASCII, and no byte
    /// of a multi-byte UTF-8 sequence is ASCII, so escaping byte by byte escapes exactly what escaping scalar by
    /// scalar would. Text without anything to escape (nearly all of it) is then appended in one copy: this is the
    /// audit writer's hot path.
    private static func needsEscaping(_ bytes: Span<UInt8>) -> Bool {
        for index in bytes.indices {
            let byte = bytes[index]
            if byte < 0x20 || byte == 0x22 || byte == 0x5C { return true }
        }
        return false
    }

    private static func appendEscaping(_ bytes: Span<UInt8>, to out: inout [UInt8]) {
        for index in bytes.indices { Self.appendEscaped(bytes[index], to: &out) }
    }

    private static func appendEscaped(_ byte: UInt8, to out: inout [UInt8]) {
        switch byte {
        case 0x22: out.append(contentsOf: [0x5C, 0x22])  // \"
        case 0x5C: out.append(contentsOf: [0x5C, 0x5C])  // \\
        case 0x08: out.append(contentsOf: [0x5C, 0x62])  // \b
        case 0x0C: out.append(contentsOf: [0x5C, 0x66])  // \f
        case 0x0A: out.append(contentsOf: [0x5C, 0x6E])  // \n
        case 0x0D: out.append(contentsOf: [0x5C, 0x72])  // \r
        case 0x09: out.append(contentsOf: [0x5C, 0x74])  // \t
        case 0..<0x20:
            let hex = Self.hexDigits
            out.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])  // \u00xx
        default:
            out.append(byte)
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// `["a","b"]`, compact.
    static func array(_ values: [String]) -> String {
        var out: [UInt8] = []
        Self.appendArray(values, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `["a","b"]`, compact, to `out`.
    static func appendArray(_ values: [String], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            Self.appendQuoted(value, to: &out)
        }
        out.append(UInt8(ascii: "]"))
    }

    /// `{"k":"v"}`, compact, keys sorted by Unicode code point (as Python's `sort_keys=True`; for UTF-8, byte
    /// order is code-point order).
    static func object(_ values: [String: String]) -> String {
        guard !values.isEmpty else { return "{}" }
        var out: [UInt8] = []
        Self.appendObject(values, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `{"k":"v"}` as ``object(_:)`` writes it to `out`.
    static func appendObject(_ values: [String: String], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        if !values.isEmpty {
            let keys = values.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            for (index, key) in keys.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                Self.appendQuoted(key, to: &out)
                out.append(UInt8(ascii: ":"))
                Self.appendQuoted(values[key] ?? "", to: &out)
            }
        }
        out.append(UInt8(ascii: "}"))
    }

    /// Parses a JSON array of strings; nil if `text` is anything else.
    static func parseArray(_ text: String) -> [String]? {
        var parser = Parser(Array(text.utf8))
        guard parser.consume(UInt8(ascii: "[")) else { return nil }
        var values: [String] = []
        if !parser.consume(UInt8(ascii: "]")) {
            repeat {
                guard let value = parser.string() else { return nil }
                values.append(value)
            } while parser.consume(UInt8(ascii: ","))
            guard parser.consume(UInt8(ascii: "]")) else { return nil }
        }
        return parser.atEnd ? values : nil
    }

    /// Parses a JSON object whose values are strings; nil if `text` is anything else.
    static func parseObject(_ text: String) -> [String: String]? {
        var parser = Parser(Array(text.utf8))
        guard parser.consume(UInt8(ascii: "{")) else { return nil }
        var values: [String: String] = [:]
        if !parser.consume(UInt8(ascii: "}")) {
            repeat {
                guard let key = parser.string(), parser.consume(UInt8(ascii: ":")), let value = parser.string() else {
                    return nil
                }
                values[key] = value
            } while parser.consume(UInt8(ascii: ","))
            guard parser.consume(UInt8(ascii: "}")) else { return nil }
        }
        return parser.atEnd ? values : nil
    }

    /// A tiny reader for the two shapes above: strings, `[`, `]`, `{`, `}`, `:`, `,` and whitespace.
    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool {
            mutating get {
                self.skipSpace()
                return self.index == self.bytes.count
            }
        }

        mutating func skipSpace() {
            while self.index < self.bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(self.bytes[self.index]) {
                self.index += 1
            }
        }

        mutating func consume(_ byte: UInt8) -> Bool {
            self.skipSpace()
            guard self.index < self.bytes.count, self.bytes[self.index] == byte else { return false }
            self.index += 1
            return true
        }

        mutating func hex4() -> UInt32? {
            guard self.index + 4 <= self.bytes.count else { return nil }
            var value: UInt32 = 0
            for byte in self.bytes[self.index..<self.index + 4] {
                guard let digit = Int(String(UnicodeScalar(byte)), radix: 16) else { return nil }
                value = value << 4 | UInt32(digit)
            }
            self.index += 4
            return value
        }

        mutating func string() -> String? {
            guard self.consume(UInt8(ascii: "\"")) else { return nil }
            var scalars = String.UnicodeScalarView()
            var raw: [UInt8] = []
            func flush() {
                scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars)
                raw.removeAll()
            }
            while self.index < self.bytes.count {
                let byte = self.bytes[self.index]
                self.index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    flush()
                    return String(scalars)
                case UInt8(ascii: "\\"):
                    flush()
                    guard self.index < self.bytes.count else { return nil }
                    let escape = self.bytes[self.index]
                    self.index += 1
                    switch escape {
                    case UInt8(ascii: "\""): scalars.append("\"")
                    case UInt8(ascii: "\\"): scalars.append("\\")
                    case UInt8(ascii: "/"): scalars.append("/")
                    case UInt8(ascii: "b"): scalars.append("\u{08}")
                    case UInt8(ascii: "f"): scalars.append("\u{0C}")
                    case UInt8(ascii: "n"): scalars.append("\n")
                    case UInt8(ascii: "r"): scalars.append("\r")
                    case UInt8(ascii: "t"): scalars.append("\t")
                    case UInt8(ascii: "u"):
                        guard var code = self.hex4() else { return nil }
                        if (0xD800..<0xDC00).contains(code) {
                            guard self.consume(UInt8(ascii: "\\")), self.consume(UInt8(ascii: "u")),
                                let low = self.hex4(), (0xDC00..<0xE000).contains(low)
                            else { return nil }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let scalar = Unicode.Scalar(code) else { return nil }
                        scalars.append(scalar)
                    default:
                        return nil
                    }
                default:
                    guard byte >= 0x20 else { return nil }
                    raw.append(byte)
                }
            }
            return nil
        }
    }
}
