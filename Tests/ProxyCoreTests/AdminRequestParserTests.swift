import Testing

@testable import ProxyCore

@Suite("Admin: AdminRequestParser")
struct AdminRequestParserTests {
    static let audit = Array(
        ("GET /audit?user=app&since=1h&collection=docs%20v2&q=a+b%2Bc HTTP/1.1\r\nHost: localhost\r\n"
            + "Authorization: Basic YWRtaW46cw==\r\nX-Trace:  abc \r\n\r\n").utf8
    )

    static func parse(_ text: String) -> AdminRequestParser.OnFeed {
        var parser = AdminRequestParser()
        return parser.feed(Array(text.utf8))
    }

    static func failure(_ text: String) -> AdminRequestParser.Failure? {
        guard case .failure(let failure) = Self.parse(text) else { return nil }
        return failure
    }

    static let expectedAudit = AdminRequest(
        method: .get,
        path: "/audit",
        query: ["user": "app", "since": "1h", "collection": "docs v2", "q": "a b+c"],
        headers: ["host": "localhost", "authorization": "Basic YWRtaW46cw==", "x-trace": "abc"]
    )

    @Test("A GET with a query parses into a path, decoded parameters and lower-cased headers")
    func validRequest() {
        var parser = AdminRequestParser()
        let outcome = parser.feed(Self.audit)
        #expect(outcome == .request(Self.expectedAudit))
        #expect(Self.expectedAudit.authorization == "Basic YWRtaW46cw==")
        // Once finished, the parser keeps answering the same.
        #expect(parser.feed(Array("GET / HTTP/1.1\r\n\r\n".utf8)) == outcome)
    }

    @Test("HEAD, HTTP/1.0 without Host, bare LF line ends, Content-Length 0 and an empty query are accepted")
    func acceptedVariants() {
        #expect(
            Self.parse("HEAD /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
                == .request(AdminRequest(method: .head, path: "/metrics", query: [:], headers: ["host": "x"]))
        )
        #expect(
            Self.parse("GET /healthz HTTP/1.0\n\n")
                == .request(AdminRequest(method: .get, path: "/healthz", query: [:], headers: [:]))
        )
        #expect(
            Self.parse("GET /readyz? HTTP/1.1\r\nHost: x\r\nContent-Length: 000\r\n\r\n")
                == .request(
                    AdminRequest(
                        method: .get,
                        path: "/readyz",
                        query: [:],
                        headers: ["host": "x", "content-length": "000"]
                    )
                )
        )
    }

    @Test("Repeated ordinary headers are joined; a parameter without '=' has an empty value")
    func joinedHeaders() {
        #expect(
            Self.parse("GET /audit?verbose&a=%C3%A9 HTTP/1.1\r\nHost: x\r\nAccept: a\r\naccept: b\r\n\r\n")
                == .request(
                    AdminRequest(
                        method: .get,
                        path: "/audit",
                        query: ["verbose": "", "a": "é"],
                        headers: ["host": "x", "accept": "a, b"]
                    )
                )
        )
    }

    @Test("Methods other than GET and HEAD are 405", arguments: ["POST", "PUT", "DELETE", "OPTIONS", "get", "PATCH"])
    func otherMethods(method: String) {
        let failure = Self.failure("\(method) /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(failure == .methodNotAllowed(method))
        #expect(failure?.status == 405)
    }

    @Test(
        "Malformed requests are 400",
        arguments: [
            "\r\n\r\n",
            "GET\r\n\r\n",
            "GET /  HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
            "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
            "GET / http/1.1\r\nHost: x\r\n\r\n",
            "G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET http://h/metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /metrics#x HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /a%2 HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /a%FF HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /audit?user=a%G0 HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /audit?=x HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /audit?user=a&user=b HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /audit?user=a&us%65r=b HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\nauthorization: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nHost x\r\n\r\n",
            "GET / HTTP/1.1\r\n: x\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\u{0}y\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
            "GET /\u{7F} HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
    )
    func malformed(text: String) {
        let failure = Self.failure(text)
        #expect(failure != nil)
        #expect(failure?.status == 400)
        if case .malformed = failure {} else { Issue.record("expected .malformed, got \(String(describing: failure))") }
    }

    @Test(
        "A request announcing a body is 400",
        arguments: [
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 00100000000000000000000000000\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\ntransfer-encoding: identity\r\n\r\n",
        ]
    )
    func bodies(text: String) {
        #expect(Self.failure(text) == .bodyNotAccepted)
    }

    @Test("A head of exactly the limit is accepted; one byte more is 431, whether fed at once or in pieces")
    func headLimit() {
        let prefix = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: "
        let suffix = "\r\n\r\n"
        let padding = AdminRequestParser.defaultMaxHeadBytes - prefix.utf8.count - suffix.utf8.count
        let exact = Array((prefix + String(repeating: "a", count: padding) + suffix).utf8)
        #expect(exact.count == AdminRequestParser.defaultMaxHeadBytes)
        var parser = AdminRequestParser()
        guard case .request(let request) = parser.feed(exact) else {
            Issue.record("the exact-limit request was refused")
            return
        }
        #expect(request.headers["x-pad"]?.utf8.count == padding)

        let over = Array((prefix + String(repeating: "a", count: padding + 1) + suffix).utf8)
        var whole = AdminRequestParser()
        #expect(whole.feed(over) == .failure(.headTooLarge))
        var pieces = AdminRequestParser()
        var outcome = AdminRequestParser.OnFeed.needMore
        for chunk in stride(from: 0, to: over.count, by: 1000) {
            outcome = pieces.feed(over[chunk..<min(chunk + 1000, over.count)])
            if outcome != .needMore { break }
        }
        #expect(outcome == .failure(.headTooLarge))
        // Endless bytes without a line end are bounded too.
        var endless = AdminRequestParser()
        var last = AdminRequestParser.OnFeed.needMore
        for _ in 0..<100 where last == .needMore { last = endless.feed([UInt8](repeating: 0x41, count: 4096)) }
        #expect(last == .failure(.headTooLarge))
    }

    @Test("Every strict prefix of a request needs more bytes")
    func truncation() {
        for length in 0..<Self.audit.count {
            var parser = AdminRequestParser()
            #expect(parser.feed(Self.audit.prefix(length)) == .needMore, "prefix \(length)")
        }
    }

    @Test("Feeding one byte at a time gives the same request, on the last byte only")
    func oneByteAtATime() {
        var parser = AdminRequestParser()
        for (index, byte) in Self.audit.enumerated() {
            let outcome = parser.feed(CollectionOfOne(byte))
            if index < Self.audit.count - 1 {
                #expect(outcome == .needMore, "byte \(index)")
            } else {
                #expect(outcome == .request(Self.expectedAudit))
            }
        }
    }

    @Test("Splitting a request in two at any point gives the same request")
    func everySplit() {
        for split in 0...Self.audit.count {
            var parser = AdminRequestParser()
            let first = parser.feed(Self.audit[..<split])
            let second = parser.feed(Self.audit[split...])
            #expect(split == Self.audit.count ? first == .request(Self.expectedAudit) : first == .needMore)
            #expect(second == .request(Self.expectedAudit), "split at \(split)")
        }
    }

    @Test("Seeded random bytes and mutated requests never crash, and every outcome is consistent")
    func randomInput() {
        var generator = SeededGenerator(seed: 0x00AD_0114)
        var outcomes = (needMore: 0, request: 0, failure: 0)
        for round in 0..<3_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                let count = Int.random(in: 0...600, using: &generator)
                bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
                // Random bytes rarely contain an empty line; add one so that the head gets parsed.
                if round % 4 == 0 { bytes += Array("\r\n\r\n".utf8) }
            } else {
                bytes = Self.audit
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    let index = Int.random(in: 0..<bytes.count, using: &generator)
                    bytes[index] = UInt8.random(in: 0...255, using: &generator)
                }
            }
            var parser = AdminRequestParser(maxHeadBytes: 512)
            var outcome = AdminRequestParser.OnFeed.needMore
            var offset = 0
            while offset < bytes.count {
                let step = Int.random(in: 1...64, using: &generator)
                outcome = parser.feed(bytes[offset..<min(offset + step, bytes.count)])
                offset += step
            }
            switch outcome {
            case .needMore: outcomes.needMore += 1
            case .request(let request):
                outcomes.request += 1
                #expect(request.path.hasPrefix("/"))
                #expect(request.method == .get || request.method == .head)
            case .failure(let failure):
                outcomes.failure += 1
                #expect([400, 405, 431].contains(failure.status))
            }
        }
        // The corpus exercises all three outcomes, so the checks above are not vacuous.
        #expect(outcomes.needMore > 0)
        #expect(outcomes.request > 0)
        #expect(outcomes.failure > 0)
    }

    @Test("Percent-decoding: escapes, plus as space in queries only, broken escapes refused")
    func percentDecoding() {
        #expect(AdminRequestParser.percentDecoded(Array("a%20b+c".utf8)[...], plusIsSpace: true) == "a b c")
        #expect(AdminRequestParser.percentDecoded(Array("a%20b+c".utf8)[...], plusIsSpace: false) == "a b+c")
        #expect(AdminRequestParser.percentDecoded(Array("%e2%82%AC".utf8)[...], plusIsSpace: false) == "€")
        #expect(AdminRequestParser.percentDecoded(Array("%".utf8)[...], plusIsSpace: false) == nil)
        #expect(AdminRequestParser.percentDecoded(Array("%4".utf8)[...], plusIsSpace: false) == nil)
        #expect(AdminRequestParser.percentDecoded(Array("%C3".utf8)[...], plusIsSpace: false) == nil)
    }
}
