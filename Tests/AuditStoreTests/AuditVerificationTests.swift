import AuditStore
import Foundation
import SQLiteSupport
import Testing

/// Tampering made behind the store's back, with the `sqlite3` shell or a second connection.
@Suite("verify and prune")
struct AuditVerificationTests {
    /// A closed store at a temporary path holding `count` request records, one second apart.
    private func makeStore(_ folder: TemporaryDirectory, count: Int = 5) throws -> String {
        let path = folder.file("guard.db")
        let store = try SQLiteAuditStore(path: path)
        write((1...count).map { fullRequest($0, time: Int64($0) * 1000) }, to: store)
        store.close()
        return path
    }

    private func verify(_ path: String) throws -> AuditVerification {
        try SQLiteAuditReader(path: path).verify()
    }

    static let tampering: [(sql: String, problem: AuditChainProblem.Kind, sequence: Int64)] = [
        ("UPDATE audit_records SET principal = 'mallory' WHERE seq = 3", .altered, 3),
        ("UPDATE audit_records SET hash = '\(String(repeating: "a", count: 64))' WHERE seq = 4", .altered, 4),
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
