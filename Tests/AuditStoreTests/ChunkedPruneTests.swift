import SQLiteSupport
import Testing

@testable import AuditStore

/// `audit prune` on a store a guard is writing to: it appends its checkpoint first, then deletes in short
/// transactions, and the store verifies at every step.
@Suite("Chunked prune", .timeLimit(.minutes(1)))
struct ChunkedPruneTests {
    /// A closed store at a temporary path holding `count` request records, one second apart.
    private func makeStore(_ folder: TemporaryDirectory, count: Int) throws -> String {
        let path = folder.file("guard.db")
        let store = try SQLiteAuditStore(path: path)
        write(decidedRequests(count), to: store)
        store.close()
        return path
    }

    @Test("Between its transactions the write lock is free (a guard writes without waiting) and the store verifies")
    func guardWritesBetweenChunks() throws {
        let folder = try TemporaryDirectory()
        let path = try self.makeStore(folder, count: 10)
        // A guard that fails at once when the lock is taken: every write between chunks must get it.
        let live = try SQLiteAuditStore(path: path, options: AuditStoreOptions(busyTimeoutMilliseconds: 0))
        defer { live.close() }
        let pruner = try SQLiteAuditReader(path: path, writable: true)
        var pauses = 0
        var written: [Int64?] = []
        var verified: [AuditVerification] = []
        let deleted = try pruner.prune(before: 8000, chunk: 3) { _ in
            pauses += 1
            written += write([fullRequest(100 + pauses, time: 20_000)], to: live).map(\.sequence)
            verified.append((try? SQLiteAuditReader(path: path).verify()) ?? .broken(Self.unreadable))
        }
        #expect(deleted == 7)  // records 1...7, in chunks 1...3, 4...6 and 7
        #expect(pauses == 2)
        // The checkpoint is record 11, appended before anything was deleted; the guard's records follow it.
        #expect(written == [12, 13])
        for (index, verification) in verified.enumerated() {
            guard case .ok = verification else {
                Issue.record("chain broken after chunk \(index + 1): \(verification)")
                continue
            }
        }
        #expect(try pruner.query(AuditQuery()).map(\.id) == [8, 9, 10, 12, 13])
        guard case .ok(let count, _) = try pruner.verify() else {
            Issue.record("chain broken after the prune")
            return
        }
        #expect(count == 6)
    }

    @Test("Records a guard appends while prune looks for the first one to keep are kept if they are new enough")
    func recordsAppendedDuringTheScan() throws {
        let folder = try TemporaryDirectory()
        let path = try self.makeStore(folder, count: 3)
        let live = try SQLiteAuditStore(path: path)
        defer { live.close() }
        let pruner = try SQLiteAuditReader(path: path, writable: true)
        // Every record the scan saw is older than the date; the one written after it is not.
        let deleted = try pruner.prune(
            before: 10_000,
            chunk: 100,
            scanned: { write([fullRequest(4, time: 20_000)], to: live) },
            pause: { _ in }
        )
        #expect(deleted == 3)
        #expect(try pruner.query(AuditQuery()).map(\.id) == [4])
        guard case .ok(2, _) = try pruner.verify() else {  // record 4 and the checkpoint (5)
            Issue.record("chain broken after the prune")
            return
        }
    }

    @Test("A checkpoint that claims to cover records from itself on is no cover", arguments: [false, true])
    func checkpointCoveringLaterRecords(deleteOldest: Bool) throws {
        let folder = try TemporaryDirectory()
        let path = try self.makeStore(folder, count: 3)
        let db = try SQLiteConnection(path: path, mode: .readWrite)
        // Appended the way a writer appends, so its own hash and link are right: record 4.
        var forged = AuditRecord(kind: .checkpoint, callID: callID(99), timeMilliseconds: 9000)
        forged.targets = [
            "pruned_through_sequence": "1000000", "pruned_through_hash": String(repeating: "a", count: 64),
        ]
        try db.transaction { () throws(SQLiteError) in
            _ = try SQLiteAuditSchema.append([forged], to: db, after: try SQLiteAuditSchema.head(db))
        }
        if deleteOldest { try db.exec("DELETE FROM audit_records WHERE seq <= 2") }
        guard case .broken(let problem) = try SQLiteAuditReader(path: path).verify() else {
            Issue.record("verify passed with a checkpoint covering records after itself")
            return
        }
        if deleteOldest {
            #expect(problem.kind == .removed)
            #expect(problem.sequence == 1)
        } else {
            #expect(problem.kind == .altered)
            #expect(problem.sequence == 4)
            #expect(problem.description.contains("cannot cover"))
        }
    }

    @Test("verify reads in parts: a prune that overtakes it between two parts is followed, a plain delete is not")
    func verifyInParts() throws {
        let folder = try TemporaryDirectory()
        let path = try self.makeStore(folder, count: 10)
        let reader = try SQLiteAuditReader(path: path)
        guard case .ok(10, let head) = try reader.verify(chunk: 3) else {
            Issue.record("a verify in parts of 3 did not pass")
            return
        }
        guard case .ok(10, head) = try reader.verify() else {
            Issue.record("the verify in one part disagrees")
            return
        }
        // After records 1...3 are checked, a prune deletes 1...7 and appends checkpoint 11.
        var pruned = false
        let overtaken = try reader.verify(chunk: 3) {
            guard !pruned else { return }
            pruned = true
            _ = try? SQLiteAuditReader(path: path, writable: true).prune(before: 8000)
        }
        guard case .ok(let count, _) = overtaken else {
            Issue.record("a prune overtaking the verify broke it: \(overtaken)")
            return
        }
        #expect(count == 7)  // 1...3 before the prune, then 8, 9, 10 and the checkpoint
        // Records deleted without a checkpoint while it runs are missing, as ever: after 8 and 9 are checked,
        // 9 and 10 go, and 10 is reported.
        var deleted = false
        let broken = try reader.verify(chunk: 2) {
            guard !deleted else { return }
            deleted = true
            try? SQLiteConnection(path: path, mode: .readWrite).exec("DELETE FROM audit_records WHERE seq IN (9, 10)")
        }
        guard case .broken(let problem) = broken else {
            Issue.record("verify passed after records were deleted behind its back")
            return
        }
        #expect(problem.kind == .removed)
        #expect(problem.sequence == 10)
    }

    @Test("verify in parts of two catches what verify in one part catches", arguments: 0..<6)
    func tamperingInParts(index: Int) throws {
        let folder = try TemporaryDirectory()
        let path = try self.makeStore(folder, count: 5)
        let (sql, kind, sequence) = AuditVerificationTests.tampering[index]
        try SQLiteConnection(path: path, mode: .readWrite).exec(sql)
        guard case .broken(let problem) = try SQLiteAuditReader(path: path).verify(chunk: 2) else {
            Issue.record("verify in parts passed after \(sql)")
            return
        }
        #expect(problem.kind == kind)
        #expect(problem.sequence == sequence)
    }

    @Test("A listing read in parts shows what one read shows; calls pruned meanwhile are left out, outcomes joined")
    func listingInParts() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        let store = try SQLiteAuditStore(path: path)
        defer { store.close() }
        write((1...7).map { fullRequest($0, time: Int64($0) * 1000) }, to: store)
        let reader = try SQLiteAuditReader(path: path)
        func listed(_ query: AuditQuery, chunk: Int, pause: () -> Void = {}) throws -> [AuditEntry] {
            var entries: [AuditEntry] = []
            try reader.forEach(query, chunk: chunk, pause: pause) { entries.append($0) }
            return entries
        }
        for query in [
            AuditQuery(), AuditQuery(limit: 5), AuditQuery(since: 2000, until: 6000), AuditQuery(limit: 1),
            AuditQuery(limit: 4, afterID: 1), AuditQuery(limit: 1, afterID: 6),
        ] {
            #expect(try listed(query, chunk: 2).map(\.id) == (try reader.query(query)).map(\.id))
        }
        // Between the first part (1, 2) and the next: 1...4 are pruned, and call 5 gets its outcome.
        var changed = false
        let entries = try listed(AuditQuery(), chunk: 2) {
            guard !changed else { return }
            changed = true
            _ = try? SQLiteAuditReader(path: path, writable: true).prune(before: 5000)
            write([outcome(5)], to: store)
        }
        #expect(entries.map(\.id) == [1, 2, 5, 6, 7])
        #expect(entries.first { $0.id == 5 }?.outcome == .ok)
    }

    private static let unreadable = AuditChainProblem(sequence: 0, kind: .removed, detail: "store unreadable")

    /// A copy of a store whose prune stopped after its first chunk: records 1...3 are covered by the checkpoint
    /// (record 6), record 1 is deleted, records 2 and 3 are not yet.
    private func interruptedCopy(_ folder: TemporaryDirectory) throws -> String {
        let path = try self.makeStore(folder, count: 5)
        let copy = folder.file("interrupted.db")
        var copied = false
        _ = try SQLiteAuditReader(path: path, writable: true).prune(before: 4000, chunk: 1) { _ in
            guard !copied else { return }
            copied = true
            try? SQLiteConnection(path: path, mode: .readOnly).exec("VACUUM INTO '\(copy)'")
        }
        #expect(copied)
        return copy
    }

    @Test("An interrupted prune leaves a store that verifies and that a second prune finishes")
    func interrupted() throws {
        let folder = try TemporaryDirectory()
        let path = try self.interruptedCopy(folder)
        let reader = try SQLiteAuditReader(path: path, writable: true)
        #expect(try reader.query(AuditQuery()).map(\.id) == [2, 3, 4, 5])
        guard case .ok(5, _) = try reader.verify() else {
            Issue.record("an interrupted prune left a store that does not verify")
            return
        }
        // The covered records may go (a prune would delete them), oldest first.
        try SQLiteConnection(path: path, mode: .readWrite).exec("DELETE FROM audit_records WHERE seq = 2")
        guard case .ok(4, _) = try reader.verify() else {
            Issue.record("deleting the oldest covered record broke the chain")
            return
        }
        #expect(try reader.prune(before: 4000) == 1)  // record 3; a second checkpoint (7) covers it again
        #expect(try reader.query(AuditQuery()).map(\.id) == [4, 5])
        guard case .ok(4, _) = try reader.verify() else {
            Issue.record("chain broken after finishing the prune")
            return
        }
    }

    @Test(
        "Covered records not yet deleted are still checked",
        arguments: [
            ("UPDATE audit_records SET principal = 'mallory' WHERE seq = 2", AuditChainProblem.Kind.altered, Int64(2)),
            ("DELETE FROM audit_records WHERE seq = 3", .removed, 3),
            ("UPDATE audit_records SET prev_hash = hash WHERE seq = 3", .inserted, 3),
        ]
    )
    func coveredRecordsChecked(sql: String, kind: AuditChainProblem.Kind, sequence: Int64) throws {
        let folder = try TemporaryDirectory()
        let path = try self.interruptedCopy(folder)
        try SQLiteConnection(path: path, mode: .readWrite).exec(sql)
        guard case .broken(let problem) = try SQLiteAuditReader(path: path).verify() else {
            Issue.record("verify passed after \(sql)")
            return
        }
        #expect(problem.kind == kind)
        #expect(problem.sequence == sequence)
    }

    @Test("Covered records rewritten into a chain of their own do not end in the hash the checkpoint recorded")
    func rewrittenCoveredRecords() throws {
        let folder = try TemporaryDirectory()
        let path = try self.interruptedCopy(folder)
        let db = try SQLiteConnection(path: path, mode: .readWrite)
        let second = try db.prepare("SELECT prev_hash FROM audit_records WHERE seq = 2")
        let found = try second.step() == .row
        let stored = found ? second.string(at: 0) : nil
        second.reset()
        let prevHash = try #require(stored)
        var forged = fullRequest(2, time: 2000)
        forged.principal = "mallory"
        try db.transaction { () throws(SQLiteError) in
            try db.exec("DELETE FROM audit_records WHERE seq IN (2, 3)")
            _ = try SQLiteAuditSchema.Appender(db).append(
                [forged, fullRequest(3, time: 3000)],
                after: 1,
                prevHash: prevHash
            )
        }
        guard case .broken(let problem) = try SQLiteAuditReader(path: path).verify() else {
            Issue.record("verify passed after rewriting the covered records")
            return
        }
        #expect(problem.kind == .altered)
        #expect(problem.sequence == 3)
        #expect(problem.description.contains("checkpoint"))
    }
}
