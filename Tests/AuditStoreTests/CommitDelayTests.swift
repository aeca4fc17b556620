import AuditStore
import Foundation
import Testing

/// The commit delay: a small commit somebody waits for sleeps for company only while enough other calls are in
/// progress. The stores here use delays far longer than any test waits, so a delay that applies where it should
/// not shows as a missing result instead of a slow test.
@Suite("Commit delay", .timeLimit(.minutes(1)))
struct CommitDelayTests {
    /// Polls for `count` results for at most 10 seconds (a tenth of the delays that must not apply).
    private func results(of listener: CollectingListener, count: Int) -> [AuditResult] {
        for _ in 0..<1_000 where listener.results.count < count { usleep(10_000) }
        return listener.results
    }

    /// The outcome of call `n` without a duration, which leaves the delay unbounded by the duration of calls.
    private func untimedOutcome(_ n: Int) -> AuditRecord {
        var record = outcome(n)
        record.durationMilliseconds = nil
        return record
    }

    private func store(in folder: TemporaryDirectory, delay: Int, siblings: Int) throws -> SQLiteAuditStore {
        try SQLiteAuditStore(
            path: folder.file("audit.db"),
            options: AuditStoreOptions(
                lazyCommitMilliseconds: 0,
                commitDelayMilliseconds: delay,
                commitSiblings: siblings
            )
        )
    }

    @Test("With other calls in progress, a request waits for the next one and shares its commit")
    func sharesCommit() throws {
        let folder = try TemporaryDirectory()
        let store = try self.store(in: folder, delay: 1_500, siblings: 2)
        defer { store.close() }
        let listener = CollectingListener()
        // Three calls in progress (requests written, no outcomes): none of these commits is delayed, since
        // each batch's own requests are not its siblings.
        for n in 1...3 { #expect(store.submit(fullRequest(n), token: UInt64(n), listener: listener)) }
        #expect(self.results(of: listener, count: 3).count == 3)
        let before = store.committed.batches

        #expect(store.submit(fullRequest(4), token: 4, listener: listener))
        usleep(100_000)  // a commit takes about a millisecond: without the delay, 4 would be committed alone
        #expect(store.submit(fullRequest(5), token: 5, listener: listener))
        let all = self.results(of: listener, count: 5)
        #expect(all.map(\.token) == [1, 2, 3, 4, 5])
        #expect(all.allSatisfy { $0.error == nil })
        #expect(store.committed.batches == before + 1)
    }

    @Test("A lone call, and a call after the others ended with their outcomes, is committed at once")
    func loneCallNeverWaits() throws {
        let folder = try TemporaryDirectory()
        let store = try self.store(in: folder, delay: 30_000, siblings: 1)
        defer { store.close() }
        let listener = CollectingListener()
        #expect(store.submit(fullRequest(1), token: 1, listener: listener))
        #expect(self.results(of: listener, count: 1).count == 1)
        // Its outcome ends call 1; stray outcomes (of calls written before a restart) don't count below zero.
        for n in [1, 7, 8] { #expect(store.submit(untimedOutcome(n), token: 100 + UInt64(n), listener: nil)) }
        #expect(store.submit(fullRequest(2), token: 2, listener: listener))
        #expect(self.results(of: listener, count: 2).map(\.token) == [1, 2])
    }

    @Test("The delay is at most a sixteenth of the mean duration of recent calls")
    func delayBoundedByCallDuration() throws {
        let folder = try TemporaryDirectory()
        let store = try self.store(in: folder, delay: 30_000, siblings: 1)
        defer { store.close() }
        let listener = CollectingListener()
        // Call 1 ends after 2 ms: the writer has seen a call duration before any delay could apply.
        #expect(store.submit(fullRequest(1), token: 1, listener: listener))
        #expect(self.results(of: listener, count: 1).count == 1)
        var ended = outcome(1)
        ended.durationMilliseconds = 2
        #expect(store.submit(ended, token: 101, listener: nil))
        // Call 2 is alone (committed at once) and stays in progress.
        #expect(store.submit(fullRequest(2), token: 2, listener: listener))
        #expect(self.results(of: listener, count: 2).count == 2)
        // Call 3 has a sibling, but calls take 2 ms: the delay is 125 us, not 30 s.
        #expect(store.submit(fullRequest(3), token: 3, listener: listener))
        #expect(self.results(of: listener, count: 3).map(\.token) == [1, 2, 3])
    }

    @Test("Calls refused because their batch failed no longer count as in progress")
    func failedCallsEnd() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("audit.db")
        let store = try self.store(in: folder, delay: 30_000, siblings: 1)
        defer { store.close() }
        let listener = CollectingListener()
        #expect(store.submit(fullRequest(1), token: 1, listener: listener))
        #expect(self.results(of: listener, count: 1).first?.error == nil)
        #expect(store.submit(untimedOutcome(1), token: 101, listener: nil))

        chmod(path, 0o444)
        #expect(store.submit(fullRequest(2), token: 2, listener: listener))
        #expect(self.results(of: listener, count: 2).last?.error != nil)  // refused: no outcome will follow
        chmod(path, 0o644)

        #expect(store.submit(fullRequest(3), token: 3, listener: listener))
        #expect(self.results(of: listener, count: 3).last?.error == nil)
        #expect(store.submit(untimedOutcome(3), token: 103, listener: nil))
        // Nothing is in progress now: had call 2 stayed counted, this commit would wait a minute.
        #expect(store.submit(fullRequest(4), token: 4, listener: listener))
        #expect(self.results(of: listener, count: 4).map(\.token) == [1, 2, 3, 4])
    }
}
