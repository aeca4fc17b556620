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

    @Test("Records nobody waits for outlive a failing store and are written, in order, once it recovers")
    func heldOver() throws {
        let store = try MemoryAuditStore(probeMilliseconds: 10)
        defer { store.close() }
        store.failWrites(with: AuditStoreError("audit store unavailable: disk full"))
        // A mutation's request fails at once: its call is refused.
        #expect(write([fullRequest(1)], to: store).first?.error?.message == "audit store unavailable: disk full")
        // The outcome of a call already forwarded, and a refusal: nobody waits for them.
        var refusal = fullRequest(2)
        refusal.kind = .refusal
        refusal.status = 8
        #expect(store.submit(outcome(3), token: 10, listener: nil))
        #expect(store.submit(refusal, token: 11, listener: nil))
        #expect(waitUntil { !store.isWritable && store.queueDepth == 2 })
        usleep(50_000)  // several tries, every 10 ms, all failed
        #expect(store.records.isEmpty)
        #expect(store.queueDepth == 2)
        store.failWrites(with: nil)
        #expect(waitUntil { store.records.count == 2 })
        #expect(store.records == [outcome(3), refusal])
        // The writer counts them out of the queue after it has stored them: seen a moment later on a busy machine.
        #expect(waitUntil { store.queueDepth == 0 })
        // And the store goes on from there.
        #expect(write([fullRequest(4)], to: store).first?.sequence == 3)
        guard case .ok(3, _) = try store.verify() else {
            Issue.record("verify failed")
            return
        }
        #expect(store.lost == 0)
    }

    @Test("Held-over records count against the queue's capacity: a long outage refuses submits, not memory")
    func heldOverIsBounded() throws {
        let store = try MemoryAuditStore(options: AuditStoreOptions(queueCapacity: 4), probeMilliseconds: 10)
        defer { store.close() }
        store.failWrites(with: AuditStoreError("audit store unavailable: disk full"))
        for n in 1...4 { #expect(store.submit(outcome(n), token: UInt64(n), listener: nil)) }
        #expect(waitUntil { !store.isWritable && store.queueDepth == 4 })
        usleep(50_000)
        #expect(!store.submit(outcome(5), token: 5, listener: nil))
        store.failWrites(with: nil)
        #expect(waitUntil { store.records.count == 4 })
        #expect(store.submit(outcome(6), token: 6, listener: nil))
        #expect(waitUntil { store.records.count == 5 })
    }

    @Test("Held-over records take at most heldBytesLimit bytes: a client decides how long a Delete's filter is")
    func heldOverBytes() throws {
        let store = try MemoryAuditStore(probeMilliseconds: 10, heldBytesLimit: 200_000)
        defer { store.close() }
        store.failWrites(with: AuditStoreError("audit store unavailable: disk full"))
        var huge = fullRequest(1)
        huge.kind = .refusal
        huge.filter = String(repeating: "x", count: 150_000)
        #expect(store.submit(huge, token: 1, listener: nil))
        #expect(store.submit(huge, token: 2, listener: nil))  // would pass the limit: lost
        #expect(store.submit(outcome(3), token: 3, listener: nil))  // small: still held
        #expect(waitUntil { store.lost == 1 && store.queueDepth == 2 })
        store.failWrites(with: nil)
        #expect(waitUntil { store.records.count == 2 })
        #expect(store.records == [huge, outcome(3)])
    }

    @Test("Records committed before their batch failed (the sync after the commit) are not written again")
    func committedThenFailed() throws {
        let store = try MemoryAuditStore(probeMilliseconds: 10)
        defer { store.close() }
        store.failWrites(with: AuditStoreError("audit store unavailable: cannot open the -wal", committed: true))
        #expect(store.submit(outcome(1), token: 1, listener: nil))
        #expect(write([fullRequest(2)], to: store).first?.error != nil)  // refused, though in the store
        usleep(60_000)  // several probe intervals
        store.failWrites(with: nil)
        #expect(write([fullRequest(3)], to: store).first?.sequence == 3)
        usleep(30_000)
        #expect(store.records == [outcome(1), fullRequest(2), fullRequest(3)])
        #expect(store.lost == 0)
    }

    @Test("write(_:) of a record committed before its batch failed throws, naming the sequence number it got")
    func committedWriteNamesItsSequence() throws {
        let store = try MemoryAuditStore(probeMilliseconds: 10)
        defer { store.close() }
        #expect(try store.write(fullRequest(1)) == 1)
        // Tracking the WAL failed after the commit: the store may take records again, and a reload's calls must name
        // its policy record all the same.
        store.failWrites(with: AuditStoreError("audit store unavailable: cannot open the -wal", committed: true))
        let error = #expect(throws: AuditStoreError.self) { try store.write(fullRequest(2)) }
        #expect(error?.committed == true)
        #expect(error?.committedSequences == [2])
        store.failWrites(with: nil)
        #expect(try store.write(fullRequest(3)) == 3)
        // With a record nobody waits for in the same batch (an outcome queued just before, not woken for): the
        // sequence is the written record's own.
        store.failWrites(with: AuditStoreError("audit store unavailable: cannot open the -wal", committed: true))
        #expect(store.submitDeferred(outcome(3), token: 9, listener: nil))
        let shared = #expect(throws: AuditStoreError.self) { try store.write(fullRequest(5)) }
        #expect(shared?.committedSequences == [5])
        #expect(store.records.map(\.callID).suffix(2) == [callID(3), callID(5)])
        store.failWrites(with: nil)
        // An error not after a commit names none.
        store.failWrites(with: AuditStoreError("audit store unavailable: disk full"))
        let refused = #expect(throws: AuditStoreError.self) { try store.write(fullRequest(4)) }
        #expect(refused?.committed == false)
        #expect(refused?.committedSequences == [])
    }

    @Test("A held read request is written before its outcome, which queues behind it")
    func heldRequestBeforeItsOutcome() throws {
        let store = try MemoryAuditStore(probeMilliseconds: 200)
        defer { store.close() }
        store.failWrites(with: AuditStoreError("audit store unavailable: disk full"))
        var read = fullRequest(1)
        read.rpc = "Search"
        #expect(store.submit(read, token: 1, listener: nil))  // a read's request: nobody waits for it
        #expect(waitUntil { !store.isWritable && store.queueDepth == 1 })
        store.failWrites(with: nil)
        #expect(store.submit(outcome(1), token: 2, listener: nil))  // the read ended; the store is back
        // A mutation's request commits on its own at once; the held go when their next try is due, in order.
        #expect(write([fullRequest(2)], to: store, firstToken: 3).first?.sequence == 1)
        #expect(waitUntil { store.records.count == 3 })
        #expect(store.records == [fullRequest(2), read, outcome(1)])
    }

    @Test("On a nearly full disk, held records go in commits small enough to fit, and mutations go on meanwhile")
    func heldOnANearlyFullDisk() throws {
        let store = try MemoryAuditStore(probeMilliseconds: 5)
        defer { store.close() }
        let full = AuditStoreError("audit store unavailable: disk full")
        store.failWrites(with: full)
        for n in 1...8 { #expect(store.submit(outcome(n), token: UInt64(n), listener: nil)) }
        #expect(waitUntil { !store.isWritable && store.queueDepth == 8 })
        store.failWrites(with: full, above: 2)  // room for two records at a time
        var token: UInt64 = 100
        #expect(
            waitUntil {
                token += 1
                // Every mutation's request fits and is written, however many held records fail beside it.
                guard write([fullRequest(Int(token))], to: store, firstToken: token).first?.error == nil else {
                    return false
                }
                return store.records.count(where: { $0.kind == .outcome }) == 8
            }
        )
        #expect(store.records.filter { $0.kind == .outcome } == (1...8).map { outcome($0) })
        #expect(store.lost == 0)
    }

    @Test("Held records SQLite refuses for what they are are narrowed down one by one and counted lost")
    func heldRefusedForGood() throws {
        let store = try MemoryAuditStore(probeMilliseconds: 5)
        defer { store.close() }
        store.failWrites(with: AuditStoreError("audit store unavailable: disk full"))
        for n in 1...5 { #expect(store.submit(outcome(n), token: UInt64(n), listener: nil)) }
        #expect(waitUntil { !store.isWritable && store.queueDepth == 5 })
        store.failWrites(with: AuditStoreError("audit store unavailable: g.db refused a record", retryable: false))
        #expect(waitUntil { store.lost == 5 && store.queueDepth == 0 })
        store.failWrites(with: nil)
        #expect(write([fullRequest(9)], to: store).first?.sequence == 1)
    }

    @Test("A held record that never fits while other commits do is given up, so it cannot block the queue")
    func heldRecordThatNeverFits() throws {
        let store = try MemoryAuditStore(probeMilliseconds: 5)
        defer { store.close() }
        let full = AuditStoreError("audit store unavailable: disk full")
        store.failWrites(with: full)
        var big = fullRequest(1)
        big.kind = .refusal
        big.filter = "BIG"
        #expect(store.submit(big, token: 1, listener: nil))
        #expect(waitUntil { !store.isWritable && store.queueDepth == 1 })
        // Space comes back for everything but the big record.
        store.failRecords(with: full) { $0.filter == "BIG" }
        store.failWrites(with: nil)
        #expect(waitUntil { store.isWritable })  // the probe says the store takes transactions again
        var n = 10
        var refusedMutations = 0
        let givenUp = waitUntil {
            n += 1
            if write([fullRequest(n)], to: store, firstToken: UInt64(n)).first?.error != nil { refusedMutations += 1 }
            return store.lost == 1
        }
        #expect(givenUp)
        #expect(refusedMutations == 0)  // every mutation's request went in meanwhile
        #expect(waitUntil { store.queueDepth == 0 })
        #expect(!store.records.contains(big))
    }

    @Test("A record SQLite refuses does not get the mutations of its batch refused")
    func refusedRecordBesideMutations() throws {
        let store = try MemoryAuditStore(probeMilliseconds: 5)
        defer { store.close() }
        let refused = AuditStoreError("audit store unavailable: g.db refused a record", retryable: false)
        store.failRecords(with: refused) { $0.rpc == "Search" }
        var read = fullRequest(1)
        read.rpc = "Search"
        let listener = CollectingListener()
        #expect(store.submitDeferred(read, token: 1, listener: nil))
        #expect(store.submitDeferred(fullRequest(2), token: 2, listener: listener))
        store.wake()
        #expect(listener.wait(for: 1).first?.sequence != nil)
        #expect(waitUntil { store.lost == 1 && store.queueDepth == 0 })
        #expect(store.records == [fullRequest(2)])
    }

    @Test("A store refusing mutations' records stays not writable while it takes outcomes, until a request commits")
    func refusingRequestsOnly() throws {
        let store = try MemoryAuditStore(probeMilliseconds: 5)
        defer { store.close() }
        let refused = AuditStoreError("audit store unavailable: g.db refused a record: planted", retryable: false)
        store.failRecords(with: refused) { $0.kind == .request }
        #expect(write([fullRequest(1)], to: store).first?.error == refused)
        #expect(!store.isWritable)
        // An outcome (nobody waits for it) commits: that says nothing about the mutations' records.
        #expect(store.submit(outcome(7), token: 7, listener: nil))
        #expect(waitUntil { store.records.count == 1 })
        usleep(20_000)  // a few probes
        #expect(!store.isWritable)
        #expect(store.failure == refused)
        store.failRecords(with: refused) { _ in false }
        #expect(write([fullRequest(2)], to: store, firstToken: 2).first?.sequence == 2)
        #expect(store.isWritable)
    }

    @Test("What the store still refuses when it closes is counted as lost")
    func lostAtClose() throws {
        let store = try MemoryAuditStore(probeMilliseconds: 10)
        store.failWrites(with: AuditStoreError("audit store unavailable: disk full"))
        #expect(store.submit(outcome(1), token: 1, listener: nil))
        #expect(waitUntil { !store.isWritable })
        #expect(store.submit(outcome(2), token: 2, listener: nil))
        store.close()
        #expect(store.records.isEmpty)
        #expect(store.lost == 2)
        #expect(store.queueDepth == 0)
    }

    @Test("A failure no retry cures (SQLite refused a record) is not held over: it would fail every later commit")
    func notRetryable() throws {
        let store = try MemoryAuditStore(probeMilliseconds: 10)
        defer { store.close() }
        let refused = AuditStoreError("audit store unavailable: guard.db refused a record: too big", retryable: false)
        store.failWrites(with: refused)
        #expect(store.submit(outcome(1), token: 1, listener: nil))
        #expect(write([fullRequest(2)], to: store).first?.error == refused)
        #expect(waitUntil { store.lost == 1 })
        #expect(waitUntil { store.queueDepth == 0 })
        store.failWrites(with: nil)
        #expect(write([fullRequest(3)], to: store).first?.sequence == 1)
        #expect(store.records == [fullRequest(3)])
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
