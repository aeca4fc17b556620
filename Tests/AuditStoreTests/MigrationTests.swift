import Foundation
import SQLiteSupport
import Synchronization
import Testing

@testable import AuditStore

@Suite("schema migrations")
struct MigrationTests {
    /// Schema v1 exactly as the first release created it, written out here rather than taken from the code, so a
    /// later edit of migration 1 cannot make this test pass by accident.
    static let version1 = """
        CREATE TABLE audit_records (
            seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, call_id TEXT NOT NULL, time_ms INTEGER NOT NULL,
            principal TEXT, auth TEXT, client TEXT, tls INTEGER, rpc TEXT, action TEXT, db TEXT, collection TEXT,
            partitions TEXT NOT NULL, targets TEXT NOT NULL, filter TEXT, rows INTEGER, request_bytes INTEGER,
            decision TEXT, rule TEXT, approval_id TEXT, snapshot_id TEXT, status INTEGER, message TEXT,
            duration_us INTEGER, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
        );
        CREATE INDEX audit_records_time ON audit_records (time_ms);
        PRAGMA user_version = 1;
        """

    @Test("Opening a new file another process is writing waits for it, even where SQLite fails at once")
    func openWaitsForAnotherWriter() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        // Another guard creating the same file: it holds the write lock of the new (not yet WAL) file.
        let other = try SQLiteConnection(path: path)
        try other.exec("BEGIN IMMEDIATE")
        try other.exec("CREATE TABLE other (x)")
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<String?>(nil)
        Thread.detachNewThread {
            let result: String
            do {
                let store = try SQLiteAuditStore(path: path)
                store.close()
                result = "opened"
            } catch {
                result = "\(error)"
            }
            outcome.withLock { $0 = result }
            done.signal()
        }
        usleep(50_000)
        try other.exec("COMMIT")
        #expect(done.wait(timeout: .now() + 20) == .success)
        #expect(outcome.withLock { $0 } == "opened")
    }

    @Test("A version 1 store is upgraded to the current version, keeping its records and chain")
    func upgradeFromVersion1() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        // One record, chained by hand as a v1 writer would have.
        try Self.makeVersion1Store(path)
        // The CLI reads an old store as it is, without migrating it: verify and listings work, prune refuses.
        let old = try SQLiteAuditReader(path: path, writable: true)
        let oldHead = try #require(try old.head())
        #expect(try old.verify() == .ok(count: 1, head: oldHead.hash))
        #expect(try old.query(AuditQuery()).map(\.id) == [1])
        #expect(try old.query(AuditQuery(outcome: .unknown)).map(\.id) == [1])
        #expect(try old.query(AuditQuery(outcome: .failed)).map(\.id) == [])
        let refused = #expect(throws: AuditStoreError.self) { try old.prune(before: .max) }
        #expect(refused?.message.contains("has schema version 1, and prune writes version 7") == true)
        #expect(SQLiteAuditSchema.currentVersion == 7)
        let store = try SQLiteAuditStore(path: path)
        defer { store.close() }
        let check = try SQLiteConnection(path: path, mode: .readOnly)
        let version = try check.prepare("PRAGMA user_version")
        #expect(try version.step() == .row)
        #expect(version.int64(at: 0) == 7)
        let indexes = try check.prepare(
            "SELECT group_concat(name, ' ') FROM (SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name)"
        )
        #expect(try indexes.step() == .row)
        #expect(indexes.string(at: 0) == "audit_records_decision audit_records_outcome audit_records_time")
        // The join of an outcome to its request finds it through the partial index, not by a scan.
        let plan = try check.prepare(
            "EXPLAIN QUERY PLAN SELECT MIN(seq) FROM audit_records WHERE call_id = 'x' AND kind = 'outcome'"
        )
        var steps: [String] = []
        while try plan.step() == .row { steps.append(plan.string(at: 3) ?? "") }
        #expect(steps.contains { $0.contains("USING INDEX audit_records_outcome") })
        // A listing's time filter goes through the time index, which holds no outcomes. (Prune's MIN(seq) lookup
        // walks `seq` upwards over the records it is about to delete, with or without the index.)
        let timePlan = try check.prepare(
            "EXPLAIN QUERY PLAN SELECT seq FROM audit_records AS r WHERE r.kind IN ('request', 'refusal') AND r."
                + SQLiteAuditSchema.timeIndexed + " AND r.time_ms >= 5"
        )
        var timeSteps: [String] = []
        while try timePlan.step() == .row { timeSteps.append(timePlan.string(at: 3) ?? "") }
        #expect(timeSteps.contains { $0.contains("USING INDEX audit_records_time") }, "\(timeSteps)")
        // Looking for what was not allowed goes through the decision index, which holds no allowed calls.
        let decisionPlan = try check.prepare(
            "EXPLAIN QUERY PLAN SELECT seq FROM audit_records AS r WHERE r.kind IN ('request', 'refusal') AND r."
                + SQLiteAuditSchema.timeIndexed + " AND r.decision = 'denied' AND r."
                + SQLiteAuditSchema.decisionIndexed + " ORDER BY r.seq DESC LIMIT 100"
        )
        var decisionSteps: [String] = []
        while try decisionPlan.step() == .row { decisionSteps.append(decisionPlan.string(at: 3) ?? "") }
        #expect(decisionSteps.contains { $0.contains("USING INDEX audit_records_decision") }, "\(decisionSteps)")
        let definition = try check.prepare("SELECT sql FROM sqlite_master WHERE name = 'audit_records_time'")
        #expect(try definition.step() == .row)
        #expect(definition.string(at: 0)?.hasSuffix("WHERE kind != 'outcome'") == true)

        var failed = outcome(1, status: 0, message: "collection 'books' does not exist")
        failed.milvusCode = 100
        var decided = fullRequest(2)
        decided.policySequence = 1  // v7
        write([failed, decided], to: store)
        let entries = try store.query(AuditQuery())
        #expect(entries.map(\.id) == [1, 3])
        #expect(entries.first?.outcome == .failed)
        #expect(entries.first?.milvusCode == 100)
        #expect(entries.map(\.record.policySequence) == [nil, 1])
        #expect(try store.verify() == .ok(count: 3, head: try #require(store.records(path: path).last)))
    }

    /// A version 1 store with request records of calls 1...`calls`, as the first release wrote them.
    static func makeVersion1Store(_ path: String, calls: Int = 1) throws {
        let db = try SQLiteConnection(path: path)
        try db.exec("PRAGMA journal_mode = WAL")
        try db.exec(Self.version1)
        let insert = try db.prepare(
            "INSERT INTO audit_records VALUES (\(Array(repeating: "?", count: 26).joined(separator: ", ")))"
        )
        var prevHash = ChainRow.zeroHash
        for n in 1...calls {
            let row = ChainRow(record: fullRequest(n), sequence: Int64(n), prevHash: prevHash)
            let v1Columns = row.columns.prefix(ChainRow.columnNames.count)
            insert.reset()
            try insert.bind(v1Columns.map(SQLiteAuditSchema.value) + [.text(row.prevHash), .text(row.hash)])
            try insert.run()
            prevHash = row.hash
        }
    }

    /// A new guard opening the store at `path` (migrating it) and recording call `n`'s outcome: Milvus said no, in a
    /// column version 1 did not have.
    static func upgrade(_ path: String, recordingOutcomeOf n: Int) {
        do {
            let store = try SQLiteAuditStore(path: path)
            var failed = outcome(n, status: 0, message: "collection 'books' does not exist")
            failed.milvusCode = 100
            write([failed], to: store)
            store.close()
        } catch {
            Issue.record("upgrade: \(error)")
        }
    }

    @Test("A guard migrating the store while verify or a listing reads it (a rolling upgrade) is followed")
    func migratedDuringARead() throws {
        let folder = try TemporaryDirectory()
        let verified = folder.file("verified.db")
        try Self.makeVersion1Store(verified)
        var upgraded = false
        let result = try SQLiteAuditReader(path: verified).verify(chunk: 1) {
            if !upgraded { Self.upgrade(verified, recordingOutcomeOf: 1) }
            upgraded = true
        }
        guard case .ok(let count, _) = result else {
            Issue.record("verify across the migration: \(result)")
            return
        }
        #expect(count == 2)

        let listed = folder.file("listed.db")
        try Self.makeVersion1Store(listed, calls: 2)
        var entries: [AuditEntry] = []
        upgraded = false
        try SQLiteAuditReader(path: listed).forEach(AuditQuery(), chunk: 1) {
            if !upgraded { Self.upgrade(listed, recordingOutcomeOf: 2) }
            upgraded = true
        } _: {
            entries.append($0)
        }
        #expect(entries.map(\.id) == [1, 2])
        #expect(entries.map(\.outcome) == [.unknown, .failed])
        #expect(entries.last?.milvusCode == 100)

        // A newer guard's migration past what this code knows ends the read with a clear message.
        let newer = folder.file("newer.db")
        try Self.makeVersion1Store(newer, calls: 2)
        var moved = false
        let error = #expect(throws: AuditStoreError.self) {
            try SQLiteAuditReader(path: newer).verify(chunk: 1) {
                if !moved { _ = try? sqlite3(newer, "PRAGMA user_version = 99") }
                moved = true
            }
        }
        #expect(error?.message.contains("schema version 99 is newer than this milvus-guard supports (7)") == true)
    }

    @Test("A store newer than this code is refused with a clear message")
    func newerSchema() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        do {
            let db = try SQLiteConnection(path: path)
            try db.exec(Self.version1)
            try db.exec("PRAGMA user_version = 99")
        }
        let error = #expect(throws: AuditStoreError.self) { try SQLiteAuditStore(path: path) }
        #expect(error?.message.contains("schema version 99 is newer than this milvus-guard supports (7)") == true)
        let readError = #expect(throws: AuditStoreError.self) { try SQLiteAuditReader(path: path) }
        #expect(readError?.message.contains("schema version 99") == true)
    }

    @Test("The reader refuses a missing file and a file that is not an audit store, and creates nothing")
    func readerNeedsAStore() throws {
        let folder = try TemporaryDirectory()
        let missing = folder.file("missing.db")
        let error = #expect(throws: AuditStoreError.self) { try SQLiteAuditReader(path: missing) }
        #expect(error?.message == "cannot open \(missing): no such file, or no permission")
        #expect(!FileManager.default.fileExists(atPath: missing))
        let empty = folder.file("empty.db")
        _ = try SQLiteConnection(path: empty)
        let notStore = #expect(throws: AuditStoreError.self) { try SQLiteAuditReader(path: empty) }
        #expect(notStore?.message == "\(empty) is not a milvus-guard audit store")
    }
}

extension SQLiteAuditStore {
    /// Every stored hash in sequence order, read with a separate connection.
    fileprivate func records(path: String) throws -> [String] {
        let db = try SQLiteConnection(path: path, mode: .readOnly)
        let statement = try db.prepare("SELECT hash FROM audit_records ORDER BY seq")
        var hashes: [String] = []
        while try statement.step() == .row { hashes.append(statement.string(at: 0) ?? "") }
        return hashes
    }
}
