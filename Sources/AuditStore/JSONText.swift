/// The JSON this module writes and reads: the canonical form, the stored partitions and targets, and JSON lines.
///
/// Escaping follows Python's `json.dumps(…, ensure_ascii=False)` byte for byte, so a verifier written in Python
/// rebuilds the same canonical text: `"` and `\` are escaped, `\b \f \n \r \t` use their short forms, other
/// characters below U+0020 become `\u00XX` (lowercase hex), and everything else, non-ASCII included, is kept as
/// UTF-8.
enum JSONText {
    /// `text` as a JSON string literal, quotes included.
    static func quote(_ text: String) -> String {
        var out = "\""
        out.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// `["a","b"]`, compact.
    static func array(_ values: [String]) -> String {
        "[" + values.map(Self.quote).joined(separator: ",") + "]"
    }

    /// `{"k":"v"}`, compact, keys sorted by Unicode code point (as Python's `sort_keys=True`).
    static func object(_ values: [String: String]) -> String {
        let keys = values.keys.sorted {
            Array($0.unicodeScalars.map(\.value)).lexicographicallyPrecedes($1.unicodeScalars.map(\.value))
        }
        return "{" + keys.map { Self.quote($0) + ":" + Self.quote(values[$0] ?? "") }.joined(separator: ",") + "}"
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
