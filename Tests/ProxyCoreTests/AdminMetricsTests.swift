import MilvusCatalog
import Testing

@testable import ProxyCore

@Suite("Admin: ProxyMetrics")
struct AdminMetricsTests {
    static func rpc(_ name: String) throws -> RPCDescriptor {
        try #require(MilvusRPCs.descriptor(named: name))
    }

    static let emptyText = """
        # HELP milvus_guard_audit_wait_seconds Time mutations waited for their request record to be durable.
        # TYPE milvus_guard_audit_wait_seconds histogram
        # HELP milvus_guard_call_duration_seconds Time from a call's request headers to its end, by RPC.
        # TYPE milvus_guard_call_duration_seconds histogram
        # HELP milvus_guard_calls_total Calls by RPC, the guard's decision and the gRPC status returned.
        # TYPE milvus_guard_calls_total counter
        # HELP milvus_guard_connections_refused_total Client connections closed at accept, by the limit.
        # TYPE milvus_guard_connections_refused_total counter
        # HELP milvus_guard_milvus_failures_total Recorded calls (mutations; reads with audit.reads) Milvus answered with gRPC OK and a failed status.
        # TYPE milvus_guard_milvus_failures_total counter
        # HELP milvus_guard_open_connections Client connections open now.
        # TYPE milvus_guard_open_connections gauge
        milvus_guard_open_connections 0
        # HELP milvus_guard_upstream_errors_total Upstream failures by kind.
        # TYPE milvus_guard_upstream_errors_total counter

        """

    @Test("An empty registry renders every family's HELP and TYPE, the gauge, and no labelled series")
    func empty() {
        #expect(ProxyMetrics(loopCount: 2).render() == Self.emptyText)
    }

    @Test("A small case renders exactly: cumulative buckets, exact _sum in seconds, _count, non-zero series only")
    func smallCaseExact() throws {
        let metrics = ProxyMetrics(loopCount: 1)
        let loop = metrics.forLoop(0)
        let search = try Self.rpc("Search")
        // 1 ms sits in the 0.001 bucket (le is inclusive); 30 ms in 0.05; 3 s in 5.
        loop.recordCall(rpc: search, decision: .allowed, status: .code(.ok), durationNanoseconds: 1_000_000)
        loop.recordCall(rpc: search, decision: .allowed, status: .code(.ok), durationNanoseconds: 30_000_000)
        loop.recordCall(
            rpc: search,
            decision: .allowed,
            status: .code(.unavailable),
            durationNanoseconds: 3_000_000_000
        )
        loop.recordUpstreamError(.connect)
        loop.recordConnectionRefused(.refusalsPerMinute)
        loop.recordMilvusFailure(rpc: try Self.rpc("Delete"))
        loop.recordMilvusFailure(rpc: try Self.rpc("Delete"))
        loop.connectionOpened()
        let expected = """
            # HELP milvus_guard_audit_wait_seconds Time mutations waited for their request record to be durable.
            # TYPE milvus_guard_audit_wait_seconds histogram
            # HELP milvus_guard_call_duration_seconds Time from a call's request headers to its end, by RPC.
            # TYPE milvus_guard_call_duration_seconds histogram
            milvus_guard_call_duration_seconds_bucket{rpc="Search",le="0.001"} 1
            milvus_guard_call_duration_seconds_bucket{rpc="Search",le="0.005"} 1
            milvus_guard_call_duration_seconds_bucket{rpc="Search",le="0.01"} 1
            milvus_guard_call_duration_seconds_bucket{rpc="Search",le="0.025"} 1
            milvus_guard_call_duration_seconds_bucket{rpc="Search",le="0.05"} 2
            milvus_guard_call_duration_seconds_bucket{rpc="Search",le="0.1"} 2
            milvus_guard_call_duration_seconds_bucket{rpc="Search",le="0.25"} 2
            milvus_guard_call_duration_seconds_bucket{rpc="Search",le="0.5"} 2
            milvus_guard_call_duration_seconds_bucket{rpc="Search",le="1"} 2
            milvus_guard_call_duration_seconds_bucket{rpc="Search",le="2.5"} 2
            milvus_guard_call_duration_seconds_bucket{rpc="Search",le="5"} 3
            milvus_guard_call_duration_seconds_bucket{rpc="Search",le="10"} 3
            milvus_guard_call_duration_seconds_bucket{rpc="Search",le="+Inf"} 3
            milvus_guard_call_duration_seconds_sum{rpc="Search"} 3.031
            milvus_guard_call_duration_seconds_count{rpc="Search"} 3
            # HELP milvus_guard_calls_total Calls by RPC, the guard's decision and the gRPC status returned.
            # TYPE milvus_guard_calls_total counter
            milvus_guard_calls_total{rpc="Search",decision="allowed",status="0"} 2
            milvus_guard_calls_total{rpc="Search",decision="allowed",status="14"} 1
            # HELP milvus_guard_connections_refused_total Client connections closed at accept, by the limit.
            # TYPE milvus_guard_connections_refused_total counter
            milvus_guard_connections_refused_total{limit="refusals_per_minute"} 1
            # HELP milvus_guard_milvus_failures_total Recorded calls (mutations; reads with audit.reads) Milvus answered with gRPC OK and a failed status.
            # TYPE milvus_guard_milvus_failures_total counter
            milvus_guard_milvus_failures_total{rpc="Delete"} 2
            # HELP milvus_guard_open_connections Client connections open now.
            # TYPE milvus_guard_open_connections gauge
            milvus_guard_open_connections 1
            # HELP milvus_guard_upstream_errors_total Upstream failures by kind.
            # TYPE milvus_guard_upstream_errors_total counter
            milvus_guard_upstream_errors_total{kind="connect"} 1

            """
        #expect(metrics.render() == expected)
    }

    @Test("Loops record separately and are summed; series are sorted by RPC, decision and status")
    func severalLoops() throws {
        let metrics = ProxyMetrics(loopCount: 3)
        let drop = try Self.rpc("DropCollection")
        let insert = try Self.rpc("Insert")
        metrics.forLoop(0).recordCall(rpc: insert, decision: .allowed, status: .code(.ok), durationNanoseconds: 500)
        metrics.forLoop(1).recordCall(rpc: insert, decision: .allowed, status: .code(.ok), durationNanoseconds: 500)
        metrics.forLoop(2).recordCall(
            rpc: drop,
            decision: .denied,
            status: .code(.permissionDenied),
            durationNanoseconds: 200_000
        )
        metrics.forLoop(2).recordCall(
            rpc: drop,
            decision: .approvalRequired,
            status: .code(.permissionDenied),
            durationNanoseconds: 100
        )
        // No catalog RPC, an out-of-range index: both count under rpc="unknown".
        metrics.forLoop(1).recordCall(
            rpcIndex: nil,
            decision: .failed,
            status: .reset,
            durationNanoseconds: 12_000_000_000
        )
        metrics.forLoop(1).recordCall(rpcIndex: 10_000, decision: .allowed, status: .missing, durationNanoseconds: 1)
        metrics.forLoop(0).recordUpstreamError(.reset)
        metrics.forLoop(2).recordUpstreamError(.connectTimeout)
        metrics.forLoop(2).recordUpstreamError(.connectTimeout)
        metrics.forLoop(0).connectionOpened()
        metrics.forLoop(0).connectionOpened()
        metrics.forLoop(0).connectionClosed()
        metrics.forLoop(1).connectionOpened()
        metrics.forLoop(0).recordConnectionRefused(.connectionsPerClient)
        metrics.forLoop(2).recordConnectionRefused(.connectionsPerClient)
        metrics.forLoop(1).recordConnectionRefused(.clientConnections)

        let lines = metrics.render().split(separator: "\n").map(String.init)
        let calls = lines.filter { $0.hasPrefix("milvus_guard_calls_total{") }
        #expect(
            calls == [
                #"milvus_guard_calls_total{rpc="DropCollection",decision="approval_required",status="7"} 1"#,
                #"milvus_guard_calls_total{rpc="DropCollection",decision="denied",status="7"} 1"#,
                #"milvus_guard_calls_total{rpc="Insert",decision="allowed",status="0"} 2"#,
                #"milvus_guard_calls_total{rpc="unknown",decision="allowed",status="none"} 1"#,
                #"milvus_guard_calls_total{rpc="unknown",decision="failed",status="reset"} 1"#,
            ]
        )
        #expect(lines.contains(#"milvus_guard_call_duration_seconds_sum{rpc="Insert"} 0.000001"#))
        #expect(lines.contains(#"milvus_guard_call_duration_seconds_sum{rpc="DropCollection"} 0.0002001"#))
        #expect(lines.contains(#"milvus_guard_call_duration_seconds_sum{rpc="unknown"} 12.000000001"#))
        #expect(lines.contains(#"milvus_guard_call_duration_seconds_bucket{rpc="unknown",le="10"} 1"#))
        #expect(lines.contains(#"milvus_guard_call_duration_seconds_bucket{rpc="unknown",le="+Inf"} 2"#))
        #expect(lines.contains("milvus_guard_open_connections 2"))
        #expect(
            lines.filter { $0.hasPrefix("milvus_guard_connections_refused_total{") } == [
                #"milvus_guard_connections_refused_total{limit="client_connections"} 1"#,
                #"milvus_guard_connections_refused_total{limit="connections_per_client"} 2"#,
            ]
        )
        #expect(
            lines.filter { $0.hasPrefix("milvus_guard_upstream_errors_total{") } == [
                #"milvus_guard_upstream_errors_total{kind="connect_timeout"} 2"#,
                #"milvus_guard_upstream_errors_total{kind="reset"} 1"#,
            ]
        )
        // Every sample line is `name{labels} value` or `name value` with an unsigned integer or decimal value.
        for line in lines where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            #expect(parts.count == 2, "\(line)")
            #expect(parts.last.map { Double($0) != nil } == true, "\(line)")
        }
    }

    @Test("The audit wait histogram sums the loops, buckets inclusively, and renders exact seconds")
    func auditWait() {
        let metrics = ProxyMetrics(loopCount: 2)
        // 100 us sits in 0.0001 (le is inclusive), 300 us in 0.0005, 2 s in +Inf.
        metrics.forLoop(0).recordAuditWait(nanoseconds: 100_000)
        metrics.forLoop(1).recordAuditWait(nanoseconds: 300_000)
        metrics.forLoop(1).recordAuditWait(nanoseconds: 2_000_000_000)
        let lines = metrics.render().split(separator: "\n").map(String.init)
        #expect(
            lines.filter { $0.hasPrefix("milvus_guard_audit_wait_seconds") } == [
                #"milvus_guard_audit_wait_seconds_bucket{le="0.0001"} 1"#,
                #"milvus_guard_audit_wait_seconds_bucket{le="0.00025"} 1"#,
                #"milvus_guard_audit_wait_seconds_bucket{le="0.0005"} 2"#,
                #"milvus_guard_audit_wait_seconds_bucket{le="0.001"} 2"#,
                #"milvus_guard_audit_wait_seconds_bucket{le="0.0025"} 2"#,
                #"milvus_guard_audit_wait_seconds_bucket{le="0.005"} 2"#,
                #"milvus_guard_audit_wait_seconds_bucket{le="0.01"} 2"#,
                #"milvus_guard_audit_wait_seconds_bucket{le="0.025"} 2"#,
                #"milvus_guard_audit_wait_seconds_bucket{le="0.05"} 2"#,
                #"milvus_guard_audit_wait_seconds_bucket{le="0.1"} 2"#,
                #"milvus_guard_audit_wait_seconds_bucket{le="0.25"} 2"#,
                #"milvus_guard_audit_wait_seconds_bucket{le="1"} 2"#,
                #"milvus_guard_audit_wait_seconds_bucket{le="+Inf"} 3"#,
                "milvus_guard_audit_wait_seconds_sum 2.0004",
                "milvus_guard_audit_wait_seconds_count 3",
            ]
        )
        #expect(MetricsTable.auditWaitLabels.count == MetricsTable.auditWaitBounds.count + 1)
    }

    @Test("forLoop wraps out-of-range indices instead of trapping")
    func loopIndexWraps() {
        let metrics = ProxyMetrics(loopCount: 2)
        #expect(metrics.forLoop(2) === metrics.forLoop(0))
        #expect(metrics.forLoop(-1) === metrics.forLoop(1))
        #expect(ProxyMetrics(loopCount: 0).loops.count == 1)
    }

    @Test("Label values escape backslash, double quote and line feed; seconds are exact decimals")
    func escapingAndSeconds() {
        #expect(ProxyMetrics.escapeLabelValue(#"a\b"c"# + "\nd") == #"a\\b\"c\nd"#)
        #expect(ProxyMetrics.escapeLabelValue("Search") == "Search")
        #expect(ProxyMetrics.seconds(0) == "0")
        #expect(ProxyMetrics.seconds(1) == "0.000000001")
        #expect(ProxyMetrics.seconds(1_500_000) == "0.0015")
        #expect(ProxyMetrics.seconds(2_000_000_000) == "2")
        #expect(ProxyMetrics.seconds(62_250_000_000) == "62.25")
    }

    @Test("MilvusRPCs.index(of:) is each descriptor's position in the catalog")
    func denseIndex() {
        for (position, descriptor) in MilvusRPCs.all.enumerated() {
            #expect(MilvusRPCs.index(of: descriptor) == position)
        }
        #expect(MilvusRPCs.descriptor(named: "Search").flatMap(MilvusRPCs.index(of:)) != nil)
    }
}
