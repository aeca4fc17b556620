// The audit writer alone, as the proxy drives it: `inFlight` calls at a time, each a request record that a
// listener waits for (write-ahead) followed by an outcome record nobody waits for; when a request is durable,
// its outcome and the next call's request are submitted. Prints records/s, CPU per record of the writer thread
// (`guard-audit`) and of the whole process (writer and this driver), records per commit and mallocs per record
// (whole process), for a file store with `sync: full` and `normal`.
// A benchmark, not a test: nothing is asserted.
import AuditStore
import CMallocCounter
import Foundation
import Glibc
import Synchronization

let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let calls = arguments.first ?? 20_000
let inFlight = arguments.dropFirst().first ?? 128

final class Driver: AuditListener, @unchecked Sendable {
    // @unchecked: `store` is set once before the first submit and only read afterwards.
    var store: (any AuditLog)?
    let remaining: Atomic<Int>
    let finished: Atomic<Int>
    let done = DispatchSemaphore(value: 0)
    let total: Int

    init(calls: Int) {
        self.total = calls
        self.remaining = Atomic(calls)
        self.finished = Atomic(0)
    }

    static func record(_ kind: AuditRecord.Kind, _ id: Int) -> AuditRecord {
        // Call ids as the proxy makes them: a fixed per-loop prefix and a counter, 32 hex digits.
        var record = AuditRecord(kind: kind, callID: Self.callID(id), timeMilliseconds: 1_764_000_000_000)
        if kind == .request {
            record.principal = "app"
            record.authentication = "password"
            record.client = "127.0.0.1:50123"
            record.tls = false
            record.rpc = "Insert"
            record.action = "write"
            record.database = "default"
            record.collection = "books"
            record.rows = 1
            record.requestBytes = 4_096
            record.decision = "allowed"
            record.rule = "policies/realistic.yaml:29"
        } else {
            record.status = 0
            record.durationMilliseconds = 1.25
        }
        return record
    }

    static func callID(_ id: Int) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var bytes = Array("5f0c2a9e81d34b67".utf8)
        for shift in stride(from: 60, through: 0, by: -4) { bytes.append(digits[(id >> shift) & 0xF]) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Starts the next call, if any is left.
    func startCall() {
        let left = self.remaining.subtract(1, ordering: .relaxed).newValue
        guard left >= 0, let store = self.store else { return }
        let id = self.total - left
        _ = store.submit(Self.record(.request, id), token: UInt64(id), listener: self)
    }

    func auditCompleted(_ results: [AuditResult]) {
        for result in results {
            _ = self.store?.submit(Self.record(.outcome, Int(result.token)), token: 0, listener: nil)
            if self.finished.add(1, ordering: .relaxed).newValue == self.total { self.done.signal() }
            self.startCall()
        }
    }
}

func cpuMicroseconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
}

/// CPU time of this process's thread named `name`, in microseconds (0 if there is none).
func threadCPUMicroseconds(named name: String) -> Double {
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
    for task in tasks {
        let comm = (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)) ?? ""
        guard comm.trimmingCharacters(in: .whitespacesAndNewlines) == name,
            let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { continue }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3 of stat(5), utime 14 and stime 15.
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { continue }
        return (user + system) / ticks * 1e6
    }
    return 0
}

print("calls: \(calls), in flight: \(inFlight), 2 records per call")
print("store               records/s  writer us/record  process us/record  records/commit  mallocs/record")
for sync in [AuditStoreOptions.Synchronous.full, .normal] {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("audit-bench-\(getpid())-\(sync)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let store = try SQLiteAuditStore(
        path: folder.appendingPathComponent("audit.db").path,
        options: AuditStoreOptions(synchronous: sync)
    )
    let driver = Driver(calls: calls)
    driver.store = store
    let start = Date()
    let cpu = cpuMicroseconds()
    mc_reset()
    for _ in 0..<inFlight { driver.startCall() }
    driver.done.wait()
    let writerCPU = threadCPUMicroseconds(named: "guard-audit")
    store.close()  // the last outcomes are written here
    let mallocs = mc_allocations()
    let seconds = Date().timeIntervalSince(start)
    let records = store.committed.records
    let line = String(
        format: "%-18@ %10.0f %17.2f %18.2f %15.1f %15.1f",
        "sqlite sync=\(sync)" as NSString,
        Double(records) / seconds,
        writerCPU / Double(records),
        (cpuMicroseconds() - cpu) / Double(records),
        Double(records) / Double(max(store.committed.batches, 1)),
        Double(mallocs) / Double(records)
    )
    print(line)
}
