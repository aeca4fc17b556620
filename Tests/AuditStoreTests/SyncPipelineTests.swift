import Foundation
import SQLiteSupport
import Synchronization
import Testing

@testable import AuditStore

/// A syncer the test opens and closes like a gate, or makes fail: the disk whose sync is slow or lost writes.
private final class GatedSyncer: AuditSyncer {
    private struct State {
        var open = false
        var failure: AuditStoreError?
        /// Thrown by the next sync only (a writeback error Linux reports once).
        var failOnce: AuditStoreError?
        var started = 0
        var finished = 0
        var appended = 0
    }
    private let state = Mutex(State())

    func open() { self.state.withLock { $0.open = true } }
    func fail(with error: AuditStoreError?) { self.state.withLock { $0.failure = error } }
    func failOnce(with error: AuditStoreError) { self.state.withLock { $0.failOnce = error } }
    var started: Int { self.state.withLock { $0.started } }
    var finished: Int { self.state.withLock { $0.finished } }
    /// Batches the sink committed.
    var appended: Int { self.state.withLock { $0.appended } }
    func noteAppend() { self.state.withLock { $0.appended += 1 } }

    func sync() throws(AuditStoreError) {
        self.state.withLock { $0.started += 1 }
        defer { self.state.withLock { $0.finished += 1 } }
        // Bounded: a gate nobody opens fails the test after 30 s instead of hanging it.
        for _ in 0..<30_000 {
            let (open, failure) = self.state.withLock { state in
                defer { state.failOnce = nil }
                return (state.open, state.failure ?? state.failOnce)
            }
            if let failure { throw failure }
            if open { return }
            usleep(1_000)
        }
        throw AuditStoreError("gate never opened")
    }
}

/// The in-memory sink with a gated syncer, which counts its appends.
private final class SyncedMemorySink: AuditBatchSink {
    private let inner: MemoryBatchSink
    let gate: GatedSyncer

    init(storage: MemoryAuditStore.Storage, gate: GatedSyncer) {
        self.inner = MemoryBatchSink(storage: storage)
        self.gate = gate
    }

    var syncer: (any AuditSyncer)? { self.gate }

    func append(_ records: [AuditRecord]) throws(AuditStoreError) -> [Int64] {
        let sequences = try self.inner.append(records)
        self.gate.noteAppend()
        return sequences
    }

    func probe() throws(AuditStoreError) { try self.inner.probe() }
    func head() -> AuditChainHead? { self.inner.head() }
}

/// Pipelined durability: the writer commits without waiting for the disk and hands each batch to a sync thread,
/// which reports it only once it is durable, while the writer goes on with the next batch.
@Suite("Audit sync pipeline", .timeLimit(.minutes(1)))
struct SyncPipelineTests {
    /// A writer over a memory sink whose syncer is `gate`.
    private final class Fixture: Sendable {
        let gate = GatedSyncer()
        let writer: AuditWriter

        init() throws {
            let storage = MemoryAuditStore.Storage()
            let gate = self.gate
            self.writer = try AuditWriter(name: "test-audit", capacity: 100) {
                SyncedMemorySink(storage: storage, gate: gate)
            }
        }

        var appended: Int { self.gate.appended }

        /// Polls (at most 10 s) until `condition` holds.
        func until(_ condition: () -> Bool) -> Bool {
            for _ in 0..<10_000 {
                if condition() { return true }
                usleep(1_000)
            }
            return condition()
        }
    }

    private func request(_ n: Int) -> AuditRecord {
        AuditRecord(kind: .request, callID: callID(n), timeMilliseconds: Int64(n))
    }

    /// Submits request 1, waits until its sync has started (and waits at the gate), then submits request 2 and waits
    /// until it is committed.
    private func commitTwoWhileTheFirstSyncWaits(_ fixture: Fixture, _ listener: CollectingListener) {
        #expect(fixture.writer.submit(self.request(1), token: 1, listener: listener))
        #expect(fixture.until { fixture.gate.started == 1 })
        #expect(fixture.writer.submit(self.request(2), token: 2, listener: listener))
        #expect(fixture.until { fixture.appended == 2 })
    }

    @Test("Results wait for the sync, and the next batch is committed meanwhile")
    func resultsAfterSync() throws {
        let fixture = try Fixture()
        defer { fixture.writer.close() }
        let listener = CollectingListener()
        // Batch 2 is committed while batch 1's sync still waits for the disk…
        self.commitTwoWhileTheFirstSyncWaits(fixture, listener)
        usleep(50_000)
        // …and neither is reported before its sync.
        #expect(listener.results.isEmpty)
        #expect(fixture.writer.queueDepth == 2)
        fixture.gate.open()
        let results = listener.wait(for: 2)
        #expect(results.map(\.token) == [1, 2])
        #expect(results.map(\.sequence) == [1, 2])
        #expect(results.allSatisfy { $0.error == nil })
        // Batch 2 was committed during the first sync: one more sync covers it.
        #expect(fixture.gate.finished == 2)
        #expect(fixture.until { fixture.writer.queueDepth == 0 })
        #expect(fixture.writer.isWritable)
    }

    @Test("A failed sync refuses its calls and every later one, until a restart")
    func failedSyncIsFinal() throws {
        let fixture = try Fixture()
        defer { fixture.writer.close() }
        let listener = CollectingListener()
        fixture.gate.fail(with: .unavailable("fdatasync failed on audit.db-wal: Input/output error"))
        #expect(fixture.writer.submit(self.request(1), token: 1, listener: listener))
        let first = listener.wait(for: 1)
        #expect(first.map(\.sequence) == [1])  // committed, and refused: not durable
        #expect(first.first?.error?.committed == true)
        let message = try #require(first.first?.error?.message)
        #expect(message.hasPrefix("audit store unavailable: fdatasync failed on audit.db-wal: Input/output error"))
        #expect(message.contains("no more until milvus-guard restarts"))
        #expect(!fixture.writer.isWritable)

        // The disk seems fine again, but what it dropped is gone: nothing more is committed.
        fixture.gate.fail(with: nil)
        fixture.gate.open()
        #expect(fixture.writer.submit(self.request(2), token: 2, listener: listener))
        let second = listener.wait(for: 2)
        #expect(second.map(\.token) == [1, 2])
        #expect(second.last?.error?.message == message)
        #expect(fixture.appended == 1)
        #expect(!fixture.writer.isWritable)
    }

    @Test("A record committed before its sync failed is reported as committed (it is in the chain) though not durable")
    func committedBeforeAFailedSync() throws {
        let fixture = try Fixture()
        defer { fixture.writer.close() }
        let listener = CollectingListener()
        fixture.gate.fail(with: .unavailable("fdatasync failed"))
        #expect(fixture.writer.submit(self.request(1), token: 1, listener: listener))
        let first = listener.wait(for: 1)
        #expect(fixture.appended == 1)
        // What a reload relies on: its record is in the chain, so the policy it names is put in force, and calls
        // name its sequence number.
        #expect(first.first?.error?.committed == true)
        #expect(first.first?.sequence == 1)
    }

    @Test("A batch committed before a sync failed is not reported durable by a later sync that returns no error")
    func noSuccessAfterAFailedSync() throws {
        let fixture = try Fixture()
        defer { fixture.writer.close() }
        let listener = CollectingListener()
        self.commitTwoWhileTheFirstSyncWaits(fixture, listener)
        // The first sync fails; Linux reports a writeback error once, so a second fdatasync would return 0.
        fixture.gate.failOnce(with: .unavailable("fdatasync failed on audit.db-wal: Input/output error"))
        fixture.gate.open()
        let results = listener.wait(for: 2)
        #expect(results.map(\.token) == [1, 2])
        #expect(results.allSatisfy { $0.error?.committed == true })  // in the chain, not reported durable
        #expect(!fixture.writer.isWritable)
    }

}

/// The WAL syncer on a real SQLite file.
@Suite("WAL sync", .timeLimit(.minutes(1)))
struct WALSyncTests {
    @Test("Without a WAL file, tracking fails with the path")
    func missingWAL() throws {
        let folder = try TemporaryDirectory()
        let sync = WALSync(databasePath: folder.file("audit.db"))
        #expect(
            throws: AuditStoreError.unavailable("cannot stat \(folder.file("audit.db-wal")): No such file or directory")
        ) {
            try sync.track(acceptingNewFile: true)
        }
        // Nothing tracked, nothing to sync.
        try sync.sync()
    }

    @Test("Follows the WAL when SQLite replaces the file")
    func followsNewWAL() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("audit.db")
        let sync = WALSync(databasePath: path)
        func commit() throws -> SQLiteConnection {
            let db = try SQLiteConnection(path: path, mode: .readWriteCreate, busyTimeoutMilliseconds: 1000)
            _ = try db.prepare("PRAGMA journal_mode = WAL").step()
            try db.exec("PRAGMA synchronous = NORMAL")
            try db.exec("CREATE TABLE IF NOT EXISTS t (x INTEGER); INSERT INTO t VALUES (1)")
            return db
        }
        var db: SQLiteConnection? = try commit()
        #expect(try sync.track(acceptingNewFile: true))
        let first = try #require(sync.trackedFile)
        try sync.sync()
        #expect(try sync.track(acceptingNewFile: false))
        #expect(sync.trackedFile == first)

        // The last connection's close deletes the WAL; the next commit creates another file.
        db = nil
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
        db = try commit()
        // A new file while the connection stays open is not SQLite's: refused, the tracked file kept.
        #expect(try !sync.track(acceptingNewFile: false))
        #expect(sync.trackedFile == first)
        #expect(try sync.track(acceptingNewFile: true))
        let second = try #require(sync.trackedFile)
        #expect(second != first)
        try sync.sync()
        // A WAL deleted under an open connection is not followed either.
        #expect(unlink(path + "-wal") == 0)
        #expect(try !sync.track(acceptingNewFile: false))
        _ = db
    }
}
