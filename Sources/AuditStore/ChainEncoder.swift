import OpenSSLSupport
import SQLiteSupport

/// Turns records into rows of the chain on the writer thread: the bytes the hash covers, the hash, and the column
/// values a store inserts, all in one buffer it keeps, so that a record costs no allocation once it has grown.
///
/// One encoder per batch: its buffers grow to the size of a record once, then each record reuses them.
///
/// It writes the same canonical form as ``ChainRow`` (which verification uses on rows read back), column by
/// column from the record instead of through `[CanonicalValue]`; AuditStoreTests check that both agree.
///
/// Each value is written once: a row in ``text`` is `prev_hash + canonical` (what its hash covers), then the raw
/// values of the columns whose canonical form is escaped, then its hash. A text column is a range of that buffer:
/// inside its quotes in the canonical text when nothing in it needed escaping (nearly always), else its raw copy.
///
/// ```
/// var encoder = ChainEncoder(prevHash: head.hash)
/// encoder.encode(record, sequence: head.sequence + 1)
/// // encoder.columns index into encoder.text; encoder.hash is the next record's prev_hash
/// ```
struct ChainEncoder {
    /// One column value of a row: an integer, NULL, or ``ChainEncoder/text``[range] (UTF-8). The parameter type of
    /// SQLite inserts, so that a batch's columns are bound as they are.
    typealias Column = Statement.Parameter

    /// The rows encoded since ``clear()``, back to back (see the type's description).
    private(set) var text: [UInt8] = []
    /// The columns of the rows encoded since ``clear()``, row after row, each in table order:
    /// ``ChainRow/columnNames``, then prev_hash and hash, then ``ChainRow/laterColumnNames``.
    private(set) var columns: [Column] = []
    /// The hash of the last row (64 lowercase hex characters as UTF-8): the next row's prev_hash.
    private(set) var hash: [UInt8]
    /// Where `prev_hash + canonical` of the last row lies in ``text``.
    private var hashedRange: Range<Int> = 0..<0

    /// Raw values of the row's escaped columns, copied into ``text`` after its canonical text, and the index in
    /// ``columns`` each belongs to.
    private var escaped: [UInt8] = []
    private var escapedColumns: [(column: Int, range: Range<Int>)] = []
    private var digest = [UInt8](repeating: 0, count: 32)
    /// Where the row being encoded starts in ``columns``.
    private var firstColumn = 0
    private let sha256: SHA256Digest

    /// An encoder for rows that follow a row whose hash is `prevHash` (``ChainRow/zeroHash`` for an empty chain),
    /// hashing with `sha256` (a context kept by the caller: creating one costs an algorithm fetch).
    init(prevHash: String = ChainRow.zeroHash, sha256: SHA256Digest = ChainEncoder.makeDigest()) {
        self.sha256 = sha256
        self.hash = Array(prevHash.utf8)
        self.columns.reserveCapacity(SQLiteAuditSchema.allColumns.count)
        self.text.reserveCapacity(1024)
    }

    /// A SHA-256 context for encoders. A libcrypto without SHA-256 is a precondition failure, as for
    /// ``Crypto/sha256(_:)``.
    static func makeDigest() -> SHA256Digest {
        do {
            return try SHA256Digest()
        } catch {
            preconditionFailure("cannot hash audit records: \(error)")
        }
    }

    /// `prev_hash + canonical` of the last row: what its hash covers.
    var hashed: ArraySlice<UInt8> { self.text[self.hashedRange] }

    /// The hash of the last row as text.
    var hashText: String { String(decoding: self.hash, as: UTF8.self) }

    /// Forgets the rows encoded so far (``text`` and ``columns``), not the chain: the next row follows the last.
    mutating func clear() {
        self.text.removeAll(keepingCapacity: true)
        self.columns.removeAll(keepingCapacity: true)
        self.hashedRange = 0..<0
    }

    /// Encodes `record` as row `sequence`, after the row last encoded (or the `prevHash` of `init`), appending its
    /// columns to ``columns`` and ``text``.
    mutating func encode(_ record: borrowing AuditRecord, sequence: Int64) {
        self.firstColumn = self.columns.count
        let rowStart = self.text.count
        self.text.append(contentsOf: self.hash)
        let prevHash = rowStart..<self.text.count
        self.text.append(UInt8(ascii: "["))
        // The order of ChainRow.columnNames.
        self.integer(sequence)
        self.text(record.kind.rawValue)
        self.text(record.callID)
        self.integer(record.timeMilliseconds)
        self.text(record.principal)
        self.text(record.authentication)
        self.text(record.client)
        self.integer(record.tls.map { $0 ? 1 : 0 })
        self.text(record.rpc)
        self.text(record.action)
        self.text(record.database)
        self.text(record.collection)
        self.json(partitions: record.partitions)
        self.json(targets: record.targets)
        self.text(record.filter)
        self.integer(record.rows)
        self.integer(record.requestBytes)
        self.text(record.decision)
        self.text(record.rule)
        self.text(record.approvalID)
        self.text(record.snapshotID)
        self.integer(record.status.map(Int64.init))
        self.text(record.message)
        self.integer(record.durationMilliseconds.map(ChainRow.microseconds))
        // ChainRow.laterColumnNames, in their order: in the canonical text up to the last that is not NULL; their
        // columns follow the hash. (A third needs the same rule here; ChainEncoderTests compare with ChainRow.)
        let milvusCode = record.milvusCode.map(Int64.init)
        let policySequence = record.policySequence
        if milvusCode != nil || policySequence != nil { self.laterInteger(milvusCode) }
        if policySequence != nil { self.laterInteger(policySequence) }
        self.text.append(UInt8(ascii: "]"))
        self.hashedRange = rowStart..<self.text.count
        self.sha256.hash(self.text[self.hashedRange], into: &self.digest)

        for (column, range) in self.escapedColumns {
            let start = self.text.count
            self.text.append(contentsOf: self.escaped[range])
            self.columns[column] = .text(start..<self.text.count)
        }
        self.escaped.removeAll(keepingCapacity: true)
        self.escapedColumns.removeAll(keepingCapacity: true)

        self.hash.removeAll(keepingCapacity: true)
        Hex.append(self.digest, to: &self.hash)
        self.columns.append(.text(prevHash))
        let hashStart = self.text.count
        self.text.append(contentsOf: self.hash)
        self.columns.append(.text(hashStart..<self.text.count))
        self.columns.append(milvusCode.map { .integer($0) } ?? .null)
        self.columns.append(policySequence.map { .integer($0) } ?? .null)
    }

    /// A later column's value in the canonical text (its column is appended after the hash).
    private mutating func laterInteger(_ value: Int64?) {
        self.text.append(UInt8(ascii: ","))
        if let value {
            ChainRow.appendDecimal(value, to: &self.text)
        } else {
            self.appendNullText()
        }
    }

    private mutating func separate() {
        if self.columns.count > self.firstColumn { self.text.append(UInt8(ascii: ",")) }
    }

    private mutating func integer(_ value: Int64?) {
        self.separate()
        guard let value else { return self.null() }
        ChainRow.appendDecimal(value, to: &self.text)
        self.columns.append(.integer(value))
    }

    private mutating func text(_ value: String?) {
        self.separate()
        guard let value else { return self.null() }
        let utf8 = value.utf8.span
        self.text.append(UInt8(ascii: "\""))
        let start = self.text.count
        if JSONText.appendEscaped(utf8, to: &self.text) {
            let raw = self.escaped.count
            JSONText.append(utf8, to: &self.escaped)
            self.escapedColumns.append((self.columns.count, raw..<self.escaped.count))
            self.columns.append(.null)  // replaced by the raw copy once the canonical text is complete
        } else {
            self.columns.append(.text(start..<self.text.count))
        }
        self.text.append(UInt8(ascii: "\""))
    }

    /// The partitions column: a JSON array, hashed as a JSON string.
    private mutating func json(partitions: [String]) {
        guard !partitions.isEmpty else { return self.emptyJSON(UInt8(ascii: "["), UInt8(ascii: "]")) }
        self.separate()
        let raw = self.escaped.count
        JSONText.appendArray(partitions, to: &self.escaped)
        self.quoteEscaped(from: raw)
    }

    /// The targets column: a JSON object, hashed as a JSON string.
    private mutating func json(targets: [String: String]) {
        guard !targets.isEmpty else { return self.emptyJSON(UInt8(ascii: "{"), UInt8(ascii: "}")) }
        self.separate()
        let raw = self.escaped.count
        JSONText.appendObject(targets, to: &self.escaped)
        self.quoteEscaped(from: raw)
    }

    /// Hashes the raw value at ``escaped``[`raw`...] as a JSON string; its column is its raw copy.
    private mutating func quoteEscaped(from raw: Int) {
        JSONText.appendQuoted(bytes: self.escaped[raw...], to: &self.text)
        self.escapedColumns.append((self.columns.count, raw..<self.escaped.count))
        self.columns.append(.null)  // replaced by the raw copy once the canonical text is complete
    }

    /// An empty JSON array or object (`[]`, `{}`): nothing in it needs escaping.
    private mutating func emptyJSON(_ open: UInt8, _ close: UInt8) {
        self.separate()
        self.text.append(UInt8(ascii: "\""))
        let start = self.text.count
        self.text.append(open)
        self.text.append(close)
        self.columns.append(.text(start..<self.text.count))
        self.text.append(UInt8(ascii: "\""))
    }

    private mutating func null() {
        self.appendNullText()
        self.columns.append(.null)
    }

    /// `null` in the canonical text.
    private mutating func appendNullText() {
        // Byte by byte into new capacity: appending "null".utf8 goes through String's generic path.
        self.text.append(addingCapacity: 4) { output in
            for byte in [UInt8(ascii: "n"), UInt8(ascii: "u"), UInt8(ascii: "l"), UInt8(ascii: "l")] {
                output.append(byte)
            }
        }
    }
}
