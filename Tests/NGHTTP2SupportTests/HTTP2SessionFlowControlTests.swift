import NGHTTP2Support
import Testing

@Suite("HTTP2Session: flow control without automatic window updates")
struct HTTP2SessionFlowControlTests {
    static let window = 65_535

    static func smallWindows() -> HTTP2SessionSettings {
        var settings = HTTP2SessionSettings()
        settings.streamWindowBytes = UInt32(Self.window)
        settings.connectionWindowBytes = UInt32(Self.window)
        return settings
    }

    static func payload(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 5) } }

    @Test("A server that never consumes stops receiving after one window; consuming lets the rest flow")
    func stallsUntilConsumed() throws {
        var pair = try SessionPair(server: Self.smallWindows())
        let body = Self.payload(200_000)
        let streamID = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: false)
        pair.client.enqueueData(streamID: streamID, body)
        pair.client.finishBody(streamID: streamID)
        try pair.pump()

        #expect(pair.serverSeen.body(of: streamID).count == Self.window)
        #expect(pair.client.queuedBytes(streamID: streamID) == body.count - Self.window)
        #expect(!pair.serverSeen.contains(.endStream(streamID)))

        // Pumping again changes nothing: the client is blocked by the window.
        try pair.pump()
        #expect(pair.serverSeen.body(of: streamID).count == Self.window)
        #expect(pair.client.queuedBytes(streamID: streamID) > 0)

        var consumed = 0
        for _ in 0..<100 where !pair.serverSeen.contains(.endStream(streamID)) {
            let received = pair.serverSeen.body(of: streamID).count
            pair.server.consume(streamID: streamID, count: received - consumed)
            consumed = received
            try pair.pump()
        }
        #expect(pair.serverSeen.body(of: streamID) == body)
        #expect(pair.serverSeen.contains(.endStream(streamID)))
        #expect(pair.client.queuedBytes(streamID: streamID) == 0)

        // outboundConsumed reports framed bytes: no chunk above the default frame size, summing to the body.
        let chunks = pair.clientSeen.compactMap { event -> Int? in
            if case .consumed(streamID, let count) = event { count } else { nil }
        }
        #expect(chunks.allSatisfy { $0 > 0 && $0 <= 16_384 })
        #expect(chunks.reduce(0, +) == body.count)
    }

    @Test("The server's stream window from SETTINGS lets a large body through in one pump when consumed at once")
    func largeWindow() throws {
        var pair = try SessionPair()
        try pair.pump()
        let body = Self.payload(300_000)
        let streamID = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: false)
        pair.client.enqueueData(streamID: streamID, body)
        pair.client.finishBody(streamID: streamID)
        try pair.pump()
        // 1 MiB stream window and 16 MiB connection window: nothing blocks.
        #expect(pair.serverSeen.body(of: streamID) == body)
        #expect(pair.clientSeen.consumedBytes(of: streamID) == body.count)
    }

    @Test("Bytes still queued when a stream is reset are reported as consumed")
    func resetReportsQueuedBytes() throws {
        var pair = try SessionPair(server: Self.smallWindows())
        let body = Self.payload(100_000)
        let streamID = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: false)
        pair.client.enqueueData(streamID: streamID, body)
        try pair.pump()
        let left = pair.client.queuedBytes(streamID: streamID)
        #expect(left == body.count - Self.window)

        pair.clientSeen = []
        pair.client.resetStream(streamID, errorCode: HTTP2ErrorCode.cancel)
        try pair.pump()
        #expect(pair.clientSeen == [.consumed(streamID, left), .closed(streamID, errorCode: HTTP2ErrorCode.cancel)])
        #expect(pair.client.queuedBytes(streamID: streamID) == 0)
    }

    @Test("consume on a closed stream still reopens the connection window")
    func consumeAfterClose() throws {
        var pair = try SessionPair(server: Self.smallWindows())
        let first = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: false)
        pair.client.enqueueData(streamID: first, Self.payload(Self.window))
        try pair.pump()
        #expect(pair.serverSeen.body(of: first).count == Self.window)
        pair.client.resetStream(first, errorCode: HTTP2ErrorCode.cancel)
        try pair.pump()
        #expect(pair.serverSeen.last == .closed(first, errorCode: HTTP2ErrorCode.cancel))

        // The connection window is used up by the first stream: the second gets nothing.
        let second = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: false)
        pair.client.enqueueData(streamID: second, Self.payload(1000))
        pair.client.finishBody(streamID: second)
        try pair.pump()
        #expect(pair.serverSeen.body(of: second).isEmpty)
        #expect(pair.client.queuedBytes(streamID: second) == 1000)

        pair.server.consume(streamID: first, count: Self.window)
        try pair.pump()
        #expect(pair.serverSeen.body(of: second).count == 1000)
        #expect(pair.serverSeen.contains(.endStream(second)))
    }

    @Test("Response bytes are bounded by the client's window the same way")
    func responseStallsUntilClientConsumes() throws {
        var pair = try SessionPair(client: Self.smallWindows())
        let streamID = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: true)
        try pair.pump()
        let body = Self.payload(100_000)
        try pair.server.submitResponse(streamID: streamID, SessionPair.responseHeaders, endStream: false)
        pair.server.enqueueData(streamID: streamID, body)
        pair.server.finishBody(streamID: streamID, trailers: [HeaderField("grpc-status", "0")])
        try pair.pump()
        #expect(pair.clientSeen.body(of: streamID).count == Self.window)
        #expect(pair.server.queuedBytes(streamID: streamID) == body.count - Self.window)

        pair.client.consume(streamID: streamID, count: Self.window)
        try pair.pump()
        #expect(pair.clientSeen.body(of: streamID) == body)
        #expect(pair.clientSeen.last == .closed(streamID, errorCode: 0))
    }
}
