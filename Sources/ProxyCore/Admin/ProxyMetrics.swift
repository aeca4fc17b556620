public import MilvusCatalog
import Synchronization

/// How the guard decided a call, the `decision` label of `milvus_guard_calls_total`.
public enum CallDecision: Int, CaseIterable, Sendable {
    /// The policy allowed it and it was forwarded.
    case allowed
    /// The policy denied it (answered PERMISSION_DENIED by the guard).
    case denied
    /// The guard could not decide and failed closed (undecodable request, unknown RPC, audit or policy
    /// failure, over a budget): answered by the guard, never forwarded.
    case failed
    /// The policy asks for an approval first (answered PERMISSION_DENIED with the approval message).
    case approvalRequired

    /// The label value.
    public var label: String {
        switch self {
        case .allowed: "allowed"
        case .denied: "denied"
        case .failed: "failed"
        case .approvalRequired: "approval_required"
        }
    }
}

/// How a call ended, the `status` label of `milvus_guard_calls_total`: the gRPC status the client got
/// (`0`…`16`), `reset` when the stream or connection was reset before a status, or `none` when it ended without
/// one (an upstream response missing `grpc-status`).
public enum CallStatus: Hashable, Sendable {
    case code(GRPCStatusCode)
    case reset
    case missing

    /// The number of distinct statuses: 17 codes, reset, missing.
    static let count = 19

    /// A dense index `0..<count`.
    var slot: Int {
        switch self {
        case .code(let code): code.rawValue
        case .reset: 17
        case .missing: 18
        }
    }

    /// The label value of each slot.
    static let labels: [String] = (0...16).map(String.init) + ["reset", "none"]
}

/// Why a client connection was closed at accept, named after the limit (`limits.…`) that refused it.
public enum ConnectionRefusalKind: Int, CaseIterable, Sendable {
    /// `limits.client_connections` connections were open.
    case clientConnections
    /// Its address had `limits.connections_per_client` connections open.
    case connectionsPerClient
    /// Its address was shut out by `limits.refusals_per_minute`.
    case refusalsPerMinute
    /// Its address had opened `limits.new_connections_per_minute` connections in the minute.
    case newConnectionsPerMinute

    /// The label value: the limit's key in guard.yaml.
    public var label: String {
        switch self {
        case .clientConnections: "client_connections"
        case .connectionsPerClient: "connections_per_client"
        case .refusalsPerMinute: "refusals_per_minute"
        case .newConnectionsPerMinute: "new_connections_per_minute"
        }
    }
}

/// What went wrong with the upstream, the `kind` label of `milvus_guard_upstream_errors_total`.
public enum UpstreamErrorKind: Int, CaseIterable, Sendable {
    /// A connect attempt failed (refused, unreachable, name not resolved).
    case connect
    /// A connect (TCP, TLS or HTTP/2 preface) did not finish within the connect timeout.
    case connectTimeout
    /// The TLS handshake failed (certificate, protocol).
    case tls
    /// An established connection broke (reset, EOF) or the upstream reset a stream.
    case reset
    /// The upstream broke HTTP/2 or sent GOAWAY with an error.
    case protocolError

    /// The label value.
    public var label: String {
        switch self {
        case .connect: "connect"
        case .connectTimeout: "connect_timeout"
        case .tls: "tls"
        case .reset: "reset"
        case .protocolError: "protocol"
        }
    }
}

/// The counters one event loop updates: flat arrays indexed by dense slots, so that recording is a few
/// additions and never allocates.
struct MetricsTable: Sendable {
    /// One slot per catalog RPC plus one, the last, for calls to paths the catalog does not know.
    static let rpcSlots = MilvusRPCs.all.count + 1
    static let decisions = CallDecision.allCases.count
    /// Upper bounds of the duration histogram, in nanoseconds (the `+Inf` bucket is implicit).
    static let bucketBounds: [UInt64] = [
        1_000_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000, 100_000_000, 250_000_000, 500_000_000,
        1_000_000_000, 2_500_000_000, 5_000_000_000, 10_000_000_000,
    ]
    /// The `le` label of each bucket, `+Inf` last.
    static let bucketLabels = [
        "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
    ]
    static let buckets = Self.bucketBounds.count + 1
    /// Upper bounds of the audit wait histogram, in nanoseconds: finer than calls', since a commit takes tens of
    /// microseconds to a few milliseconds.
    static let auditWaitBounds: [UInt64] = [
        100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000,
        100_000_000, 250_000_000, 1_000_000_000,
    ]
    static let auditWaitLabels = [
        "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "1",
        "+Inf",
    ]

    /// calls[(rpc * decisions + decision) * CallStatus.count + status]
    var calls: [UInt64]
    /// Non-cumulative bucket counts: durationBuckets[rpc * buckets + bucket].
    var durationBuckets: [UInt64]
    /// Total duration per RPC, in nanoseconds (exact; converted to seconds only when rendered).
    var durationSum: [UInt64]
    var durationCount: [UInt64]
    var upstreamErrors: [UInt64]
    /// Recorded calls Milvus answered with gRPC OK and a failed status, per RPC slot.
    var milvusFailures: [UInt64]
    var connectionsRefused: [UInt64]
    var openConnections: Int64
    /// Non-cumulative bucket counts of the write-ahead wait, by ``auditWaitBounds`` (`+Inf` last).
    var auditWaitBuckets: [UInt64]
    var auditWaitSum: UInt64
    var auditWaitCount: UInt64

    init() {
        self.calls = Array(repeating: 0, count: Self.rpcSlots * Self.decisions * CallStatus.count)
        self.durationBuckets = Array(repeating: 0, count: Self.rpcSlots * Self.buckets)
        self.durationSum = Array(repeating: 0, count: Self.rpcSlots)
        self.durationCount = Array(repeating: 0, count: Self.rpcSlots)
        self.upstreamErrors = Array(repeating: 0, count: UpstreamErrorKind.allCases.count)
        self.milvusFailures = Array(repeating: 0, count: Self.rpcSlots)
        self.connectionsRefused = Array(repeating: 0, count: ConnectionRefusalKind.allCases.count)
        self.openConnections = 0
        self.auditWaitBuckets = Array(repeating: 0, count: Self.auditWaitBounds.count + 1)
        self.auditWaitSum = 0
        self.auditWaitCount = 0
    }

    mutating func recordCall(rpcSlot: Int, decision: CallDecision, status: CallStatus, nanoseconds: UInt64) {
        self.calls[(rpcSlot * Self.decisions + decision.rawValue) * CallStatus.count + status.slot] &+= 1
        self.durationBuckets[rpcSlot * Self.buckets + Self.bucket(of: nanoseconds, in: Self.bucketBounds)] &+= 1
        self.durationSum[rpcSlot] &+= nanoseconds
        self.durationCount[rpcSlot] &+= 1
    }

    mutating func recordAuditWait(nanoseconds: UInt64) {
        self.auditWaitBuckets[Self.bucket(of: nanoseconds, in: Self.auditWaitBounds)] &+= 1
        self.auditWaitSum &+= nanoseconds
        self.auditWaitCount &+= 1
    }

    /// The histogram bucket of `nanoseconds`: the first bound it does not exceed (`le` is inclusive), or
    /// `bounds.count` for `+Inf`.
    static func bucket(of nanoseconds: UInt64, in bounds: [UInt64]) -> Int {
        var bucket = 0
        while bucket < bounds.count && nanoseconds > bounds[bucket] { bucket += 1 }
        return bucket
    }

    /// Adds `other`'s counts to these.
    mutating func add(_ other: MetricsTable) {
        for index in self.calls.indices { self.calls[index] &+= other.calls[index] }
        for index in self.durationBuckets.indices { self.durationBuckets[index] &+= other.durationBuckets[index] }
        for index in self.durationSum.indices {
            self.durationSum[index] &+= other.durationSum[index]
            self.durationCount[index] &+= other.durationCount[index]
        }
        for index in self.upstreamErrors.indices { self.upstreamErrors[index] &+= other.upstreamErrors[index] }
        for index in self.milvusFailures.indices { self.milvusFailures[index] &+= other.milvusFailures[index] }
        for index in self.connectionsRefused.indices {
            self.connectionsRefused[index] &+= other.connectionsRefused[index]
        }
        self.openConnections &+= other.openConnections
        for index in self.auditWaitBuckets.indices { self.auditWaitBuckets[index] &+= other.auditWaitBuckets[index] }
        self.auditWaitSum &+= other.auditWaitSum
        self.auditWaitCount &+= other.auditWaitCount
    }
}

/// The counters of one event loop. Only that loop records into it, so its mutex is never contended on the
/// hot path (an uncontended lock is one atomic exchange); the admin thread takes it briefly to copy the table
/// when `/metrics` is scraped. Recording allocates nothing: the table's arrays are uniquely owned and updated
/// in place.
public final class LoopMetrics: Sendable {
    private let table = Mutex(MetricsTable())

    init() {}

    /// Records one finished call. Call it from `ProxiedCall` on the loop, once per call, when the call's end is
    /// known: the status was sent to the client (forwarded trailers, or the guard's own trailers-only refusal),
    /// or the stream/connection was reset. `durationNanoseconds` runs from the request HEADERS to that end
    /// (`EventLoop.now()` differences).
    /// - Parameter rpcIndex: ``MilvusRPCs/index(of:)`` of the call's RPC; nil (or out of range) for a path the
    ///   catalog does not know, counted under `rpc="unknown"`.
    public func recordCall(rpcIndex: Int?, decision: CallDecision, status: CallStatus, durationNanoseconds: UInt64) {
        let slot: Int
        if let rpcIndex, rpcIndex >= 0, rpcIndex < MetricsTable.rpcSlots - 1 {
            slot = rpcIndex
        } else {
            slot = MetricsTable.rpcSlots - 1
        }
        self.table.withLock {
            $0.recordCall(rpcSlot: slot, decision: decision, status: status, nanoseconds: durationNanoseconds)
        }
    }

    /// ``recordCall(rpcIndex:decision:status:durationNanoseconds:)`` for a descriptor (one pointer-keyed lookup).
    public func recordCall(rpc: RPCDescriptor?, decision: CallDecision, status: CallStatus, durationNanoseconds: UInt64)
    {
        self.recordCall(
            rpcIndex: rpc.flatMap(MilvusRPCs.index(of:)),
            decision: decision,
            status: status,
            durationNanoseconds: durationNanoseconds
        )
    }

    /// Records how long a mutation waited for its request record to be durable: from queueing the record to the
    /// writer's result reaching the loop (successful or not). Call it from the loop, once per awaited record.
    public func recordAuditWait(nanoseconds: UInt64) {
        self.table.withLock { $0.recordAuditWait(nanoseconds: nanoseconds) }
    }

    /// Counts one upstream failure. Call it from `UpstreamPool`/`UpstreamConnection` where a connect fails or
    /// times out, TLS fails, an established upstream connection breaks or resets a stream, or the upstream
    /// violates HTTP/2.
    public func recordUpstreamError(_ kind: UpstreamErrorKind) {
        self.table.withLock { $0.upstreamErrors[kind.rawValue] &+= 1 }
    }

    /// A recorded call (a mutation, or a read with `audit.reads`) that Milvus answered with gRPC OK and a failed
    /// `common.Status`: call from the loop when its outcome record is made. Such a call is counted in
    /// `milvus_guard_calls_total` with status 0, the gRPC status it had.
    public func recordMilvusFailure(rpc: RPCDescriptor) {
        let index = MilvusRPCs.index(of: rpc) ?? MetricsTable.rpcSlots - 1
        self.table.withLock { $0.milvusFailures[min(index, MetricsTable.rpcSlots - 1)] &+= 1 }
    }

    /// A client connection was closed at accept by a limit: call from `ProxyWorker.handleEvents`.
    public func recordConnectionRefused(_ kind: ConnectionRefusalKind) {
        self.table.withLock { $0.connectionsRefused[kind.rawValue] &+= 1 }
    }

    /// A client connection was accepted: call from `ProxyWorker.handleEvents` once the `ClientConnection` exists.
    public func connectionOpened() {
        self.table.withLock { $0.openConnections &+= 1 }
    }

    /// A client connection was closed: call from `ProxyWorker.clientClosed`, once per opened connection.
    public func connectionClosed() {
        self.table.withLock { $0.openConnections &-= 1 }
    }

    func snapshot() -> MetricsTable { self.table.withLock { $0 } }
}

/// The proxy's metrics registry: one ``LoopMetrics`` per event loop (no lock is shared between loops), summed
/// and rendered in the Prometheus text exposition format 0.0.4 when `/metrics` is scraped.
///
/// - `milvus_guard_calls_total{rpc,decision,status}`: only series that are non-zero, sorted by RPC name,
///   decision and status;
/// - `milvus_guard_call_duration_seconds{rpc}`: a histogram per RPC, for the RPCs that had calls. Per RPC
///   because a Search and a Flush differ by orders of magnitude and one global histogram would say nothing
///   about either; not per decision or status, to keep the series count at 15 per RPC in use;
/// - `milvus_guard_audit_wait_seconds`: how long mutations waited for their request record to be durable (the
///   write-ahead cost of auditing), once there was one;
/// - `milvus_guard_connections_refused_total{limit}`: client connections closed at accept, non-zero limits;
/// - `milvus_guard_upstream_errors_total{kind}`: non-zero kinds;
/// - `milvus_guard_milvus_failures_total{rpc}`: recorded calls Milvus answered with gRPC OK and a failed status
///   (counted with status 0 in `milvus_guard_calls_total`), non-zero RPCs;
/// - `milvus_guard_open_connections`: the client connections open now;
/// - `milvus_guard_held_bytes{budget}`: bytes in the process-wide budgets now (while the proxy runs): `requests`
///   held for inspection, `unproven` (the part of them of callers not proven yet), `responses` waiting for slow
///   clients whose upstream window was given back.
public final class ProxyMetrics: Sendable {
    /// The loops' tables, by loop index.
    public let loops: [LoopMetrics]
    /// The running proxy's budgets, read when rendering (``ProxyServer`` sets them while it runs).
    private let budgets = Mutex<(@Sendable () -> [(budget: String, bytes: Int)])?>(nil)

    /// Where `milvus_guard_held_bytes` reads from; nil when nothing runs.
    func readBudgets(from read: (@Sendable () -> [(budget: String, bytes: Int)])?) {
        self.budgets.withLock { $0 = read }
    }

    /// A registry for `loopCount` event loops (at least one).
    public init(loopCount: Int) {
        self.loops = (0..<max(1, loopCount)).map { _ in LoopMetrics() }
    }

    /// The table event loop `index` records into (`ProxyServer` hands loop i `forLoop(i)`). An out-of-range index
    /// wraps around, so that a mismatch in loop counts shares a table rather than crashing.
    public func forLoop(_ index: Int) -> LoopMetrics {
        self.loops[((index % self.loops.count) + self.loops.count) % self.loops.count]
    }

    /// All loops' counts added up.
    func snapshot() -> MetricsTable {
        var total = MetricsTable()
        for loop in self.loops { total.add(loop.snapshot()) }
        return total
    }

    /// The RPC label of each slot, and the slots in label order.
    private static let rpcNames: [String] = MilvusRPCs.all.map(\.name) + ["unknown"]
    private static let rpcOrder: [Int] = ProxyMetrics.rpcNames.indices.sorted {
        ProxyMetrics.rpcNames[$0] < ProxyMetrics.rpcNames[$1]
    }
    private static let decisionOrder: [CallDecision] = CallDecision.allCases.sorted { $0.label < $1.label }

    /// The Prometheus text exposition (format 0.0.4) of the summed counters, families sorted by name, each with
    /// its HELP and TYPE lines; ends with a newline.
    public func render() -> String {
        let table = self.snapshot()
        var out = ""
        out += "# HELP milvus_guard_audit_wait_seconds Time mutations waited for their request record to be durable.\n"
        out += "# TYPE milvus_guard_audit_wait_seconds histogram\n"
        if table.auditWaitCount > 0 {
            Self.appendHistogram(
                "milvus_guard_audit_wait_seconds",
                label: nil,
                counts: table.auditWaitBuckets[...],
                bucketLabels: MetricsTable.auditWaitLabels,
                sum: table.auditWaitSum,
                count: table.auditWaitCount,
                to: &out
            )
        }
        out += "# HELP milvus_guard_call_duration_seconds Time from a call's request headers to its end, by RPC.\n"
        out += "# TYPE milvus_guard_call_duration_seconds histogram\n"
        for slot in Self.rpcOrder where table.durationCount[slot] > 0 {
            let first = slot * MetricsTable.buckets
            Self.appendHistogram(
                "milvus_guard_call_duration_seconds",
                label: "rpc=\"\(Self.escapeLabelValue(Self.rpcNames[slot]))\"",
                counts: table.durationBuckets[first..<first + MetricsTable.buckets],
                bucketLabels: MetricsTable.bucketLabels,
                sum: table.durationSum[slot],
                count: table.durationCount[slot],
                to: &out
            )
        }
        out += "# HELP milvus_guard_calls_total Calls by RPC, the guard's decision and the gRPC status returned.\n"
        out += "# TYPE milvus_guard_calls_total counter\n"
        for slot in Self.rpcOrder where table.durationCount[slot] > 0 {
            let rpc = Self.escapeLabelValue(Self.rpcNames[slot])
            for decision in Self.decisionOrder {
                for status in 0..<CallStatus.count {
                    let value = table.calls[
                        (slot * MetricsTable.decisions + decision.rawValue) * CallStatus.count + status
                    ]
                    guard value > 0 else { continue }
                    out += "milvus_guard_calls_total{rpc=\"\(rpc)\",decision=\"\(decision.label)\","
                    out += "status=\"\(CallStatus.labels[status])\"} \(value)\n"
                }
            }
        }
        Self.appendCounter(
            "milvus_guard_connections_refused_total",
            help: "Client connections closed at accept, by the limit.",
            label: "limit",
            ConnectionRefusalKind.allCases.map { ($0.label, table.connectionsRefused[$0.rawValue]) },
            to: &out
        )
        if let read = self.budgets.withLock({ $0 }) {
            out += "# HELP milvus_guard_held_bytes Bytes in the process-wide budgets now, by budget.\n"
            out += "# TYPE milvus_guard_held_bytes gauge\n"
            for (budget, bytes) in read() { out += "milvus_guard_held_bytes{budget=\"\(budget)\"} \(bytes)\n" }
        }
        Self.appendCounter(
            "milvus_guard_milvus_failures_total",
            help:
                "Recorded calls (mutations; reads with audit.reads) Milvus answered with gRPC OK and a failed status.",
            label: "rpc",
            Self.rpcNames.indices.map { (Self.rpcNames[$0], table.milvusFailures[$0]) },
            to: &out
        )
        out += "# HELP milvus_guard_open_connections Client connections open now.\n"
        out += "# TYPE milvus_guard_open_connections gauge\n"
        out += "milvus_guard_open_connections \(table.openConnections)\n"
        Self.appendCounter(
            "milvus_guard_upstream_errors_total",
            help: "Upstream failures by kind.",
            label: "kind",
            UpstreamErrorKind.allCases.map { ($0.label, table.upstreamErrors[$0.rawValue]) },
            to: &out
        )
        return out
    }

    /// A counter family with one label: HELP, TYPE, then a line per non-zero count, sorted by label value.
    private static func appendCounter(
        _ name: String,
        help: String,
        label: String,
        _ series: [(value: String, count: UInt64)],
        to out: inout String
    ) {
        out += "# HELP \(name) \(help)\n"
        out += "# TYPE \(name) counter\n"
        for (value, count) in series.sorted(by: { $0.value < $1.value }) where count > 0 {
            out += "\(name){\(label)=\"\(value)\"} \(count)\n"
        }
    }

    /// One histogram's series: cumulative `_bucket` lines from non-cumulative `counts` (one per `bucketLabels`
    /// entry, `+Inf` last), then `_sum` in seconds and `_count`; `label` (`rpc="Search"`) goes on every line.
    private static func appendHistogram(
        _ name: String,
        label: String?,
        counts: ArraySlice<UInt64>,
        bucketLabels: [String],
        sum: UInt64,
        count: UInt64,
        to out: inout String
    ) {
        let prefix = label.map { "\($0)," } ?? ""
        let braces = label.map { "{\($0)}" } ?? ""
        var cumulative: UInt64 = 0
        for (bucket, value) in zip(bucketLabels, counts) {
            cumulative &+= value
            out += "\(name)_bucket{\(prefix)le=\"\(bucket)\"} \(cumulative)\n"
        }
        out += "\(name)_sum\(braces) \(Self.seconds(sum))\n"
        out += "\(name)_count\(braces) \(count)\n"
    }

    /// Nanoseconds as exact decimal seconds (`1500000` → `0.0015`), so the text is stable across platforms.
    static func seconds(_ nanoseconds: UInt64) -> String {
        let whole = nanoseconds / 1_000_000_000
        let fraction = nanoseconds % 1_000_000_000
        guard fraction > 0 else { return String(whole) }
        var digits = String(fraction)
        digits = String(repeating: "0", count: 9 - digits.count) + digits
        while digits.last == "0" { digits.removeLast() }
        return "\(whole).\(digits)"
    }

    /// A label value escaped for the text format: backslash, double quote and line feed (format 0.0.4).
    static func escapeLabelValue(_ value: String) -> String {
        var out = ""
        for character in value.unicodeScalars {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }
}
