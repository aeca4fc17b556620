import Logging

/// Text from clients made safe to print on one line of a terminal or a log.
///
/// Collection names, filter expressions and the like come from requests as any bytes a client chose, and reach the
/// log (`denied … reason=…`) and the `audit` table. Printed as they are, a newline forges a log line (such as a fake
/// `audit chain head` anchor), and terminal escapes can move the cursor and erase the line that recorded the call.
/// So control characters (C0, DEL, C1), bidirectional overrides (which reorder what is shown) and line or paragraph
/// separators print as escapes: `\n`, `\r`, `\t`, otherwise `\u{1B}`.
enum PrintableText {
    /// `text` with every character that could change what a terminal or log line shows escaped; the same string
    /// when there is none (the usual case, without copying).
    static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: Self.needsEscape) else { return text }
        var result = ""
        result.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            guard Self.needsEscape(scalar) else {
                result.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default: result += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            }
        }
        return result
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true  // C0, DEL, C1 (ESC, CSI, newlines)
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true  // bidirectional marks and overrides
        case 0x2028, 0x2029: true  // line and paragraph separators
        default: false
        }
    }
}

/// A log handler that escapes (``PrintableText``) the message and every metadata value before the wrapped handler
/// writes them, so that no text from a client can start a line of its own in the log.
struct PrintableLogHandler<Wrapped: LogHandler>: LogHandler {
    private var wrapped: Wrapped

    init(_ wrapped: Wrapped) {
        self.wrapped = wrapped
    }

    func log(event: LogEvent) {
        var event = event
        let message = event.message.description
        let escaped = PrintableText.escaped(message)
        if escaped != message { event.message = "\(escaped)" }
        event.metadata = event.metadata?.mapValues(Self.escaped)
        self.wrapped.log(event: event)
    }

    static func escaped(_ value: Logger.MetadataValue) -> Logger.MetadataValue {
        switch value {
        case .string(let text): .string(PrintableText.escaped(text))
        case .stringConvertible(let convertible): .string(PrintableText.escaped(convertible.description))
        case .array(let values): .array(values.map(Self.escaped))
        case .dictionary(let values): .dictionary(values.mapValues(Self.escaped))
        }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { self.wrapped.metadataProvider }
        set { self.wrapped.metadataProvider = newValue }
    }

    var metadata: Logger.Metadata {
        get { self.wrapped.metadata }
        set { self.wrapped.metadata = newValue.mapValues(Self.escaped) }
    }

    subscript(metadataKey key: String) -> Logger.MetadataValue? {
        get { self.wrapped[metadataKey: key] }
        set { self.wrapped[metadataKey: key] = newValue.map(Self.escaped) }
    }

    var logLevel: Logger.Level {
        get { self.wrapped.logLevel }
        set { self.wrapped.logLevel = newValue }
    }
}
