import Testing

@testable import ProxyCore

@Suite("Admin: AdminResponse")
struct AdminResponseTests {
    @Test("A response serializes to an exact HTTP/1.1 message; HEAD keeps the length and drops the body")
    func serialization() {
        let response = AdminResponse.text(401, "no\n", fields: [AdminRouter.challenge])
        let expectedHead =
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n"
            + "Cache-Control: no-store\r\nWWW-Authenticate: Basic realm=\"milvus-guard\"\r\nConnection: close\r\n\r\n"
        #expect(String(decoding: response.serialized(), as: UTF8.self) == expectedHead + "no\n")
        #expect(String(decoding: response.serialized(includeBody: false), as: UTF8.self) == expectedHead)
    }

    @Test("JSON strings escape quotes, backslashes and control characters")
    func jsonStrings() {
        #expect(AdminResponse.jsonString("plain") == "\"plain\"")
        #expect(AdminResponse.jsonString("a\"b\\c\nd\te\u{1}é") == "\"a\\\"b\\\\c\\nd\\te\\u0001é\"")
        #expect(AdminResponse.error(503, "store \"down\"").body == Array("{\"error\":\"store \\\"down\\\"\"}".utf8))
    }

    @Test("Parser failures map to 400, 405 with Allow, and 431")
    func failureResponses() {
        let router = AdminRouter(backend: TestAdminBackend(), metrics: ProxyMetrics(loopCount: 1))
        #expect(router.respond(to: .malformed("x")).status == 400)
        #expect(router.respond(to: .bodyNotAccepted).status == 400)
        #expect(router.respond(to: .headTooLarge).status == 431)
        let notAllowed = router.respond(to: .methodNotAllowed("POST"))
        #expect(notAllowed.status == 405)
        #expect(notAllowed.fields == [AdminResponse.Field("Allow", "GET, HEAD")])
    }

    @Test("The router reports who was served, or why the credentials were refused, for the log")
    func logDetail() {
        let router = AdminRouter(backend: TestAdminBackend(), metrics: ProxyMetrics(loopCount: 1))
        func request(_ path: String, _ authorization: String?) -> AdminRequest {
            AdminRequest(
                method: .get,
                path: path,
                query: [:],
                headers: authorization.map { ["authorization": $0] } ?? [:]
            )
        }
        #expect(router.respond(to: request("/healthz", nil), client: "127.0.0.1").principal == "-")
        #expect(
            router.respond(to: request("/readyz", TestAdminBackend.admin), client: "127.0.0.1").principal == "admin"
        )
        #expect(router.respond(to: request("/readyz", nil), client: "127.0.0.1").principal == "refused: no credentials")
        #expect(
            router.respond(to: request("/readyz", TestAdminBackend.app), client: "127.0.0.1").principal
                == "refused: app's roles do not allow admin"
        )
    }
}
