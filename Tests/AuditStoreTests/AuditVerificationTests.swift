import AuditStore
import Foundation
import Glibc
import SQLiteSupport
import Testing

/// Tampering made behind the store's back, with the `sqlite3` shell or a second connection.
@Suite("verify and prune")
struct AuditVerificationTests {
    /// A closed store at a temporary path holding `count` request records, one second apart, decided under policy
    /// record 1.
    private func makeStore(_ folder: TemporaryDirectory, count: Int = 5) throws -> String {
        let path = folder.file("guard.db")
        let store = try SQLiteAuditStore(path: path)
        write(decidedRequests(count), to: store)
        store.close()
        return path
    }

    private func verify(_ path: String) throws -> AuditVerification {
        try SQLiteAuditReader(path: path).verify()
    }

    @Test("Verifying and listing a stopped store, asIsWhenStopped, create no -wal or -shm beside it")
    func stoppedStoreLeftAlone() throws {
        let folder = try TemporaryDirectory()
        let path = try self.makeStore(folder)
        #expect(access(path + "-wal", F_OK) != 0 && access(path + "-shm", F_OK) != 0)  // a clean close removed them
        let reader = try SQLiteAuditReader(path: path, asIsWhenStopped: true)
        #expect(reader.readsFileAsIs)
        guard case .ok(5, _) = try reader.verify() else {
            Issue.record("verify of a stopped store")
            return
        }
        #expect(try reader.query(AuditQuery()).count == 5)
        #expect(access(path + "-wal", F_OK) != 0 && access(path + "-shm", F_OK) != 0)
        // With a guard on it (its -wal there), the store is read through SQLite's locks as usual.
        let store = try SQLiteAuditStore(path: path)
        defer { store.close() }
        write([fullRequest(6, time: 6000)], to: store)
        let live = try SQLiteAuditReader(path: path, asIsWhenStopped: true)
        #expect(!live.readsFileAsIs)
        #expect(try live.query(AuditQuery()).count == 6)
    }

    static let tampering: [(sql: String, problem: AuditChainProblem.Kind, sequence: Int64)] = [
        ("UPDATE audit_records SET principal = 'mallory' WHERE seq = 3", .altered, 3),
        ("UPDATE audit_records SET hash = '\(String(repeating: "a", count: 64))' WHERE seq = 4", .altered, 4),
        // A later column's value moved to another (with NULLs left out of the canonical text, both would be `,1]`).
        ("UPDATE audit_records SET milvus_code = policy_seq, policy_seq = NULL WHERE seq = 3", .altered, 3),
        ("DELETE FROM audit_records WHERE seq = 2", .removed, 2),
        ("DELETE FROM audit_records WHERE seq <= 2", .removed, 1),
        (
            "INSERT INTO audit_records (kind, call_id, time_ms, partitions, targets, prev_hash, hash) "
                + "VALUES ('request', 'ff', 9000, '[]', '{}', 'x', 'y')",
            .inserted, 6
        ),
    ]

    @Test("verify catches changes made with the sqlite3 shell", arguments: 0..<tampering.count)
    func shellTampering(index: Int) throws {
        guard sqlite3Available else {
            Issue.record("the sqlite3 shell is not installed (apt-get install -y sqlite3)")
            return
        }
        let folder = try TemporaryDirectory()
        let path = try self.makeStore(folder)
        let (sql, kind, sequence) = Self.tampering[index]
        let run = try sqlite3(path, sql)
        #expect(run.status == 0, "\(run.error)")
        guard case .broken(let problem) = try self.verify(path) else {
            Issue.record("verify passed after \(sql)")
            return
        }
        #expect(problem.kind == kind)
        #expect(problem.sequence == sequence)
    }

    /// Changes that leave every record and hash alone but make listings skip records or fail, and the start of what
    /// verify says of each.
    static let schemaTampering: [(sql: String, says: String)] = [
        (
            // An index rebuilt without records of 2 rows, its definition put back: listings by time skip them.
            """
            DROP INDEX audit_records_time;
            CREATE INDEX audit_records_time ON audit_records (time_ms) WHERE kind != 'outcome' AND rows IS NOT 2;
            PRAGMA writable_schema = ON;
            UPDATE sqlite_master SET sql = 'CREATE INDEX audit_records_time ON audit_records (time_ms) WHERE kind != ''outcome'''
                WHERE name = 'audit_records_time';
            PRAGMA writable_schema = OFF;
            """,
            "record 1 is missing from index audit_records_time"
        ),
        ("DROP INDEX audit_records_decision", "index audit_records_decision is missing"),
        ("CREATE INDEX audit_records_principal ON audit_records (principal)", "index audit_records_principal on"),
        (
            "CREATE TRIGGER hide AFTER INSERT ON audit_records BEGIN DELETE FROM audit_records WHERE rowid = 1; END",
            "trigger hide on audit_records is not one milvus-guard made"
        ),
        (
            """
            DROP INDEX audit_records_outcome;
            CREATE INDEX audit_records_outcome ON audit_records (call_id) WHERE kind = 'outcome' AND time_ms > 3000;
            """,
            "index audit_records_outcome was changed"
        ),
        ("PRAGMA user_version = 5", "the table has column milvus_code of schema version 6"),
        ("PRAGMA user_version = 6", "the table has column policy_seq of schema version 7"),
        ("ALTER TABLE audit_records DROP COLUMN policy_seq", "column policy_seq of schema version 7 is missing"),
        ("ALTER TABLE audit_records DROP COLUMN auth", "column auth of schema version 7 is missing"),
    ]

    @Test(
        "verify catches indexes, triggers and a schema version changed behind the store's back",
        arguments: 0..<9  // schemaTampering.count (the macro can't name it here: a circular reference)
    )
    func schemaTampering(index: Int) throws {
        guard sqlite3Available else {
            Issue.record("the sqlite3 shell is not installed (apt-get install -y sqlite3)")
            return
        }
        let folder = try TemporaryDirectory()
        let path = try self.makeStore(folder)
        guard case .ok = try self.verify(path) else {
            Issue.record("verify failed before the change")
            return
        }
        let (sql, says) = Self.schemaTampering[index]
        let run = try sqlite3(path, sql)
        #expect(run.status == 0, "\(run.error)")
        guard case .tampered(let problem) = try self.verify(path) else {
            Issue.record("verify did not report \(sql)")
            return
        }
        #expect(problem.hasPrefix(says), "\(problem)")
    }

    @Test("verify catches changes made through a second SQLite connection", arguments: 0..<tampering.count)
    func connectionTampering(index: Int) throws {
        let folder = try TemporaryDirectory()
        let path = try self.makeStore(folder)
        let (sql, kind, sequence) = Self.tampering[index]
        let connection = try SQLiteConnection(path: path, mode: .readWrite)
        try connection.exec(sql)
        guard case .broken(let problem) = try self.verify(path) else {
            Issue.record("verify passed after \(sql)")
            return
        }
        #expect(problem.kind == kind)
        #expect(problem.sequence == sequence)
        #expect(problem.description.hasPrefix("record \(sequence) \(kind.rawValue): "))
    }

    @Test("A store altered to hold SQLite's extreme integers is listed, verified, pruned and appended to, no crash")
    func extremeIntegers() throws {
        let folder = try TemporaryDirectory()
        let path = try self.makeStore(folder, count: 4)
        let connection = try SQLiteConnection(path: path, mode: .readWrite)
        let (lowest, highest) = (Int64.min, Int64.max)
        try connection.exec(
            """
            UPDATE audit_records SET time_ms = \(lowest), rows = \(highest), request_bytes = \(lowest),
                status = \(highest), duration_us = \(lowest), milvus_code = \(lowest) WHERE seq = 2;
            UPDATE audit_records SET time_ms = \(highest), duration_us = \(highest) WHERE seq = 3;
            CREATE TEMP TABLE copied AS SELECT * FROM audit_records WHERE seq IN (1, 4);
            UPDATE copied SET seq = CASE seq WHEN 1 THEN \(lowest) ELSE \(highest) END;
            INSERT INTO audit_records SELECT * FROM copied;
            """
        )
        let reader = try SQLiteAuditReader(path: path)
        var queries = [AuditQuery()]
        for (since, until) in [(lowest, highest), (0, highest), (lowest, 0)] {
            var query = AuditQuery()
            (query.since, query.until) = (since, until)
            queries.append(query)
        }
        for after in [lowest, -1, highest - 1, highest] {
            var query = AuditQuery()
            query.afterID = after
            queries.append(query)
        }
        for query in queries {
            for entry in try reader.query(query) { #expect(!entry.jsonLine().isEmpty) }
        }
        #expect(try reader.query(AuditQuery()).count == 6)
        guard case .broken = try reader.verify() else {
            Issue.record("verify passed on an altered store")
            return
        }
        _ = try? reader.prune(before: 2500)
        _ = try? reader.prune(before: highest)

        // The writer refuses to number a record past the highest sequence number, and says why.
        let store = try SQLiteAuditStore(path: path)
        defer { store.close() }
        let result = write([fullRequest(9)], to: store)
        #expect(result.first?.sequence == nil)
        #expect(result.first?.error?.message.contains("no sequence number is left") == true)
    }

    @Test("prune deletes the oldest records, appends a checkpoint, and verify still passes")
    func prune() throws {
        let folder = try TemporaryDirectory()
        let path = try self.makeStore(folder)
        let store = try SQLiteAuditStore(path: path)
        defer { store.close() }
        let headBefore = try store.query(AuditQuery()).last?.hash
        #expect(try store.prune(before: 3000) == 2)
        let entries = try store.query(AuditQuery())
        #expect(entries.map(\.id) == [3, 4, 5])
        guard case .ok(let count, let head) = try store.verify() else {
            Issue.record("chain broken after prune")
            return
        }
        #expect(count == 4)  // three requests and the checkpoint
        #expect(head != headBefore)
        #expect(try store.prune(before: 1000) == 0)

        // A second prune: the newest checkpoint now covers records 1...4; the first checkpoint (written "now") stays.
        write([fullRequest(6, time: 6000)], to: store)
        #expect(try store.prune(before: 5000) == 2)
        #expect(try store.query(AuditQuery()).map(\.id) == [5, 7])
        guard case .ok = try store.verify() else {
            Issue.record("chain broken after the second prune")
            return
        }
        // Deleting the oldest remaining record is caught: the checkpoint covers only what was pruned.
        let connection = try SQLiteConnection(path: path, mode: .readWrite)
        try connection.exec("DELETE FROM audit_records WHERE seq = 5")
        guard case .broken(let problem) = try store.verify() else {
            Issue.record("verify passed after deleting the oldest record")
            return
        }
        #expect(problem.kind == .removed)
        #expect(problem.sequence == 5)
    }

    @Test("prune takes an outcome newer than the date along with the older call it ends")
    func pruneTakesOutcomeWithItsCall() throws {
        let folder = try TemporaryDirectory()
        let store = try SQLiteAuditStore(path: folder.file("guard.db"))
        defer { store.close() }
        let memory = try MemoryAuditStore()
        defer { memory.close() }
        for log in [store, memory] as [any AuditLog & AuditReader] {
            write([fullRequest(1, time: 1000), outcome(1, time: 3500), fullRequest(2, time: 4000)], to: log)
            #expect(try log.prune(before: 3000) == 2)
            #expect(try log.query(AuditQuery()).map(\.id) == [3])
            guard case .ok(2, _) = try log.verify() else {
                Issue.record("chain broken after prune")
                return
            }
        }
    }

    @Test("prune of everything leaves only the checkpoint, which verifies")
    func pruneAll() throws {
        let folder = try TemporaryDirectory()
        let path = try self.makeStore(folder, count: 3)
        let store = try SQLiteAuditStore(path: path)
        defer { store.close() }
        #expect(try store.prune(before: 1_000_000) == 3)
        #expect(try store.query(AuditQuery()).isEmpty)
        guard case .ok(1, _) = try store.verify() else {
            Issue.record("chain broken after pruning everything")
            return
        }
        #expect(write([fullRequest(9)], to: store).first?.sequence == 5)
        guard case .ok(2, _) = try store.verify() else {
            Issue.record("chain broken after writing past the checkpoint")
            return
        }
    }

    @Test("An empty store verifies with 64 zeros as its head")
    func empty() throws {
        let folder = try TemporaryDirectory()
        let store = try SQLiteAuditStore(path: folder.file("guard.db"))
        defer { store.close() }
        #expect(try store.verify() == .ok(count: 0, head: String(repeating: "0", count: 64)))
    }
}
