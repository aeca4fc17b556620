import CLinux
import Glibc
import Logging
import MilvusCatalog
import Testing

@testable import ProxyCore

/// A real ``AdminBackend`` with fixed users: `admin:secret` (Basic) and the API key `key-ops` (Bearer) may use
/// the admin endpoints, `app:pw` is a valid user without the `admin` action. It records the audit queries it
/// serves.
struct TestAdminBackend: AdminBackend {
    let auditQueries = Locked<[[String: String]]>([])
    let readiness = Locked<String?>(nil)
    /// An audit query for user `slow` waits until this is true (at most 20 s), as one over a large store would.
    let slowAuditReleased = Locked(false)
    /// Such a query, as an admin sends it.
    static let slowAuditRequest =
        "GET /audit?user=slow HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: \(Self.admin)\r\n\r\n"

    /// A password check that takes until ``checksReleased`` (at most 20 s), then fails, as a PBKDF2 of a wrong
    /// password would (slowly); ``checksStarted`` counts them.
    static let slowCheck = "Basic Y2hlY2s6d2FpdA=="  // check:wait
    let checksReleased = Locked(false)
    let checksStarted = Locked(0)
    /// Credentials verified lately (``cachedAuthorization(authorization:)``).
    let verified = Locked<Set<String>>([])

    static let admin = "Basic YWRtaW46c2VjcmV0"  // admin:secret
    static let app = "Basic YXBwOnB3"  // app:pw
    static let wrongPassword = "Basic YWRtaW46d3Jvbmc="  // admin:wrong

    func cachedAuthorization(authorization: String?) -> AdminAuthorization? {
        guard let authorization, self.verified.value.contains(authorization) else { return nil }
        return self.authorizeAdmin(authorization: authorization, client: "")
    }

    func authorizeAdmin(authorization: String?, client: String) -> AdminAuthorization {
        if authorization == Self.slowCheck {
            self.checksStarted.update { $0 += 1 }
            _ = waitFor(timeoutMilliseconds: 20_000) { self.checksReleased.value }
        }
        return switch authorization {
        case nil: .unauthenticated(reason: "no credentials")
        case Self.admin: .allowed(principal: "admin")
        case "Bearer key-ops": .allowed(principal: "ops-bot")
        case Self.app: .forbidden(reason: "app's roles do not allow admin")
        default: .unauthenticated(reason: "wrong credentials")
        }
    }

    func audit(parameters: [String: String]) -> AdminResponse {
        self.auditQueries.update { $0.append(parameters) }
        if parameters["user"] == "slow" { _ = waitFor(timeoutMilliseconds: 20_000) { self.slowAuditReleased.value } }
        if parameters["since"] == "yesterday-ish" { return .error(400, "invalid since: \"yesterday-ish\"") }
        return .json(200, "[{\"user\":\(AdminResponse.jsonString(parameters["user"] ?? "")),\"rpc\":\"Search\"}]")
    }

    func readinessProblem() -> String? { self.readiness.value }

    func extraMetrics() -> String {
        "# HELP milvus_guard_audit_queue_depth Audit records waiting.\n"
            + "# TYPE milvus_guard_audit_queue_depth gauge\nmilvus_guard_audit_queue_depth 3"
    }
}

/// What the test client received.
struct AdminReply {
    var status: Int
    var headers: [String: String]
    var body: String
    var closed: Bool
}

/// A minimal HTTP/1.1 client on a non-blocking socket, with every wait bounded so that nothing hangs.
final class AdminTestClient {
    let socket: Socket

    init(port: Int) throws {
        self.socket = try Socket.connect(to: .tcp(host: "127.0.0.1", port: UInt16(port)))
        guard waitReady(self.socket.descriptor, writable: true, milliseconds: 5_000) else {
            throw ProxyError("connect to port \(port) timed out")
        }
        if let error = self.socket.connectionError() { throw ProxyError("connect failed: \(error)") }
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            guard let count = bytes[offset...].withUnsafeBytes({ self.socket.write($0) }) else {
                throw ProxyError("write failed")
            }
            if count == 0 && !waitReady(self.socket.descriptor, writable: true, milliseconds: 5_000) {
                throw ProxyError("write timed out")
            }
            offset += count
        }
    }

    /// Reads until the server closes or `timeoutMilliseconds` pass.
    func readToEnd(timeoutMilliseconds: Int = 5_000) -> (bytes: [UInt8], closed: Bool) {
        let deadline = clinux_monotonic_ns() + UInt64(timeoutMilliseconds) * 1_000_000
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let now = clinux_monotonic_ns()
            guard now < deadline else { return (received, false) }
            _ = waitReady(self.socket.descriptor, milliseconds: Int32((deadline - now) / 1_000_000 + 1))
            switch buffer.withUnsafeMutableBytes({ self.socket.read(into: $0) }) {
            case .bytes(let count): received += buffer[..<count]
            case .wouldBlock: continue
            case .endOfFile: return (received, true)
            }
        }
    }

    /// Sends `text` and parses the whole answer.
    func exchange(_ text: String) throws -> AdminReply {
        try self.send(text)
        return try Self.parse(self.readToEnd())
    }

    static func parse(_ result: (bytes: [UInt8], closed: Bool)) throws -> AdminReply {
        let text = String(decoding: result.bytes, as: UTF8.self)
        guard let split = text.firstRange(of: "\r\n\r\n") else {
            throw ProxyError("no complete head in \(text.debugDescription)")
        }
        var lines = text[..<split.lowerBound].split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, statusLine[0] == "HTTP/1.1", let status = Int(statusLine[1]) else {
            throw ProxyError("bad status line in \(text.debugDescription)")
        }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { throw ProxyError("bad header line \(line)") }
            headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...].drop { $0 == " " })
        }
        return AdminReply(
            status: status,
            headers: headers,
            body: String(text[split.upperBound...]),
            closed: result.closed
        )
    }

    /// One GET (or another method) with optional credentials on a fresh connection.
    static func request(
        port: Int,
        _ target: String,
        method: String = "GET",
        authorization: String? = nil
    ) throws -> AdminReply {
        let client = try AdminTestClient(port: port)
        var text = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if let authorization { text += "Authorization: \(authorization)\r\n" }
        return try client.exchange(text + "\r\n")
    }
}

@Suite("Admin: AdminServer end to end", .timeLimit(.minutes(1)))
struct AdminServerTests {
    static func start(
        backend: TestAdminBackend = TestAdminBackend(),
        metrics: ProxyMetrics = ProxyMetrics(loopCount: 1),
        timeoutMilliseconds: Int = 5_000,
        maxConnections: Int = 64
    ) throws -> AdminServer {
        try AdminServer.start(
            configuration: AdminConfiguration(
                listen: .tcp(host: "127.0.0.1", port: 0),
                connectionTimeoutMilliseconds: timeoutMilliseconds,
                maxConnections: maxConnections
            ),
            backend: backend,
            metrics: metrics,
            logger: Logger(label: "admin-test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
    }

    static func stop(_ server: AdminServer) {
        server.shutdown()
        if waitFor({ !server.isRunning }) { server.join() }
    }

    @Test("A slow /audit holds up neither /healthz nor /readyz nor /metrics; its client gets the answer after")
    func slowAuditDoesNotBlock() throws {
        let backend = TestAdminBackend()
        let server = try Self.start(backend: backend, timeoutMilliseconds: 30_000)
        defer { Self.stop(server) }
        let slow = try AdminTestClient(port: server.boundPort)
        try slow.send(TestAdminBackend.slowAuditRequest)
        slow.socket.shutdownWrite()  // a client may shut its side once the request is out; it still gets the answer
        #expect(waitFor { backend.auditQueries.value.count == 1 })
        #expect(try AdminTestClient.request(port: server.boundPort, "/healthz").status == 200)
        let ready = try AdminTestClient.request(
            port: server.boundPort,
            "/readyz",
            authorization: TestAdminBackend.admin
        )
        #expect(ready.status == 200)
        let metrics = try AdminTestClient.request(
            port: server.boundPort,
            "/metrics",
            authorization: TestAdminBackend.admin
        )
        #expect(metrics.status == 200)
        #expect(backend.auditQueries.value.count == 1)  // still waiting
        backend.slowAuditReleased.set(true)
        let reply = try AdminTestClient.parse(slow.readToEnd())
        #expect(reply.status == 200)
        #expect(reply.body.contains("\"user\":\"slow\""))
    }

    @Test("An answer that comes after its connection timed out goes to nobody, not to a later connection")
    func lateAnswerIsDropped() throws {
        let backend = TestAdminBackend()
        let server = try Self.start(backend: backend, timeoutMilliseconds: 1_000)
        defer { Self.stop(server) }
        let first = try AdminTestClient(port: server.boundPort)
        try first.send(TestAdminBackend.slowAuditRequest)
        #expect(first.readToEnd(timeoutMilliseconds: 5_000) == ([], true))  // closed at its deadline, unanswered
        let second = try AdminTestClient(port: server.boundPort)
        try second.send("GET /audit?user=other HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  // no credentials
        backend.slowAuditReleased.set(true)
        let reply = try AdminTestClient.parse(second.readToEnd())
        #expect(reply.status == 401)
        #expect(!reply.body.contains("slow"))
    }

    @Test("/healthz answers 200 ok without credentials, with length, no-store and Connection: close")
    func healthz() throws {
        let server = try Self.start()
        defer { Self.stop(server) }
        #expect(server.boundPort > 0)
        let reply = try AdminTestClient.request(port: server.boundPort, "/healthz")
        #expect(reply.status == 200)
        #expect(reply.body == "ok\n")
        #expect(reply.closed)
        #expect(reply.headers["content-length"] == "3")
        #expect(reply.headers["content-type"] == "text/plain; charset=utf-8")
        #expect(reply.headers["cache-control"] == "no-store")
        #expect(reply.headers["connection"] == "close")

        let head = try AdminTestClient.request(port: server.boundPort, "/healthz", method: "HEAD")
        #expect(head.status == 200)
        #expect(head.headers["content-length"] == "3")
        #expect(head.body == "")
    }

    @Test("/metrics needs credentials: 401 with a Basic challenge, 401 for a wrong password, 403 for a non-admin")
    func metricsAuthorization() throws {
        let server = try Self.start()
        defer { Self.stop(server) }
        let anonymous = try AdminTestClient.request(port: server.boundPort, "/metrics")
        #expect(anonymous.status == 401)
        #expect(anonymous.headers["www-authenticate"] == "Basic realm=\"milvus-guard\"")
        #expect(!anonymous.body.contains("milvus_guard"))
        let wrong = try AdminTestClient.request(
            port: server.boundPort,
            "/metrics",
            authorization: TestAdminBackend.wrongPassword
        )
        #expect(wrong.status == 401)
        let app = try AdminTestClient.request(port: server.boundPort, "/metrics", authorization: TestAdminBackend.app)
        #expect(app.status == 403)
        #expect(app.headers["www-authenticate"] == nil)
        #expect(!app.body.contains("milvus_guard"))
    }

    @Test("/metrics for an admin is the registry's Prometheus text followed by the backend's metrics")
    func metricsForAdmin() throws {
        let metrics = ProxyMetrics(loopCount: 2)
        let search = try #require(MilvusRPCs.descriptor(named: "Search"))
        metrics.forLoop(1).recordCall(rpc: search, decision: .allowed, status: .code(.ok), durationNanoseconds: 2_000)
        let server = try Self.start(metrics: metrics)
        defer { Self.stop(server) }
        let reply = try AdminTestClient.request(
            port: server.boundPort,
            "/metrics",
            authorization: TestAdminBackend.admin
        )
        #expect(reply.status == 200)
        #expect(reply.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        #expect(reply.headers["content-length"] == String(reply.body.utf8.count))
        #expect(reply.body.hasPrefix(metrics.render()))
        #expect(reply.body.contains("milvus_guard_calls_total{rpc=\"Search\",decision=\"allowed\",status=\"0\"} 1\n"))
        #expect(reply.body.hasSuffix("milvus_guard_audit_queue_depth 3\n"))
        let bearer = try AdminTestClient.request(port: server.boundPort, "/metrics", authorization: "Bearer key-ops")
        #expect(bearer.status == 200)
    }

    @Test("/audit passes the decoded query parameters to the backend and returns its JSON or its error")
    func audit() throws {
        let backend = TestAdminBackend()
        let server = try Self.start(backend: backend)
        defer { Self.stop(server) }
        let reply = try AdminTestClient.request(
            port: server.boundPort,
            "/audit?user=app&since=1h&collection=my%20docs",
            authorization: TestAdminBackend.admin
        )
        #expect(reply.status == 200)
        #expect(reply.headers["content-type"] == "application/json")
        #expect(reply.body == "[{\"user\":\"app\",\"rpc\":\"Search\"}]")
        let bad = try AdminTestClient.request(
            port: server.boundPort,
            "/audit?since=yesterday-ish",
            authorization: TestAdminBackend.admin
        )
        #expect(bad.status == 400)
        #expect(bad.body == "{\"error\":\"invalid since: \\\"yesterday-ish\\\"\"}")
        // Refused before the backend sees the query: no credentials, and a repeated parameter.
        let anonymous = try AdminTestClient.request(port: server.boundPort, "/audit?user=x")
        #expect(anonymous.status == 401)
        let repeated = try AdminTestClient.request(
            port: server.boundPort,
            "/audit?user=a&user=b",
            authorization: TestAdminBackend.admin
        )
        #expect(repeated.status == 400)
        #expect(
            backend.auditQueries.value == [
                ["user": "app", "since": "1h", "collection": "my docs"], ["since": "yesterday-ish"],
            ]
        )
    }

    @Test("/readyz is 200 when the backend is ready and 503 with its reason when not")
    func readyz() throws {
        let backend = TestAdminBackend()
        let server = try Self.start(backend: backend)
        defer { Self.stop(server) }
        let ready = try AdminTestClient.request(
            port: server.boundPort,
            "/readyz",
            authorization: TestAdminBackend.admin
        )
        #expect(ready.status == 200)
        backend.readiness.set("upstream unreachable")
        let notReady = try AdminTestClient.request(
            port: server.boundPort,
            "/readyz",
            authorization: TestAdminBackend.admin
        )
        #expect(notReady.status == 503)
        #expect(notReady.body == "not ready: upstream unreachable\n")
    }

    @Test("Unknown paths are 404 for an admin and 401 without credentials; POST is 405; garbage is 400")
    func errors() throws {
        let server = try Self.start()
        defer { Self.stop(server) }
        let port = server.boundPort
        #expect(try AdminTestClient.request(port: port, "/nope", authorization: TestAdminBackend.admin).status == 404)
        #expect(try AdminTestClient.request(port: port, "/nope").status == 401)
        let post = try AdminTestClient.request(port: port, "/metrics", method: "POST")
        #expect(post.status == 405)
        #expect(post.headers["allow"] == "GET, HEAD")
        let garbage = try AdminTestClient(port: port).exchange("\u{16}\u{03}\u{01}\u{02}\u{00}\r\n\r\n")
        #expect(garbage.status == 400)
        let huge = try AdminTestClient(port: port).exchange(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: \(String(repeating: "a", count: 9_000))\r\n\r\n"
        )
        #expect(huge.status == 431)
    }

    @Test(
        "Password checks wait in a queue of their own, 16 per client network, skipped once their connection is closed; a caller verified lately never waits there"
    )
    func passwordChecksQueue() throws {
        let backend = TestAdminBackend()
        backend.verified.set([TestAdminBackend.admin])
        let server = try Self.start(backend: backend, timeoutMilliseconds: 1_500)
        defer { Self.stop(server) }
        let request = "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: \(TestAdminBackend.slowCheck)\r\n\r\n"
        // One check runs (and hangs), 16 more from this network wait, the 18th is refused at once.
        var clients: [AdminTestClient] = []
        for _ in 0..<17 {
            let client = try AdminTestClient(port: server.boundPort)
            try client.send(request)
            clients.append(client)
            if clients.count == 1 { #expect(waitFor { backend.checksStarted.value == 1 }) }
        }
        let refused = try AdminTestClient(port: server.boundPort).exchange(request)
        #expect(refused.status == 503)
        // A verified admin is answered while the checks hang.
        let ready = try AdminTestClient.request(
            port: server.boundPort,
            "/readyz",
            authorization: TestAdminBackend.admin
        )
        #expect(ready.status == 200)
        // Their deadline closes the waiting connections unanswered; released then, the queued checks never run.
        for client in clients { #expect(client.readToEnd(timeoutMilliseconds: 10_000) == ([], true)) }
        backend.checksReleased.set(true)
        #expect(try AdminTestClient.request(port: server.boundPort, "/healthz").status == 200)
        let after = try AdminTestClient.request(
            port: server.boundPort,
            "/metrics",
            authorization: TestAdminBackend.admin
        )
        #expect(after.status == 200)
        #expect(backend.checksStarted.value == 1)
    }

    @Test("A client that sends half a request is closed at the deadline, and the server keeps serving")
    func slowClient() throws {
        let server = try Self.start(timeoutMilliseconds: 200)
        defer { Self.stop(server) }
        let slow = try AdminTestClient(port: server.boundPort)
        try slow.send("GET /metrics HTTP/1.1\r\nHo")
        let result = slow.readToEnd(timeoutMilliseconds: 10_000)
        #expect(result.closed)
        #expect(result.bytes.isEmpty)
        #expect(try AdminTestClient.request(port: server.boundPort, "/healthz").status == 200)
    }

    @Test("At maxConnections the oldest connection still sending its request makes room for a new one")
    func connectionLimit() throws {
        let server = try Self.start(timeoutMilliseconds: 30_000, maxConnections: 2)
        defer { Self.stop(server) }
        let first = try AdminTestClient(port: server.boundPort)
        usleep(100_000)  // accepted before the second
        let second = try AdminTestClient(port: server.boundPort)
        usleep(100_000)
        // Slow clients holding every slot no longer shut a probe out: the oldest of them is closed instead.
        let probe = try AdminTestClient(port: server.boundPort)
        #expect(try probe.exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").status == 200)
        let evicted = first.readToEnd()
        #expect(evicted.closed)
        #expect(evicted.bytes.isEmpty)
        #expect(try second.exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").status == 200)
    }

    @Test("At maxConnections a connection whose answer is out, left open by its client, makes room too")
    func lingeringConnectionsMakeRoom() throws {
        let server = try Self.start(timeoutMilliseconds: 30_000, maxConnections: 2)
        defer { Self.stop(server) }
        // Two clients that ask and then neither read nor close: their connections linger with the answer out.
        let lingering = try (0..<2).map { _ in try AdminTestClient(port: server.boundPort) }
        for client in lingering { try client.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") }
        usleep(200_000)
        #expect(try AdminTestClient.request(port: server.boundPort, "/healthz").status == 200)
    }

    @Test("shutdown() from another thread closes open connections and the listener, and ends the thread")
    func shutdown() throws {
        let server = try Self.start()
        let port = server.boundPort
        let idle = try AdminTestClient(port: port)
        #expect(server.isRunning)
        let stopper = try TestThread(name: "stopper") { server.shutdown() }
        #expect(stopper.join())
        #expect(waitFor { !server.isRunning })
        server.join()
        server.shutdown()  // repeated: does nothing
        #expect(idle.readToEnd().closed)
        #expect(throws: ProxyError.self) { _ = try AdminTestClient.request(port: port, "/healthz") }
    }
}
