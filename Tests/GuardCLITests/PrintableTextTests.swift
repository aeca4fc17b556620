import Logging
import Synchronization
import Testing

@testable import GuardCLI

/// Collects what a StreamLogHandler writes.
private final class CapturedStream: TextOutputStream, Sendable {
    let text = Mutex("")
    func write(_ string: String) { self.text.withLock { $0 += string } }
}

@Suite("Printable text")
struct PrintableTextTests {
    @Test(
        "Control characters, bidirectional overrides and line separators print as escapes",
        arguments: [
            ("a\nb\rc\td", "a\\nb\\rc\\td"),
            ("\u{1B}[2K\u{7}", "\\u{1B}[2K\\u{7}"),
            ("\u{0}\u{7F}\u{85}\u{9B}", "\\u{0}\\u{7F}\\u{85}\\u{9B}"),
            ("abc\u{202E}txt.exe\u{2066}\u{200F}\u{61C}", "abc\\u{202E}txt.exe\\u{2066}\\u{200F}\\u{61C}"),
            ("one\u{2028}two\u{2029}", "one\\u{2028}two\\u{2029}"),
        ]
    )
    func escapes(text: String, printed: String) {
        #expect(PrintableText.escaped(text) == printed)
    }

    @Test(
        "Ordinary text, in any script, is left as it is",
        arguments: ["books", "café_2024", "书籍", "id in [1, 2]", ""]
    )
    func ordinary(text: String) {
        #expect(PrintableText.escaped(text) == text)
    }

    @Test("The log handler writes a message and metadata holding newlines and escapes as one line")
    func logHandler() {
        let stream = CapturedStream()
        var logger = Logger(label: "test") { label in
            PrintableLogHandler(StreamLogHandler(label: label, stream: stream))
        }
        logger[metadataKey: "connection"] = "peer\nforged"
        logger.info(
            "denied on default.x\n2026-01-01T00:00:00+0000 notice fake: anchor=1:00",
            metadata: [
                "reason": "may not drop default.books\n2026-01-01T00:00:00+0000 notice milvus-guard: anchor=1:00ff",
                "list": .array(["a\u{1B}[1A", .dictionary(["k": "v\r"])]),
                "described": .stringConvertible(42),
            ]
        )
        let text = stream.text.withLock { $0 }
        #expect(text.split(separator: "\n").count == 1)
        #expect(text.contains("denied on default.x\\n2026-01-01T00:00:00+0000 notice fake: anchor=1:00"))
        #expect(text.contains("reason=may not drop default.books\\n2026-01-01T00:00:00+0000 notice milvus-guard"))
        // Arrays and dictionaries print their strings quoted and escaped once more (Swift's debugDescription).
        #expect(!text.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" || $0.value == 0x1B })
        #expect(text.hasSuffix("\n"))
        #expect(text.contains("connection=peer\\nforged"))
        #expect(text.contains("described=42"))
    }
}
