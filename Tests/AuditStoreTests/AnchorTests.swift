import Synchronization
import Testing

@testable import AuditStore

/// Heads recorded elsewhere (anchors): the store announces them, and a reader checks the store against them.
@Suite("Chain heads and anchors", .timeLimit(.minutes(1)))
struct AnchorTests {
    @Test("The writer announces the head while it writes (at most once per interval) and once more at close")
    func announcements() throws {
        let folder = try TemporaryDirectory()
        let heads = Mutex<[AuditChainHead]>([])
        let store = try SQLiteAuditStore(
            path: folder.file("guard.db"),
            options: AuditStoreOptions(headAnnouncementMilliseconds: 60_000)
        ) { head in heads.withLock { $0.append(head) } }
        write([fullRequest(1)], to: store)
        write([fullRequest(2), fullRequest(3)], to: store)
        // The first commit announced; the second is within the interval.
        #expect(heads.withLock { $0.map(\.sequence) } == [1])
        store.close()
        let announced = heads.withLock { $0 }
        #expect(announced.map(\.sequence) == [1, 3])
        let reader = try SQLiteAuditReader(path: folder.file("guard.db"))
        #expect(try reader.head() == announced.last)
        #expect(try reader.check(try #require(announced.first)) == .matches)
    }

    @Test("An anchor past the end is truncation; another hash is a rewrite; a pruned one is checked by its checkpoint")
    func checks() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("guard.db")
        let store = try SQLiteAuditStore(path: path)
        write((1...5).map { fullRequest($0, time: Int64($0) * 1000) }, to: store)
        let reader = try SQLiteAuditReader(path: path)
        let hashes = try store.query(AuditQuery()).map(\.hash)
        #expect(try reader.check(AuditChainHead(sequence: 5, hash: hashes[4])) == .matches)
        #expect(try reader.check(AuditChainHead(sequence: 9, hash: hashes[4])) == .truncated(head: 5))
        #expect(
            try reader.check(AuditChainHead(sequence: 2, hash: hashes[4])) == .rewritten(stored: hashes[1])
        )
        #expect(try store.prune(before: 4000) == 3)  // records 1...3; the checkpoint names record 3
        #expect(try reader.check(AuditChainHead(sequence: 3, hash: hashes[2])) == .matches)
        #expect(try reader.check(AuditChainHead(sequence: 3, hash: hashes[0])) == .rewritten(stored: hashes[2]))
        #expect(try reader.check(AuditChainHead(sequence: 1, hash: hashes[0])) == .pruned)
        store.close()
    }

    @Test("Anchors parse as SEQ:HASH only")
    func parsing() {
        let hash = String(repeating: "0a", count: 32)
        #expect(AuditChainHead(parsing: "12:\(hash)") == AuditChainHead(sequence: 12, hash: hash))
        #expect(AuditChainHead(parsing: "12:\(hash)")?.description == "12:\(hash)")
        for bad in [
            "", "12", ":\(hash)", "0:\(hash)", "-1:\(hash)", "12:\(hash.uppercased())", "12:\(hash)0", "x:\(hash)",
        ] {
            #expect(AuditChainHead(parsing: bad) == nil, "\(bad)")
        }
    }
}
