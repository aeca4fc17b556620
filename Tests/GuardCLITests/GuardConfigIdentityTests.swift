import Foundation
import GuardCLI
import GuardPolicy
import ProxyCore
import Testing

@Suite("guard.yaml: mode, pid file, upstream credentials, authentication limits")
struct GuardConfigIdentityTests {
    private func load(_ yaml: String, in folder: TemporaryFolder) throws -> GuardConfig {
        try folder.loadConfig(yaml)
    }

    private func failure(_ yaml: String, in folder: TemporaryFolder) throws -> String? {
        try folder.configFailure(yaml)
    }

    @Test("Defaults: enforce, guard.pid beside the file, the client's credential goes upstream")
    func defaults() throws {
        let folder = try TemporaryFolder()
        let config = try self.load("", in: folder)
        #expect(config.mode == .enforce)
        #expect(config.pidFilePath == folder.file("guard.pid"))
        #expect(config.proxy.upstream.authorization == nil)
        #expect(config.proxy.limits.authFailuresPerWindow == 20)
        #expect(config.proxy.limits.credentialCacheMilliseconds == 300_000)
        #expect(config.proxy.limits.refusalsPerWindow == 1_000)
        #expect(config.proxy.limits.newConnectionsPerWindow == 1_000)
    }

    @Test("mode, pid_file and the authentication limits are read")
    func values() throws {
        let folder = try TemporaryFolder()
        let config = try self.load(
            "mode: shadow\npid_file: run/g.pid\nlimits:\n  auth_failures_per_minute: 5\n  credential_cache: 30s\n"
                + "  client_connections: 500\n  connections_per_client: 50\n  refusals_per_minute: 0\n"
                + "  new_connections_per_minute: 120\n",
            in: folder
        )
        #expect(config.mode == .shadow)
        #expect(config.pidFilePath == folder.file("run/g.pid"))
        #expect(config.proxy.limits.authFailuresPerWindow == 5)
        #expect(config.proxy.limits.credentialCacheMilliseconds == 30_000)
        #expect(config.proxy.limits.clientConnections == 500)
        #expect(config.proxy.limits.connectionsPerClient == 50)
        #expect(config.proxy.limits.refusalsPerWindow == 0)
        #expect(config.proxy.limits.newConnectionsPerWindow == 120)
    }

    @Test("upstream.auth becomes base64 of user:password, the password read from its file")
    func upstreamAuth() throws {
        let folder = try TemporaryFolder()
        try folder.write("milvus.password", "s3cret\n")
        let config = try self.load(
            "upstream:\n  address: 127.0.0.1:19530\n  auth: {user: guard, password_file: milvus.password}\n",
            in: folder
        )
        #expect(config.proxy.upstream.authorization == Data("guard:s3cret".utf8).base64EncodedString())
    }

    @Test(
        "Bad values are located errors",
        arguments: [
            ("mode: audit\n", "guard.yaml:1: mode: must be enforce or shadow, not \"audit\""),
            (
                "upstream:\n  address: 127.0.0.1:1\n  auth: {password_file: nowhere}\n",
                "guard.yaml:3: upstream.auth.password_file:"
            ),
            (
                "upstream:\n  address: 127.0.0.1:1\n  auth: {user: \"a:b\"}\n",
                "guard.yaml:3: upstream.auth.user: must be a non-empty user name without a colon"
            ),
            ("upstream:\n  address: 127.0.0.1:1\n  auth: guard\n", "guard.yaml:3: upstream.auth: must be a mapping"),
            ("limits:\n  auth_failures_per_minute: 0\n", "guard.yaml:2: limits.auth_failures_per_minute:"),
            ("limits:\n  client_connections: 0\n", "guard.yaml:2: limits.client_connections:"),
            ("limits:\n  refusals_per_minute: -1\n", "guard.yaml:2: limits.refusals_per_minute:"),
            ("limits:\n  refusals_per_minute: 1000001\n", "guard.yaml:2: limits.refusals_per_minute:"),
        ]
    )
    func errors(yaml: String, expected: String) throws {
        let folder = try TemporaryFolder()
        let message = try self.failure(yaml, in: folder)
        #expect(message?.hasPrefix(expected) == true, "\(message ?? "no error")")
    }
}
