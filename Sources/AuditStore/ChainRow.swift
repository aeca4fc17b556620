import OpenSSLSupport

/// A record as stored: its content columns (``columnNames``, sequence first), the previous record's hash and its
/// own hash.
///
/// This is the store-independent heart of the hash chain; docs/audit.md describes the same rules for people
/// re-implementing the check:
/// - canonical = the content columns as a compact JSON array, in ``columnNames`` order, followed by
///   ``laterColumnNames`` up to the last one that is not NULL (NULLs at the end left out, so records written before a
///   column existed keep their hash, and a value can't move from one later column to another unnoticed);
/// - hash = lowercase hex SHA-256 of the UTF-8 bytes of `prev_hash + canonical` (prev_hash as 64 hex characters);
/// - the first record's prev_hash is 64 zeros.
struct ChainRow: Hashable, Sendable {
    /// The content columns, in storage and canonical order. `prev_hash` and `hash` follow them in the table.
    static let columnNames = [
        "seq", "kind", "call_id", "time_ms", "principal", "auth", "client", "tls", "rpc", "action", "db", "collection",
        "partitions", "targets", "filter", "rows", "request_bytes", "decision", "rule", "approval_id", "snapshot_id",
        "status", "message", "duration_us",
    ]
    /// Content columns added by later migrations, after `prev_hash` and `hash` in the table: in the canonical text
    /// up to the last that is not NULL. `milvus_code` (v6): Milvus's own failure code when it answered gRPC OK.
    /// `policy_seq` (v7): the sequence number of the policy record in force where a request or refusal was made.
    static let laterColumnNames = ["milvus_code", "policy_seq"]
    /// Every content column: ``columnNames``, then ``laterColumnNames``.
    static let contentColumnNames = columnNames + laterColumnNames
    /// prev_hash of the first record.
    static let zeroHash = String(repeating: "0", count: 64)

    /// Values for ``contentColumnNames``.
    var columns: [CanonicalValue]
    var prevHash: String
    var hash: String

    /// The sequence number (column `seq`); 0 if the column is not an integer (a tampered row).
    var sequence: Int64 { self.columns.first?.integer ?? 0 }
    /// The record kind (column `kind`).
    var kind: String? { self.columns[1].text }

    /// Builds the row for `record` at `sequence` after a record whose hash is `prevHash`, computing its hash.
    init(record: AuditRecord, sequence: Int64, prevHash: String) {
        self.columns = Self.columns(of: record, sequence: sequence)
        self.prevHash = prevHash
        self.hash = Self.hash(prevHash: prevHash, columns: self.columns)
    }

    /// A row as read back from a store.
    init(columns: [CanonicalValue], prevHash: String, hash: String) {
        self.columns = columns
        self.prevHash = prevHash
        self.hash = hash
    }

    /// The canonical text: the content columns as a compact JSON array.
    static func canonical(_ columns: [CanonicalValue]) -> String {
        var bytes: [UInt8] = []
        Self.appendCanonical(columns, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the canonical text's UTF-8 bytes to `out`.
    static func appendCanonical(_ columns: [CanonicalValue], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        // Later columns end at the last that is not NULL.
        var end = columns.count
        while end > Self.columnNames.count, case .null = columns[end - 1] { end -= 1 }
        for (index, column) in columns[..<end].enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            switch column {
            case .integer(let value): Self.appendDecimal(value, to: &out)
            case .text(let value): JSONText.appendQuoted(value, to: &out)
            case .null: out.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])  // null
            }
        }
        out.append(UInt8(ascii: "]"))
    }

    /// Appends `value` in decimal, as `String(value)` writes it (without building a String per column): the digits
    /// go straight into `out`'s new capacity.
    static func appendDecimal(_ value: Int64, to out: inout [UInt8]) {
        // Digits are counted by comparison and written last to first, dividing only by the constant 10 (which
        // compiles to a multiplication): dividing by a running power of ten cost a hardware division per digit.
        let magnitude = value.magnitude
        var digits = 1
        var bound: UInt64 = 10
        while digits < 19 && magnitude >= bound {  // Int64's magnitude has at most 19 digits
            digits += 1
            bound &*= 10
        }
        if value < 0 { out.append(UInt8(ascii: "-")) }
        out.append(addingCapacity: digits) { output in
            output.append(repeating: UInt8(ascii: "0"), count: digits)
            var span = output.mutableSpan
            var rest = magnitude
            var index = digits
            while rest > 0 {
                index -= 1
                span[index] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
                rest /= 10
            }
        }
    }

    /// SHA-256 of `prevHash + canonical`, as 64 lowercase hex characters.
    static func hash(prevHash: String, columns: [CanonicalValue]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(512)
        bytes.append(contentsOf: prevHash.utf8)
        Self.appendCanonical(columns, to: &bytes)
        return Hex.encode(Crypto.sha256(bytes))
    }

    /// The content columns of a record.
    static func columns(of record: AuditRecord, sequence: Int64) -> [CanonicalValue] {
        [
            .integer(sequence),
            .text(record.kind.rawValue),
            .text(record.callID),
            .integer(record.timeMilliseconds),
            CanonicalValue(record.principal),
            CanonicalValue(record.authentication),
            CanonicalValue(record.client),
            CanonicalValue(record.tls.map { $0 ? 1 : 0 }),
            CanonicalValue(record.rpc),
            CanonicalValue(record.action),
            CanonicalValue(record.database),
            CanonicalValue(record.collection),
            .text(JSONText.array(record.partitions)),
            .text(JSONText.object(record.targets)),
            CanonicalValue(record.filter),
            CanonicalValue(record.rows),
            CanonicalValue(record.requestBytes),
            CanonicalValue(record.decision),
            CanonicalValue(record.rule),
            CanonicalValue(record.approvalID),
            CanonicalValue(record.snapshotID),
            CanonicalValue(record.status.map(Int64.init)),
            CanonicalValue(record.message),
            CanonicalValue(record.durationMilliseconds.map(Self.microseconds)),
            CanonicalValue(record.milvusCode.map(Int64.init)),
            CanonicalValue(record.policySequence),
        ]
    }

    /// Milliseconds as whole microseconds, rounded to nearest; clamped to Int64.
    static func microseconds(_ milliseconds: Double) -> Int64 {
        let value = (milliseconds * 1000).rounded()
        guard value.isFinite else { return 0 }
        return Int64(exactly: value) ?? (value < 0 ? .min : .max)
    }

    /// The record the columns describe; nil when a column has a type or value no writer produces.
    var record: AuditRecord? {
        let c = self.columns
        guard c.count == Self.contentColumnNames.count, let kindText = c[1].text,
            let kind = AuditRecord.Kind(rawValue: kindText),
            let callID = c[2].text, let time = c[3].integer
        else { return nil }
        var record = AuditRecord(kind: kind, callID: callID, timeMilliseconds: time)
        record.principal = c[4].text
        record.authentication = c[5].text
        record.client = c[6].text
        record.tls = c[7].integer.map { $0 != 0 }
        record.rpc = c[8].text
        record.action = c[9].text
        record.database = c[10].text
        record.collection = c[11].text
        record.partitions = c[12].text.flatMap(JSONText.parseArray) ?? []
        record.targets = c[13].text.flatMap(JSONText.parseObject) ?? [:]
        record.filter = c[14].text
        record.rows = c[15].integer
        record.requestBytes = c[16].integer
        record.decision = c[17].text
        record.rule = c[18].text
        record.approvalID = c[19].text
        record.snapshotID = c[20].text
        record.status = c[21].integer.flatMap { Int32(exactly: $0) }
        record.message = c[22].text
        record.durationMilliseconds = c[23].integer.map { Double($0) / 1000 }
        record.milvusCode = c[24].integer.flatMap { Int32(exactly: $0) }
        record.policySequence = c[25].integer
        return record
    }
}

/// Lowercase hexadecimal.
public enum Hex {
    /// `bytes` as lowercase hex, two digits each.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        Self.append(bytes, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `bytes` as lowercase hex to `out`, straight into its new capacity.
    static func append(_ bytes: some Collection<UInt8>, to out: inout [UInt8]) {
        out.append(addingCapacity: 2 * bytes.count) { output in
            for byte in bytes {
                output.append(Self.digit(byte >> 4))
                output.append(Self.digit(byte & 0x0F))
            }
        }
    }

    private static func digit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }
}
