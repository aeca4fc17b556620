import AuditStore
import NGHTTP2Support
import Testing

@testable import ProxyCore

/// `limits.refusals_per_minute`: an address that keeps getting refused has its connections closed, and one record
/// says so, so that a client without a credential can't make the audit store grow as fast as it can send.
@Suite("Refused-call limit per address", .serialized, .timeLimit(.minutes(2)))
struct RefusalLimitTests {
    func setUp(limit: Int, upstreamDown: Bool = false) throws -> AuditTests.Setup {
        try AuditTests().setUp(
            policy: try .fromYAML(PolicyEnforcementTests.policyYAML()),
            upstreamDown: upstreamDown,
            configure: { $0.refusalsPerWindow = limit }
        )
    }

    @Test("At the limit the connection gets GOAWAY (ENHANCE_YOUR_CALM) and closes; new ones are closed at once")
    func cutOffAtLimit() throws {
        let setup = try self.setUp(limit: 3)
        let client = setup.client
        let app = PolicyEnforcementTests.token("app:app-secret")
        #expect(try setup.call(on: client, "HasCollection", auth: app).grpcStatus == "0")
        for _ in 0..<2 {
            #expect(try setup.call(on: client, "DropCollection", auth: app).grpcStatus == "7")
            #expect(client.goaway == nil)
        }
        // The third refusal (no credential this time) reaches the limit.
        #expect(try setup.call(on: client, "DropCollection", auth: nil).grpcStatus == "16")
        #expect(client.waitForClose())
        #expect(client.goaway?.errorCode == HTTP2ErrorCode.enhanceYourCalm)

        // Even with the right password, the address is shut out until the window is over.
        let again = try TestClient(port: setup.proxy.port)
        #expect(again.waitForClose())
        #expect(throws: (any Error).self) { try setup.call(on: again, "HasCollection", auth: app) }
        #expect(
            setup.proxy.server.metrics.render().contains(
                #"milvus_guard_connections_refused_total{limit="refusals_per_minute"} 1"#
            )
        )

        // Every refusal has its record, and one more record says the address went over the limit.
        let records = setup.records(count: 4)
        #expect(records.filter { $0.kind == .refusal && $0.rpc == "DropCollection" }.count == 3)
        let limit = try #require(records.first { $0.kind == .refusal && $0.rpc == nil })
        #expect(limit.status == 8)
        #expect(limit.decision == "failed")
        #expect(limit.client?.hasPrefix("127.0.0.1:") == true)
        #expect(limit.message?.hasPrefix("milvus-guard: 3 refused calls from 127.0.0.1 within a minute") == true)
        #expect(records.count == 4)
        #expect(setup.proxy.stop())
        #expect(setup.upstream.record.value.requests.count == 1)
    }

    @Test("Header lists over the limit (an HPACK bomb, say) count")
    func oversizedHeadersCount() throws {
        let setup = try AuditTests().setUp(
            policy: try .fromYAML(PolicyEnforcementTests.policyYAML()),
            configure: {
                $0.refusalsPerWindow = 2
                $0.maxHeaderListBytes = 4_096
            }
        )
        let client = setup.client
        let padded = TestClient.grpcRequest(
            path: PolicyEnforcementTests.milvus + "HasCollection",
            metadata: [HeaderField("x-pad", String(repeating: "p", count: 8_000))]
        )
        for _ in 0..<2 {
            let result = try client.call(padded, body: PolicyEnforcementTests.body(collection: "books"))
            #expect(result.closedWith == HTTP2ErrorCode.enhanceYourCalm)
        }
        #expect(client.waitForClose())
    }

    @Test("Refusals the client did not cause (Milvus unreachable) do not count")
    func upstreamFailuresDoNotCount() throws {
        let setup = try self.setUp(limit: 2, upstreamDown: true)
        let client = setup.client
        let app = PolicyEnforcementTests.token("app:app-secret")
        for _ in 0..<5 { #expect(try setup.call(on: client, "HasCollection", auth: app).grpcStatus == "14") }
        #expect(client.goaway == nil)
        #expect(try setup.call(on: client, "DropCollection", auth: app).grpcStatus == "7")
        #expect(client.goaway == nil)
        #expect(try setup.call(on: client, "DropCollection", auth: app).grpcStatus == "7")
        #expect(client.waitForClose())
    }

    @Test("0 turns the limit off")
    func off() throws {
        let setup = try self.setUp(limit: 0)
        let client = setup.client
        for _ in 0..<20 { #expect(try setup.call(on: client, "DropCollection", auth: nil).grpcStatus == "16") }
        #expect(client.goaway == nil)
        #expect(
            try setup.call(on: client, "HasCollection", auth: PolicyEnforcementTests.token("app:app-secret")).grpcStatus
                == "0"
        )
    }
}
