import Glibc
import SQLiteSupport

/// Everything SQL about the audit store: the table, its migrations, and the statements both the writer thread and
/// the reader use. Nothing outside the SQLite implementation sees SQL.
enum SQLiteAuditSchema {
    /// The table holding every record.
    static let table = "audit_records"

    /// Ordered migrations; migration `i` takes the schema from version `i` to `i + 1` (`PRAGMA user_version`).
    /// Never edit a released migration: append a new one.
    static let migrations: [String] = [
        // v1: the records table. Columns follow ChainRow.columnNames, then prev_hash and hash.
        """
        CREATE TABLE audit_records (
            seq INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            call_id TEXT NOT NULL,
            time_ms INTEGER NOT NULL,
            principal TEXT,
            auth TEXT,
            client TEXT,
            tls INTEGER,
            rpc TEXT,
            action TEXT,
            db TEXT,
            collection TEXT,
            partitions TEXT NOT NULL,
            targets TEXT NOT NULL,
            filter TEXT,
            rows INTEGER,
            request_bytes INTEGER,
            decision TEXT,
            rule TEXT,
            approval_id TEXT,
            snapshot_id TEXT,
            status INTEGER,
            message TEXT,
            duration_us INTEGER,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX audit_records_time ON audit_records (time_ms);
        """,
        // v2: joining an outcome to its request looked it up by call_id with a full scan.
        """
        CREATE INDEX audit_records_call ON audit_records (call_id, kind);
        """,
        // v3: only outcome records are ever looked up by call_id (to join them to their request): index those
        // alone, and request and refusal records cost one index insert less.
        """
        DROP INDEX audit_records_call;
        CREATE INDEX audit_records_outcome ON audit_records (call_id) WHERE kind = 'outcome';
        """,
        // v4: outcome records are never looked up by time (listings start from requests and refusals, and an
        // outcome goes with its call when pruning): the time index leaves them out, and each call costs one index
        // insert less (AuditBenchmark: about 9 % less writer CPU per record).
        """
        DROP INDEX audit_records_time;
        CREATE INDEX audit_records_time ON audit_records (time_ms) WHERE kind != 'outcome';
        """,
        // v5: the calls a security team looks for first are those not allowed (`audit --decision denied`); without
        // an index that was a walk through the table. Allowed calls, nearly all, are left out, so writing one costs
        // only the test of the condition.
        """
        CREATE INDEX audit_records_decision ON audit_records (decision)
            WHERE kind != 'outcome' AND decision != 'allowed';
        """,
        // v6: Milvus answers most failures with gRPC OK and a failed common.Status in the response; an outcome
        // record keeps its code here (NULL otherwise). A content column added later: in the canonical text only
        // when not NULL, so the records before it keep their hashes (ChainRow.laterColumnNames).
        """
        ALTER TABLE audit_records ADD COLUMN milvus_code INTEGER;
        """,
        // v7: which policy decided a call: the seq of the `policy` record in force on the guard that made a request or
        // refusal record (NULL otherwise). A later content column like milvus_code: in the canonical text up to the
        // last later column that is not NULL.
        """
        ALTER TABLE audit_records ADD COLUMN policy_seq INTEGER;
        """,
    ]

    /// The schema version this code writes.
    static var currentVersion: Int { Self.migrations.count }

    /// Every column, in table order.
    static let allColumns = ChainRow.columnNames + ["prev_hash", "hash"] + ChainRow.laterColumnNames

    /// The schema version that added each of ``ChainRow/laterColumnNames``.
    static let laterColumnVersions = ["milvus_code": 6, "policy_seq": 7]

    /// Whether a store of schema `version` has `column` (one of ``allColumns``).
    static func has(_ column: String, version: Int) -> Bool {
        Self.laterColumnVersions[column].map { version >= $0 } ?? true
    }

    /// `col, col, …` (``allColumns``) with an optional table alias. A column a store of schema `version` does not
    /// have yet reads as `NULL` (the CLI reads older stores without migrating them).
    static func columnList(alias: String? = nil, version: Int = currentVersion) -> String {
        Self.allColumns.map { column in
            guard Self.has(column, version: version) else { return "NULL" }
            return alias.map { "\($0).\(Self.quoted(column))" } ?? Self.quoted(column)
        }.joined(separator: ", ")
    }

    /// Column names that are SQL keywords (`rows`, `filter`) need quotes.
    private static func quoted(_ name: String) -> String { "\"\(name)\"" }

    /// Sets WAL mode and brings the schema to ``currentVersion`` in one `BEGIN IMMEDIATE` transaction, so two
    /// processes opening a new file at once migrate it once.
    ///
    /// Where waiting could deadlock, SQLite fails with `SQLITE_BUSY` at once instead of waiting: two processes that
    /// open a new file together both read it, then both want the write lock to switch it to WAL. Such a failure is
    /// tried again, every millisecond, until the connection's busy timeout has passed.
    /// - Throws: ``AuditStoreError`` if the file is newer than this code or cannot be written.
    static func migrate(_ db: SQLiteConnection) throws(AuditStoreError) {
        let deadline = AuditTime.monotonicNanoseconds() + Int64(db.busyTimeoutMilliseconds) * 1_000_000
        while true {
            do {
                try Self.migrateOnce(db)
                return
            } catch let error as SQLiteError
                where (error.code == .busy || error.code == .locked) && AuditTime.monotonicNanoseconds() < deadline
            {
                AuditTime.sleep(nanoseconds: 1_000_000)
            } catch let error as SQLiteError {
                throw Self.error(error, path: db.path)
            } catch let error as AuditStoreError {
                throw error
            } catch {
                throw AuditStoreError("\(db.path): \(error)")
            }
        }
    }

    private static func migrateOnce(_ db: SQLiteConnection) throws {
        let journal = try Self.setWAL(db)
        guard journal?.lowercased() == "wal" else {
            throw AuditStoreError("cannot switch \(db.path) to WAL mode (journal mode \(journal ?? "unknown"))")
        }
        try db.transaction(.immediate) { () throws(SQLiteError) in
            let version = try Self.userVersion(db)
            guard version <= Self.currentVersion else {
                throw SQLiteError(
                    extendedCode: 1,
                    message:
                        "schema version \(version) is newer than this milvus-guard supports (\(Self.currentVersion))"
                )
            }
            for migration in Self.migrations[version...] {
                try db.exec(migration)
            }
            try db.exec("PRAGMA user_version = \(Self.currentVersion)")
        }
    }

    /// Switches to WAL and returns the journal mode now in force. The statement is finalized on return: a
    /// statement left open would make the migration's COMMIT fail with SQLITE_BUSY.
    private static func setWAL(_ db: SQLiteConnection) throws(SQLiteError) -> String? {
        let mode = try db.prepare("PRAGMA journal_mode = WAL")
        return try mode.step() == .row ? mode.string(at: 0) : nil
    }

    /// What a schema version made of the records table: its indexes and triggers (`"index audit_records_time"`: the
    /// SQL SQLite keeps for it) and its columns, in order.
    struct Shape: Equatable {
        var objects: [String: String] = [:]
        var columns: [String] = []
    }

    /// The shape of the records table in `db`.
    static func shape(_ db: SQLiteConnection) throws(SQLiteError) -> Shape {
        var shape = Shape()
        let objects = try db.prepare(
            "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = '\(Self.table)' AND type != 'table'"
        )
        while try objects.step() == .row {
            shape.objects["\(objects.string(at: 0) ?? "") \(objects.string(at: 1) ?? "")"] = objects.string(at: 2) ?? ""
        }
        let columns = try db.prepare("SELECT name FROM pragma_table_info('\(Self.table)')")
        while try columns.step() == .row { shape.columns.append(columns.string(at: 0) ?? "") }
        return shape
    }

    /// The shape schema `version`'s migrations make: they are run on an in-memory database, so the SQL is the text
    /// this SQLite keeps for them.
    static func shape(version: Int) throws(SQLiteError) -> Shape {
        let db = try SQLiteConnection(path: ":memory:")
        for migration in Self.migrations.prefix(version) { try db.exec(migration) }
        return try Self.shape(db)
    }

    /// `PRAGMA user_version`: 0 for a file that holds no audit store.
    static func userVersion(_ db: SQLiteConnection) throws(SQLiteError) -> Int {
        let statement = try db.prepare("PRAGMA user_version")
        return try statement.step() == .row ? Int(statement.int64(at: 0)) : 0
    }

    /// The condition under which records are in the time index: repeat it in a query that filters by time, so that
    /// SQLite can use the (partial) index.
    static let timeIndexed = "kind != 'outcome'"

    /// The index on `time_ms` (migration 4), for queries that must name it.
    static let timeIndex = "audit_records_time"

    /// The condition under which records are in the decision index (migration 5), to repeat in a query that filters
    /// by a decision other than `allowed`.
    static let decisionIndexed = "decision != 'allowed'"

    /// The newest record, or nil for an empty store.
    static func head(_ db: SQLiteConnection) throws(SQLiteError) -> ChainRow? {
        let statement = try db.prepare("SELECT \(Self.columnList()) FROM audit_records ORDER BY seq DESC LIMIT 1")
        return try statement.step() == .row ? Self.row(statement, from: 0) : nil
    }

    /// The newest record's sequence number and hash: the head the writer appends after, and the anchor it announces.
    static let headSQL = "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1"

    /// The chain's head as an anchor, or nil for an empty store.
    static func chainHead(_ db: SQLiteConnection) throws(SQLiteError) -> AuditChainHead? {
        let statement = try db.prepare(Self.headSQL)
        guard try statement.step() == .row else { return nil }
        return AuditChainHead(sequence: statement.int64(at: 0), hash: statement.string(at: 1) ?? "")
    }

    /// Appends records to the chain: the head query and the inserts, prepared once per connection (the writer
    /// appends a batch every few milliseconds under load; parsing the SQL each time cost more than the inserts of
    /// a small batch), and the SHA-256 context every record reuses.
    ///
    /// Rows go in ``rowsPerInsert`` at a time through a multi-row `INSERT … VALUES (…), (…)`, the rest one by one:
    /// SQLite's cost per statement (start, bindings, halt, reset) is then shared by that many rows.
    final class Appender {
        static let rowsPerInsert = 16
        private let head: Statement
        private let insertOne: Statement
        private let insertMany: Statement
        private let sha256 = ChainEncoder.makeDigest()

        init(_ db: SQLiteConnection) throws(SQLiteError) {
            self.head = try db.prepare(SQLiteAuditSchema.headSQL)
            self.insertOne = try db.prepare(SQLiteAuditSchema.insertSQL(rows: 1))
            self.insertMany = try db.prepare(SQLiteAuditSchema.insertSQL(rows: Self.rowsPerInsert))
        }

        /// Appends `records` after the current head. Call inside a `BEGIN IMMEDIATE` transaction: reading the
        /// head and inserting under one write lock is what keeps two processes' records in one chain.
        /// - Returns: Their sequence numbers, in order.
        func append(_ records: [AuditRecord]) throws(SQLiteError) -> [Int64] {
            // Only the head's sequence and hash are needed to extend the chain: read those two columns.
            var sequence: Int64 = 0
            var prevHash = ChainRow.zeroHash
            defer { self.head.reset() }
            if try self.head.step() == .row {
                sequence = self.head.int64(at: 0)
                prevHash = self.head.string(at: 1) ?? ""
            }
            self.head.reset()
            return try self.append(records, after: sequence, prevHash: prevHash)
        }

        /// Appends `records` after the record `sequence` whose hash is `prevHash` (0 and zeros: the chain is
        /// empty), which the caller read in this transaction.
        func append(_ records: [AuditRecord], after sequence: Int64, prevHash: String) throws(SQLiteError) -> [Int64] {
            // Locals, not properties: every mutation of a class's stored array is an exclusivity check.
            var encoder = ChainEncoder(prevHash: prevHash, sha256: self.sha256)
            var sequences: [Int64] = []
            sequences.reserveCapacity(records.count)
            var next = sequence
            var start = records.startIndex
            // Only a store someone altered has a record numbered near the end of SQLite's integers.
            guard sequence <= Int64.max - Int64(records.count) else {
                throw SQLiteError(
                    extendedCode: 1,
                    message: "no sequence number is left after record \(sequence): the store was altered "
                        + "(milvus-guard audit verify)"
                )
            }
            while start < records.endIndex {
                let rows = records.endIndex - start >= Self.rowsPerInsert ? Self.rowsPerInsert : 1
                encoder.clear()
                for record in records[start..<start + rows] {
                    next += 1
                    encoder.encode(record, sequence: next)
                    sequences.append(next)
                }
                if rows == 1 {
                    try self.insertOne.run(encoder.columns, text: encoder.text)
                } else {
                    try self.insertMany.run(encoder.columns, text: encoder.text)
                }
                start += rows
            }
            return sequences
        }
    }

    /// `INSERT INTO audit_records (…) VALUES (?, …)`, with `rows` rows of parameters.
    static func insertSQL(rows: Int) -> String {
        let row = "(" + Array(repeating: "?", count: Self.allColumns.count).joined(separator: ", ") + ")"
        return "INSERT INTO audit_records (\(Self.columnList())) VALUES "
            + Array(repeating: row, count: rows).joined(separator: ", ")
    }

    /// Appends `records` after `head` (nil: the chain is empty), which the caller read in this transaction.
    static func append(
        _ records: [AuditRecord],
        to db: SQLiteConnection,
        after head: ChainRow?
    ) throws(SQLiteError) -> [Int64] {
        try Appender(db).append(records, after: head?.sequence ?? 0, prevHash: head?.hash ?? ChainRow.zeroHash)
    }

    static func value(_ value: CanonicalValue) -> SQLiteValue {
        switch value {
        case .integer(let integer): .integer(integer)
        case .text(let text): .text(text)
        case .null: .null
        }
    }

    /// Reads ``allColumns`` starting at column `offset`. A REAL or BLOB (never written by the store) is kept as text,
    /// so the row fails its hash instead of being silently converted.
    static func row(_ statement: borrowing Statement, from offset: Int) -> ChainRow {
        var columns: [CanonicalValue] = []
        columns.reserveCapacity(ChainRow.contentColumnNames.count)
        let base = offset + ChainRow.columnNames.count
        // The first content columns, then the later ones, which follow prev_hash and hash in the table.
        let positions =
            (0..<ChainRow.columnNames.count).map { offset + $0 }
            + (0..<ChainRow.laterColumnNames.count).map { base + 2 + $0 }
        for position in positions {
            switch statement.value(at: position) {
            case .integer(let value): columns.append(.integer(value))
            case .text(let value): columns.append(.text(value))
            case .null: columns.append(.null)
            case .real(let value): columns.append(.text("\(value)"))
            case .blob(let bytes): columns.append(.text(Hex.encode(bytes)))
            }
        }
        return ChainRow(
            columns: columns,
            prevHash: statement.string(at: base) ?? "",
            hash: statement.string(at: base + 1) ?? ""
        )
    }

    /// A short message for a SQLite failure while writing.
    static func error(_ error: SQLiteError, path: String) -> AuditStoreError {
        switch error.code {
        case .full: .unavailable("disk full (\(path))")
        case .readOnly: .unavailable("\(path) is read-only")
        case .busy, .locked: .unavailable("\(path) is locked by another process")
        case .permission, .cantOpen: .unavailable("cannot open \(path): \(error.message)")
        case .ioError: .unavailable("I/O error on \(path): \(error.message)")
        case .corrupt, .notADatabase: .unavailable("\(path) is damaged or not a database: \(error.message)")
        // What was written is refused, not the store: the same records would fail again.
        case .tooBig, .constraint, .mismatch, .range:
            .unavailable("\(path) refused a record: \(error.message)", retryable: false)
        default: .unavailable("\(path): \(error.message)")
        }
    }

    /// Fails when the file has no write permission bits: the proxy may run as root, for which a chmod'ed file stays
    /// writable, but an operator who made it read-only wants writes to stop.
    /// - Returns: The file's device and inode, which tell whether another file has taken the name since.
    @discardableResult
    static func checkWritable(_ path: String) throws(AuditStoreError) -> FileIdentity {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw .unavailable("cannot stat \(path): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & 0o222 != 0 else {
            throw .unavailable("\(path) is read-only")
        }
        return FileIdentity(info)
    }

    /// The folder holding the file at `path`: `.` for a bare file name, `/` for a file at the root.
    static func folder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Which file a path named when it was looked at.
    struct FileIdentity: Equatable {
        var device: UInt64
        var inode: UInt64

        init(_ info: stat) {
            self.device = UInt64(info.st_dev)
            self.inode = UInt64(info.st_ino)
        }

        /// The file `path` names now; nil if `stat` fails.
        init?(path: String) {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            self.init(info)
        }
    }
}
