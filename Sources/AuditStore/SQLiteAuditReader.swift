import Glibc
import SQLiteSupport

/// Reads, verifies and prunes an existing SQLite audit store (the CLI's view; ``SQLiteAuditStore`` uses one too).
///
/// Opening never creates or migrates the file: a missing file is an error, not an empty store. Owns a
/// connection, so it is not `Sendable`; use it from one thread at a time.
public final class SQLiteAuditReader: AuditReader {
    private let db: SQLiteConnection
    private let path: String
    /// The store's schema version (`PRAGMA user_version`); reads name only the columns it has. A guard may migrate
    /// the store while a long read runs (a rolling upgrade): each part of a read checks it again
    /// (``schemaChanged()``), since a record read without a column it has would fail its hash.
    private var version: Int

    /// Opens the store at `path`.
    ///
    /// - Parameters:
    ///   - path: The database file; it must exist and hold an audit store.
    ///   - writable: Open for writing too (needed by ``prune(before:)``).
    ///   - busyTimeoutMilliseconds: How long to wait for a writer's lock.
    /// - Throws: ``AuditStoreError`` when the file is missing, unreadable, not an audit store, or of a newer schema.
    ///
    /// A store on a read-only file system (an evidence copy on a read-only mount), or in a folder this user may read
    /// but not write (a stopped guard's store, read by a security team's account), is read as it is in the file when
    /// SQLite can't create the `-shm` file it needs, provided no `-wal` file lies beside it: the guard that last
    /// wrote it then stopped cleanly, and its file holds every record (``readsFileAsIs``).
    ///
    /// With `asIsWhenStopped` (a listing or a verify, not `--follow`), a store no guard has open (no `-wal` file beside
    /// it) is read as it is in the file too, so that reading it creates no `-wal` and `-shm` files beside it.
    public init(
        path: String,
        writable: Bool = false,
        asIsWhenStopped: Bool = false,
        busyTimeoutMilliseconds: Int = 5_000
    ) throws(AuditStoreError) {
        self.path = path
        do {
            (self.db, self.readsFileAsIs) = try Self.open(
                path,
                writable: writable,
                asIsWhenStopped: asIsWhenStopped,
                busyTimeoutMilliseconds: busyTimeoutMilliseconds
            )
            let version = try SQLiteAuditSchema.userVersion(self.db)
            self.version = version
            guard version > 0 else {
                throw AuditStoreError("\(path) is not a milvus-guard audit store")
            }
            guard version <= SQLiteAuditSchema.currentVersion else { throw Self.newerSchema(version, path: path) }
        } catch let error as AuditStoreError {
            throw error
        } catch let error as SQLiteError {
            throw Self.readError(error, path: path)
        } catch {
            throw AuditStoreError("\(path): \(error)")
        }
    }

    /// Opens the connection; `asIs`: it reads the file as it is (``readsFileAsIs``).
    private static func open(
        _ path: String,
        writable: Bool,
        asIsWhenStopped: Bool,
        busyTimeoutMilliseconds: Int
    ) throws -> (db: SQLiteConnection, asIs: Bool) {
        // No -wal: no guard has the store open (a WAL-mode connection keeps its -wal until the last one closes), and
        // the file holds every record.
        if !writable, asIsWhenStopped, access(path + "-wal", F_OK) != 0, access(path, R_OK) == 0 {
            return (try SQLiteConnection(path: path, mode: .immutable), true)
        }
        let db = try SQLiteConnection(
            path: path,
            mode: writable ? .readWrite : .readOnly,
            busyTimeoutMilliseconds: busyTimeoutMilliseconds
        )
        // A WAL-mode file fails on its first read, not at open, when its `-shm` file can't be created: on a read-only
        // file system with SQLITE_CANTOPEN, in a folder this user can't write with SQLITE_READONLY_DIRECTORY.
        let failure: SQLiteError
        do {
            _ = try SQLiteAuditSchema.userVersion(db)
            return (db, false)
        } catch {
            failure = error
        }
        let readOnlyFileSystem = failure.code == .cantOpen && Self.onReadOnlyFileSystem(path)
        // With a -wal file, SQLite says SQLITE_CANTOPEN when the folder can't take the -shm file.
        let readOnlyFolder =
            failure.extendedCode == Self.readOnlyDirectory
            || (failure.code == .cantOpen && access(SQLiteAuditSchema.folder(of: path), W_OK) != 0)
        guard !writable, readOnlyFileSystem || readOnlyFolder else { throw failure }
        guard access(path + "-wal", F_OK) != 0 else {
            let place = readOnlyFileSystem ? "on a read-only file system" : "in a folder this user can't write"
            throw AuditStoreError(
                "cannot read \(path): it is \(place), with a -wal file but no -shm file beside it (a guard is using "
                    + "it, or was killed); read it as the guard's user, or copy the store together with its -wal "
                    + "file to a writable folder"
            )
        }
        return (try SQLiteConnection(path: path, mode: .immutable), true)
    }

    /// SQLITE_READONLY_DIRECTORY: the folder of a WAL-mode file can't take its `-shm` file.
    private static let readOnlyDirectory: Int32 = 1544

    /// Whether the store is read as it is in its file, without SQLite's locks (`immutable=1`): it had no `-wal` file
    /// when it was opened, and it lies on a read-only file system or in a folder this user can't write, or the reader
    /// asked for it (`asIsWhenStopped`). A guard that starts on it meanwhile is not seen: ``verify()`` and listings say
    /// so if they fail while a `-wal` file has appeared, and `--follow` refuses such a store.
    public let readsFileAsIs: Bool

    /// The error of a read that failed, or found the chain broken, while reading the file as it is: a guard that opened
    /// the store meanwhile (its `-wal` file is there now) may have changed the file under the read.
    private func changedUnderRead() -> AuditStoreError? {
        guard self.readsFileAsIs, access(self.path + "-wal", F_OK) == 0 else { return nil }
        return AuditStoreError(
            "\(self.path) was read as it is in its file (no guard had it open, or this user can't create its -shm "
                + "file), and a guard opened it during the read: run again"
        )
    }

    /// Whether the file system holding `path` is mounted read-only.
    private static func onReadOnlyFileSystem(_ path: String) -> Bool {
        var info = statvfs()
        return statvfs(path, &info) == 0 && info.f_flag & UInt(ST_RDONLY) != 0
    }

    /// The SQL condition on a request, refusal or policy record `r` for ``AuditEntry/Outcome``, as ``AuditEntry``
    /// derives it: the call's first outcome record `o` is found through the outcome index.
    private func outcomeCondition(_ outcome: AuditEntry.Outcome) -> String {
        let first = "SELECT MIN(seq) FROM audit_records WHERE call_id = r.call_id AND kind = 'outcome'"
        let milvusFailed =
            SQLiteAuditSchema.has("milvus_code", version: self.version) ? " OR o.milvus_code IS NOT NULL" : ""
        let ok = "o.status = 0 AND NOT (0\(milvusFailed))"
        let answered = "SELECT 1 FROM audit_records AS o WHERE o.seq = (\(first)) AND o.status IS NOT NULL"
        // A policy record is ok when its policy was put in force, failed when the reload was rejected.
        let policy = "r.kind = 'policy' AND r.decision IS"
        let loaded = "'\(AuditEntry.policyLoaded)'"
        switch outcome {
        case .ok: return "(r.kind = 'request' AND EXISTS (\(answered) AND \(ok)) OR \(policy) \(loaded))"
        case .failed:
            return "(r.kind = 'refusal' OR \(policy) NOT \(loaded) OR EXISTS (\(answered) AND NOT (\(ok))))"
        case .unknown: return "r.kind = 'request' AND NOT EXISTS (\(answered))"
        }
    }

    /// Wraps an already open connection (the store's own reader).
    init(connection: SQLiteConnection) {
        self.db = connection
        self.readsFileAsIs = false
        self.path = connection.path
        self.version = SQLiteAuditSchema.currentVersion  // the store migrated it
    }

    /// ``readError(_:path:)``, unless a guard opened the store under a read of the file as it is.
    private func readError(_ error: SQLiteError) -> AuditStoreError {
        self.changedUnderRead() ?? Self.readError(error, path: self.path)
    }

    private static func readError(_ error: SQLiteError, path: String) -> AuditStoreError {
        switch error.code {
        case .cantOpen: AuditStoreError("cannot open \(path): no such file, or no permission")
        case .notADatabase: AuditStoreError("\(path) is not a SQLite database")
        default: AuditStoreError("cannot read \(path): \(error.message)")
        }
    }

    public func query(_ query: AuditQuery) throws(AuditStoreError) -> [AuditEntry] {
        var entries: [AuditEntry] = []
        try self.forEach(query) { entries.append($0) }
        return entries
    }

    /// Hands the newest `query.limit` calls matching the query (the oldest after `query.afterID` when set) to `body`
    /// one at a time, oldest first, as they are read: a listing of millions of calls (a SIEM export) takes no more
    /// memory than one. Which calls are shown is settled in one snapshot; they are then read in parts of
    /// ``readPart``, so an outcome recorded meanwhile is joined to its request, and a call pruned meanwhile is left
    /// out.
    /// - Throws: ``AuditStoreError`` if the store cannot be read (`body` may have had some calls by then).
    public func forEach(_ query: AuditQuery, _ body: (AuditEntry) -> Void) throws(AuditStoreError) {
        try self.forEach(query, chunk: Self.readPart, pause: Self.pauseBetweenParts, body)
    }

    /// ``forEach(_:_:)`` in parts of `chunk` calls; `pause` runs between two parts.
    func forEach(
        _ query: AuditQuery,
        chunk: Int,
        pause: () -> Void,
        _ body: (AuditEntry) -> Void
    ) throws(AuditStoreError) {
        guard query.limit > 0 else { return }
        // The second condition follows from the first; it is there so that SQLite uses the time index.
        let kinds = AuditQuery.listedKinds.map { "'\($0.rawValue)'" }.joined(separator: ", ")
        var conditions = ["r.kind IN (\(kinds))", "r.\(SQLiteAuditSchema.timeIndexed)"]
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
        if let collection = query.collection, collection.contains(",") {
            add("r.collection = ?", .text(collection))  // not one name of a list: the list is joined by commas
        } else if let collection = query.collection {
            // A call naming several collections (Flush, ShowCollections) has them in `targets.collections`.
            conditions.append(
                "(r.collection = ? OR (r.collection IS NULL AND instr(',' || json_extract(r.targets, '$.collections')"
                    + " || ',', ',' || ? || ',') > 0))"
            )
            values.append(contentsOf: [.text(collection), .text(collection)])
        }
        add("r.rpc = ?", query.rpc.map { .text($0) })
        add("r.decision = ?", query.decision.map { .text($0) })
        add("r.seq > ?", query.afterID.map { .integer($0) })
        // Follows from the one before; it lets SQLite use the decision index, which leaves allowed calls out.
        if let decision = query.decision, decision != "allowed" {
            conditions.append("r.\(SQLiteAuditSchema.decisionIndexed)")
        }
        if let outcome = query.outcome { conditions.append(self.outcomeCondition(outcome)) }
        let selection = conditions.joined(separator: " AND ")
        do {
            // The calls shown lie between the oldest and the newest of the newest `limit` that match: reading them
            // then walks that range of `seq`, not the table. SQLite finds them by walking the table from the newest
            // record, and cannot know that a time window (its bounds are parameters) holds few records: a window
            // that does is read through the time index instead.
            let shown = try self.db.transaction(.deferred) { () throws(SQLiteError) -> ClosedRange<Int64>? in
                var source = "audit_records AS r"
                if query.since != nil || query.until != nil,
                    try self.recordsInWindow(since: query.since, until: query.until) < Self.smallWindow
                {
                    source += " INDEXED BY \(SQLiteAuditSchema.timeIndex)"
                }
                // The newest `limit`, or the oldest after the cursor.
                let order = query.afterID == nil ? "DESC" : "ASC"
                let range = try self.db.prepare(
                    "SELECT MIN(seq), MAX(seq) FROM (SELECT r.seq FROM \(source) WHERE \(selection) "
                        + "ORDER BY r.seq \(order) LIMIT ?)"
                )
                try range.bind(values + [.integer(Int64(query.limit))])
                guard try range.step() == .row, !range.isNull(at: 0) else { return nil }  // nothing matches
                return range.int64(at: 0)...range.int64(at: 1)
            }
            guard let shown else { return }
            var next = shown.lowerBound
            // Once per schema version the store is seen in (see ``version``).
            while self.version <= SQLiteAuditSchema.currentVersion {
                let (requestColumns, outcomeColumns) = (
                    SQLiteAuditSchema.columnList(alias: "r", version: self.version),
                    SQLiteAuditSchema.columnList(alias: "o", version: self.version)
                )
                let statement = try self.db.prepare(
                    """
                    SELECT \(requestColumns), \(outcomeColumns)
                    FROM audit_records AS r
                    LEFT JOIN audit_records AS o ON r.kind = 'request' AND o.seq = (
                        SELECT MIN(seq) FROM audit_records WHERE call_id = r.call_id AND kind = 'outcome')
                    WHERE \(selection) AND r.seq BETWEEN ? AND ?
                    ORDER BY r.seq
                    LIMIT \(max(chunk, 1))
                    """
                )
                let done = try self.listParts(
                    statement,
                    values: values,
                    from: &next,
                    through: shown.upperBound,
                    chunk: chunk,
                    pause: pause,
                    body
                )
                if done { return }
            }
        } catch {
            throw self.readError(error)
        }
        throw Self.newerSchema(self.version, path: self.path)
    }

    /// ``forEach(_:chunk:pause:_:)``'s parts with `statement` from `next`; false when the schema changed before a
    /// part (`next` is then where to go on).
    private func listParts(
        _ statement: borrowing Statement,
        values: [SQLiteValue],
        from next: inout Int64,
        through upperBound: Int64,
        chunk: Int,
        pause: () -> Void,
        _ body: (AuditEntry) -> Void
    ) throws(SQLiteError) -> Bool {
        let width = SQLiteAuditSchema.allColumns.count
        while true {
            var changed = false
            // Parts of `chunk` calls, each in a read transaction of its own (see ``readPart``).
            let (rows, last) = try self.db.transaction(.deferred) { () throws(SQLiteError) -> (Int, Int64) in
                changed = try self.schemaChanged()
                if changed { return (0, next) }
                statement.reset()
                try statement.bind(values + [.integer(next), .integer(upperBound)])
                var rows = 0
                var last = next
                while try statement.step() == .row {
                    rows += 1
                    let row = SQLiteAuditSchema.row(statement, from: 0)
                    last = row.sequence
                    guard let record = row.record else { continue }
                    let outcome =
                        statement.isNull(at: width) ? nil : SQLiteAuditSchema.row(statement, from: width).record
                    body(
                        AuditEntry(
                            id: row.sequence,
                            record: record,
                            outcomeRecord: outcome,
                            hash: row.hash,
                            prevHash: row.prevHash
                        )
                    )
                }
                return (rows, last)
            }
            if changed { return false }
            guard rows == max(chunk, 1), last < upperBound else { return true }
            next = last + 1
            pause()
        }
    }

    /// Records in a time window up to which a listing reads the window through the time index, then sorts it.
    static let smallWindow: Int64 = 100_000

    /// Requests, refusals and checkpoints with `since <= time_ms < until`, counted through the time index up to
    /// ``smallWindow`` (which then means "at least that many").
    private func recordsInWindow(since: Int64?, until: Int64?) throws(SQLiteError) -> Int64 {
        var conditions = [SQLiteAuditSchema.timeIndexed]
        var values: [SQLiteValue] = []
        if let since {
            conditions.append("time_ms >= ?")
            values.append(.integer(since))
        }
        if let until {
            conditions.append("time_ms < ?")
            values.append(.integer(until))
        }
        let count = try self.db.prepare(
            "SELECT COUNT(*) FROM (SELECT 1 FROM audit_records INDEXED BY \(SQLiteAuditSchema.timeIndex) WHERE "
                + conditions.joined(separator: " AND ") + " LIMIT ?)"
        )
        try count.bind(values + [.integer(Self.smallWindow)])
        return try count.step() == .row ? count.int64(at: 0) : 0
    }

    /// Records ``verify()`` (and calls ``forEach(_:_:)``) reads per read transaction. A read transaction keeps SQLite
    /// from starting the WAL over, so one transaction for a whole verify let the WAL grow by everything the guards
    /// wrote meanwhile (328 MB in a 19 s verify beside about 15,000 audited calls a second). Parts of 20,000 records
    /// back to back still let it reach 121 MB: the writer needs a moment with no reader to finish a checkpoint and
    /// start the WAL over, which ``pauseBetweenParts()`` gives it (19 MB; the verify takes about 9 % longer).
    static let readPart = 20_000

    /// 5 ms without a read transaction, between two parts of a long read.
    static func pauseBetweenParts() {
        AuditTime.sleep(nanoseconds: 5_000_000)
    }

    public func verify() throws(AuditStoreError) -> AuditVerification {
        try self.verify(chunk: Self.readPart, between: Self.pauseBetweenParts)
    }

    /// ``verify()`` in read transactions of `chunk` records each; `between` runs between two of them (for tests).
    ///
    /// A prune running meanwhile deletes records from the oldest on. If it overtakes the verify, the next records
    /// are missing after the last one checked: when a checkpoint now covers them, the chain starts again there, as
    /// at the start of a store (see ``ChainVerifier``); otherwise they were removed.
    func verify(chunk: Int, between: () -> Void = {}) throws(AuditStoreError) -> AuditVerification {
        let result = try self.verifyChain(chunk: chunk, between: between)
        if case .ok = result { return result }
        // A broken chain in a file a guard changed under the read says nothing about the store.
        if let changed = self.changedUnderRead() { throw changed }
        return result
    }

    private func verifyChain(chunk: Int, between: () -> Void) throws(AuditStoreError) -> AuditVerification {
        var verifier: ChainVerifier?
        var last: Int64 = 0
        do {
            if let problem = try self.db.transaction(.deferred, self.shapeProblem) { return .tampered(problem) }
            // Once per schema version the store is seen in.
            while self.version <= SQLiteAuditSchema.currentVersion {
                let columns = SQLiteAuditSchema.columnList(version: self.version)
                let statement = try self.db.prepare(
                    "SELECT \(columns) FROM audit_records WHERE seq > ? ORDER BY seq LIMIT ?"
                )
                if let result = try self.verifyParts(statement, chunk: chunk, verifier: &verifier, last: &last, between)
                {
                    guard case .ok = result else { return result }
                    return try self.indexProblem().map(AuditVerification.tampered) ?? result
                }
            }
        } catch {
            throw self.readError(error)
        }
        throw Self.newerSchema(self.version, path: self.path)
    }

    /// A guard of a newer milvus-guard migrated the store past what this code can read.
    private static func newerSchema(_ version: Int, path: String) -> AuditStoreError {
        AuditStoreError(
            "\(path): schema version \(version) is newer than this milvus-guard supports "
                + "(\(SQLiteAuditSchema.currentVersion))"
        )
    }

    /// ``verify(chunk:between:)``'s parts with `statement`; nil when the schema changed before a part.
    private func verifyParts(
        _ statement: borrowing Statement,
        chunk: Int,
        verifier: inout ChainVerifier?,
        last: inout Int64,
        _ between: () -> Void
    ) throws(SQLiteError) -> AuditVerification? {
        while true {
            var changed = false
            let (problem, rows) = try self.db.transaction(.deferred) {
                () throws(SQLiteError) -> (AuditChainProblem?, Int) in
                changed = try self.schemaChanged()
                if changed { return (nil, 0) }
                if verifier == nil { verifier = ChainVerifier(checkpoints: try self.checkpointRows()) }
                statement.reset()
                try statement.bind([.integer(last), .integer(Int64(chunk))])
                var rows = 0
                while try statement.step() == .row {
                    let row = SQLiteAuditSchema.row(statement, from: 0)
                    if rows == 0, last > 0, row.sequence > last + 1 {
                        verifier!.restart(checkpoints: try self.checkpointRows(), at: row.sequence)
                    }
                    rows += 1
                    last = row.sequence
                    if let problem = verifier!.check(row) { return (problem, rows) }
                }
                return (nil, rows)
            }
            if changed { return nil }
            if let problem { return .broken(problem) }
            if rows < chunk { return verifier!.result }
            between()
        }
    }

    /// Why the records table's indexes, triggers or columns are not what its schema version made; nil when they are.
    ///
    /// The hash chain covers the records, not what SQLite finds them through: with the `sqlite3` shell, an index can
    /// be rebuilt to leave records out (or a planted one made to look like ours) and listings then skip them while
    /// every hash still holds. ``indexProblem()`` checks the indexes' contents; this checks that they are ours.
    private func shapeProblem() throws(SQLiteError) -> String? {
        self.version = try SQLiteAuditSchema.userVersion(self.db)
        guard self.version <= SQLiteAuditSchema.currentVersion else { return nil }  // verify reports the version
        let expected = try SQLiteAuditSchema.shape(version: self.version)
        let actual = try SQLiteAuditSchema.shape(self.db)
        for (name, sql) in actual.objects.sorted(by: { $0.key < $1.key }) {
            guard let made = expected.objects[name] else {
                return "\(name) on audit_records is not one milvus-guard made (\(sql))"
            }
            if sql != made { return "\(name) was changed: it is \(sql), milvus-guard made \(made)" }
        }
        for name in expected.objects.keys.sorted() where actual.objects[name] == nil {
            return "\(name) is missing (listings that need it fail)"
        }
        for column in actual.columns where !expected.columns.contains(column) {
            guard let version = SQLiteAuditSchema.laterColumnVersions[column] else { continue }  // harmless
            return "the table has column \(column) of schema version \(version), but the file says version "
                + "\(self.version) (PRAGMA user_version was lowered)"
        }
        // A content column dropped (`ALTER TABLE … DROP COLUMN`): reads would take its quoted name for a string.
        for column in expected.columns where !actual.columns.contains(column) {
            return "column \(column) of schema version \(self.version) is missing (dropped)"
        }
        return nil
    }

    /// The first way the indexes of the records table disagree with the records (`PRAGMA integrity_check` on that
    /// table: about a second per 1.7 million records), nil when they agree.
    private func indexProblem() throws(SQLiteError) -> String? {
        let check = try self.db.prepare("PRAGMA integrity_check(audit_records)")
        guard try check.step() == .row, let first = check.string(at: 0), first != "ok" else { return nil }
        // "row 50 missing from index audit_records_time"
        let words = first.split(separator: " ")
        if words.count == 6, words[0] == "row", words[2] == "missing", let sequence = Int64(words[1]) {
            return "record \(sequence) is missing from index \(words[5]), so listings that use it skip the record"
        }
        return "an index does not match the records: \(first)"
    }

    /// Whether a guard migrated the store since ``version`` was read; if so, ``version`` is the new one. Call inside
    /// the read transaction about to read records.
    private func schemaChanged() throws(SQLiteError) -> Bool {
        let current = try SQLiteAuditSchema.userVersion(self.db)
        guard current != self.version else { return false }
        self.version = current
        return true
    }

    /// Every checkpoint record, oldest first.
    private func checkpointRows() throws(SQLiteError) -> [ChainRow] {
        let columns = SQLiteAuditSchema.columnList(version: self.version)
        let statement = try self.db.prepare(
            "SELECT \(columns) FROM audit_records WHERE kind = 'checkpoint' ORDER BY seq"
        )
        var rows: [ChainRow] = []
        while try statement.step() == .row { rows.append(SQLiteAuditSchema.row(statement, from: 0)) }
        return rows
    }

    /// The chain's newest record; nil when the store is empty.
    /// - Throws: ``AuditStoreError`` if the store cannot be read.
    public func head() throws(AuditStoreError) -> AuditChainHead? {
        do {
            return try SQLiteAuditSchema.chainHead(self.db)
        } catch {
            throw self.readError(error)
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
            throw self.readError(error)
        }
    }

    /// Records deleted per transaction by ``prune(before:)``: a few milliseconds of work, so that a guard writing
    /// to the same store waits about that long for the write lock, not for the whole prune.
    static let pruneChunk: Int64 = 2048

    public func prune(before: Int64) throws(AuditStoreError) -> Int {
        try self.prune(before: before, chunk: Self.pruneChunk) { elapsed in
            // Leave the lock free at least as long as it was held, so a waiting writer gets it.
            AuditTime.sleep(nanoseconds: max(elapsed, 1_000_000))
        }
    }

    /// ``prune(before:)`` in two steps, so that a live guard keeps writing while a large store is pruned:
    ///
    /// 1. A read transaction finds the last record to delete, then one short write transaction appends the
    ///    checkpoint naming it (``appendCheckpoint(before:scanned:)``; `scanned` runs between the two, for tests).
    ///    From then on the records through it are covered, and ``verify()`` accepts the ones not yet deleted (see
    ///    ``ChainVerifier``).
    /// 2. Transactions of `chunk` records each delete them, oldest first; `pause` runs after each with the nanoseconds
    ///    it held the write lock. They commit without waiting for the disk (`synchronous = NORMAL`): a delete lost
    ///    to a power cut leaves covered records behind, which verify accepts and a second prune deletes.
    ///
    /// A prune that is interrupted leaves a verifiable store; running it again finishes it.
    func prune(
        before: Int64,
        chunk: Int64,
        scanned: () -> Void = {},
        pause: (Int64) -> Void
    ) throws(AuditStoreError) -> Int {
        guard self.version == SQLiteAuditSchema.currentVersion else {
            // Its checkpoint is written in this version's columns; `audit` never migrates a store itself.
            throw AuditStoreError(
                "\(self.path) has schema version \(self.version), and prune writes version "
                    + "\(SQLiteAuditSchema.currentVersion): start this milvus-guard on it once (it migrates the store), "
                    + "then prune"
            )
        }
        do {
            guard let range = try self.appendCheckpoint(before: before, scanned: scanned) else { return 0 }
            let previous = try self.synchronous()
            try self.db.exec("PRAGMA synchronous = NORMAL")
            defer { try? self.db.exec("PRAGMA synchronous = \(previous)") }
            let delete = try self.db.prepare("DELETE FROM audit_records WHERE seq <= ?")
            var deleted = 0
            var next = range.lowerBound
            while true {
                // Sequence numbers come from the file: near the end of Int64 only in an altered store.
                let (end, overflow) = next.addingReportingOverflow(Int64(max(chunk, 1)) - 1)
                let through = overflow ? range.upperBound : min(end, range.upperBound)
                let started = AuditTime.monotonicNanoseconds()
                deleted += try self.db.transaction(.immediate) { () throws(SQLiteError) -> Int in
                    delete.reset()
                    try delete.bind(through, at: 1)
                    try delete.run()
                    return self.db.changes
                }
                guard through < range.upperBound else { break }
                next = through + 1
                pause(AuditTime.monotonicNanoseconds() - started)
            }
            return deleted
        } catch {
            throw SQLiteAuditSchema.error(error, path: self.path)
        }
    }

    /// `PRAGMA synchronous` of this connection (2, FULL, unless the file says otherwise).
    private func synchronous() throws(SQLiteError) -> Int64 {
        let statement = try self.db.prepare("PRAGMA synchronous")
        return try statement.step() == .row ? statement.int64(at: 0) : 2
    }

    /// Step 1 of a prune: finds the records to delete, the prefix before the first record other than an outcome at or
    /// after `before` (an outcome goes with the calls before it, so the chain that remains has no holes), and appends
    /// the checkpoint that names the last of them.
    ///
    /// Finding that first record may scan the table (SQLite walks it in `seq` order), so it is done in a read
    /// transaction, which does not hold up writers. The write transaction then looks only at the records appended
    /// since, and holds the lock for a few lookups.
    /// - Returns: The sequence numbers to delete; nil when there are none.
    private func appendCheckpoint(before: Int64, scanned: () -> Void) throws(SQLiteError) -> ClosedRange<Int64>? {
        let (scannedThrough, found) = try self.db.transaction(.deferred) {
            () throws(SQLiteError) -> (Int64, Int64?) in
            let head = try SQLiteAuditSchema.chainHead(self.db)?.sequence ?? 0
            return (head, try self.firstKept(before: before, after: 0))
        }
        scanned()
        return try self.db.transaction(.immediate) { () throws(SQLiteError) -> ClosedRange<Int64>? in
            var firstKept = found
            if firstKept == nil { firstKept = try self.firstKept(before: before, after: scannedThrough) }
            // Nothing can come before the lowest sequence number (which only an altered store has).
            if firstKept == .min { return nil }
            let limit = firstKept.map { $0 - 1 }
            let lastSQL =
                "SELECT \(SQLiteAuditSchema.columnList(version: self.version)) FROM audit_records"
                + (limit == nil ? "" : " WHERE seq <= ?") + " ORDER BY seq DESC LIMIT 1"
            let lastStatement = try self.db.prepare(lastSQL)
            if let limit { try lastStatement.bind(limit, at: 1) }
            guard try lastStatement.step() == .row else { return nil }
            let last = SQLiteAuditSchema.row(lastStatement, from: 0)
            let oldest = try self.db.prepare("SELECT MIN(seq) FROM audit_records")
            let first = try oldest.step() == .row ? oldest.int64(at: 0) : last.sequence
            let head = try SQLiteAuditSchema.head(self.db)
            // Sequence numbers are consecutive in an intact chain, so this is the number of records deleted.
            let span = last.sequence.subtractingReportingOverflow(first)
            let checkpoint = ChainVerifier.checkpoint(
                after: last,
                deleted: span.overflow || span.partialValue == .max ? .max : Int(span.partialValue) + 1,
                before: before,
                now: AuditTime.nowMilliseconds()
            )
            _ = try SQLiteAuditSchema.append([checkpoint], to: self.db, after: head)
            return first...last.sequence
        }
    }

    /// The first record after `after` other than an outcome at or after `before`; nil when there is none. Walks the
    /// table in `seq` order from `after` (`NOT INDEXED`: the time index would visit every record newer than `before`).
    private func firstKept(before: Int64, after: Int64) throws(SQLiteError) -> Int64? {
        let statement = try self.db.prepare(
            "SELECT MIN(seq) FROM audit_records NOT INDEXED WHERE seq > ? AND \(SQLiteAuditSchema.timeIndexed) "
                + "AND time_ms >= ?"
        )
        try statement.bind(after, at: 1)
        try statement.bind(before, at: 2)
        return try statement.step() == .row && !statement.isNull(at: 0) ? statement.int64(at: 0) : nil
    }
}

@available(*, unavailable)
extension SQLiteAuditReader: Sendable {}
