import AuditStore
import Foundation
import Glibc
import SQLiteSupport
import Synchronization
import Testing

@Suite("SQLiteAuditStore")
struct SQLiteAuditStoreTests {
    @Test("Records round-trip through query, joined with their outcome")
    func roundTrip() throws {
        let folder = try TemporaryDirectory()
        let store = try SQLiteAuditStore(path: folder.file("guard.db"))
        defer { store.close() }
        var refusal = AuditRecord(kind: .refusal, callID: callID(2), timeMilliseconds: 1_746_100_801_000)
        refusal.principal = "bob"
        refusal.rpc = "DropCollection"
        refusal.decision = "denied"
        refusal.rule = "policies/app.yaml:20"
        refusal.status = 7
        refusal.message = "milvus-guard: denied"
        refusal.durationMilliseconds = 0.125
        let results = write([fullRequest(1), outcome(1, status: 0, message: ""), refusal], to: store)
        #expect(results.map(\.sequence) == [1, 2, 3])
        #expect(results.allSatisfy { $0.error == nil })

        let entries = try store.query(AuditQuery())
        try #require(entries.count == 2)
        #expect(entries[0].id == 1)
        #expect(entries[0].record == fullRequest(1))
        #expect(entries[0].outcome == .ok)
        #expect(entries[0].status == 0)
        #expect(entries[0].durationMilliseconds == 12.345)
        #expect(entries[1].id == 3)
        #expect(entries[1].record == refusal)
        #expect(entries[1].outcome == .failed)
        #expect(entries[1].status == 7)
        #expect(entries[1].message == "milvus-guard: denied")
    }

    @Test("Each record stores the previous record's hash; verify reports the count and head")
    func chainLinks() throws {
        let folder = try TemporaryDirectory()
        let store = try SQLiteAuditStore(path: folder.file("guard.db"))
        defer { store.close() }
        write((1...5).map { fullRequest($0) }, to: store)
        let entries = try store.query(AuditQuery())
        #expect(entries.count == 5)
        #expect(entries[0].prevHash == String(repeating: "0", count: 64))
        for (previous, next) in zip(entries, entries.dropFirst()) {
            #expect(next.prevHash == previous.hash)
            #expect(previous.hash.count == 64)
        }
        #expect(Set(entries.map(\.hash)).count == 5)
        #expect(try store.verify() == .ok(count: 5, head: entries[4].hash))
    }

    @Test("Many threads submitting: every token gets its result, sequences are unique, the chain holds")
    func groupCommit() throws {
        let folder = try TemporaryDirectory()
        let store = try SQLiteAuditStore(path: folder.file("guard.db"))
        defer { store.close() }
        let threads = 8
        let perThread = 400
        let listeners = (0..<threads).map { _ in CollectingListener() }
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for i in 0..<perThread {
                let token = UInt64(thread * perThread + i)
                var accepted = false
                while !accepted {
                    accepted = store.submit(fullRequest(Int(token)), token: token, listener: listeners[thread])
                }
            }
        }
        var sequences: [Int64] = []
        for (thread, listener) in listeners.enumerated() {
            let results = listener.wait(for: perThread)
            #expect(results.count == perThread)
            #expect(results.allSatisfy { $0.error == nil })
            // Results come back in submission order for each listener.
            #expect(results.map(\.token) == (0..<perThread).map { UInt64(thread * perThread + $0) })
            sequences += results.compactMap(\.sequence)
        }
        #expect(Set(sequences) == Set(1...Int64(threads * perThread)))
        #expect(listeners.allSatisfy { $0.calls <= perThread })
        guard case .ok(let count, _) = try store.verify() else {
            Issue.record("chain broken")
            return
        }
        #expect(count == threads * perThread)
    }

    @Test("submit returns false when the queue is full, and the queued records are written later")
    func queueFull() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        let store = try SQLiteAuditStore(
            path: path,
            options: AuditStoreOptions(queueCapacity: 4, busyTimeoutMilliseconds: 60_000)
        )
        defer { store.close() }
        // Another connection holds the write lock, so the writer blocks in BEGIN IMMEDIATE after taking one batch.
        let blocker = try SQLiteConnection(path: path, mode: .readWrite)
        try blocker.exec("BEGIN IMMEDIATE")
        let listener = CollectingListener()
        var accepted = 0
        var refused = false
        for n in 0..<100 {
            if store.submit(fullRequest(n), token: UInt64(n), listener: listener) {
                accepted += 1
            } else {
                refused = true
                break
            }
        }
        #expect(refused)
        #expect(accepted >= 4 && accepted <= 8)
        #expect(store.queueDepth == accepted)
        try blocker.exec("ROLLBACK")
        let results = listener.wait(for: accepted)
        #expect(results.count == accepted)
        #expect(results.allSatisfy { $0.error == nil })
        #expect(store.submit(fullRequest(999), token: 999, listener: listener))
        #expect(listener.wait(for: accepted + 1).count == accepted + 1)
    }

    @Test("A store moved away or replaced while open refuses batches, without writing to either file, until it is back")
    func movedOrReplaced() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        let store = try SQLiteAuditStore(path: path)
        defer { store.close() }
        #expect(write([fullRequest(1)], to: store).first?.sequence == 1)
        let moved = folder.file("moved.db")

        // Moved away: nothing has the name.
        #expect(rename(path, moved) == 0)
        #expect(write([fullRequest(2)], to: store).first?.error?.message.contains("cannot stat") == true)

        // Another store takes the name.
        let other = try SQLiteAuditStore(path: folder.file("other.db"))
        write([fullRequest(10), fullRequest(11)], to: other)
        other.close()
        #expect(rename(folder.file("other.db"), path) == 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let refused = write([fullRequest(3)], to: store).first?.error?.message ?? ""
        #expect(refused.contains("is no longer the file milvus-guard opened"))
        // Not opened with SQLite: the first store's -wal and -shm are still beside it under the same name.
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)

        // The original back under its name: writing goes on in it.
        #expect(rename(path, folder.file("other.db")) == 0)
        #expect(rename(moved, path) == 0)
        #expect(write([fullRequest(4)], to: store).first?.sequence == 2)
        guard case .ok(2, _) = try SQLiteAuditReader(path: path).verify() else {
            Issue.record("chain broken")
            return
        }
    }

    @Test("A read-only file fails the batch with a short message, and writing recovers once it is writable")
    func readOnlyFile() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        let store = try SQLiteAuditStore(path: path)
        defer { store.close() }
        #expect(write([fullRequest(1)], to: store).first?.sequence == 1)

        #expect(chmod(path, 0o444) == 0)
        let failed = write([fullRequest(2), fullRequest(3)], to: store, firstToken: 10)
        #expect(failed.map(\.token) == [10, 11])
        #expect(failed.allSatisfy { $0.sequence == nil })
        #expect(failed.first?.error?.message == "audit store unavailable: \(path) is read-only")
        #expect(!store.isWritable)

        #expect(chmod(path, 0o644) == 0)
        let recovered = write([fullRequest(4)], to: store, firstToken: 20)
        #expect(recovered.first?.sequence == 2)
        #expect(recovered.first?.error == nil)
        #expect(store.isWritable)
        #expect(try store.query(AuditQuery()).map(\.record.callID) == [callID(1), callID(4)])
    }

    @Test("A lock held past the busy timeout fails the batch with a short message")
    func busy() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        let store = try SQLiteAuditStore(path: path, options: AuditStoreOptions(busyTimeoutMilliseconds: 10))
        defer { store.close() }
        let blocker = try SQLiteConnection(path: path, mode: .readWrite)
        try blocker.exec("BEGIN IMMEDIATE")
        let failed = write([fullRequest(1)], to: store)
        #expect(failed.first?.error?.message == "audit store unavailable: \(path) is locked by another process")
        try blocker.exec("ROLLBACK")
        #expect(write([fullRequest(2)], to: store).first?.sequence == 1)
    }

    @Test("A request without an outcome shows outcome unknown; a failed upstream call shows failed")
    func outcomes() throws {
        let folder = try TemporaryDirectory()
        let store = try SQLiteAuditStore(path: folder.file("guard.db"))
        defer { store.close() }
        write([fullRequest(1), fullRequest(2), outcome(2, status: 14, message: "upstream gone")], to: store)
        let entries = try store.query(AuditQuery())
        #expect(entries.map(\.outcome) == [.unknown, .failed])
        #expect(entries[0].status == nil)
        #expect(entries[0].durationMilliseconds == nil)
        #expect(entries[1].status == 14)
        #expect(entries[1].message == "upstream gone")
        #expect(
            entries[0].jsonLine().contains(
                "\"outcome\":\"unknown\",\"status\":null,\"milvus_code\":null,\"message\":null,\"duration_ms\":null"
            )
        )
    }

    @Test("Queries filter by time, user, database, collection, RPC and decision, and keep the newest N")
    func filters() throws {
        let folder = try TemporaryDirectory()
        let store = try SQLiteAuditStore(path: folder.file("guard.db"))
        defer { store.close() }
        var records: [AuditRecord] = []
        for n in 1...6 {
            var record = fullRequest(n, time: Int64(n) * 1000)
            record.principal = n % 2 == 0 ? "bob" : "alice"
            record.collection = n <= 3 ? "books" : "films"
            record.rpc = n == 5 ? "Insert" : "Delete"
            record.decision = n == 6 ? "denied" : "allowed"
            records.append(record)
        }
        write(records, to: store)
        func ids(_ query: AuditQuery) throws -> [Int64] { try store.query(query).map(\.id) }
        #expect(try ids(AuditQuery(since: 2000, until: 5000)) == [2, 3, 4])
        #expect(try ids(AuditQuery(user: "bob")) == [2, 4, 6])
        #expect(try ids(AuditQuery(database: "default", collection: "films")) == [4, 5, 6])
        #expect(try ids(AuditQuery(database: "other")) == [])
        #expect(try ids(AuditQuery(rpc: "Insert")) == [5])
        #expect(try ids(AuditQuery(decision: "denied")) == [6])
        #expect(try ids(AuditQuery(limit: 2)) == [5, 6])
        #expect(try ids(AuditQuery(limit: 0)) == [])
        // The limit takes the newest that match; fewer matches than the limit shows them all.
        #expect(try ids(AuditQuery(user: "bob", limit: 2)) == [4, 6])
        #expect(try ids(AuditQuery(collection: "books", limit: 5)) == [1, 2, 3])
        #expect(try ids(AuditQuery(limit: 6)) == [1, 2, 3, 4, 5, 6])
        #expect(try ids(AuditQuery(since: 2000, limit: 1)) == [6])
        let reader = try SQLiteAuditReader(path: folder.file("guard.db"))
        var streamed: [Int64] = []
        try reader.forEach(AuditQuery(user: "alice", limit: 2)) { streamed.append($0.id) }
        #expect(streamed == [3, 5])
    }

    @Test("--collection finds calls naming several collections (Flush) by any of them, in the SQLite and memory store")
    func collectionLists() throws {
        let folder = try TemporaryDirectory()
        let sqlite = try SQLiteAuditStore(path: folder.file("guard.db"))
        defer { sqlite.close() }
        let memory = try MemoryAuditStore()
        defer { memory.close() }
        var records: [AuditRecord] = []
        for (n, list) in [(1, "books,films"), (2, "bookshelf,films"), (3, "films,books"), (4, "")] {
            var record = fullRequest(n, time: Int64(n) * 1000)
            record.rpc = "Flush"
            record.collection = nil
            record.targets = list.isEmpty ? [:] : ["collections": list]
            records.append(record)
        }
        var named = fullRequest(5, time: 5000)
        named.collection = "books"
        named.targets = ["collections": "films"]  // a record's own collection decides, not its list
        records.append(named)
        write(records, to: sqlite)
        write(records, to: memory)
        for store in [sqlite, memory] as [any AuditReader] {
            #expect(try store.query(AuditQuery(collection: "books")).map(\.id) == [1, 3, 5])
            #expect(try store.query(AuditQuery(collection: "films")).map(\.id) == [1, 2, 3])
            #expect(try store.query(AuditQuery(collection: "book")).map(\.id) == [])
            #expect(try store.query(AuditQuery(collection: "s,f")).map(\.id) == [])
            #expect(try store.query(AuditQuery(collection: "books,films")).map(\.id) == [])
        }
    }

    @Test("afterID pages forward by id, in commit order even where times go back, in the SQLite and memory store")
    func afterID() throws {
        let folder = try TemporaryDirectory()
        let sqlite = try SQLiteAuditStore(path: folder.file("guard.db"))
        defer { sqlite.close() }
        let memory = try MemoryAuditStore()
        defer { memory.close() }
        // Calls 1-4 with their outcomes; call 5 is a refusal held over an outage, written last with an older time.
        var records: [AuditRecord] = []
        for n in 1...4 {
            var request = fullRequest(n, time: Int64(n) * 1000)
            request.principal = n % 2 == 0 ? "bob" : "alice"
            records += [request, outcome(n, time: Int64(n) * 1000 + 5)]
        }
        var refusal = AuditRecord(kind: .refusal, callID: callID(5), timeMilliseconds: 1500)
        refusal.principal = "bob"
        refusal.status = 8
        records.append(refusal)
        write(records, to: sqlite)
        write(records, to: memory)
        let reader = try SQLiteAuditReader(path: folder.file("guard.db"))
        for store in [sqlite as any AuditReader, memory] {
            func ids(_ query: AuditQuery) throws -> [Int64] { try store.query(query).map(\.id) }
            // Requests and refusals are 1, 3, 5, 7 and 9 (outcomes between them).
            #expect(try ids(AuditQuery(limit: 2, afterID: 0)) == [1, 3])
            #expect(try ids(AuditQuery(limit: 2, afterID: 3)) == [5, 7])
            #expect(try ids(AuditQuery(limit: 2, afterID: 2)) == [3, 5])  // an outcome's id works as a cursor too
            #expect(try ids(AuditQuery(limit: 2, afterID: 7)) == [9])
            #expect(try ids(AuditQuery(limit: 2, afterID: 9)) == [])
            #expect(try ids(AuditQuery(user: "bob", limit: 5, afterID: 3)) == [7, 9])
            // By time, the late refusal sits before call 2 and a reader paging by --since would have passed it.
            #expect(try ids(AuditQuery(since: 2000, limit: 5)) == [3, 5, 7])
            #expect(try store.query(AuditQuery(limit: 1, afterID: 0)).first?.outcome == .ok)
        }
        var streamed: [Int64] = []
        try reader.forEach(AuditQuery(limit: 4, afterID: 1)) { streamed.append($0.id) }
        #expect(streamed == [3, 5, 7, 9])
    }

    @Test("--outcome selects what became of calls, as AuditEntry derives it, in the SQLite and the memory store")
    func outcomeFilter() throws {
        let folder = try TemporaryDirectory()
        let sqlite = try SQLiteAuditStore(path: folder.file("guard.db"))
        defer { sqlite.close() }
        let memory = try MemoryAuditStore()
        defer { memory.close() }
        var refusal = AuditRecord(kind: .refusal, callID: callID(5), timeMilliseconds: 1_746_100_800_300)
        refusal.decision = "denied"
        refusal.status = 7
        var milvusFailed = outcome(3)
        milvusFailed.milvusCode = 100
        // 1 ok; 2 failed (status 14); 3 failed in Milvus's status; 4 no outcome; 5 refused.
        let records = [
            fullRequest(1), outcome(1), fullRequest(2), outcome(2, status: 14), fullRequest(3), milvusFailed,
            fullRequest(4), refusal,
        ]
        for store in [sqlite as any AuditLog & AuditReader, memory] {
            write(records, to: store)
            func ids(_ outcome: AuditEntry.Outcome) throws -> [Int64] {
                try store.query(AuditQuery(outcome: outcome)).map(\.id)
            }
            #expect(try ids(.ok) == [1])
            #expect(try ids(.failed) == [3, 5, 8])
            #expect(try ids(.unknown) == [7])
            #expect(try store.query(AuditQuery(outcome: .failed)).map(\.outcome) == [.failed, .failed, .failed])
            #expect(try store.query(AuditQuery(decision: "denied", outcome: .failed)).map(\.id) == [8])
            #expect(try store.query(AuditQuery(outcome: .failed, limit: 1)).map(\.id) == [8])
        }
    }

    @Test(
        "Policy records are listed beside calls, selected by decision and outcome, left out by call filters, and verify"
    )
    func policyRecords() throws {
        let folder = try TemporaryDirectory()
        let sqlite = try SQLiteAuditStore(path: folder.file("guard.db"))
        defer { sqlite.close() }
        let memory = try MemoryAuditStore()
        defer { memory.close() }
        func policy(_ n: Int, _ decision: String) -> AuditRecord {
            var record = AuditRecord(kind: .policy, callID: callID(n), timeMilliseconds: 1_746_100_800_000 + Int64(n))
            record.action = "policy"
            record.decision = decision
            record.targets = ["trigger": "SIGHUP", "policy_sha256": String(repeating: "ab", count: 32)]
            record.message = "1 user, 0 API keys, 1 rules from 1 file, mode enforce"
            return record
        }
        // 1 loaded; 2-3 a call; 4 a rejected reload.
        let records = [policy(1, "loaded"), fullRequest(2), outcome(2), policy(4, "rejected")]
        for store in [sqlite as any AuditLog & AuditReader, memory] {
            write(records, to: store)
            let all = try store.query(AuditQuery())
            #expect(all.map(\.id) == [1, 2, 4])
            #expect(all.map(\.outcome) == [.ok, .ok, .failed])
            #expect(all[0].record == records[0])
            #expect(all[0].outcomeRecorded && all[0].status == nil && all[0].message == records[0].message)
            #expect(try store.query(AuditQuery(outcome: .ok)).map(\.id) == [1, 2])
            #expect(try store.query(AuditQuery(outcome: .failed)).map(\.id) == [4])
            #expect(try store.query(AuditQuery(outcome: .unknown)).isEmpty)
            #expect(try store.query(AuditQuery(decision: "loaded")).map(\.id) == [1])
            #expect(try store.query(AuditQuery(decision: "rejected")).map(\.id) == [4])
            #expect(try store.query(AuditQuery(user: "alice")).map(\.id) == [2])
            #expect(try store.query(AuditQuery(rpc: "Delete")).map(\.id) == [2])
            #expect(try store.query(AuditQuery(collection: "books")).map(\.id) == [2])
            guard case .ok(4, _) = try store.verify() else {
                Issue.record("verify: \(try store.verify())")
                continue
            }
        }
    }

    @Test("write(_:) returns the record's sequence once it is durable, or throws the error of the batch that failed it")
    func writeWaits() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        let store = try SQLiteAuditStore(path: path)
        #expect(try store.write(fullRequest(1)) == 1)
        #expect(try store.query(AuditQuery()).map(\.id) == [1])
        #expect(chmod(path, 0o444) == 0)
        let readOnly = #expect(throws: AuditStoreError.self) { try store.write(fullRequest(2)) }
        #expect(readOnly?.message == "audit store unavailable: \(path) is read-only")
        #expect(chmod(path, 0o644) == 0)
        #expect(try store.write(fullRequest(3)) == 2)
        #expect(try store.query(AuditQuery()).map(\.record.callID) == [callID(1), callID(3)])
        store.close()
        let closed = #expect(throws: AuditStoreError.self) { try store.write(fullRequest(4)) }
        #expect(closed?.message == "audit store unavailable: the audit queue is full or the store is closing")
    }

    @Test("close writes what is queued; later submits return false")
    func closeDrains() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        let store = try SQLiteAuditStore(path: path)
        let listener = CollectingListener()
        for n in 0..<50 { #expect(store.submit(fullRequest(n), token: UInt64(n), listener: listener)) }
        store.close()
        #expect(listener.results.count == 50)
        #expect(!store.submit(fullRequest(99), token: 99, listener: listener))
        store.close()
        let reader = try SQLiteAuditReader(path: path)
        #expect(try reader.query(AuditQuery(limit: 1000)).count == 50)
    }

    @Test("A new store and its -wal and -shm files are readable by their owner alone; an existing file keeps its mode")
    func privateFiles() throws {
        let folder = try TemporaryDirectory()
        func mode(_ path: String) -> mode_t {
            var info = stat()
            return stat(path, &info) == 0 ? info.st_mode & 0o777 : 0
        }
        let path = folder.file("guard.db")
        let saved = umask(0o022)
        defer { umask(saved) }
        let store = try SQLiteAuditStore(path: path)
        #expect(write([fullRequest(1)], to: store).allSatisfy { $0.error == nil })
        #expect(mode(path) == 0o600)
        #expect(mode(path + "-wal") == 0o600)
        #expect(mode(path + "-shm") == 0o600)
        store.close()

        let shared = folder.file("shared.db")
        #expect(FileManager.default.createFile(atPath: shared, contents: nil, attributes: [.posixPermissions: 0o640]))
        let sharedStore = try SQLiteAuditStore(path: shared)
        #expect(write([fullRequest(2)], to: sharedStore).allSatisfy { $0.error == nil })
        #expect(mode(shared) == 0o640)
        #expect(mode(shared + "-wal") == 0o640)
        sharedStore.close()

        let missingFolder = #expect(throws: AuditStoreError.self) {
            try SQLiteAuditStore(path: folder.file("no/such/folder/guard.db"))
        }
        #expect(missingFolder?.message.contains("no/such/folder/guard.db") == true)
    }

    @Test("A trigger or view planted in the file does not run: every record the guard writes stays")
    func plantedTriggerDoesNotRun() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        do {
            let store = try SQLiteAuditStore(path: path)
            #expect(write([fullRequest(1)], to: store).allSatisfy { $0.error == nil })
            store.close()
        }
        let planted = try sqlite3(
            path,
            """
            CREATE TRIGGER wipe AFTER INSERT ON audit_records BEGIN DELETE FROM audit_records WHERE seq > 1; END;
            CREATE VIEW calls AS SELECT * FROM audit_records;
            """
        )
        #expect(planted.status == 0, "\(planted.error)")
        let store = try SQLiteAuditStore(path: path)
        #expect(write([fullRequest(2), outcome(2)], to: store).allSatisfy { $0.error == nil })
        store.close()
        let reader = try SQLiteAuditReader(path: path)
        #expect(try reader.query(AuditQuery()).map(\.id) == [1, 2])
        // The records are all there; verify still names the trigger, which other SQLite clients would run.
        #expect(
            try reader.verify()
                == .tampered(
                    "trigger wipe on audit_records is not one milvus-guard made "
                        + "(CREATE TRIGGER wipe AFTER INSERT ON audit_records BEGIN DELETE FROM audit_records WHERE seq > 1; END)"
                )
        )
    }

    @Test(
        "A store that refuses every mutation's record (a unique index planted in the file) is not writable until one commits"
    )
    func refusingEveryRequest() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        let store = try SQLiteAuditStore(path: path)
        defer { store.close() }
        #expect(write([fullRequest(1)], to: store).allSatisfy { $0.error == nil })
        let planted = try sqlite3(path, "CREATE UNIQUE INDEX planted ON audit_records (kind)")
        #expect(planted.status == 0, "\(planted.error)")
        let refused = write([fullRequest(2)], to: store, firstToken: 2).first?.error
        #expect(refused?.retryable == false)
        #expect(refused?.message.contains("refused a record") == true)
        // The idle probe (an empty transaction, every second) succeeds, but no mutation gets through: not writable,
        // and why.
        Thread.sleep(forTimeInterval: 1.2)
        #expect(!store.isWritable)
        #expect(store.failure == refused)
        #expect(try sqlite3(path, "DROP INDEX planted").status == 0)
        #expect(write([fullRequest(3)], to: store, firstToken: 3).first?.sequence == 2)
        #expect(store.isWritable)
        #expect(store.failure == nil)
    }

    @Test(
        "A batch SQLite refuses for a record nobody waits for: the mutation's request in it is written alone, and the store stays writable"
    )
    func poisonRecordBesideARequest() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        let store = try SQLiteAuditStore(path: path)
        defer { store.close() }
        var refusal = AuditRecord(kind: .refusal, callID: callID(1), timeMilliseconds: 1_746_100_800_000)
        refusal.message = "the same message"
        #expect(write([refusal], to: store).first?.sequence == 1)
        // Planted behind the guard's back: a second refusal with that message is refused by SQLite for what it is.
        #expect(try sqlite3(path, "CREATE UNIQUE INDEX planted ON audit_records (message)").status == 0)
        let listener = CollectingListener()
        refusal.callID = callID(2)
        #expect(store.submitDeferred(refusal, token: 10, listener: nil))  // nobody waits for a refusal record
        #expect(store.submitDeferred(fullRequest(3), token: 11, listener: listener))
        store.wake()
        let result = listener.wait(for: 1).first
        #expect(result?.error == nil)
        #expect(result?.sequence == 2)  // the request alone, before the refusal that was held
        #expect(store.isWritable)  // a mutation's request went through: not a store that refuses them
    }

    @Test(
        "A WAL deleted or replaced while the store writes: the batch is checkpointed into the file, then no more",
        arguments: [false, true],
        AuditStoreOptions.Synchronous.allCases
    )
    func walDeletedOrReplaced(replaced: Bool, sync: AuditStoreOptions.Synchronous) throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        let store = try SQLiteAuditStore(path: path, options: AuditStoreOptions(synchronous: sync))
        defer { store.close() }
        #expect(write([fullRequest(1)], to: store).first?.sequence == 1)
        #expect(unlink(path + "-wal") == 0)
        if replaced { #expect(creat(path + "-wal", 0o600) >= 0) }
        // Committed to the deleted file, then copied into guard.db: durable, so it goes through.
        #expect(write([fullRequest(2)], to: store, firstToken: 2).first?.sequence == 2)
        #expect(!store.isWritable)  // from that commit on, for /readyz
        let refused = write([fullRequest(3)], to: store, firstToken: 3).first?.error
        let reason = "guard.db-wal was deleted or replaced while milvus-guard wrote to it"
        #expect(refused?.message.contains(reason) == true)
        #expect(!store.isWritable)
        // guard.db alone (what a crash would leave, the WAL gone) holds both records.
        let copy = folder.file("copy.db")
        #expect(try sqlite3(path, "VACUUM INTO '\(copy)'").status == 0)
        let reader = try SQLiteAuditReader(path: copy)
        #expect(try reader.query(AuditQuery()).map(\.id) == [1, 2])
    }

    @Test(
        "A WAL deleted while a reader holds an older snapshot: the checkpoint can't copy every frame, the batch is refused as committed, and the probe copies the rest once the reader is done"
    )
    func walDeletedWhileAReaderHoldsASnapshot() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        let store = try SQLiteAuditStore(path: path)
        defer { store.close() }
        #expect(write([fullRequest(1)], to: store).first?.sequence == 1)
        // Another connection (a listing, `audit verify`) in a read transaction at record 1's snapshot.
        let reader = try SQLiteConnection(path: path, mode: .readOnly, busyTimeoutMilliseconds: 1_000)
        try reader.exec("BEGIN")
        let count = try reader.prepare("SELECT COUNT(*) FROM audit_records")
        #expect(try count.step() == .row)
        #expect(write([fullRequest(2)], to: store, firstToken: 2).first?.sequence == 2)
        #expect(unlink(path + "-wal") == 0)
        // The checkpoint stops at the reader's snapshot: record 3 is committed, but not known to be in guard.db.
        let third = write([fullRequest(3)], to: store, firstToken: 3).first
        #expect(third?.sequence == 3)
        #expect(third?.error?.committed == true)
        #expect(!store.isWritable)
        count.reset()
        try reader.exec("COMMIT")
        // The probe tries the checkpoint again; guard.db alone then holds every committed record.
        let copy = folder.file("copy.db")
        var ids: [Int64] = []
        for attempt in 0..<200 {
            try? FileManager.default.removeItem(atPath: copy)
            if try sqlite3(path, "VACUUM INTO '\(copy)'").status == 0 {
                ids = (try? SQLiteAuditReader(path: copy).query(AuditQuery()).map(\.id)) ?? []
                if ids == [1, 2, 3] { break }
            }
            _ = attempt
            usleep(50_000)
        }
        #expect(ids == [1, 2, 3])
        #expect(!store.isWritable)  // and it takes no more records until a restart
    }

    @Test("close leaves one self-contained file: the WAL is copied into it and deleted, and reads throw after it")
    func closeCheckpoints() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        let store = try SQLiteAuditStore(path: path)
        #expect(write((0..<20).map { fullRequest($0) }, to: store).allSatisfy { $0.error == nil })
        #expect(FileManager.default.fileExists(atPath: path + "-wal"))
        store.close()
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
        #expect(!FileManager.default.fileExists(atPath: path + "-shm"))
        #expect(throws: AuditStoreError.self) { try store.query(AuditQuery(limit: 1)) }
        // The database file alone (a copy, as `cp` makes after the guard stopped) holds every record.
        let copy = folder.file("copy.db")
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        guard case .ok(let count, _) = try SQLiteAuditReader(path: copy).verify() else {
            Issue.record("the copy does not verify")
            return
        }
        #expect(count == 20)
    }

    @Test("A store closed while another process has the file open leaves the WAL to the last one")
    func closeBesideAnotherWriter() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        let first = try SQLiteAuditStore(path: path)
        let second = try SQLiteAuditStore(path: path)
        #expect(write([fullRequest(1)], to: first).allSatisfy { $0.error == nil })
        first.close()
        #expect(write([fullRequest(2)], to: second).allSatisfy { $0.error == nil })
        #expect(try second.query(AuditQuery(limit: 10)).count == 2)
        second.close()
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
        #expect(try SQLiteAuditReader(path: path).query(AuditQuery(limit: 10)).count == 2)
    }

    @Test("Two stores on one file (two processes) interleave into one valid chain")
    func twoWriters() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        let first = try SQLiteAuditStore(path: path)
        let second = try SQLiteAuditStore(path: path)
        let listeners = [CollectingListener(), CollectingListener()]
        DispatchQueue.concurrentPerform(iterations: 2) { index in
            let store = index == 0 ? first : second
            for n in 0..<200 {
                while !store.submit(fullRequest(index * 1000 + n), token: UInt64(n), listener: listeners[index]) {}
            }
        }
        #expect(listeners[0].wait(for: 200).allSatisfy { $0.error == nil })
        #expect(listeners[1].wait(for: 200).allSatisfy { $0.error == nil })
        first.close()
        second.close()
        let reader = try SQLiteAuditReader(path: path)
        guard case .ok(let count, _) = try reader.verify() else {
            Issue.record("chain broken")
            return
        }
        #expect(count == 400)
    }
}
