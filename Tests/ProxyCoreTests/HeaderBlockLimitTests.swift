import AuditStore
import CLinux
import Glibc
import NGHTTP2Support
import Testing

@testable import ProxyCore

/// Header blocks larger than nghttp2's default send limit (64 KiB), both ways: what the guard accepts from one side
/// it can send to the other, and a block it still can't send ends the call at once with a status, never a hang.
@Suite("Header blocks over 64 KiB through the proxy", .serialized, .timeLimit(.minutes(2)))
struct HeaderBlockLimitTests {
    /// `count` fields of 1,000-byte values (about 1 KB each on the wire and in the header list).
    static func padding(_ tag: String, count: Int) -> [HeaderField] {
        (0..<count).map { HeaderField("x-\(tag)-\($0)", String(repeating: "j", count: 1_000)) }
    }

    /// A MutationResult with status {} and delete_cnt 2, gRPC-framed.
    static let deleted: [UInt8] = TestClient.rawGRPCFrame([0x0A, 0x00, 0x38, 0x02])

    /// A client that takes and sends header blocks of a few MiB (as grpcio can be told to).
    static func client(port: UInt16) throws -> TestClient {
        var settings = HTTP2SessionSettings()
        settings.maxHeaderListBytes = 4 << 20
        settings.maxContinuations = 1_000
        settings.maxSendHeaderBlockBytes = 4 << 20
        return try TestClient(port: port, settings: settings)
    }

    static func delete(_ client: TestClient, metadata: [HeaderField] = []) throws -> StreamResult {
        try client.call(
            TestClient.grpcRequest(path: PolicyEnforcementTests.milvus + "Delete", metadata: metadata),
            body: PolicyEnforcementTests.body(collection: "books"),
            timeoutMilliseconds: 10_000
        )
    }

    /// Whether every held-bytes budget (requests, unproven callers, responses waiting for clients) is back to 0.
    static func budgetsEmpty(_ proxy: RunningProxy) -> Bool {
        waitFor {
            let text = proxy.server.metrics.render()
            return ["requests", "unproven", "responses"].allSatisfy {
                text.contains("milvus_guard_held_bytes{budget=\"\($0)\"} 0\n")
            }
        }
    }

    static func records(_ store: MemoryAuditStore, count: Int) -> [AuditRecord] {
        for _ in 0..<500 where store.records.count < count { usleep(2_000) }
        return store.records
    }

    @Test("Milvus's response headers or trailers of 100 KB reach the client whole", arguments: [true, false])
    func largeResponseMetadata(inTrailers: Bool) throws {
        let big = Self.padding("big", count: 100)
        let upstream = try TestUpstream(
            behavior: .metadata(headers: inTrailers ? [] : big, body: Self.deleted, trailers: inTrailers ? big : [])
        )
        let store = try MemoryAuditStore()
        let proxy = try RunningProxy(
            upstream: .tcp(host: "127.0.0.1", port: upstream.port),
            audit: ProxyAudit(log: store, reads: false)
        )
        let result = try Self.delete(try Self.client(port: proxy.port))
        #expect(result.closedWith == 0)
        #expect(result.grpcStatus == "0")
        #expect(result.body == Self.deleted)
        let seen = (inTrailers ? result.trailers : result.headers) ?? []
        #expect(big.allSatisfy { seen.contains($0) }, "\(seen.count) fields arrived")
        let records = Self.records(store, count: 2)
        #expect(proxy.stop())
        #expect(records.last?.kind == .outcome)
        #expect(records.last?.status == 0)
    }

    @Test(
        "Milvus's response headers or trailers the guard can't send end the call at once with RESOURCE_EXHAUSTED",
        arguments: [true, false]
    )
    func unsendableResponseMetadata(inTrailers: Bool) throws {
        let big = Self.padding("big", count: 50)
        let upstream = try TestUpstream(
            behavior: .metadata(headers: inTrailers ? [] : big, body: Self.deleted, trailers: inTrailers ? big : [])
        )
        let store = try MemoryAuditStore()
        let proxy = try RunningProxy(
            upstream: .tcp(host: "127.0.0.1", port: upstream.port),
            audit: ProxyAudit(log: store, reads: false),
            configure: { $0.sendHeaderBlockOverride = 32_768 }
        )
        let client = try Self.client(port: proxy.port)
        let started = clinux_monotonic_ns()
        let result = try Self.delete(client)
        #expect(clinux_monotonic_ns() - started < 3_000_000_000)
        let what = inTrailers ? "trailers" : "response headers"
        #expect(result.closedWith == 0)
        #expect(result.httpStatus == "200")
        #expect(result.grpcStatus == "8")
        #expect(result.grpcMessage?.contains("Milvus's \(what) could not be sent to the client") == true)
        if inTrailers { #expect(result.body == Self.deleted) }
        // The connection goes on.
        #expect(try Self.delete(client).grpcStatus == "8")

        let records = Self.records(store, count: 4)
        #expect(Self.budgetsEmpty(proxy), "\(proxy.server.metrics.render())")
        #expect(proxy.stop())
        try #require(records.count == 4)
        let outcome = records[1]
        #expect(outcome.kind == .outcome)
        #expect(outcome.message?.contains("Milvus's \(what) could not be sent to the client") == true)
        if inTrailers {
            // Milvus's status is known: the call failed for the client, and the message says what Milvus answered.
            #expect(outcome.status == 8)
            #expect(outcome.message?.hasSuffix("Milvus's grpc-status was 0") == true)
            #expect(outcome.rows == 2)
            let entry = AuditEntry(id: 1, record: records[0], outcomeRecord: outcome, hash: "", prevHash: "")
            #expect(entry.outcome == .failed)
        }
    }

    @Test(
        "Milvus's response headers or trailers over the guard's limit toward it end the call with RESOURCE_EXHAUSTED, not cut short",
        arguments: [true, false]
    )
    func oversizedFromMilvus(inTrailers: Bool) throws {
        // 1,100 fields of 1,000 bytes: over the 1 MiB the guard takes from Milvus, though HPACK sends each repeat as an
        // index of a few bytes.
        let big = (0..<1_100).map { _ in HeaderField("x-repeat", String(repeating: "r", count: 1_000)) }
        let upstream = try TestUpstream(
            behavior: .metadata(headers: inTrailers ? [] : big, body: Self.deleted, trailers: inTrailers ? big : [])
        )
        let store = try MemoryAuditStore()
        let proxy = try RunningProxy(
            upstream: .tcp(host: "127.0.0.1", port: upstream.port),
            audit: ProxyAudit(log: store, reads: false)
        )
        let client = try Self.client(port: proxy.port)
        let result = try Self.delete(client)
        let what = inTrailers ? "trailers" : "response headers"
        #expect(result.grpcStatus == "8")
        #expect(
            result.grpcMessage.map(GRPCStatus.percentDecoded)?.contains(
                "Milvus's \(what) exceed the guard's 1048576-byte header list limit"
            ) == true,
            "\(result)"
        )
        #expect(!(result.trailers ?? result.headers ?? []).contains { $0.name == "x-repeat" })
        if inTrailers { #expect(result.body == Self.deleted) }
        #expect(try Self.delete(client).grpcStatus == "8")  // the connections go on
        let records = Self.records(store, count: 4)
        #expect(Self.budgetsEmpty(proxy), "\(proxy.server.metrics.render())")
        #expect(proxy.stop())
        try #require(records.count == 4)
        #expect(records[1].message?.contains("exceed the guard's 1048576-byte header list limit") == true)
        let entry = AuditEntry(id: 1, record: records[0], outcomeRecord: records[1], hash: "", prevHash: "")
        if inTrailers {
            // Milvus's grpc-status came first and fit: known, and what Milvus said it did is kept.
            #expect(records[1].status == 8)
            #expect(records[1].message?.hasSuffix("Milvus's grpc-status was 0") == true)
            #expect(records[1].rows == 2)
            #expect(entry.outcome == .failed)
        } else {
            // Milvus answered, its status is not known: the call may have happened.
            #expect(records[1].status == nil)
            #expect(records[1].message?.contains("its response had started, without its status") == true)
            #expect(entry.outcome == .unknown)
        }
    }

    @Test(
        "A request with 100 or 300 KB of metadata is forwarded when max_header_list_bytes allows it",
        arguments: [100, 300]
    )
    func largeRequestMetadata(kilobytes: Int) throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(
            upstream: .tcp(host: "127.0.0.1", port: upstream.port),
            configure: { $0.maxHeaderListBytes = 1 << 20 }
        )
        let client = try Self.client(port: proxy.port)
        let big = Self.padding("big", count: kilobytes)
        let result = try Self.delete(client, metadata: big)
        #expect(result.grpcStatus == "0")
        #expect(!client.peerClosed)
        let seen = try #require(upstream.record.value.requests.first)
        #expect(big.allSatisfy { seen.contains($0) })
        #expect(proxy.stop())
    }

    @Test("A request header block the guard can't send to Milvus ends with RESOURCE_EXHAUSTED (not retried), recorded")
    func unsendableRequestMetadata() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let store = try MemoryAuditStore()
        let proxy = try RunningProxy(
            upstream: .tcp(host: "127.0.0.1", port: upstream.port),
            audit: ProxyAudit(log: store, reads: false),
            configure: {
                $0.maxHeaderListBytes = 1 << 20
                $0.sendHeaderBlockOverride = 32_768
            }
        )
        let client = try Self.client(port: proxy.port)
        let result = try Self.delete(client, metadata: Self.padding("big", count: 50))
        #expect(result.grpcStatus == "8")
        #expect(result.grpcMessage?.contains("too large to send to Milvus") == true)
        // A small call on the same connection and the same upstream connection goes through.
        #expect(try Self.delete(client).grpcStatus == "0")
        let records = Self.records(store, count: 4)
        #expect(Self.budgetsEmpty(proxy), "\(proxy.server.metrics.render())")
        #expect(proxy.stop())
        #expect(upstream.record.value.requests.count == 1)
        try #require(records.count == 4)
        #expect(records[1].status == 8)
        #expect(records[1].message?.contains("too large to send to Milvus") == true)
        let entry = AuditEntry(id: 1, record: records[0], outcomeRecord: records[1], hash: "", prevHash: "")
        #expect(entry.outcome == .failed)
    }

    @Test("The CONTINUATION limit for clients follows max_header_list_bytes, and never goes below nghttp2's 8")
    func continuations() {
        #expect(ProxyWorker.maxContinuations(forHeaderListBytes: 1_024) == 8)
        #expect(ProxyWorker.maxContinuations(forHeaderListBytes: 65_536) == 8)
        #expect(ProxyWorker.maxContinuations(forHeaderListBytes: 1 << 20) == 65)
        #expect(ProxyWorker.maxContinuations(forHeaderListBytes: 16 << 20) == 1_025)
    }
}
