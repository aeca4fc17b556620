import AuditStore
import GuardPolicy
import Logging
import Testing

@testable import ProxyCore

/// ProxyAdminBackend's credential check against a real policy.
@Suite("Admin credentials against the policy", .timeLimit(.minutes(1)))
struct AdminBackendTests {
    /// With `store`, auditing is on and `/audit` reads it.
    func backend(store: MemoryAuditStore? = nil) throws -> ProxyAdminBackend {
        try self.backendAndServer(store: store).backend
    }

    func backendAndServer(store: MemoryAuditStore? = nil) throws -> (backend: ProxyAdminBackend, server: ProxyServer) {
        let yaml = """
            users:
              ops: { password: "\(try PolicyEnforcementTests.hash("ops-secret"))", roles: [operator] }
            roles:
              operator:
                - allow: [admin]
                  on: ["*"]
            """
        let server = try ProxyServer(
            configuration: ProxyConfiguration(
                listen: .tcp(host: "127.0.0.1", port: 0),
                upstream: UpstreamConfiguration(address: .tcp(host: "127.0.0.1", port: 1)),
                threads: 1
            ),
            policy: try .fromYAML(yaml),
            audit: nil,
            logger: Logger(label: "admin-test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        let backend = ProxyAdminBackend(server: server, audit: store.map { ProxyAudit(log: $0, reads: false) }) {
            () throws(AuditStoreError) -> any AuditReader in
            guard let store else { throw AuditStoreError("no store") }
            return store
        }
        return (backend, server)
    }

    @Test("/metrics says how many reloads were applied, rejected or not recorded, and whether one waits for the store")
    func reloadMetrics() throws {
        let (backend, server) = try self.backendAndServer()
        func lines() -> [String] {
            backend.extraMetrics().split(separator: "\n").map(String.init).filter {
                $0.hasPrefix("milvus_guard_policy")
            }
        }
        #expect(
            lines() == [
                "milvus_guard_policy_generation 1",
                "milvus_guard_policy_reloads_total{result=\"applied\"} 0",
                "milvus_guard_policy_reloads_total{result=\"rejected\"} 0",
                "milvus_guard_policy_reloads_total{result=\"unrecorded\"} 0",
                "milvus_guard_policy_reload_pending 0",
            ]
        )
        server.reloadNotApplied(pending: false)
        server.reloadNotApplied(pending: true)
        #expect(lines().last == "milvus_guard_policy_reload_pending 1")
        server.reload(server.currentPolicy)
        #expect(
            lines() == [
                "milvus_guard_policy_generation 2",
                "milvus_guard_policy_reloads_total{result=\"applied\"} 1",
                "milvus_guard_policy_reloads_total{result=\"rejected\"} 1",
                "milvus_guard_policy_reloads_total{result=\"unrecorded\"} 1",
                "milvus_guard_policy_reload_pending 0",
            ]
        )
    }

    @Test("/audit refuses a decision no record carries (a typo), as the CLI does, instead of finding no calls")
    func auditDecisionTypo() throws {
        let store = try MemoryAuditStore()
        defer { store.close() }
        let backend = try self.backend(store: store)
        let typo = backend.audit(parameters: ["decision": "deny"])
        #expect(typo.status == 400)
        #expect(
            String(decoding: typo.body, as: UTF8.self)
                == "{\"error\":\"decision: must be one of allowed, denied, would_deny, approval_required, failed, loaded, "
                + "rejected, got \\\"deny\\\"\"}"
        )
        for decision in AuditQuery.decisions {
            #expect(backend.audit(parameters: ["decision": decision]).status == 200, "\(decision)")
        }
    }

    static func basic(_ text: String) -> String { "Basic " + PolicyEnforcementTests.base64(Array(text.utf8)) }

    @Test("Failed attempts are limited per client address, so nobody can lock a real admin out by failing as them")
    func failureLimitPerClient() throws {
        let backend = try self.backend()
        for _ in 0..<20 {
            #expect(
                backend.authorizeAdmin(authorization: Self.basic("ops:guess"), client: "203.0.113.9")
                    == .unauthenticated(reason: "wrong user name or password for \"ops\"")
            )
        }
        // The attacker's address is now refused without a check, even with the right password...
        guard
            case .unauthenticated(let reason) = backend.authorizeAdmin(
                authorization: Self.basic("ops:ops-secret"),
                client: "203.0.113.9"
            )
        else {
            Issue.record("the 21st attempt from the same address was not refused")
            return
        }
        #expect(reason.hasPrefix("too many failed attempts"))
        // ...while the real operator, from another address, gets in.
        #expect(
            backend.authorizeAdmin(authorization: Self.basic("ops:ops-secret"), client: "10.0.0.5")
                == .allowed(principal: "ops")
        )
    }
}
