import NGHTTP2Support
import Testing

/// The sessions against bytes built by hand, not produced by nghttp2.
@Suite("HTTP2Session: hand-made frames")
struct HTTP2SessionRawFrameTests {
    static let opening = FrameBuilder.preface + FrameBuilder.settings()

    /// Frames of one type in a session's output.
    static func frames(_ type: FrameBuilder.Kind, in session: HTTP2Session) throws -> [ParsedFrame] {
        var output: [UInt8] = []
        var events: [HTTP2Event] = []
        try session.send(into: &output, limit: .max, events: &events)
        return ParsedFrame.parse(output).filter { $0.type == type.rawValue }
    }

    @Test("HEADERS with literal HPACK fields and END_STREAM is a request without a body")
    func literalHeaders() throws {
        let server = try HTTP2Session(role: .server)
        let fields = SessionPair.requestHeaders() + [HeaderField("x-milvus-db", "default")]
        let block = fields.flatMap { HPACK.literal($0.name, $0.value) }
        let seen = try feed(
            server,
            Self.opening + FrameBuilder.headers(stream: 1, block: block, endStream: true),
            cuts: []
        )
        #expect(seen == [.settings, .headers(1, .request, fields, endStream: true, oversized: false)])
    }

    @Test("Static-table indexes and indexed names decode to the fields they stand for")
    func indexedHeaders() throws {
        let server = try HTTP2Session(role: .server)
        // RFC 7541 Appendix A: 3 = :method POST, 6 = :scheme http, 1 = :authority, 4 = :path /,
        // 31 = content-type (name only).
        let block =
            HPACK.indexed(3) + HPACK.indexed(6) + HPACK.literal(nameIndex: 1, "milvus:19530")
            + HPACK.literal(nameIndex: 4, "/milvus.proto.milvus.MilvusService/Query")
            + HPACK.literal(nameIndex: 31, "application/grpc") + HPACK.literal("te", "trailers")
        let seen = try feed(
            server,
            Self.opening + FrameBuilder.headers(stream: 1, block: block, endStream: false),
            cuts: []
        )
        #expect(
            seen.received == [
                .headers(
                    1,
                    .request,
                    [
                        HeaderField(":method", "POST"), HeaderField(":scheme", "http"),
                        HeaderField(":authority", "milvus:19530"),
                        HeaderField(":path", "/milvus.proto.milvus.MilvusService/Query"),
                        HeaderField("content-type", "application/grpc"), HeaderField("te", "trailers"),
                    ],
                    endStream: false,
                    oversized: false
                )
            ]
        )
    }

    @Test("A long header value uses a multi-byte HPACK length and still decodes")
    func longLiteral() throws {
        let server = try HTTP2Session(role: .server)
        let long = String(repeating: "z", count: 1000)
        let fields = SessionPair.requestHeaders() + [HeaderField("authorization", long)]
        let block = fields.flatMap { HPACK.literal($0.name, $0.value) }
        let seen = try feed(
            server,
            Self.opening + FrameBuilder.headers(stream: 1, block: block, endStream: true),
            cuts: []
        )
        #expect(seen.received == [.headers(1, .request, fields, endStream: true, oversized: false)])
    }

    @Test("DATA frames, one of them padded, deliver only their payload, then endStream")
    func dataFrames() throws {
        let server = try HTTP2Session(role: .server)
        let block = SessionPair.requestHeaders().flatMap { HPACK.literal($0.name, $0.value) }
        let grpcMessage: [UInt8] = [0, 0, 0, 0, 3, 0x0A, 0x01, 0x61]
        let input =
            Self.opening + FrameBuilder.headers(stream: 1, block: block, endStream: false)
            + FrameBuilder.data(stream: 1, Array(grpcMessage[..<5]), endStream: false)
            + FrameBuilder.data(stream: 1, Array(grpcMessage[5...]), endStream: true, padding: 10)
        let seen = try feed(server, input, cuts: [])
        #expect(
            seen.received.dropFirst().map { $0 } == [
                .data(1, Array(grpcMessage[..<5])), .data(1, Array(grpcMessage[5...])), .endStream(1),
            ]
        )
    }

    @Test("An upper-case header name is refused with RST_STREAM(PROTOCOL_ERROR) and never reported")
    func upperCaseName() throws {
        let server = try HTTP2Session(role: .server)
        let block =
            SessionPair.requestHeaders().flatMap { HPACK.literal($0.name, $0.value) }
            + HPACK.literal("X-Upper", "1")
        let seen = try feed(
            server,
            Self.opening + FrameBuilder.headers(stream: 1, block: block, endStream: true),
            cuts: []
        )
        #expect(!seen.contains { if case .headers = $0 { true } else { false } })
        let resets = try Self.frames(.rstStream, in: server)
        #expect(resets.map(\.stream) == [1])
        #expect(resets.first?.errorCode == HTTP2ErrorCode.protocolError)
    }

    @Test("A request without :path is refused with RST_STREAM(PROTOCOL_ERROR)")
    func missingPath() throws {
        let server = try HTTP2Session(role: .server)
        let block = SessionPair.requestHeaders().filter { $0.name != ":path" }.flatMap {
            HPACK.literal($0.name, $0.value)
        }
        let seen = try feed(
            server,
            Self.opening + FrameBuilder.headers(stream: 1, block: block, endStream: true),
            cuts: []
        )
        #expect(!seen.contains { if case .headers = $0 { true } else { false } })
        #expect(try Self.frames(.rstStream, in: server).first?.errorCode == HTTP2ErrorCode.protocolError)
    }

    @Test("DATA on stream 0 is a connection error: GOAWAY(PROTOCOL_ERROR)")
    func dataOnStreamZero() throws {
        let server = try HTTP2Session(role: .server)
        var events: [HTTP2Event] = []
        do {
            try server.feed(Self.opening + FrameBuilder.data(stream: 0, [1, 2, 3], endStream: false), into: &events)
        } catch {
            #expect(error.isFatal)
            return
        }
        let goaway = try #require(try Self.frames(.goaway, in: server).first)
        #expect(goaway.errorCode == HTTP2ErrorCode.protocolError)
        #expect(!server.isActive)
    }

    @Test("DATA beyond the advertised window is a FLOW_CONTROL_ERROR")
    func windowOverrun() throws {
        var settings = HTTP2SessionSettings()
        settings.streamWindowBytes = 65_535
        settings.connectionWindowBytes = 65_535
        let server = try HTTP2Session(role: .server, settings: settings)
        let block = SessionPair.requestHeaders().flatMap { HPACK.literal($0.name, $0.value) }
        var input = Self.opening + FrameBuilder.headers(stream: 1, block: block, endStream: false)
        for _ in 0..<5 {  // 5 × 16 000 = 80 000 bytes against a 65 535-byte window
            input += FrameBuilder.data(stream: 1, [UInt8](repeating: 7, count: 16_000), endStream: false)
        }
        var events: [HTTP2Event] = []
        do { try server.feed(input, into: &events) } catch { return }
        let errors = try Self.frames(.goaway, in: server).compactMap(\.errorCode)
        #expect(errors == [HTTP2ErrorCode.flowControlError])
        let received = events.reduce(0) { sum, event in
            if case .data(_, let bytes) = event { sum + bytes.count } else { sum }
        }
        #expect(received <= 65_535)
    }

    @Test("A hand-made SETTINGS frame sets the client's view of the server's stream limit")
    func clientReadsSettings() throws {
        let client = try HTTP2Session(role: .client)
        let seen = try feed(client, FrameBuilder.settings([(0x3, 7), (0x4, 1 << 20)]), cuts: [])
        #expect(seen == [.settings])
        #expect(client.remoteMaxConcurrentStreams == 7)
        // The client acknowledges it.
        let acks = try Self.frames(.settings, in: client).filter { $0.flags & FrameBuilder.Flag.ack != 0 }
        #expect(acks.count == 1)
    }

    @Test("A hand-made response and trailers reach the client as response and trailers")
    func clientReadsResponse() throws {
        let client = try HTTP2Session(role: .client)
        let streamID = try client.submitRequest(SessionPair.requestHeaders(), endStream: true)
        _ = try Self.frames(.headers, in: client)
        let input =
            FrameBuilder.settings()
            + FrameBuilder.headers(
                stream: streamID,
                block: HPACK.indexed(8) + HPACK.literal("content-type", "application/grpc"),
                endStream: false
            )
            + FrameBuilder.data(stream: streamID, [0, 0, 0, 0, 0], endStream: false)
            + FrameBuilder.headers(stream: streamID, block: HPACK.literal("grpc-status", "0"), endStream: true)
        let seen = try feed(client, input, cuts: [])
        #expect(
            seen == [
                .settings,
                .headers(streamID, .response, SessionPair.responseHeaders, endStream: false, oversized: false),
                .data(streamID, [0, 0, 0, 0, 0]),
                .headers(streamID, .trailers, [HeaderField("grpc-status", "0")], endStream: true, oversized: false),
                .closed(streamID, errorCode: 0),
            ]
        )
    }

    @Test("A hand-made GOAWAY reaches the client")
    func clientReadsGoaway() throws {
        let client = try HTTP2Session(role: .client)
        let seen = try feed(
            client,
            FrameBuilder.settings() + FrameBuilder.goaway(lastStreamID: 0, errorCode: HTTP2ErrorCode.enhanceYourCalm),
            cuts: []
        )
        #expect(seen == [.settings, .goaway(lastStreamID: 0, errorCode: HTTP2ErrorCode.enhanceYourCalm)])
    }

    @Test("HEADERS and RST_STREAM in one read: the request is reported, then its close; an answer goes nowhere")
    func rawReset() throws {
        let server = try HTTP2Session(role: .server)
        let block = SessionPair.requestHeaders().flatMap { HPACK.literal($0.name, $0.value) }
        let input =
            Self.opening + FrameBuilder.headers(stream: 1, block: block, endStream: false)
            + FrameBuilder.rstStream(stream: 1, errorCode: HTTP2ErrorCode.cancel)
        let seen = try feed(server, input, cuts: [])
        #expect(
            seen.received == [
                .headers(1, .request, SessionPair.requestHeaders(), endStream: false, oversized: false),
                .closed(1, errorCode: HTTP2ErrorCode.cancel),
            ]
        )
        // This is the order a proxy handles them in: it answers the request (e.g. a 415 refusal with a
        // body) after the stream is already gone. The answer must not leave a body queue behind.
        try? server.submitResponse(streamID: 1, SessionPair.responseHeaders, endStream: false)
        #expect(!server.enqueueData(streamID: 1, Array("refused".utf8)))
        #expect(try Self.frames(.headers, in: server).isEmpty)
    }
}
