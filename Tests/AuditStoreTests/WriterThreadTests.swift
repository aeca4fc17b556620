import Foundation
import Testing

@testable import AuditStore

/// The writer thread shares the machine with the event loops: it is named, and it does not preempt them.
@Suite("Audit writer thread", .timeLimit(.minutes(1)))
struct WriterThreadTests {
    /// The scheduling policy (field 41 of /proc/self/task/TID/stat) of every thread of this process named `name`.
    private static func policies(ofThreadsNamed name: String) throws -> [Int] {
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")
        return tasks.compactMap { task -> Int? in
            guard let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8),
                comm.trimmingCharacters(in: .whitespacesAndNewlines) == name,
                let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            // Fields after "(comm)" start at field 3 (state); the policy is field 41.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 38 ? Int(fields[38]) : nil
        }
    }

    @Test("It is named guard-audit and runs under SCHED_BATCH, so a submit does not preempt the submitting loop")
    func batchPolicy() throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteAuditStore(path: directory.file("audit.db"))
        defer { store.close() }
        let listener = CollectingListener()
        #expect(
            store.submit(AuditRecord(kind: .request, callID: "a", timeMilliseconds: 1), token: 1, listener: listener)
        )
        #expect(listener.wait(for: 1).count == 1)
        let policies = try Self.policies(ofThreadsNamed: "guard-audit")
        #expect(!policies.isEmpty)
        #expect(policies.allSatisfy { $0 == 3 })  // SCHED_BATCH
    }
}
