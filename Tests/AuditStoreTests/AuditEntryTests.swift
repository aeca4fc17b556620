import AuditStore
import Testing

@Suite("AuditEntry JSON lines and AuditTime")
struct AuditEntryTests {
    @Test("jsonLine has every field in order, escapes control characters and quotes, keeps UTF-8")
    func escaping() {
        var record = AuditRecord(kind: .request, callID: callID(1), timeMilliseconds: 1_746_100_800_123)
        record.principal = "zoë \"the\" admin\\"
        record.filter = "a == \"x\"\n\tb\u{01}\u{1F} ✓ 日本"
        record.partitions = ["p\u{08}\u{0C}\r"]
        record.targets = ["role": "r", "alias": "a"]
        record.tls = false
        record.rows = 3
        record.policySequence = 41
        var answered = outcome(1)
        answered.rows = 2
        let entry = AuditEntry(id: 7, record: record, outcomeRecord: answered, hash: "h", prevHash: "p")
        let expected =
            #"{"id":7,"time":"2025-05-01T12:00:00.123Z","principal":"zoë \"the\" admin\\","auth":null,"client":null,"#
            + #""tls":false,"rpc":null,"action":null,"db":null,"collection":null,"partitions":["p\b\f\r"],"#
            + #""targets":{"alias":"a","role":"r"},"filter":"a == \"x\"\n\tb\u0001\u001f ✓ 日本","rows":3,"#
            + #""rows_affected":2,"request_bytes":null,"decision":null,"rule":null,"policy_id":41,"approval_id":null,"#
            + #""snapshot_id":null,"#
            + #""outcome":"ok","status":0,"milvus_code":null,"message":null,"duration_ms":12.345,"hash":"h","prev_hash":"p"}"#
        #expect(entry.jsonLine() == expected)
        #expect(!entry.jsonLine().contains("\n"))
    }

    @Test(
        "Durations print with three decimals",
        arguments: [(12.345, "12.345"), (3, "3.000"), (0.0004, "0.000"), (-0.5, "-0.500")]
    )
    func durations(value: Double, text: String) {
        #expect(AuditEntry.formatMilliseconds(value) == text)
    }

    @Test(
        "RFC 3339 times parse to UTC milliseconds",
        arguments: [
            ("2025-05-01T12:00:00.123Z", Int64(1_746_100_800_123)),
            ("2025-05-01T12:00:00Z", 1_746_100_800_000),
            ("2025-05-01t14:00:00.5+02:00", 1_746_100_800_500),
            ("2025-05-01 12:00:00z", 1_746_100_800_000),
            ("2025-05-01", 1_746_057_600_000),
            ("1970-01-01T00:00:00Z", 0),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000),
        ]
    )
    func parse(text: String, milliseconds: Int64) {
        #expect(AuditTime.parse(text) == milliseconds)
    }

    @Test(
        "Impossible or malformed times are refused",
        arguments: [
            "2025-02-29", "2025-13-01", "2025-05-01T24:00:00Z", "2025-05-01T12:00:00", "yesterday", "2025-5-1", "",
            "2025-05-01T12:00:00.Z",
        ]
    )
    func parseFailures(text: String) {
        #expect(AuditTime.parse(text) == nil)
    }

    @Test("Format and parse round-trip")
    func roundTrip() {
        for milliseconds: Int64 in [0, 1, 999, 1_746_100_800_123, 4_102_444_799_999] {
            #expect(AuditTime.parse(AuditTime.format(milliseconds: milliseconds)) == milliseconds)
        }
    }

    @Test("Times before 1970 and times no calendar year holds format without a crash")
    func extremeTimes() {
        #expect(AuditTime.format(milliseconds: -1) == "1969-12-31T23:59:59.999Z")
        #expect(AuditTime.format(milliseconds: -1000) == "1969-12-31T23:59:59.000Z")
        #expect(AuditTime.format(milliseconds: -62_167_219_200_000) == "0000-01-01T00:00:00.000Z")
        #expect(AuditTime.format(milliseconds: 253_402_300_799_999) == "9999-12-31T23:59:59.999Z")
        #expect(AuditTime.format(milliseconds: 253_402_300_800_000) == "time_ms 253402300800000")
        #expect(AuditTime.format(milliseconds: .min) == "time_ms -9223372036854775808")
        #expect(AuditTime.format(milliseconds: .max) == "time_ms 9223372036854775807")
    }

    @Test("Relative bounds count back from now")
    func bounds() {
        let now: Int64 = 10_000_000_000
        #expect(AuditTime.parseBound("30m", now: now) == now - 1_800_000)
        #expect(AuditTime.parseBound("1h", now: now) == now - 3_600_000)
        #expect(AuditTime.parseBound("7d", now: now) == now - 604_800_000)
        #expect(AuditTime.parseBound("45s", now: now) == now - 45_000)
        #expect(AuditTime.parseBound("2025-05-01", now: now) == 1_746_057_600_000)
        #expect(AuditTime.parseBound("1y", now: now) == nil)
        #expect(AuditTime.parseBound("-1h", now: now) == nil)
    }
}
