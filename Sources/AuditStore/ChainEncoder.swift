import OpenSSLSupport

/// Turns records into rows of the chain on the writer thread: the bytes the hash covers, the hash, and the column
/// values a store inserts, all in buffers it keeps, so that a record costs no allocation once they have grown.
///
/// One encoder per batch: its buffers grow to the size of a record once, then each record reuses them.
///
/// It writes the same canonical form as ``ChainRow`` (which verification uses on rows read back), column by
/// column from the record instead of through `[CanonicalValue]`; AuditStoreTests check that both agree.
///
/// ```
/// var encoder = ChainEncoder(prevHash: head.hash)
/// encoder.encode(record, sequence: head.sequence + 1)
/// // encoder.columns index into encoder.text; encoder.hash is the next record's prev_hash
/// ```
struct ChainEncoder {
    /// One column value of the row last encoded.
    enum Column: Hashable {
        case integer(Int64)
        case null
        /// ``ChainEncoder/text``[range], UTF-8.
        case text(Range<Int>)
    }

    /// The UTF-8 of the text columns of the rows encoded since ``clear()``, back to back.
    private(set) var text: [UInt8] = []
    /// The columns of the rows encoded since ``clear()``, row after row, each in table order:
    /// ``ChainRow/columnNames``, then prev_hash and hash.
    private(set) var columns: [Column] = []
    /// `prev_hash + canonical` of the last row: what its hash covers.
    private(set) var hashed: [UInt8] = []
    /// The hash of the last row (64 lowercase hex characters as UTF-8): the next row's prev_hash.
    private(set) var hash: [UInt8]
    /// The hash before ``hash``: the prev_hash of the last row. Swapped with ``hash`` per row, so neither buffer is
    /// shared when it is rewritten (a copy would make `removeAll(keepingCapacity:)` allocate).
    private var previousHash: [UInt8] = []

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
        self.hashed.reserveCapacity(1024)
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

    /// The hash of the last row as text.
    var hashText: String { String(decoding: self.hash, as: UTF8.self) }

    /// Forgets the rows encoded so far (``text`` and ``columns``), not the chain: the next row follows the last.
    mutating func clear() {
        self.text.removeAll(keepingCapacity: true)
        self.columns.removeAll(keepingCapacity: true)
    }

    /// Encodes `record` as row `sequence`, after the row last encoded (or the `prevHash` of `init`), appending its
    /// columns to ``columns`` and ``text``.
    mutating func encode(_ record: borrowing AuditRecord, sequence: Int64) {
        self.hashed.removeAll(keepingCapacity: true)
        self.firstColumn = self.columns.count
        swap(&self.previousHash, &self.hash)
        self.hashed.append(contentsOf: self.previousHash)
        self.hashed.append(UInt8(ascii: "["))
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
        self.hashed.append(UInt8(ascii: "]"))

        self.sha256.hash(self.hashed, into: &self.digest)
        self.hash.removeAll(keepingCapacity: true)
        Hex.append(self.digest, to: &self.hash)
        self.raw(self.previousHash)
        self.raw(self.hash)
    }

    private mutating func separate() {
        if self.columns.count > self.firstColumn { self.hashed.append(UInt8(ascii: ",")) }
    }

    private mutating func integer(_ value: Int64?) {
        self.separate()
        guard let value else { return self.null() }
        ChainRow.appendDecimal(value, to: &self.hashed)
        self.columns.append(.integer(value))
    }

    private mutating func text(_ value: String?) {
        self.separate()
        guard var value else { return self.null() }
        let start = self.text.count
        // The String lends its UTF-8 (small ones from a stack copy): one copy into each buffer.
        value.withUTF8 { utf8 in
            self.text.append(contentsOf: utf8)
            JSONText.appendQuoted(buffer: utf8, to: &self.hashed)
        }
        self.columns.append(.text(start..<self.text.count))
    }

    /// The partitions column: a JSON array written raw into ``text``, hashed as a JSON string.
    private mutating func json(partitions: [String]) {
        guard !partitions.isEmpty else { return self.json("[]") }
        self.separate()
        let start = self.text.count
        JSONText.appendArray(partitions, to: &self.text)
        self.quoteText(from: start)
    }

    /// The targets column: a JSON object written raw into ``text``, hashed as a JSON string.
    private mutating func json(targets: [String: String]) {
        guard !targets.isEmpty else { return self.json("{}") }
        self.separate()
        let start = self.text.count
        JSONText.appendObject(targets, to: &self.text)
        self.quoteText(from: start)
    }

    /// Hashes ``text`` from `start` as a JSON string and ends its column there.
    private mutating func quoteText(from start: Int) {
        JSONText.appendQuoted(bytes: self.text[start...], to: &self.hashed)
        self.columns.append(.text(start..<self.text.count))
    }

    /// A JSON text column whose text is known (an empty array or object): nothing in it needs escaping.
    private mutating func json(_ literal: StaticString) {
        self.separate()
        let start = self.text.count
        let bytes = UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        self.text.append(contentsOf: bytes)
        self.hashed.append(UInt8(ascii: "\""))
        self.hashed.append(contentsOf: bytes)
        self.hashed.append(UInt8(ascii: "\""))
        self.columns.append(.text(start..<self.text.count))
    }

    private mutating func null() {
        self.hashed.append(contentsOf: "null".utf8)
        self.columns.append(.null)
    }

    /// A column that is not hashed (prev_hash, hash).
    private mutating func raw(_ bytes: [UInt8]) {
        let start = self.text.count
        self.text.append(contentsOf: bytes)
        self.columns.append(.text(start..<self.text.count))
    }
}
