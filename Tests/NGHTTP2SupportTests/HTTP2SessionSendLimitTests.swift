import NGHTTP2Support
import Testing

/// `maxSendHeaderBlockBytes` (`nghttp2_option_set_max_send_header_block_length`) and what a session reports when a
/// header block it was given can't be sent.
@Suite("HTTP2Session: header blocks over the send limit")
struct HTTP2SessionSendLimitTests {
    /// One field of `count` bytes of value.
    static func big(_ count: Int) -> [HeaderField] { [HeaderField("x-big", String(repeating: "b", count: count))] }

    /// A server that takes header lists of a few MiB in many CONTINUATION frames.
    static var roomyServer: HTTP2SessionSettings {
        var settings = HTTP2SessionSettings()
        settings.maxHeaderListBytes = 4 << 20
        settings.maxContinuations = 1_000
        return settings
    }

    @Test("A request block over the send limit is not sent: headersNotSent, then the stream closes REFUSED_STREAM")
    func requestOverLimit() throws {
        var client = HTTP2SessionSettings()
        client.maxSendHeaderBlockBytes = 1_024
        var pair = try SessionPair(client: client, server: Self.roomyServer)
        try pair.pump()
        let streamID = try pair.client.submitRequest(SessionPair.requestHeaders() + Self.big(2_000), endStream: true)
        try pair.pump()
        #expect(
            pair.clientSeen.received == [
                .notSent(streamID, .request, tooLarge: true),
                .closed(streamID, errorCode: HTTP2ErrorCode.refusedStream),
            ]
        )
        #expect(pair.serverSeen.received.isEmpty)
    }

    @Test("nghttp2's default send limit is 64 KiB; raised, a 100 KB request goes out in CONTINUATION frames")
    func raisedLimit() throws {
        // 100 fields of 1,000 bytes: nghttp2 refuses to decode a single field over 64 KiB (a connection error).
        let headers = SessionPair.requestHeaders() + (0..<100).flatMap { _ in Self.big(1_000) }
        var pair = try SessionPair(server: Self.roomyServer)
        let refused = try pair.client.submitRequest(headers, endStream: true)
        try pair.pump()
        #expect(pair.clientSeen.received.first == .notSent(refused, .request, tooLarge: true))

        var client = HTTP2SessionSettings()
        client.maxSendHeaderBlockBytes = 200_000
        pair = try SessionPair(client: client, server: Self.roomyServer)
        let streamID = try pair.client.submitRequest(headers, endStream: true)
        try pair.pump()
        #expect(
            pair.serverSeen.received.first == .headers(streamID, .request, headers, endStream: true, oversized: false)
        )
    }

    @Test("Response headers over the send limit: headersNotSent, the body queue dropped, then a trailers-only response")
    func responseOverLimit() throws {
        var server = Self.roomyServer
        server.maxSendHeaderBlockBytes = 1_024
        var pair = try SessionPair(server: server)
        let streamID = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: true)
        try pair.pump()
        try pair.server.submitResponse(
            streamID: streamID,
            SessionPair.responseHeaders + Self.big(2_000),
            endStream: false
        )
        pair.server.enqueueData(streamID: streamID, [1, 2, 3])
        pair.server.finishBody(streamID: streamID, trailers: [HeaderField("grpc-status", "0")])
        try pair.pump()
        #expect(pair.serverSeen.suffix(2) == [.consumed(streamID, 3), .notSent(streamID, .response, tooLarge: true)])
        #expect(pair.server.queuedBytes(streamID: streamID) == 0)
        #expect(!pair.clientSeen.received.contains { if case .headers = $0 { true } else { false } })

        let status = SessionPair.responseHeaders + [HeaderField("grpc-status", "8")]
        try pair.server.submitResponse(streamID: streamID, status, endStream: true)
        try pair.pump()
        #expect(
            pair.clientSeen.received == [
                .headers(streamID, .response, status, endStream: true, oversized: false),
                .closed(streamID, errorCode: HTTP2ErrorCode.noError),
            ]
        )
    }

    @Test("Trailers over the send limit: headersNotSent after the body, then other trailers end the stream")
    func trailersOverLimit() throws {
        var server = Self.roomyServer
        server.maxSendHeaderBlockBytes = 1_024
        var pair = try SessionPair(server: server)
        let streamID = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: true)
        try pair.pump()
        try pair.server.submitResponse(streamID: streamID, SessionPair.responseHeaders, endStream: false)
        pair.server.enqueueData(streamID: streamID, [1, 2, 3])
        pair.server.finishBody(streamID: streamID, trailers: [HeaderField("grpc-status", "0")] + Self.big(2_000))
        try pair.pump()
        #expect(pair.serverSeen.last == .notSent(streamID, .trailers, tooLarge: true))
        #expect(
            pair.clientSeen.received == [
                .headers(streamID, .response, SessionPair.responseHeaders, endStream: false, oversized: false),
                .data(streamID, [1, 2, 3]),
            ]
        )

        let trailers = [HeaderField("grpc-status", "8")]
        try pair.server.submitTrailers(streamID: streamID, trailers)
        try pair.pump()
        #expect(
            pair.clientSeen.received.suffix(2) == [
                .headers(streamID, .trailers, trailers, endStream: true, oversized: false),
                .closed(streamID, errorCode: HTTP2ErrorCode.noError),
            ]
        )
    }

    @Test("submitTrailers on a stream that is gone throws STREAM_CLOSED")
    func trailersOnClosedStream() throws {
        let server = try HTTP2Session(role: .server)
        #expect(throws: NGHTTP2Error.self) { try server.submitTrailers(streamID: 1, [HeaderField("grpc-status", "0")]) }
    }
}
