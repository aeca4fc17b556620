import Glibc
import GuardPolicy
import NGHTTP2Support
import OpenSSLSupport
import ProtoWire
import Testing

@testable import ProxyCore

/// Identity and policy wired into the loops: who may call what, what the refusals say, and that a refused
/// call never reaches the upstream.
@Suite("Identity and policy in the proxy", .serialized, .timeLimit(.minutes(2)))
struct PolicyEnforcementTests {
    static let milvus = "/milvus.proto.milvus.MilvusService/"

    /// `app` (password `app-secret`) writes default.books; `reader` reads default.*; the API key
    /// `ingest-token` writes default.books too.
    static func policyYAML(appPassword: String = "app-secret") throws -> String {
        """
        users:
          app: { password: "\(try Self.hash(appPassword))", roles: [writer] }
          reader: { password: "\(try Self.hash("reader-secret"))", roles: [reader] }
        api_keys:
          ingest: { sha256: "\(Self.hex(Crypto.sha256(Array("ingest-token".utf8))))", roles: [writer] }
        roles:
          writer:
            - allow: [read, write]
              on: ["default.books"]
          reader:
            - allow: [read]
              on: ["default.*"]
        """
    }

    /// A PBKDF2 string at the loader's minimum iteration count (fast tests).
    static func hash(_ password: String) throws -> String {
        let salt = try Crypto.randomBytes(count: 16)
        let hash = try Crypto.pbkdf2SHA256(password: Array(password.utf8), salt: salt, iterations: 1_000, length: 32)
        return PasswordHash(iterations: 1_000, salt: salt, hash: hash).encoded
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }

    static func token(_ text: String) -> HeaderField {
        HeaderField("authorization", Self.base64(Array(text.utf8)))
    }

    static func base64(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        var out = ""
        var index = 0
        while index < bytes.count {
            let chunk = Array(bytes[index..<min(index + 3, bytes.count)])
            let value = chunk.enumerated().reduce(0) { $0 | Int($1.element) << (16 - 8 * $1.offset) }
            for position in 0..<4 {
                out.append(position <= chunk.count ? alphabet[(value >> (18 - 6 * position)) & 63] : "=")
            }
            index += 3
        }
        return out
    }

    /// A request naming `collection` (field 3) in database `db` (field 2): valid for HasCollection,
    /// DropCollection and the like.
    static func body(collection: String, db: String = "default") -> [UInt8] {
        TestClient.rawGRPCFrame(
            [0x12, UInt8(db.utf8.count)] + Array(db.utf8) + [0x1A, UInt8(collection.utf8.count)]
                + Array(collection.utf8)
        )
    }

    struct Setup {
        let upstream: TestUpstream
        let proxy: RunningProxy
        let client: TestClient

        func call(_ rpc: String, _ collection: String = "books", auth: HeaderField?) throws -> StreamResult {
            try self.client.call(
                TestClient.grpcRequest(path: PolicyEnforcementTests.milvus + rpc, metadata: auth.map { [$0] } ?? []),
                body: PolicyEnforcementTests.body(collection: collection)
            )
        }
    }

    func setUp(
        policy: ActivePolicy? = nil,
        authorization: String? = nil,
        configure: (inout Limits) -> Void = { _ in }
    ) throws -> Setup {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(
            upstream: .tcp(host: "127.0.0.1", port: upstream.port),
            policy: try policy ?? .fromYAML(Self.policyYAML()),
            authorization: authorization,
            configure: configure
        )
        return Setup(upstream: upstream, proxy: proxy, client: try TestClient(port: proxy.port))
    }

    @Test("A user may do what its role allows, and nothing else; refusals never reach the upstream")
    func allowAndDeny() throws {
        let setup = try self.setUp()
        let app = Self.token("app:app-secret")
        #expect(try setup.call("HasCollection", auth: app).grpcStatus == "0")
        #expect(try setup.call("Connect", auth: app).grpcStatus == "0")  // a session RPC, no rule needed

        let drop = try setup.call("DropCollection", auth: app)
        #expect(drop.grpcStatus == "7")
        #expect(
            drop.grpcMessage == "milvus-guard: app may not DropCollection on default.books (no rule allows it)"
        )
        let other = try setup.call("HasCollection", "movies", auth: app)
        #expect(other.grpcStatus == "7")
        #expect(other.grpcMessage?.contains("app may not HasCollection on default.movies") == true)

        let reader = Self.token("reader:reader-secret")
        #expect(try setup.call("HasCollection", "movies", auth: reader).grpcStatus == "0")
        #expect(try setup.call("DropCollection", auth: reader).grpcStatus == "7")
        #expect(setup.proxy.stop())
        let paths = setup.upstream.record.value.requests.compactMap { $0.first { $0.name == ":path" }?.value }
        #expect(paths.map { String($0.dropFirst(Self.milvus.count)) } == ["HasCollection", "Connect", "HasCollection"])
    }

    /// A policy with one user, `slow` (password `s`), whose PBKDF2 takes `iterations`, allowed `allow` on `on`.
    static func slowUserPolicy(iterations: Int, allow: String, on target: String) throws -> ActivePolicy {
        let salt = try Crypto.randomBytes(count: 16)
        let derived = try Crypto.pbkdf2SHA256(password: Array("s".utf8), salt: salt, iterations: iterations, length: 32)
        return try .fromYAML(
            """
            users:
              slow: { password: "\(PasswordHash(iterations: iterations, salt: salt, hash: derived).encoded)", roles: [r] }
            roles:
              r:
                - allow: \(allow)
                  on: ["\(target)"]
            """
        )
    }

    @Test("One address may have 64 password checks queued: more are refused, and its checks wait their turns")
    func passwordChecksPerAddress() throws {
        // Costly enough that the checks are still queued when the last guesses arrive.
        let setup = try self.setUp(policy: try Self.slowUserPolicy(iterations: 50_000, allow: "[read]", on: "*"))
        var streams: [Int32] = []
        for guess in 0..<70 {
            let auth = Self.token("slow:guess-\(guess)")
            streams.append(
                try setup.client.start(
                    TestClient.grpcRequest(path: Self.milvus + "HasCollection", metadata: [auth]),
                    body: Self.body(collection: "books")
                )
            )
        }
        try setup.client.run(timeoutMilliseconds: 60_000) { client in
            streams.allSatisfy { client.streams[$0]?.closedWith != nil }
        }
        let results = streams.compactMap { setup.client.streams[$0] }
        let refused = results.filter { $0.grpcStatus == "8" }
        #expect(!refused.isEmpty)
        #expect(
            refused.allSatisfy {
                $0.grpcMessage?.hasPrefix("milvus-guard: too many password checks in progress from 127.0.0.1's network")
                    == true
            }
        )
        #expect(results.filter { $0.grpcStatus == "16" }.count >= 64)
        #expect(results.count == 70)
        // The 64 failures then shut the address out for the minute (auth_failures_per_minute), the right password too.
        let after = try setup.call("HasCollection", auth: Self.token("slow:s"))
        #expect(after.grpcMessage?.hasPrefix("milvus-guard: too many failed authentications from 127.0.0.1") == true)
        #expect(setup.proxy.stop())
    }

    @Test(
        "A caller without a credential, or whose credential failed, can't make the guard hold over 64 KiB of a request"
    )
    func unprovenCallersHoldLittle() throws {
        let setup = try self.setUp()
        // An Insert whose prefix declares 1 MiB; 100 KiB of it is sent, and the body then ends.
        let declared = 1 << 20
        let prefix: [UInt8] = [
            0, UInt8(declared >> 24), UInt8((declared >> 16) & 0xFF), UInt8((declared >> 8) & 0xFF), 0,
        ]
        let chunk = prefix + [UInt8](repeating: 0x41, count: 100 * 1024)
        for auth in [nil, Self.token("app:wrong")] {
            let streamID = try setup.client.start(
                TestClient.grpcRequest(path: Self.milvus + "Insert", metadata: auth.map { [$0] } ?? []),
                chunks: [chunk]
            )
            try setup.client.run { $0.streams[streamID]?.closedWith != nil }
            let result = try #require(setup.client.streams[streamID])
            #expect(result.grpcStatus == "16")
            #expect(
                result.grpcMessage?.contains(auth == nil ? "over 64 KiB" : "wrong user name or password for \"app\"")
                    == true,
                "\(result.grpcMessage ?? "-")"
            )
        }
        // The same from the right user is held whole, decoded, and refused for what it is: a message cut short.
        let whole = try setup.client.start(
            TestClient.grpcRequest(path: Self.milvus + "Insert", metadata: [Self.token("app:app-secret")]),
            chunks: [chunk]
        )
        try setup.client.run { $0.streams[whole]?.closedWith != nil }
        #expect(setup.client.streams[whole]?.grpcStatus == "3")
        #expect(setup.proxy.stop())
        #expect(setup.upstream.record.value.requests.isEmpty)
    }

    @Test(
        "Callers not proven yet share a quarter of held_bytes_total, a network a sixteenth of it; proven ones the rest"
    )
    func unprovenCallersShareABudget() throws {
        // 4 MiB held in all; 1 MiB of it for unproven callers, 64 KiB for those of one network.
        let setup = try self.setUp { $0.heldBytesTotal = 4 << 20 }
        let declared = 1 << 20
        let prefix: [UInt8] = [
            0, UInt8(declared >> 24), UInt8((declared >> 16) & 0xFF), UInt8((declared >> 8) & 0xFF), 0,
        ]
        // Two requests without a credential that never end, 40 KiB each: the second is over the network's 64 KiB.
        var unproven: [Int32] = []
        for _ in 0..<2 {
            let streamID = try setup.client.open(TestClient.grpcRequest(path: Self.milvus + "Insert"))
            setup.client.session.enqueueData(streamID: streamID, prefix + [UInt8](repeating: 0x41, count: 40 << 10))
            unproven.append(streamID)
            try setup.client.run { $0.session.queuedBytes(streamID: streamID) == 0 }
        }
        try setup.client.run { $0.streams[unproven[1]]?.grpcStatus != nil }
        #expect(setup.client.streams[unproven[1]]?.grpcStatus == "16")
        #expect(setup.client.streams[unproven[0]]?.grpcStatus == nil)  // still held, within its own 64 KiB
        // A proven caller (an API key: known at once) from the same network: a request of 1.5 MiB is held whole
        // meanwhile, and forwarded.
        var message = WireWriter()
        message.writeStringField(2, "default")
        message.writeStringField(3, "books")
        message.writeBytesField(111, [UInt8](repeating: 0x5A, count: 3 << 19))  // a field the decoder skips
        let whole = try TestClient(port: setup.proxy.port).call(
            TestClient.grpcRequest(path: Self.milvus + "HasCollection", metadata: [Self.token("ingest-token")]),
            body: TestClient.rawGRPCFrame(message.bytes)
        )
        #expect(whole.grpcStatus == "0", "\(whole.grpcMessage ?? "-")")
        // The first unproven request is still held, its header list with it; once its connection is gone, every
        // budget is back to 0.
        let headerList = TestClient.grpcRequest(path: Self.milvus + "Insert")
            .reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 32 }
        let metrics = setup.proxy.server.metrics
        #expect(
            metrics.render().contains("milvus_guard_held_bytes{budget=\"unproven\"} \(headerList + 5 + (40 << 10))\n")
        )
        setup.client.socket.close()
        let released = waitFor {
            let text = metrics.render()
            return text.contains("milvus_guard_held_bytes{budget=\"unproven\"} 0\n")
                && text.contains("milvus_guard_held_bytes{budget=\"requests\"} 0\n")
        }
        #expect(released, "\(metrics.render())")
        #expect(setup.proxy.stop())
    }

    @Test("A compressed request from a caller without a credential is refused as such, never inflated")
    func unprovenCompressedIsNotInflated() throws {
        let setup = try self.setUp()
        // Not even gzip: inflating it would fail (INVALID_ARGUMENT); the caller's lack of a credential comes first.
        let body = TestClient.rawGRPCFrame([UInt8](repeating: 0x1F, count: 64))
        var compressed = body
        compressed[0] = 1
        let result = try setup.client.call(
            TestClient.grpcRequest(
                path: Self.milvus + "HasCollection",
                metadata: [HeaderField("grpc-encoding", "gzip")]
            ),
            body: compressed
        )
        #expect(result.grpcStatus == "16")
        #expect(result.grpcMessage?.hasPrefix("milvus-guard: no credentials") == true)
        #expect(setup.proxy.stop())
    }

    @Test("While a password is checked, a request's windows stay shut past 64 KiB, and open once it is known")
    func pendingCallerWaitsForItsIdentity() throws {
        let setup = try self.setUp(
            policy: try Self.slowUserPolicy(iterations: 300_000, allow: "[read, write]", on: "default.books")
        )
        // An Insert of 3 MiB (db_name, collection_name, then an unknown field the decoder skips), in 24 chunks: most
        // of it arrives after the first 64 KiB, while the check runs.
        var message: [UInt8] = [0x12, 7] + Array("default".utf8) + [0x1A, 5] + Array("books".utf8)
        let filler = 3 << 20  // field 111, length-delimited: tag 0xFA 0x06, then the length as a varint
        message += [0xFA, 0x06]
        var length = filler
        while length >= 0x80 {
            message.append(UInt8(length & 0x7F) | 0x80)
            length >>= 7
        }
        message.append(UInt8(length))
        message += [UInt8](repeating: 0x5A, count: filler)
        let body = TestClient.rawGRPCFrame(message)
        let chunks = stride(from: 0, to: body.count, by: 1 << 17).map {
            Array(body[$0..<min($0 + (1 << 17), body.count)])
        }
        let streamID = try setup.client.start(
            TestClient.grpcRequest(path: Self.milvus + "Insert", metadata: [Self.token("slow:s")]),
            chunks: chunks
        )
        try setup.client.run(timeoutMilliseconds: 30_000) { $0.streams[streamID]?.closedWith != nil }
        #expect(setup.client.streams[streamID]?.grpcStatus == "0")
        #expect(setup.client.streams[streamID]?.body == body, "the echo differs")  // the test upstream echoes it
        #expect(setup.proxy.stop())
        #expect(setup.upstream.record.value.bodies.first == body, "the upstream got another body")
    }

    @Test("Wrong password, unknown user, malformed token and no token: UNAUTHENTICATED, never forwarded")
    func unauthenticated() throws {
        let setup = try self.setUp()
        let wrong = try setup.call("HasCollection", auth: Self.token("app:nope"))
        #expect(wrong.grpcStatus == "16")
        #expect(wrong.grpcMessage == "milvus-guard: wrong user name or password for \"app\"")
        let unknown = try setup.call("HasCollection", auth: Self.token("mallory:x"))
        #expect(unknown.grpcStatus == "16")
        #expect(unknown.grpcMessage == "milvus-guard: wrong user name or password for \"mallory\"")
        let badKey = try setup.call("HasCollection", auth: Self.token("not-a-key"))
        #expect(badKey.grpcStatus == "16")
        #expect(badKey.grpcMessage == "milvus-guard: unknown API key")
        let garbage = try setup.call("HasCollection", auth: HeaderField("authorization", "%%%"))
        #expect(garbage.grpcStatus == "16")
        let none = try setup.call("Connect", auth: nil)
        #expect(none.grpcStatus == "16")
        #expect(none.grpcMessage?.hasPrefix("milvus-guard: no credentials") == true)
        #expect(setup.proxy.stop())
        #expect(setup.upstream.record.value.requests.isEmpty)
    }

    @Test("An API key authenticates as its key's name")
    func apiKey() throws {
        let setup = try self.setUp()
        #expect(try setup.call("HasCollection", auth: Self.token("ingest-token")).grpcStatus == "0")
        let drop = try setup.call("DropCollection", auth: Self.token("ingest-token"))
        #expect(drop.grpcMessage == "milvus-guard: ingest may not DropCollection on default.books (no rule allows it)")
    }

    @Test("Calls opened together while a password is verified all get the verdict")
    func concurrentVerification() throws {
        let setup = try self.setUp()
        var streams: [Int32] = []
        for index in 0..<8 {
            let password = index % 2 == 0 ? "app:app-secret" : "app:wrong"
            streams.append(
                try setup.client.start(
                    TestClient.grpcRequest(path: Self.milvus + "HasCollection", metadata: [Self.token(password)]),
                    body: Self.body(collection: "books")
                )
            )
        }
        try setup.client.run { client in streams.allSatisfy { client.streams[$0]?.closedWith != nil } }
        for (index, stream) in streams.enumerated() {
            #expect(setup.client.streams[stream]?.grpcStatus == (index % 2 == 0 ? "0" : "16"))
        }
    }

    @Test("From the limit's next failure on, an address gets RESOURCE_EXHAUSTED, even with the right password")
    func failureLimit() throws {
        let setup = try self.setUp { $0.authFailuresPerWindow = 3 }
        for _ in 0..<3 {
            #expect(try setup.call("HasCollection", auth: Self.token("app:guess")).grpcStatus == "16")
        }
        let blocked = try setup.call("HasCollection", auth: Self.token("app:app-secret"))
        #expect(blocked.grpcStatus == "8")
        #expect(blocked.grpcMessage?.contains("too many failed authentications from 127.0.0.1") == true)
    }

    @Test("A reload puts a changed password in force at once; cached verifications are forgotten")
    func reloadChangesPassword() throws {
        let setup = try self.setUp()
        let old = Self.token("app:app-secret")
        #expect(try setup.call("HasCollection", auth: old).grpcStatus == "0")
        setup.proxy.server.reload(try .fromYAML(Self.policyYAML(appPassword: "new-secret")))
        // The reload reaches the loop through its mailbox: the next call may still race it.
        var status: String?
        for _ in 0..<100 {
            status = try setup.call("HasCollection", auth: old).grpcStatus
            if status == "16" { break }
            usleep(10_000)
        }
        #expect(status == "16")
        #expect(try setup.call("HasCollection", auth: Self.token("app:new-secret")).grpcStatus == "0")
    }

    @Test("A stream opened before a reload and completed after it is judged under the reloaded policy")
    func streamAcrossAReload() throws {
        let setup = try self.setUp()
        let old = Self.token("app:app-secret")
        #expect(try setup.call("HasCollection", auth: old).grpcStatus == "0")
        // Headers now (identified as app), the body after the reload that changed app's password.
        let headers = TestClient.grpcRequest(path: Self.milvus + "HasCollection", metadata: [old])
        let streamID = try setup.client.open(headers)
        try setup.client.run { $0.session.queuedBytes(streamID: streamID) == 0 }
        usleep(50_000)
        setup.proxy.server.reload(try .fromYAML(Self.policyYAML(appPassword: "new-secret")))
        var settled = false
        for _ in 0..<100 where !settled {
            settled = try setup.call("HasCollection", auth: Self.token("app:new-secret")).grpcStatus == "0"
            if !settled { usleep(10_000) }
        }
        #expect(settled)
        setup.client.session.enqueueData(streamID: streamID, Self.body(collection: "books"))
        setup.client.session.finishBody(streamID: streamID)
        try setup.client.run { $0.streams[streamID]?.closedWith != nil }
        let result = try #require(setup.client.streams[streamID])
        #expect(result.grpcStatus == "16", "\(result)")
        // Only the calls that passed reached the upstream: the first, and the one with the new password.
        #expect(setup.proxy.stop())
        #expect(setup.upstream.record.value.requests.count == 2)
    }

    @Test("Shadow mode forwards what the policy denies; authentication is still required")
    func shadowMode() throws {
        let setup = try self.setUp(policy: .fromYAML(Self.policyYAML(), mode: .shadow))
        #expect(try setup.call("DropCollection", auth: Self.token("app:app-secret")).grpcStatus == "0")
        #expect(try setup.call("DropCollection", auth: Self.token("app:wrong")).grpcStatus == "16")
        #expect(setup.proxy.stop())
        #expect(setup.upstream.record.value.requests.count == 1)
    }

    @Test("With upstream credentials, the guard's authorization replaces the client's")
    func upstreamCredential() throws {
        let setup = try self.setUp(authorization: "Z3VhcmQ6czNjcmV0")
        #expect(try setup.call("HasCollection", auth: Self.token("app:app-secret")).grpcStatus == "0")
        #expect(setup.proxy.stop())
        let headers = setup.upstream.record.value.requests.first ?? []
        #expect(headers.filter { $0.name == "authorization" }.map(\.value) == ["Z3VhcmQ6czNjcmV0"])
    }

    @Test("Anonymous calls pass only where a policy grants the anonymous principal something")
    func anonymous() throws {
        let yaml = """
            users:
              anonymous: { roles: [health] }
            roles:
              health:
                - allow: [CheckHealth, HasCollection]
                  on: ["*"]
            """
        let setup = try self.setUp(policy: .fromYAML(yaml))
        #expect(try setup.call("HasCollection", auth: nil).grpcStatus == "0")
        let drop = try setup.call("DropCollection", auth: nil)
        #expect(drop.grpcStatus == "16")
        #expect(drop.grpcMessage?.contains("anonymous may not DropCollection on default.books") == true)
    }
}

@Suite("TLS client certificates name users")
struct TLSIdentityTests {
    static func user(_ name: String, _ subject: String) -> User {
        User(name: name, password: nil, tlsSubject: subject, roles: [], definedAt: RuleID(file: "t.yaml", line: 1))
    }

    @Test("CN=, the whole subject and subject alternative names match; other names do not")
    func matching() {
        let users = [
            "svc": Self.user("svc", "CN=svc"),
            "full": Self.user("full", "CN=other,O=Example"),
            "spiffe": Self.user("spiffe", "URI:spiffe://example.org/job"),
            "dns": Self.user("dns", "job.example.org"),
        ]
        func dns(_ value: String) -> SubjectAlternativeName { SubjectAlternativeName(kind: .dns, value: value) }
        func uri(_ value: String) -> SubjectAlternativeName { SubjectAlternativeName(kind: .uri, value: value) }
        #expect(TLSIdentity.user(subject: "CN=svc,O=Example", alternativeNames: [], in: users)?.name == "svc")
        #expect(TLSIdentity.user(subject: "CN=other,O=Example", alternativeNames: [], in: users)?.name == "full")
        #expect(
            TLSIdentity.user(subject: "CN=x", alternativeNames: [uri("spiffe://example.org/job")], in: users)?.name
                == "spiffe"
        )
        #expect(TLSIdentity.user(subject: nil, alternativeNames: [dns("job.example.org")], in: users)?.name == "dns")
        #expect(TLSIdentity.user(subject: nil, alternativeNames: [dns("JOB.Example.org")], in: users)?.name == "dns")
        #expect(TLSIdentity.user(subject: "CN=svc2", alternativeNames: [dns("svc")], in: users) == nil)
        #expect(TLSIdentity.user(subject: "CN=sv\\,c", alternativeNames: [], in: users) == nil)
        #expect(TLSSubjectPattern.commonName(of: "O=a\\,b,CN=x") == "x")
        #expect(ClientConnection.host(of: "127.0.0.1:5000") == "127.0.0.1")
        #expect(ClientConnection.host(of: "[::1]:5000") == "::1")
        #expect(ClientConnection.host(of: "unix") == "unix")
    }

    @Test("A SAN names only a tls_subject of its own type, and CN= or a whole subject never matches a SAN")
    func typesAreCompared() {
        let users = [
            "svc": Self.user("svc", "DNS:svc.example.com"),
            "spiffe": Self.user("spiffe", "URI:spiffe://example.org/admin"),
            "boss": Self.user("boss", "CN=boss,O=Corp"),
            "indexer": Self.user("indexer", "CN=indexer"),
            "mail": Self.user("mail", "ops@example.com"),
            "escaped": Self.user("escaped", "CN=a\\,b"),
        ]
        func named(_ subject: String?, _ names: [SubjectAlternativeName]) -> String? {
            TLSIdentity.user(subject: subject, alternativeNames: names, in: users)?.name
        }
        // The certificates of a red-team run, each of which was taken for the user on the right.
        #expect(named("CN=x", [SubjectAlternativeName(kind: .email, value: "svc.example.com")]) == nil)
        #expect(named("CN=x", [SubjectAlternativeName(kind: .dns, value: "spiffe://example.org/admin")]) == nil)
        #expect(named("O=Evil", [SubjectAlternativeName(kind: .uri, value: "CN=boss,O=Corp")]) == nil)
        #expect(named("O=Example", [SubjectAlternativeName(kind: .dns, value: "CN=indexer")]) == nil)
        // The same names with their own types still match.
        #expect(named("CN=x", [SubjectAlternativeName(kind: .dns, value: "svc.example.com")]) == "svc")
        #expect(named("CN=x", [SubjectAlternativeName(kind: .uri, value: "spiffe://example.org/admin")]) == "spiffe")
        #expect(named("CN=boss,O=Corp", []) == "boss")
        #expect(named("CN=indexer,O=Example", []) == "indexer")
        #expect(named("CN=x", [SubjectAlternativeName(kind: .email, value: "ops@example.com")]) == "mail")
        #expect(named("CN=x", [SubjectAlternativeName(kind: .dns, value: "ops@example.com")]) == nil)
        // CN= compares the unescaped common name; an escaped comma is part of it.
        #expect(named("CN=a\\,b,O=Example", []) == "escaped")
        #expect(named("CN=a,O=b", []) == nil)
        // A control byte, which OpenSSL prints as \XX, is not the two digits: CN=indexer\01 names nobody.
        #expect(named("CN=indexer\\01", []) == nil)
        #expect(TLSSubjectPattern.commonName(of: "CN=svc\\00,O=x") == nil)
    }

    @Test("Names compare byte for byte, and a certificate two users' tls_subject match names neither")
    func bytesAndAmbiguity() {
        let composed = "Jos\u{E9}"
        let decomposed = "Jose\u{301}"
        let users = [
            "jose": Self.user("jose", "CN=\(composed)"),
            "web": Self.user("web", "CN=svc.example.com"),
            "admin": Self.user("admin", "DNS:svc.example.com"),
        ]
        #expect(TLSIdentity.user(subject: "CN=\(composed)", alternativeNames: [], in: users)?.name == "jose")
        #expect(TLSIdentity.user(subject: "CN=\(decomposed)", alternativeNames: [], in: users) == nil)
        let both = TLSIdentity.user(
            subject: "CN=svc.example.com",
            alternativeNames: [SubjectAlternativeName(kind: .dns, value: "svc.example.com")],
            in: users
        )
        #expect(both == nil)
        let sanOnly = TLSIdentity.user(
            subject: "CN=other",
            alternativeNames: [SubjectAlternativeName(kind: .dns, value: "svc.example.com")],
            in: users
        )
        #expect(sanOnly?.name == "admin")
        // What the refusal of such a certificate's calls says.
        let san = [SubjectAlternativeName(kind: .dns, value: "svc.example.com")]
        let ambiguous = TLSIdentity.match(subject: "CN=svc.example.com", alternativeNames: san, in: users)
        #expect(ambiguous == .ambiguous(["admin", "web"]))
        let note = TLSIdentity.note(ambiguous, subject: "CN=svc.example.com", alternativeNames: san)
        // The client learns that, not who: the users' names go to the log only.
        #expect(
            note?.client
                == "the client certificate (CN=svc.example.com, DNS:svc.example.com) names several users of the "
                + "policy, so none"
        )
        #expect(note?.logged.hasSuffix("so none: admin, web") == true)
        // No certificate at all (TLS without client certificates): nothing to say about one.
        #expect(TLSIdentity.note(.nobody, subject: nil, alternativeNames: []) == nil)
        let nobody = TLSIdentity.match(subject: "CN=nobody", alternativeNames: [], in: users)
        #expect(
            TLSIdentity.note(nobody, subject: "CN=nobody", alternativeNames: [])?.client
                == "the client certificate (CN=nobody) names no user of the policy"
        )
    }
}

@Suite("Metadata the guard and Milvus must read alike", .serialized, .timeLimit(.minutes(1)))
struct RepeatedMetadataTests {
    @Test(
        "A repeated dbname or authorization is refused with INVALID_ARGUMENT and never forwarded",
        arguments: ["dbname", "authorization"]
    )
    func repeated(name: String) throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port))
        let client = try TestClient(port: proxy.port)
        let value = name == "dbname" ? "default" : "cm9vdDpNaWx2dXM="
        let result = try client.call(
            TestClient.grpcRequest(
                path: PolicyEnforcementTests.milvus + "HasCollection",
                metadata: [HeaderField(name, name == "dbname" ? "prod" : value), HeaderField(name, value)]
            ),
            body: PolicyEnforcementTests.body(collection: "books")
        )
        #expect(result.grpcStatus == "3")
        #expect(result.grpcMessage == "milvus-guard: the \(name) metadata appears more than once")
        #expect(proxy.stop())
        #expect(upstream.record.value.requests.isEmpty)
    }
}
