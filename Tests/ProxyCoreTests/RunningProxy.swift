import GuardPolicy
import Logging

@testable import ProxyCore

/// A ``ProxyServer`` listening on 127.0.0.1:0, run on a background thread.
final class RunningProxy {
    let server: ProxyServer
    private let thread: TestThread
    private let failure = Locked<String?>(nil)

    init(
        upstream: SocketAddress,
        maxConnectionsPerLoop: Int = 8,
        policy: ActivePolicy? = nil,
        authorization: String? = nil,
        tls: ServerTLSConfiguration? = nil,
        audit: ProxyAudit? = nil,
        configure: (inout Limits) -> Void = { _ in },
        configureUpstream: (inout UpstreamConfiguration) -> Void = { _ in }
    ) throws {
        var limits = Limits()
        limits.drainTimeoutMilliseconds = 1_000
        configure(&limits)
        var upstreamConfiguration = UpstreamConfiguration(
            address: upstream,
            maxConnectionsPerLoop: maxConnectionsPerLoop,
            connectTimeoutMilliseconds: 2_000,
            authorization: authorization
        )
        configureUpstream(&upstreamConfiguration)
        let configuration = ProxyConfiguration(
            listen: .tcp(host: "127.0.0.1", port: 0),
            upstream: upstreamConfiguration,
            threads: 1,
            tls: tls,
            limits: limits
        )
        let server = try ProxyServer(
            configuration: configuration,
            policy: try policy ?? .allowingAnonymous(),
            audit: audit,
            logger: Logger(label: "proxy-test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        self.server = server
        let failure = self.failure
        self.thread = try TestThread(name: "test-proxy") {
            do { try server.run() } catch { failure.set("\(error)") }
        }
        guard waitFor({ server.boundPort != 0 || self.thread.isFinished }), server.boundPort != 0 else {
            server.shutdown()
            _ = self.thread.join()
            throw ProxyError("proxy did not start: \(self.failure.value ?? "timeout")")
        }
    }

    var port: UInt16 { UInt16(self.server.boundPort) }
    var hasReturned: Bool { self.thread.isFinished }

    /// Shuts the proxy down and waits for run() to return.
    /// - Returns: false when run() did not return in time.
    @discardableResult
    func stop(timeoutMilliseconds: Int = 5_000) -> Bool {
        self.server.shutdown()
        return self.thread.join(timeoutMilliseconds: timeoutMilliseconds)
    }

    deinit { self.stop() }
}

/// A loopback port nothing listens on (bound, then closed).
func closedPort() throws -> UInt16 {
    let socket = try Socket.listen(on: .tcp(host: "127.0.0.1", port: 0))
    let port = socket.localPort ?? 1
    socket.close()
    return port
}

extension ActivePolicy {
    /// For tests of the transport: the anonymous principal and `root` (password `Milvus`) may call everything.
    static func allowingAnonymous() throws -> ActivePolicy {
        try .fromYAML(
            """
            users:
              anonymous: {roles: [all]}
              root: {password: "\(try PolicyEnforcementTests.hash("Milvus"))", roles: [all]}
            roles:
              all:
                - allow: ["*"]
                  on: ["*"]
            """
        )
    }

    /// A policy from one file's text, named `test.yaml` in rule ids.
    static func fromYAML(_ text: String, mode: Policy.Mode = .enforce) throws -> ActivePolicy {
        ActivePolicy(policy: try PolicyFolder.merge([(name: "test.yaml", text: text)]), mode: mode)
    }
}
