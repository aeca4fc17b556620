import AuditStore
import Foundation
import Testing

@Suite("MemoryAuditStore")
struct MemoryAuditStoreTests {
    @Test("Records round-trip, chain, and verify as in the SQLite store")
    func roundTrip() throws {
        let store = try MemoryAuditStore()
        defer { store.close() }
        let results = write([fullRequest(1), outcome(1), fullRequest(2)], to: store)
        #expect(results.map(\.sequence) == [1, 2, 3])
        let entries = try store.query(AuditQuery())
        #expect(entries.map(\.record) == [fullRequest(1), fullRequest(2)])
        #expect(entries.map(\.outcome) == [.ok, .unknown])
        #expect(entries[1].prevHash != entries[0].hash)  // the outcome record sits between them
        #expect(try store.verify() == .ok(count: 3, head: entries[1].hash))
    }

    @Test("The same records hash the same in memory and in SQLite")
    func sameHashes() throws {
        let folder = try TemporaryDirectory()
        let sqlite = try SQLiteAuditStore(path: folder.file("guard.db"))
        defer { sqlite.close() }
        let memory = try MemoryAuditStore()
        defer { memory.close() }
        let records = [fullRequest(1), outcome(1, status: 3, message: "bad ✓\n"), fullRequest(2)]
        write(records, to: sqlite)
        write(records, to: memory)
        #expect(try sqlite.query(AuditQuery()) == memory.query(AuditQuery()))
        #expect(try sqlite.verify() == memory.verify())
    }

    @Test("Injected failures fail batches with the message; the probe recovers isWritable")
    func failures() throws {
        let store = try MemoryAuditStore(probeMilliseconds: 10)
        defer { store.close() }
        store.failWrites(with: AuditStoreError("audit store unavailable: disk full"))
        let failed = write([fullRequest(1)], to: store)
        #expect(failed.first?.error?.message == "audit store unavailable: disk full")
        #expect(!store.isWritable)
        store.failWrites(with: nil)
        var writable = false
        for _ in 0..<60_000 where !writable {
            writable = store.isWritable
            if !writable { usleep(1_000) }
        }
        #expect(writable)
        #expect(write([fullRequest(2)], to: store).first?.sequence == 1)
    }

    @Test("prune appends a checkpoint and verify passes")
    func prune() throws {
        let store = try MemoryAuditStore()
        defer { store.close() }
        write((1...4).map { fullRequest($0, time: Int64($0) * 1000) }, to: store)
        #expect(try store.prune(before: 3000) == 2)
        #expect(store.records.last?.kind == .checkpoint)
        #expect(store.records.last?.targets["pruned_through_sequence"] == "2")
        guard case .ok(3, _) = try store.verify() else {
            Issue.record("chain broken after prune")
            return
        }
    }
}
