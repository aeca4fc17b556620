import AuditStore
import Glibc
import GuardPolicy
import Logging
import NGHTTP2Support
import OpenSSLSupport
import ProtoWire
import Testing
import ZlibSupport

@testable import ProxyCore

/// Auditing in the proxy: mutations are recorded before they are forwarded and their outcome after;
/// refusals are recorded; a store that can't write stops mutations but not reads.
@Suite("Audit records from the proxy", .serialized, .timeLimit(.minutes(2)))
struct AuditTests {
    struct Setup {
        let upstream: TestUpstream
        let proxy: RunningProxy
        let client: TestClient
        let store: MemoryAuditStore

        func call(_ rpc: String, _ collection: String = "books", auth: HeaderField? = nil) throws -> StreamResult {
            try self.call(on: self.client, rpc, collection, auth: auth)
        }

        /// ``call(_:_:auth:)`` on another connection to the proxy.
        func call(
            on client: TestClient,
            _ rpc: String,
            _ collection: String = "books",
            auth: HeaderField? = nil
        ) throws -> StreamResult {
            try client.call(
                TestClient.grpcRequest(path: PolicyEnforcementTests.milvus + rpc, metadata: auth.map { [$0] } ?? []),
                body: PolicyEnforcementTests.body(collection: collection)
            )
        }

        /// The records, once `count` have been written (the outcome record is written after the answer).
        func records(count: Int) -> [AuditRecord] {
            for _ in 0..<500 where self.store.records.count < count { usleep(2_000) }
            return self.store.records
        }
    }

    /// `upstreamDown`: the proxy's upstream is a closed port instead of the test upstream.
    func setUp(
        reads: Bool = false,
        policy: ActivePolicy? = nil,
        upstreamDown: Bool = false,
        behavior: TestUpstream.Behavior = .echo(delayMilliseconds: 0),
        store: MemoryAuditStore? = nil,
        configure: (inout Limits) -> Void = { _ in }
    ) throws -> Setup {
        let store = try store ?? MemoryAuditStore()
        let upstream = try TestUpstream(behavior: behavior)
        let proxy = try RunningProxy(
            upstream: .tcp(host: "127.0.0.1", port: upstreamDown ? try closedPort() : upstream.port),
            policy: policy,
            audit: ProxyAudit(log: store, reads: reads),
            configure: configure
        )
        return Setup(upstream: upstream, proxy: proxy, client: try TestClient(port: proxy.port), store: store)
    }

    @Test("A mutation gets a request record and an outcome record pointing at it")
    func mutation() throws {
        let setup = try self.setUp()
        let root = PolicyEnforcementTests.token("root:Milvus")
        #expect(try setup.call("DropCollection", auth: root).grpcStatus == "0")
        let records = setup.records(count: 2)
        try #require(records.count == 2)
        let (request, outcome) = (records[0], records[1])
        #expect(request.kind == .request)
        #expect(request.principal == "root")
        #expect(request.authentication == "password")
        #expect(request.rpc == "DropCollection")
        #expect(request.action == "destructive")
        #expect(request.database == "default")
        #expect(request.collection == "books")
        #expect(request.decision == "allowed")
        #expect(request.rule == "test.yaml:6")
        #expect(request.client?.hasPrefix("127.0.0.1:") == true)
        #expect(request.tls == false)
        #expect(request.status == nil)
        #expect(outcome.kind == .outcome)
        #expect(outcome.callID == request.callID)
        #expect(request.callID.count == 32)
        #expect(outcome.status == 0)
        #expect(outcome.durationMilliseconds != nil)
    }

    @Test("Requests and refusals name the policy record in force (policy_seq); outcomes don't; a reload's comes next")
    func policySequence() throws {
        let started = try ActivePolicy.allowingAnonymous()
        let setup = try self.setUp(policy: ActivePolicy(policy: started.policy, recordSequence: 3))
        let root = PolicyEnforcementTests.token("root:Milvus")
        #expect(try setup.call("DropCollection", auth: root).grpcStatus == "0")
        #expect(try setup.call("HasCollection", auth: HeaderField("authorization", "%%")).grpcStatus == "16")
        let first = setup.records(count: 3)
        #expect(first.map(\.kind) == [.request, .outcome, .refusal])
        #expect(first.map(\.policySequence) == [3, nil, 3])

        // A reload reaches the loop through its mailbox: calls after it name the reload's record.
        setup.proxy.server.reload(ActivePolicy(policy: started.policy, recordSequence: 8))
        var records: [AuditRecord] = []
        for _ in 0..<50 {
            #expect(try setup.call("DropCollection", auth: root).grpcStatus == "0")
            records = setup.records(count: records.count + 5)
            if records.last(where: { $0.kind == .request })?.policySequence == 8 { break }
            usleep(10_000)
        }
        #expect(records.last(where: { $0.kind == .request })?.policySequence == 8)
        #expect(records.filter { $0.kind == .outcome }.allSatisfy { $0.policySequence == nil })

        // Under a policy without a record (a server started without a store), calls name none.
        let unnamed = try self.setUp()
        #expect(try unnamed.call("DropCollection", auth: root).grpcStatus == "0")
        #expect(unnamed.records(count: 2).map(\.policySequence) == [nil, nil])
    }

    @Test("The start policy's record is named once written, before a reload; after one it changes nothing")
    func recordedStartPolicy() throws {
        let configuration = ProxyConfiguration(
            listen: .tcp(host: "127.0.0.1", port: 0),
            upstream: UpstreamConfiguration(address: .tcp(host: "127.0.0.1", port: try closedPort())),
            threads: 1
        )
        let policy = try ActivePolicy.allowingAnonymous()
        let server = try ProxyServer(
            configuration: configuration,
            policy: policy,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        #expect(server.currentPolicy.recordSequence == nil)
        server.recordedStartPolicy(sequence: 5)
        #expect(server.currentPolicy.recordSequence == 5)
        server.reload(ActivePolicy(policy: policy.policy, recordSequence: 9))
        server.recordedStartPolicy(sequence: 6)
        #expect(server.currentPolicy.recordSequence == 9)
    }

    @Test("Reads are not recorded unless audit.reads is on; refusals always are")
    func readsAndRefusals() throws {
        let quiet = try self.setUp()
        #expect(try quiet.call("HasCollection").grpcStatus == "0")
        #expect(try quiet.call("HasCollection", auth: HeaderField("authorization", "%%")).grpcStatus == "16")
        let refusal = try #require(quiet.records(count: 1).first)
        #expect(refusal.kind == .refusal)
        #expect(refusal.rpc == "HasCollection")
        #expect(refusal.decision == "failed")
        #expect(refusal.status == 16)
        #expect(refusal.message?.hasPrefix("milvus-guard: the authorization metadata") == true)
        usleep(50_000)
        #expect(quiet.store.records.count == 1)

        let loud = try self.setUp(reads: true)
        #expect(try loud.call("HasCollection").grpcStatus == "0")
        let records = loud.records(count: 2)
        #expect(records.map(\.kind) == [.request, .outcome])
        #expect(records.first?.principal == "anonymous")
    }

    @Test("A policy denial is recorded with its rule and status")
    func denial() throws {
        let setup = try self.setUp(policy: try .fromYAML(PolicyEnforcementTests.policyYAML()))
        let app = PolicyEnforcementTests.token("app:app-secret")
        #expect(try setup.call("DropCollection", auth: app).grpcStatus == "7")
        let record = try #require(setup.records(count: 1).first)
        #expect(record.kind == .refusal)
        #expect(record.principal == "app")
        #expect(record.decision == "denied")
        #expect(record.status == 7)
        #expect(record.message == "milvus-guard: app may not DropCollection on default.books (no rule allows it)")
    }

    @Test("Requests refused before they are gRPC calls are recorded: HTTP/1.1 (REST), another method or content type")
    func protocolRefusals() throws {
        let setup = try self.setUp()
        let rest = "POST /v2/vectordb/collections/drop HTTP/1.1\r\nHost: x\r\ncontent-length: 2\r\n\r\n{}"
        let response = try rawExchange(port: setup.proxy.port, Array(rest.utf8))
        #expect(String(decoding: response, as: UTF8.self).hasPrefix("HTTP/1.1 403"))
        var get = TestClient.grpcRequest(path: PolicyEnforcementTests.milvus + "DropCollection")
        get[0] = HeaderField(":method", "GET")
        #expect(try setup.client.call(get, body: nil).httpStatus == "405")
        var json = TestClient.grpcRequest(path: PolicyEnforcementTests.milvus + "Insert")
        json = json.map { $0.name == "content-type" ? HeaderField("content-type", "application/json") : $0 }
        #expect(try setup.client.call(json, body: Array("{}".utf8)).httpStatus == "415")
        let records = setup.records(count: 3).sorted { $0.callID < $1.callID }
        try #require(records.count == 3)
        #expect(records.allSatisfy { $0.kind == .refusal && $0.decision == "failed" && $0.client != nil })
        let byStatus = Dictionary(grouping: records) { $0.message?.prefix(8) ?? "" }
        let http1 = try #require(byStatus["HTTP 403"]?.first)
        #expect(http1.rpc == "POST /v2/vectordb/collections/drop HTTP/1.1")
        #expect(http1.status == 7)
        let method = try #require(byStatus["HTTP 405"]?.first)
        #expect(method.rpc == "GET " + PolicyEnforcementTests.milvus + "DropCollection")
        #expect(method.status == 2)
        let type = try #require(byStatus["HTTP 415"]?.first)
        #expect(type.rpc == "POST " + PolicyEnforcementTests.milvus + "Insert")
        #expect(type.message?.contains("application/json") == true)
        #expect(setup.upstream.record.value.requests.isEmpty)
    }

    @Test("Call ids are the loop's prefix and a counter, 32 lowercase hex digits")
    func callIDs() {
        #expect(ProxyWorker.callID(prefix: 0, counter: 1) == String(repeating: "0", count: 31) + "1")
        #expect(
            ProxyWorker.callID(prefix: 0x0123_4567_89ab_cdef, counter: 0xfedc_ba98_7654_3210)
                == "0123456789abcdeffedcba9876543210"
        )
        #expect(ProxyWorker.callID(prefix: .max, counter: .max) == String(repeating: "f", count: 32))
    }

    @Test("A refused client's request line is kept printable and short")
    func requestLine() {
        #expect(
            ClientConnection.requestLine(ArraySlice(Array("GET /x HTTP/1.1\r\nHost: y\r\n".utf8))) == "GET /x HTTP/1.1"
        )
        #expect(ClientConnection.requestLine(ArraySlice([0x16, 0x03, 0x01, 0x41, 0x0A, 0x42])) == "???A")
        #expect(ClientConnection.requestLine(ArraySlice(Array(repeating: UInt8(ascii: "a"), count: 5000))).count == 200)
        #expect(ClientConnection.requestLine([]) == "(not HTTP/2)")
    }

    @Test("Events (refusals for an unavailable store) are logged once a second: the first at once, the rest summed up")
    func oncePerSecondLog() {
        var log = OncePerSecondLog()
        let quiet = log.endSecond()
        #expect(quiet == nil)
        let logged = [log.happened("disk full"), log.happened("disk full"), log.happened("locked")]
        #expect(logged == [true, false, false])
        let summary = log.endSecond()
        #expect(summary?.count == 2)
        #expect(summary?.detail == "locked")
        let quietAgain = log.endSecond()
        #expect(quietAgain == nil)
        // A new second: its first refusal is logged at once again, and nothing is left to sum up.
        let first = log.happened("disk full")
        #expect(first)
        let nothing = log.endSecond()
        #expect(nothing == nil)
    }

    @Test(
        "A call Milvus answers with gRPC OK and a failed status is recorded as failed, with its code and reason",
        arguments: [1, 3, 6, 40]  // where the response's two DATA frames split it: in the framing, the status, after
    )
    func milvusFailure(split: Int) throws {
        // A MutationResult whose field 1, common.Status, says error_code 4, reason "collection not found", code 100.
        let reason = Array("collection not found".utf8)
        let status: [UInt8] = [0x08, 0x04, 0x12, UInt8(reason.count)] + reason + [0x18, 0x64]
        let result: [UInt8] = [0x0A, UInt8(status.count)] + status + [0x38, 0x00]
        let body: [UInt8] = [0, 0, 0, 0, UInt8(result.count)] + result
        let setup = try self.setUp(behavior: .reply(body: body, split: split))
        let delete = try setup.call("Delete")
        #expect(delete.grpcStatus == "0")
        #expect(delete.body == body)  // forwarded as it came
        let records = setup.records(count: 2)
        #expect(setup.proxy.stop())
        let outcome = try #require(records.last)
        #expect(outcome.kind == .outcome)
        #expect(outcome.status == 0)
        #expect(outcome.milvusCode == 100)
        #expect(outcome.message == "collection not found")
        #expect(outcome.rows == 0)
        #expect(setup.proxy.server.metrics.render().contains("milvus_guard_milvus_failures_total{rpc=\"Delete\"} 1\n"))
    }

    @Test("A mutation the guard ends after forwarding it, before Milvus answers, has an outcome without a status")
    func endedBeforeMilvusAnswered() throws {
        let setup = try self.setUp(behavior: .silent)
        let metadata = [PolicyEnforcementTests.token("root:Milvus"), HeaderField("grpc-timeout", "100m")]
        let drop = try setup.client.call(
            TestClient.grpcRequest(path: PolicyEnforcementTests.milvus + "DropCollection", metadata: metadata),
            body: PolicyEnforcementTests.body(collection: "books")
        )
        #expect(drop.grpcStatus == "4")
        let records = setup.records(count: 2)
        #expect(setup.proxy.stop())
        try #require(records.count == 2)
        let outcome = records[1]
        #expect(outcome.kind == .outcome)
        // Milvus may have dropped the collection: the outcome is unknown, not failed.
        #expect(outcome.status == nil)
        #expect(outcome.message?.hasPrefix("milvus-guard: deadline exceeded after ") == true)
        #expect(
            outcome.message?.hasSuffix("(status 4 to the client; Milvus had the call and had not answered)") == true,
            "\(outcome.message ?? "-")"
        )
        let entry = AuditEntry(id: 1, record: records[0], outcomeRecord: outcome, hash: "", prevHash: "")
        #expect(entry.outcome == .unknown)
        #expect(entry.outcomeRecorded)
    }

    @Test("A request that never arrives whole is refused after limits.request_timeout, recorded, never forwarded")
    func requestTimeout() throws {
        let setup = try self.setUp { $0.requestTimeoutMilliseconds = 300 }
        let body = PolicyEnforcementTests.body(collection: "books")
        let headers = TestClient.grpcRequest(
            path: PolicyEnforcementTests.milvus + "DropCollection",
            metadata: [PolicyEnforcementTests.token("root:Milvus")]
        )
        // Half the request, then nothing: no grpc-timeout of its own. The response (grpc-status 4) comes first, then
        // the stream is reset with NO_ERROR (the guard wants no more of the request), which records it.
        let streamID = try setup.client.open(headers)
        setup.client.session.enqueueData(streamID: streamID, Array(body.prefix(body.count / 2)))
        try setup.client.run(timeoutMilliseconds: 5_000) { $0.streams[streamID]?.closedWith != nil }
        let refused = try #require(setup.client.streams[streamID])
        #expect(refused.closedWith == HTTP2ErrorCode.noError)
        #expect(refused.grpcStatus == "4")
        #expect(
            refused.grpcMessage.map(GRPCStatus.percentDecoded)
                == "milvus-guard: request not complete after 0.3 s (limits.request_timeout)"
        )
        let records = setup.records(count: 1)
        #expect(setup.proxy.stop())
        try #require(records.count == 1)
        #expect(records[0].kind == .refusal)
        #expect(records[0].principal == "root")
        #expect(records[0].rpc == "DropCollection")
        #expect(records[0].status == 4)
        #expect(setup.upstream.record.value.requests.isEmpty)
    }

    @Test("A request cut short by its own grpc-timeout is let go, reset with NO_ERROR after the answer, and recorded")
    func deadlineBeforeTheRequestEnds() throws {
        let setup = try self.setUp()
        let body = PolicyEnforcementTests.body(collection: "books")
        let headers = TestClient.grpcRequest(
            path: PolicyEnforcementTests.milvus + "DropCollection",
            metadata: [PolicyEnforcementTests.token("root:Milvus"), HeaderField("grpc-timeout", "200m")]
        )
        let streamID = try setup.client.open(headers)
        setup.client.session.enqueueData(streamID: streamID, Array(body.prefix(body.count / 2)))
        try setup.client.run(timeoutMilliseconds: 5_000) { $0.streams[streamID]?.closedWith != nil }
        let ended = try #require(setup.client.streams[streamID])
        #expect(ended.grpcStatus == "4")
        #expect(ended.closedWith == HTTP2ErrorCode.noError)
        let records = setup.records(count: 1)
        #expect(setup.proxy.stop())
        try #require(records.count == 1)
        #expect(records[0].kind == .refusal)
        #expect(records[0].status == 4)
        #expect(setup.upstream.record.value.requests.isEmpty)
    }

    @Test("A request header list over the limit is reset at once (ENHANCE_YOUR_CALM) and recorded as refused")
    func oversizedHeaderList() throws {
        let setup = try self.setUp { $0.maxHeaderListBytes = 4_096 }
        let headers = TestClient.grpcRequest(
            path: PolicyEnforcementTests.milvus + "DropCollection",
            metadata: [
                PolicyEnforcementTests.token("root:Milvus"), HeaderField("x-pad", String(repeating: "p", count: 8_000)),
            ]
        )
        let result = try setup.client.call(headers, body: PolicyEnforcementTests.body(collection: "books"))
        #expect(result.closedWith == HTTP2ErrorCode.enhanceYourCalm)
        let records = setup.records(count: 1)
        #expect(setup.proxy.stop())
        try #require(records.count == 1)
        #expect(records[0].kind == .refusal)
        #expect(records[0].rpc == "DropCollection")
        #expect(records[0].status == 8)
        #expect(records[0].message?.hasPrefix("milvus-guard: request header list exceeds 4096 bytes") == true)
        #expect(setup.upstream.record.value.requests.isEmpty)
    }

    @Test(
        "A compressed request waits for its password check before it is inflated: a wrong password is refused as such"
    )
    func compressedWaitsForPassword() throws {
        let setup = try self.setUp()
        // 4 MiB of zeros: about 4 KB of gzip, which would inflate past 200 times its size and be refused for that.
        let body = try TestClient.gzipFrame([UInt8](repeating: 0, count: 4 << 20))
        let headers = TestClient.grpcRequest(
            path: PolicyEnforcementTests.milvus + "DropCollection",
            metadata: [PolicyEnforcementTests.token("root:wrong"), HeaderField("grpc-encoding", "gzip")]
        )
        let result = try setup.client.call(headers, body: body)
        #expect(result.grpcStatus == "16")
        let records = setup.records(count: 1)
        #expect(setup.proxy.stop())
        try #require(records.count == 1)
        #expect(records[0].status == 16)
        #expect(setup.upstream.record.value.requests.isEmpty)
    }

    @Test("A header field nghttp2 leaves out (a NUL in its value) refuses the call with a status, recorded")
    func invalidHeaderField() throws {
        let setup = try self.setUp()
        let headers = TestClient.grpcRequest(
            path: PolicyEnforcementTests.milvus + "DropCollection",
            metadata: [PolicyEnforcementTests.token("root:Milvus"), HeaderField("x-note", "a\u{0}b")]
        )
        let result = try setup.client.call(headers, body: PolicyEnforcementTests.body(collection: "books"))
        #expect(result.grpcStatus == "3")
        #expect(result.grpcMessage?.contains("header field \"x-note\" is not valid in HTTP/2") == true)
        let records = setup.records(count: 1)
        #expect(setup.proxy.stop())
        try #require(records.count == 1)
        #expect(records[0].kind == .refusal)
        #expect(records[0].rpc == "DropCollection")
        #expect(records[0].status == 3)
        #expect(records[0].decision == "failed")
        #expect(setup.upstream.record.value.requests.isEmpty)
    }

    @Test("A record keeps 16 KiB of a filter and of a list of names, and says what it cut")
    func longTextIsCut() throws {
        let setup = try self.setUp(reads: true)
        let root = [PolicyEnforcementTests.token("root:Milvus")]
        // A Delete whose filter is about 100 KB, with a 3-byte character across the 16 KiB cut (bytes 16382-16384).
        let filter =
            "id in [" + String(repeating: "1,", count: 8_187) + "x€" + String(repeating: "2,", count: 41_810) + "0]"
        var delete = WireWriter()
        delete.writeStringField(3, "books")
        delete.writeStringField(5, filter)
        let deleted = try setup.client.call(
            TestClient.grpcRequest(path: PolicyEnforcementTests.milvus + "Delete", metadata: root),
            body: TestClient.rawGRPCFrame(delete.bytes)
        )
        #expect(deleted.grpcStatus == "0")
        // A Query naming 5,000 partitions of 10 bytes each.
        var query = WireWriter()
        query.writeStringField(3, "books")
        for index in 0..<5_000 { query.writeStringField(6, "part_\(10_000 + index)") }
        let queried = try setup.client.call(
            TestClient.grpcRequest(path: PolicyEnforcementTests.milvus + "Query", metadata: root),
            body: TestClient.rawGRPCFrame(query.bytes)
        )
        #expect(queried.grpcStatus == "0")
        let records = setup.records(count: 4)
        #expect(setup.proxy.stop())
        try #require(records.count == 4)
        let recordedFilter = try #require(records[0].filter)
        let kept = ProxyWorker.recordedTextLimit
        #expect(recordedFilter.utf8.count < kept + 120)
        #expect(recordedFilter.hasPrefix(String(filter.utf8.prefix(kept - 2))!))  // the cut is before the "€"
        let digest = Hex.encode(Crypto.sha256(Array(filter.utf8)))
        #expect(recordedFilter.hasSuffix("x…[cut: \(filter.utf8.count) bytes in all, sha256 \(digest)]"))
        let partitions = records[2].partitions
        #expect(partitions.count == kept / 11)
        #expect(partitions.first == "part_10000")
        #expect(records[2].targets["partitions_in_all"] == "5000")
    }

    @Test("Request trailers over the header-list limit reset the stream and are recorded as refused")
    func oversizedTrailers() throws {
        let setup = try self.setUp { $0.maxHeaderListBytes = 4_096 }
        let headers = TestClient.grpcRequest(
            path: PolicyEnforcementTests.milvus + "DropCollection",
            metadata: [PolicyEnforcementTests.token("root:Milvus")]
        )
        let streamID = try setup.client.open(headers)
        setup.client.session.enqueueData(streamID: streamID, PolicyEnforcementTests.body(collection: "books"))
        setup.client.session.finishBody(
            streamID: streamID,
            trailers: [HeaderField("x-pad", String(repeating: "p", count: 8_000))]
        )
        try setup.client.run { $0.streams[streamID]?.closedWith != nil }
        #expect(setup.client.streams[streamID]?.closedWith == HTTP2ErrorCode.enhanceYourCalm)
        let records = setup.records(count: 1)
        #expect(setup.proxy.stop())
        try #require(records.count == 1)
        #expect(records[0].kind == .refusal)
        #expect(records[0].status == 8)
        #expect(records[0].message == "milvus-guard: request trailers exceed 4096 bytes")
        #expect(setup.upstream.record.value.requests.isEmpty)
    }

    @Test("A mutation Milvus refused the stream of (REFUSED_STREAM: not processed) is failed, not unknown")
    func refusedStreamIsFailed() throws {
        let setup = try self.setUp(behavior: .refuse)
        #expect(try setup.call("DropCollection", auth: PolicyEnforcementTests.token("root:Milvus")).grpcStatus == "14")
        let records = setup.records(count: 2)
        #expect(setup.proxy.stop())
        try #require(records.count == 2)
        #expect(records[1].status == 14)
        #expect(records[1].message == "milvus-guard: upstream refused the stream")
        let entry = AuditEntry(id: 1, record: records[0], outcomeRecord: records[1], hash: "", prevHash: "")
        #expect(entry.outcome == .failed)
    }

    @Test(
        "A response Milvus cut off after it started reaches the client as INTERNAL_ERROR, never REFUSED_STREAM (which says: not processed, retry)",
        arguments: [HTTP2ErrorCode.refusedStream, HTTP2ErrorCode.internalError, 0]
    )
    func resetAfterResponseStarted(errorCode: UInt32) throws {
        let setup = try self.setUp(behavior: .resetAfterHeaders(errorCode: errorCode))
        let result = try setup.call("DropCollection", auth: PolicyEnforcementTests.token("root:Milvus"))
        #expect(result.closedWith == HTTP2ErrorCode.internalError)
        let records = setup.records(count: 2)
        #expect(setup.proxy.stop())
        try #require(records.count == 2)
        #expect(records[1].status == nil)
        #expect(records[1].message == "stream reset after the response started, before Milvus's status")
        let entry = AuditEntry(id: 1, record: records[0], outcomeRecord: records[1], hash: "", prevHash: "")
        #expect(entry.outcome == .unknown)
    }

    @Test("A mutation that never reached Milvus (no connection) is failed, with the status the client got")
    func failedBeforeForwarding() throws {
        let setup = try self.setUp(upstreamDown: true)
        #expect(try setup.call("DropCollection", auth: PolicyEnforcementTests.token("root:Milvus")).grpcStatus == "14")
        let records = setup.records(count: 2)
        #expect(setup.proxy.stop())
        try #require(records.count == 2)
        #expect(records[1].status == 14)
        let entry = AuditEntry(id: 1, record: records[0], outcomeRecord: records[1], hash: "", prevHash: "")
        #expect(entry.outcome == .failed)
    }

    @Test("A malformed request's refusal names its caller when the caller was known by then (an API key)")
    func malformedRefusalNamesCaller() throws {
        let setup = try self.setUp(policy: try .fromYAML(PolicyEnforcementTests.policyYAML()))
        let refused = try setup.client.call(
            TestClient.grpcRequest(
                path: PolicyEnforcementTests.milvus + "DropCollection",
                metadata: [PolicyEnforcementTests.token("ingest-token")]
            ),
            body: TestClient.rawGRPCFrame([0x1A, 5, 0x61])  // a string cut short
        )
        #expect(refused.grpcStatus == "3")
        let records = setup.records(count: 1)
        #expect(setup.proxy.stop())
        let refusal = try #require(records.first)
        #expect(refusal.kind == .refusal)
        #expect(refusal.principal == "ingest")
        #expect(refusal.authentication == "api_key")
    }

    @Test("A successful Milvus status leaves the outcome ok, without a Milvus code, with the rows Milvus deleted")
    func milvusSuccess() throws {
        let result: [UInt8] = [0x0A, 0x00, 0x38, 0x02]  // status {} and delete_cnt 2
        let setup = try self.setUp(behavior: .reply(body: [0, 0, 0, 0, UInt8(result.count)] + result, split: 2))
        #expect(try setup.call("Delete").grpcStatus == "0")
        let records = setup.records(count: 2)
        #expect(setup.proxy.stop())
        #expect(records.last?.kind == .outcome)
        #expect(records.last?.milvusCode == nil)
        #expect(records.last?.status == 0)
        #expect(records.last?.rows == 2)  // delete_cnt: what Milvus says it deleted
        #expect(!setup.proxy.server.metrics.render().contains("milvus_guard_milvus_failures_total{"))
    }

    @Test("A queue filled by records held over a failing store refuses mutations with the store's own error")
    func queueFullBehindFailingStore() throws {
        let store = try MemoryAuditStore(options: AuditStoreOptions(queueCapacity: 2), probeMilliseconds: 60_000)
        let setup = try self.setUp(store: store)
        store.failWrites(with: AuditStoreError("audit store unavailable: disk full"))
        for _ in 0..<2 {
            let drop = try setup.call("DropCollection")
            #expect(drop.grpcMessage == "milvus-guard: audit store unavailable: disk full")
        }
        // The two refusals are held (the capacity): the next request record finds the queue full.
        for _ in 0..<5_000 where store.queueDepth < 2 { usleep(1_000) }
        let drop = try setup.call("DropCollection")
        #expect(drop.grpcStatus == "8")
        #expect(drop.grpcMessage == "milvus-guard: audit store unavailable: disk full, and the audit queue is full")
        store.failWrites(with: nil)
        #expect(setup.proxy.stop())
        #expect(setup.upstream.record.value.requests.isEmpty)
    }

    @Test("When the store can't write, mutations are refused with RESOURCE_EXHAUSTED and never forwarded; reads go on")
    func storeUnavailable() throws {
        let setup = try self.setUp()
        setup.store.failWrites(with: AuditStoreError("disk full"))
        let drop = try setup.call("DropCollection")
        #expect(drop.grpcStatus == "8")
        #expect(drop.grpcMessage == "milvus-guard: audit store unavailable: disk full")
        #expect(try setup.call("HasCollection").grpcStatus == "0")
        setup.store.failWrites(with: nil)
        #expect(try setup.call("DropCollection").grpcStatus == "0")
        // The refusal's record failed with the store, was held over, and is written once the store takes records
        // again: next to the second drop's request and outcome.
        let records = setup.records(count: 3)
        #expect(setup.proxy.stop())
        let paths = setup.upstream.record.value.requests.compactMap { $0.first { $0.name == ":path" }?.value }
        #expect(
            paths.map { String($0.dropFirst(PolicyEnforcementTests.milvus.count)) } == [
                "HasCollection", "DropCollection",
            ]
        )
        try #require(records.count == 3)
        let refusal = try #require(records.first { $0.kind == .refusal })
        #expect(refusal.rpc == "DropCollection")
        #expect(refusal.collection == "books")
        #expect(refusal.status == 8)
        #expect(refusal.message == "milvus-guard: audit store unavailable: disk full")
        #expect(records.filter { $0.kind != .refusal }.map(\.kind) == [.request, .outcome])
        #expect(setup.store.lost == 0)
    }
}
