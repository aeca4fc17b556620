import Foundation
import Testing

@testable import AuditStore

/// Records nobody waits for share a commit with the next record somebody waits for.
@Suite("Lazy group commit", .timeLimit(.minutes(1)))
struct LazyCommitTests {
    final class Collector: AuditListener, @unchecked Sendable {
        private let lock = NSLock()
        private var results: [AuditResult] = []
        func auditCompleted(_ results: [AuditResult]) { self.lock.withLock { self.results += results } }
        var count: Int { self.lock.withLock { self.results.count } }
        var all: [AuditResult] { self.lock.withLock { self.results } }
    }

    @Test("An outcome waits for the next request and is committed with it, in submission order")
    func outcomeRidesWithRequest() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lazy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("audit.db").path
        let store = try SQLiteAuditStore(path: path, options: AuditStoreOptions(lazyCommitMilliseconds: 10_000))
        let collector = Collector()
        #expect(store.submit(AuditRecord(kind: .outcome, callID: "a", timeMilliseconds: 1), token: 1, listener: nil))
        Thread.sleep(forTimeInterval: 0.2)
        // Still waiting for company: nothing is in the file yet.
        #expect(try SQLiteAuditReader(path: path).verify() == .ok(count: 0, head: String(repeating: "0", count: 64)))
        #expect(
            store.submit(AuditRecord(kind: .request, callID: "b", timeMilliseconds: 2), token: 2, listener: collector)
        )
        for _ in 0..<500 where collector.count == 0 { Thread.sleep(forTimeInterval: 0.01) }
        #expect(collector.all.map(\.token) == [2])
        #expect(collector.all.first?.sequence == 2)  // the outcome went first, in the same commit
        store.close()
        guard case .ok(let count, _) = try SQLiteAuditReader(path: path).verify() else {
            Issue.record("the chain does not verify")
            return
        }
        #expect(count == 2)
    }
}
