import Foundation
import SQLiteSupport
import Testing

@testable import AuditStore

/// The writer thread shares the machine with the event loops: a loop queues an iteration's records without waking
/// it, then wakes it once, and one commit takes them all.
@Suite("Audit writer wake-ups", .timeLimit(.minutes(1)))
struct WriterThreadTests {
    @Test("Records queued with submitDeferred wait for wake(), then go in one commit")
    func deferredWake() throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteAuditStore(path: directory.file("audit.db"))
        defer { store.close() }
        let listener = CollectingListener()
        // First a record that wakes it, so the thread is started and asleep. (An awake writer takes what is queued
        // when its commit ends, woken or not.)
        #expect(
            store.submit(
                AuditRecord(kind: .request, callID: "first", timeMilliseconds: 0),
                token: 0,
                listener: listener
            )
        )
        #expect(listener.wait(for: 1).count == 1)
        Thread.sleep(forTimeInterval: 0.05)
        for token in UInt64(1)...3 {
            let record = AuditRecord(kind: .request, callID: "call-\(token)", timeMilliseconds: Int64(token))
            #expect(store.submitDeferred(record, token: token, listener: listener))
        }
        Thread.sleep(forTimeInterval: 0.2)
        #expect(listener.results.count == 1)
        #expect(store.committed.batches == 1)
        store.wake()
        #expect(listener.wait(for: 4).map(\.token) == [0, 1, 2, 3])
        #expect(store.committed.batches == 2)
        #expect(store.committed.records == 4)
        store.wake()  // nothing queued: no empty commit
        Thread.sleep(forTimeInterval: 0.05)
        #expect(store.committed.batches == 2)
    }

    @Test("The writer thread is named guard-audit")
    func threadName() throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteAuditStore(path: directory.file("audit.db"))
        defer { store.close() }
        let listener = CollectingListener()
        #expect(
            store.submit(AuditRecord(kind: .request, callID: "a", timeMilliseconds: 1), token: 1, listener: listener)
        )
        #expect(listener.wait(for: 1).count == 1)
        let names = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").compactMap {
            try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8)
        }
        #expect(names.contains("guard-audit\n"))
    }

    @Test("SQLite refusing a record is no retryable store failure; a full, locked or read-only store is")
    func retryableErrors() {
        for (code, retryable) in [(18, false), (19, false), (20, false), (25, false), (13, true), (5, true), (8, true)]
        {
            let error = SQLiteAuditSchema.error(SQLiteError(extendedCode: Int32(code), message: "m"), path: "g.db")
            #expect(error.retryable == retryable, "SQLITE_\(code)")
            #expect(error.message.hasPrefix("audit store unavailable: "))
        }
    }
}
