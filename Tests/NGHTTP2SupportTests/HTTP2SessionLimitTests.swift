import NGHTTP2Support
import Testing

@Suite("HTTP2Session: limits and hostile input")
struct HTTP2SessionLimitTests {
    /// RFC 9113 §6.5.2: the size of a header list is name + value + 32 per field.
    static func listSize(_ fields: [HeaderField]) -> Int {
        fields.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 32 }
    }

    @Test(
        "A request over maxHeaderListBytes arrives at once with oversized: true and the fields before the limit; the stream is reset"
    )
    func oversizedHeaders() throws {
        var settings = HTTP2SessionSettings()
        settings.maxHeaderListBytes = 1024
        var pair = try SessionPair(server: settings)
        try pair.pump()
        let headers = SessionPair.requestHeaders() + [HeaderField("x-big", String(repeating: "a", count: 2000))]
        let streamID = try pair.client.submitRequest(headers, endStream: true)
        try pair.pump()
        #expect(
            pair.serverSeen.received == [
                .headers(streamID, .request, SessionPair.requestHeaders(), endStream: false, oversized: true),
                .closed(streamID, errorCode: HTTP2ErrorCode.enhanceYourCalm),
            ]
        )
    }

    @Test("An HPACK bomb (one large header referenced again and again) stops at the limit: the rest is not passed on")
    func hpackBomb() throws {
        var settings = HTTP2SessionSettings()
        settings.maxHeaderListBytes = 65_536
        let server = try HTTP2Session(role: .server, settings: settings)
        // A 4,000-byte header put in the HPACK table once, then 10,000 one-byte references to it (index 62, the
        // newest dynamic entry): 10 KB on the wire, 40 MB of fields.
        let fields = SessionPair.requestHeaders()
        let block =
            fields.flatMap { HPACK.literal($0.name, $0.value) } + [0x40] + HPACK.string("x-big")
            + HPACK.string(String(repeating: "b", count: 4_000))
            + [UInt8](repeating: HPACK.indexed(62)[0], count: 10_000)
        let next = fields.flatMap { HPACK.literal($0.name, $0.value) }
        let seen = try feed(
            server,
            HTTP2SessionRawFrameTests.opening + FrameBuilder.headers(stream: 1, block: block, endStream: true)
                + FrameBuilder.headers(stream: 3, block: next, endStream: true),
            cuts: []
        )
        // Its fields up to the limit, at once, and the connection goes on; the stream is reset.
        let big = HeaderField("x-big", String(repeating: "b", count: 4_000))
        let fit = (65_536 - Self.listSize(fields)) / Self.listSize([big])
        #expect(
            seen == [
                .settings,
                .headers(1, .request, fields + Array(repeating: big, count: fit), endStream: false, oversized: true),
                .headers(3, .request, fields, endStream: true, oversized: false),
            ]
        )
        let resets = try HTTP2SessionRawFrameTests.frames(.rstStream, in: server)
        #expect(resets.map(\.stream) == [1])
        #expect(resets.map(\.errorCode) == [HTTP2ErrorCode.enhanceYourCalm])
    }

    @Test("A request exactly at maxHeaderListBytes is not oversized; one byte more is")
    func headerLimitBoundary() throws {
        var settings = HTTP2SessionSettings()
        settings.maxHeaderListBytes = 1024
        let base = SessionPair.requestHeaders()
        let padding = 1024 - Self.listSize(base) - 32 - "x-pad".utf8.count
        for (extra, oversized) in [(0, false), (1, true)] {
            var pair = try SessionPair(server: settings)
            let headers = base + [HeaderField("x-pad", String(repeating: "p", count: padding + extra))]
            #expect(Self.listSize(headers) == 1024 + extra)
            _ = try pair.client.submitRequest(headers, endStream: true)
            try pair.pump()
            guard case .headers(_, _, let fields, _, let seenOversized)? = pair.serverSeen.received.first else {
                Issue.record("no headers for \(extra)")
                continue
            }
            #expect(seenOversized == oversized)
            #expect(fields.count == (oversized ? base.count : base.count + 1))
        }
    }

    @Test("Random bytes instead of the preface make feed throw BAD_CLIENT_MAGIC", arguments: 0..<20)
    func garbagePreface(seed: UInt64) throws {
        var generator = SplitMix64(seed: seed)
        let garbage = (0..<(1 + Int(seed) * 17)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let server = try HTTP2Session(role: .server)
        var events: [HTTP2Event] = []
        let error = #expect(throws: NGHTTP2Error.self) { try server.feed(garbage, into: &events) }
        #expect(error?.code == NGHTTP2Code.badClientMagic)
        #expect(error?.isFatal == true)
        // Feeding a dead session again must not crash either.
        _ = try? server.feed(garbage, into: &events)
    }

    @Test("An HTTP/1.1 request line is not a preface")
    func http1Request() throws {
        let server = try HTTP2Session(role: .server)
        var events: [HTTP2Event] = []
        let error = #expect(throws: NGHTTP2Error.self) {
            try server.feed(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), into: &events)
        }
        #expect(error?.code == NGHTTP2Code.badClientMagic)
    }

    @Test(
        "Random frames after a valid preface end the session (an error or a GOAWAY), never a crash",
        arguments: 0..<40
    )
    func garbageFrames(seed: UInt64) throws {
        var generator = SplitMix64(seed: seed &+ 1000)
        let garbage = (0..<(9 + Int(seed) * 23)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for role in [HTTP2Session.Role.server, .client] {
            let session = try HTTP2Session(role: role)
            var events: [HTTP2Event] = []
            var output: [UInt8] = []
            let input = role == .server ? FrameBuilder.preface + FrameBuilder.settings() + garbage : garbage
            var threw = false
            do { try session.feed(input, into: &events) } catch { threw = true }
            try? session.send(into: &output, limit: .max, events: &events)
            if !threw {
                let goaway = ParsedFrame.parse(output).first { $0.type == FrameBuilder.Kind.goaway.rawValue }
                // Garbage can also happen to be a valid frame the session ignores (an unknown type, a PING):
                // then the session must still be alive and have answered with nothing alarming.
                if let goaway {
                    #expect(goaway.errorCode != 0, "seed \(seed), \(role)")
                    #expect(!session.isActive, "seed \(seed), \(role)")
                }
            }
        }
    }

    @Test("A rapid-reset flood (HEADERS + RST_STREAM, 1100 times) makes the server send GOAWAY")
    func rapidReset() throws {
        var pair = try SessionPair()
        try pair.pump()
        var flood: [UInt8] = []
        for _ in 0..<1100 {
            let id = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: true)
            flood += try pair.clientFlush()
            pair.client.resetStream(id, errorCode: HTTP2ErrorCode.cancel)
            flood += try pair.clientFlush()
        }
        #expect(ParsedFrame.parse(flood).filter { $0.type == FrameBuilder.Kind.rstStream.rawValue }.count == 1100)

        // nghttp2 1.52.0-1+deb12u1 (CVE-2023-44487): past the burst of 1000 resets, the server queues
        // GOAWAY(INTERNAL_ERROR) naming the last stream it received; feed itself does not fail.
        pair.serverSeen = []
        try pair.serverFeed(flood)
        let output = try pair.serverFlush()
        let goaway = try #require(ParsedFrame.parse(output).first { $0.type == FrameBuilder.Kind.goaway.rawValue })
        #expect(goaway.errorCode == HTTP2ErrorCode.internalError)
        try pair.clientFeed(output)
        let seen = pair.clientSeen.compactMap { event -> (Int32, UInt32)? in
            if case .goaway(let last, let code) = event { (last, code) } else { nil }
        }
        // 1001 resets: streams 1, 3, …, 2001; the last one received is named.
        #expect(seen.count == 1)
        #expect(seen.first?.0 == 2001)
        #expect(seen.first?.1 == HTTP2ErrorCode.internalError)
        #expect(!pair.server.isActive)
    }

    @Test("Resets within the burst are tolerated")
    func resetsWithinBurst() throws {
        var pair = try SessionPair()
        try pair.pump()
        for _ in 0..<500 {
            let id = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: true)
            try pair.serverFeed(try pair.clientFlush())
            pair.client.resetStream(id, errorCode: HTTP2ErrorCode.cancel)
        }
        try pair.pump()
        #expect(!pair.clientSeen.contains { if case .goaway = $0 { true } else { false } })
        #expect(pair.server.isActive)
    }

    @Test("A CONTINUATION flood past maxContinuations makes feed throw TOO_MANY_CONTINUATIONS")
    func continuationFlood() throws {
        let server = try HTTP2Session(role: .server)
        var input = FrameBuilder.preface + FrameBuilder.settings()
        input += FrameBuilder.headers(stream: 1, block: HPACK.indexed(3), endStream: true, endHeaders: false)
        for index in 0..<20 {
            input += FrameBuilder.continuation(stream: 1, block: HPACK.literal("x-\(index)", "v"), endHeaders: false)
        }
        var events: [HTTP2Event] = []
        let error = #expect(throws: NGHTTP2Error.self) { try server.feed(input, into: &events) }
        #expect(error?.code == NGHTTP2Code.tooManyContinuations)
        #expect(!events.contains { if case .headers = $0 { true } else { false } })
    }

    @Test("CONTINUATION frames within maxContinuations are accepted")
    func continuationsWithinLimit() throws {
        let server = try HTTP2Session(role: .server)
        let request = SessionPair.requestHeaders()
        let blocks = request.map { HPACK.literal($0.name, $0.value) }
        var input = FrameBuilder.preface + FrameBuilder.settings()
        input += FrameBuilder.headers(stream: 1, block: blocks[0], endStream: true, endHeaders: false)
        for (index, block) in blocks.enumerated().dropFirst() {
            input += FrameBuilder.continuation(stream: 1, block: block, endHeaders: index == blocks.count - 1)
        }
        let seen = try feed(server, input, cuts: [])
        #expect(seen.received == [.headers(1, .request, request, endStream: true, oversized: false)])
    }
}
