import SQLiteSupport

/// Reads, verifies and prunes an existing SQLite audit store (the CLI's view; ``SQLiteAuditStore`` uses one too).
///
/// Opening never creates or migrates the file: a missing file is an error, not an empty store. Owns a
/// connection, so it is not `Sendable`; use it from one thread at a time.
public final class SQLiteAuditReader: AuditReader {
    private let db: SQLiteConnection
    private let path: String

    /// Opens the store at `path`.
    ///
    /// - Parameters:
    ///   - path: The database file; it must exist and hold an audit store.
    ///   - writable: Open for writing too (needed by ``prune(before:)``).
    ///   - busyTimeoutMilliseconds: How long to wait for a writer's lock.
    /// - Throws: ``AuditStoreError`` when the file is missing, unreadable, not an audit store, or of a newer schema.
    public init(path: String, writable: Bool = false, busyTimeoutMilliseconds: Int = 5_000) throws(AuditStoreError) {
        self.path = path
        do {
            self.db = try SQLiteConnection(
                path: path,
                mode: writable ? .readWrite : .readOnly,
                busyTimeoutMilliseconds: busyTimeoutMilliseconds
            )
            let version = try SQLiteAuditSchema.userVersion(self.db)
            guard version > 0 else {
                throw AuditStoreError("\(path) is not a milvus-guard audit store")
            }
            guard version <= SQLiteAuditSchema.currentVersion else {
                throw AuditStoreError(
                    "\(path): schema version \(version) is newer than this milvus-guard supports (\(SQLiteAuditSchema.currentVersion))"
                )
            }
        } catch let error as AuditStoreError {
            throw error
        } catch let error as SQLiteError {
            throw Self.readError(error, path: path)
        } catch {
            throw AuditStoreError("\(path): \(error)")
        }
    }

    /// Wraps an already open connection (the store's own reader).
    init(connection: SQLiteConnection) {
        self.db = connection
        self.path = connection.path
    }

    private static func readError(_ error: SQLiteError, path: String) -> AuditStoreError {
        switch error.code {
        case .cantOpen: AuditStoreError("cannot open \(path): no such file, or no permission")
        case .notADatabase: AuditStoreError("\(path) is not a SQLite database")
        default: AuditStoreError("cannot read \(path): \(error.message)")
        }
    }

    public func query(_ query: AuditQuery) throws(AuditStoreError) -> [AuditEntry] {
        guard query.limit > 0 else { return [] }
        // The second condition follows from the first; it is there so that SQLite uses the time index.
        var conditions = ["r.kind IN ('request', 'refusal')", "r.\(SQLiteAuditSchema.timeIndexed)"]
        var values: [SQLiteValue] = []
        func add(_ condition: String, _ value: SQLiteValue?) {
            guard let value else { return }
            conditions.append(condition)
            values.append(value)
        }
        add("r.time_ms >= ?", query.since.map { .integer($0) })
        add("r.time_ms < ?", query.until.map { .integer($0) })
        add("r.principal = ?", query.user.map { .text($0) })
        add("r.db = ?", query.database.map { .text($0) })
        add("r.collection = ?", query.collection.map { .text($0) })
        add("r.rpc = ?", query.rpc.map { .text($0) })
        add("r.decision = ?", query.decision.map { .text($0) })
        values.append(.integer(Int64(query.limit)))
        let sql = """
            SELECT \(SQLiteAuditSchema.columnList(alias: "r")), \(SQLiteAuditSchema.columnList(alias: "o"))
            FROM audit_records AS r
            LEFT JOIN audit_records AS o ON r.kind = 'request' AND o.seq = (
                SELECT MIN(seq) FROM audit_records WHERE call_id = r.call_id AND kind = 'outcome')
            WHERE \(conditions.joined(separator: " AND "))
            ORDER BY r.seq DESC
            LIMIT ?
            """
        do {
            let statement = try self.db.prepare(sql)
            try statement.bind(values)
            var entries: [AuditEntry] = []
            let width = SQLiteAuditSchema.allColumns.count
            while try statement.step() == .row {
                let row = SQLiteAuditSchema.row(statement, from: 0)
                guard let record = row.record else { continue }
                let outcome = statement.isNull(at: width) ? nil : SQLiteAuditSchema.row(statement, from: width).record
                entries.append(
                    AuditEntry(
                        id: row.sequence,
                        record: record,
                        outcomeRecord: outcome,
                        hash: row.hash,
                        prevHash: row.prevHash
                    )
                )
            }
            return entries.reversed()
        } catch {
            throw Self.readError(error, path: self.path)
        }
    }

    public func verify() throws(AuditStoreError) -> AuditVerification {
        let columns = SQLiteAuditSchema.columnList()
        do {
            let checkpoints = try self.db.prepare(
                "SELECT \(columns) FROM audit_records WHERE kind = 'checkpoint' ORDER BY seq"
            )
            var checkpointRows: [ChainRow] = []
            while try checkpoints.step() == .row {
                checkpointRows.append(SQLiteAuditSchema.row(checkpoints, from: 0))
            }
            var verifier = ChainVerifier(checkpoints: checkpointRows)
            let all = try self.db.prepare("SELECT \(columns) FROM audit_records ORDER BY seq")
            while try all.step() == .row {
                if let problem = verifier.check(SQLiteAuditSchema.row(all, from: 0)) {
                    return .broken(problem)
                }
            }
            return verifier.result
        } catch {
            throw Self.readError(error, path: self.path)
        }
    }

    /// The chain's newest record; nil when the store is empty.
    /// - Throws: ``AuditStoreError`` if the store cannot be read.
    public func head() throws(AuditStoreError) -> AuditChainHead? {
        do {
            return try SQLiteAuditSchema.chainHead(self.db)
        } catch {
            throw Self.readError(error, path: self.path)
        }
    }

    /// Compares the store with `anchor` (call after ``verify()`` passed).
    /// - Throws: ``AuditStoreError`` if the store cannot be read.
    public func check(_ anchor: AuditChainHead) throws(AuditStoreError) -> AuditAnchorCheck {
        do {
            let record = try self.db.prepare("SELECT hash FROM audit_records WHERE seq = ?")
            try record.bind(anchor.sequence, at: 1)
            if try record.step() == .row {
                let stored = record.string(at: 0) ?? ""
                return stored == anchor.hash ? .matches : .rewritten(stored: stored)
            }
            let newest = try self.db.prepare("SELECT MAX(seq) FROM audit_records")
            let head = try newest.step() == .row && !newest.isNull(at: 0) ? newest.int64(at: 0) : 0
            guard anchor.sequence < head else { return .truncated(head: head) }
            // Pruned: a checkpoint names the last record it pruned, with its hash.
            let checkpoints = try self.db.prepare(
                "SELECT targets FROM audit_records WHERE kind = 'checkpoint' ORDER BY seq"
            )
            while try checkpoints.step() == .row {
                guard let targets = checkpoints.string(at: 0).flatMap(JSONText.parseObject),
                    targets[ChainVerifier.prunedSequenceKey].flatMap({ Int64($0) }) == anchor.sequence,
                    let hash = targets[ChainVerifier.prunedHashKey]
                else { continue }
                return hash == anchor.hash ? .matches : .rewritten(stored: hash)
            }
            return .pruned
        } catch {
            throw Self.readError(error, path: self.path)
        }
    }

    public func prune(before: Int64) throws(AuditStoreError) -> Int {
        do {
            return try self.db.transaction(.immediate) { () throws(SQLiteError) -> Int in
                // The oldest records form the prefix that goes: everything before the first record other than an
                // outcome at or after `before` (an outcome goes with the calls before it), so the chain that
                // remains has no holes.
                let firstKept = try self.db.prepare(
                    "SELECT MIN(seq) FROM audit_records WHERE \(SQLiteAuditSchema.timeIndexed) AND time_ms >= ?"
                )
                try firstKept.bind(before, at: 1)
                let limit: Int64?
                if try firstKept.step() == .row, !firstKept.isNull(at: 0) {
                    limit = firstKept.int64(at: 0) - 1
                } else {
                    limit = nil
                }
                let lastSQL =
                    "SELECT \(SQLiteAuditSchema.columnList()) FROM audit_records"
                    + (limit == nil ? "" : " WHERE seq <= ?") + " ORDER BY seq DESC LIMIT 1"
                let lastStatement = try self.db.prepare(lastSQL)
                if let limit { try lastStatement.bind(limit, at: 1) }
                guard try lastStatement.step() == .row else { return 0 }
                let last = SQLiteAuditSchema.row(lastStatement, from: 0)
                let head = try SQLiteAuditSchema.head(self.db)
                let delete = try self.db.prepare("DELETE FROM audit_records WHERE seq <= ?")
                try delete.bind(last.sequence, at: 1)
                try delete.run()
                let deleted = self.db.changes
                let checkpoint = ChainVerifier.checkpoint(
                    after: last,
                    deleted: deleted,
                    before: before,
                    now: AuditTime.nowMilliseconds()
                )
                _ = try SQLiteAuditSchema.append([checkpoint], to: self.db, after: head)
                return deleted
            }
        } catch {
            throw SQLiteAuditSchema.error(error, path: self.path)
        }
    }
}

@available(*, unavailable)
extension SQLiteAuditReader: Sendable {}
