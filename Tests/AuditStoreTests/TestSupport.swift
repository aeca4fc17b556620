import AuditStore
import Foundation
import Synchronization

/// A fresh directory under the system temporary directory, removed (permissions restored first) on release.
final class TemporaryDirectory {
    let path: String

    init() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("audit-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        self.path = url.path
    }

    deinit {
        if let names = try? FileManager.default.contentsOfDirectory(atPath: self.path) {
            for name in names { chmod(self.path + "/" + name, 0o644) }
        }
        try? FileManager.default.removeItem(atPath: self.path)
    }

    func file(_ name: String) -> String { self.path + "/" + name }
}

/// Collects results from the writer thread; ``wait(for:)`` polls until enough have arrived.
final class CollectingListener: AuditListener {
    private let state = Mutex<(results: [AuditResult], calls: Int)>(([], 0))

    func auditCompleted(_ results: [AuditResult]) {
        self.state.withLock {
            $0.results += results
            $0.calls += 1
        }
    }

    var results: [AuditResult] { self.state.withLock { $0.results } }
    var calls: Int { self.state.withLock { $0.calls } }

    /// Waits (up to a minute, so a stuck writer fails the test instead of hanging it) for `count` results.
    @discardableResult
    func wait(for count: Int) -> [AuditResult] {
        for _ in 0..<60_000 {
            let results = self.results
            if results.count >= count { return results }
            usleep(1_000)
        }
        return self.results
    }
}

/// Runs the `sqlite3` command-line shell on `path` with `sql`; returns its exit status and standard error.
func sqlite3(_ path: String, _ sql: String) throws -> (status: Int32, error: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["sqlite3", path, sql]
    let errors = Pipe()
    process.standardError = errors
    process.standardOutput = Pipe()
    try process.run()
    process.waitUntilExit()
    let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    return (process.terminationStatus, text)
}

var sqlite3Available: Bool {
    ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").contains {
        FileManager.default.isExecutableFile(atPath: "\($0)/sqlite3")
    } ?? false
}

/// A 32-hex-character call id from a number.
func callID(_ n: Int) -> String {
    let hex = String(n, radix: 16)
    return String(repeating: "0", count: 32 - hex.count) + hex
}

/// A fully populated request record.
func fullRequest(_ n: Int, time: Int64 = 1_746_100_800_000) -> AuditRecord {
    var record = AuditRecord(kind: .request, callID: callID(n), timeMilliseconds: time)
    record.principal = "alice"
    record.authentication = "password"
    record.client = "10.0.0.7:51234"
    record.tls = true
    record.rpc = "Delete"
    record.action = "destructive"
    record.database = "default"
    record.collection = "books"
    record.partitions = ["p2024", "p2025"]
    record.targets = ["index": "vec_idx", "alias": "current"]
    record.filter = "id in [1, 2] and title == \"x\""
    record.rows = 2
    record.requestBytes = 512
    record.decision = "allowed"
    record.rule = "policies/app.yaml:12"
    record.approvalID = "apr-1"
    record.snapshotID = "snap-1"
    return record
}

/// Request records of calls 1...`count`, one second apart (call n at n s), decided under policy record 1.
func decidedRequests(_ count: Int) -> [AuditRecord] {
    (1...count).map { n in
        var record = fullRequest(n, time: Int64(n) * 1000)
        record.policySequence = 1
        return record
    }
}

/// The outcome record of call `n`.
func outcome(_ n: Int, status: Int32 = 0, message: String? = nil, time: Int64 = 1_746_100_800_250) -> AuditRecord {
    var record = AuditRecord(kind: .outcome, callID: callID(n), timeMilliseconds: time)
    record.status = status
    record.message = message
    record.durationMilliseconds = 12.345
    return record
}

/// Submits `records` one by one and waits for all their results.
@discardableResult
func write(_ records: [AuditRecord], to store: some AuditLog, firstToken: UInt64 = 1) -> [AuditResult] {
    let listener = CollectingListener()
    for (offset, record) in records.enumerated() {
        precondition(store.submit(record, token: firstToken + UInt64(offset), listener: listener))
    }
    return listener.wait(for: records.count)
}

/// Polls `condition` every millisecond for up to 10 s; whether it became true.
func waitUntil(_ condition: () -> Bool) -> Bool {
    for _ in 0..<10_000 {
        if condition() { return true }
        usleep(1_000)
    }
    return condition()
}
