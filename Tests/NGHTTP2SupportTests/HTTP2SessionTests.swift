import NGHTTP2Support
import Testing

@Suite("HTTP2Session: client and server back to back")
struct HTTP2SessionTests {
    let body = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 7) }

    @Test("A request with headers, body and END_STREAM reaches the server as headers, data, endStream")
    func requestReachesServer() throws {
        var pair = try SessionPair()
        let streamID = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: false)
        #expect(streamID == 1)
        #expect(pair.client.enqueueData(streamID: streamID, Array(self.body[..<100])))
        #expect(pair.client.enqueueData(streamID: streamID, Array(self.body[100...])))
        pair.client.finishBody(streamID: streamID)
        try pair.pump()

        #expect(
            Seen.coalesced(pair.serverSeen.received) == [
                .headers(1, .request, SessionPair.requestHeaders(), endStream: false, oversized: false),
                .data(1, self.body),
                .endStream(1),
            ]
        )
        #expect(pair.serverSeen.first == .settings)
        #expect(pair.clientSeen.consumedBytes(of: 1) == self.body.count)
        // The stream is half-closed (local) on the client: ending the body again is refused.
        #expect(!pair.client.enqueueData(streamID: streamID, [1, 2, 3]))
    }

    @Test("A request without a body arrives as one HEADERS with END_STREAM")
    func requestWithoutBody() throws {
        var pair = try SessionPair()
        let streamID = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: true)
        try pair.pump()
        #expect(
            pair.serverSeen.received == [
                .headers(streamID, .request, SessionPair.requestHeaders(), endStream: true, oversized: false)
            ]
        )
        #expect(pair.client.queuedBytes(streamID: streamID) == 0)
    }

    @Test("A response with headers, body and trailers reaches the client; both sides see the stream close")
    func responseWithTrailers() throws {
        var pair = try SessionPair()
        let streamID = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: true)
        try pair.pump()
        pair.clientSeen = []
        pair.serverSeen = []

        let trailers = [HeaderField("grpc-status", "0"), HeaderField("grpc-message", "")]
        try pair.server.submitResponse(streamID: streamID, SessionPair.responseHeaders, endStream: false)
        #expect(pair.server.enqueueData(streamID: streamID, self.body))
        pair.server.finishBody(streamID: streamID, trailers: trailers)
        try pair.pump()

        #expect(
            Seen.coalesced(pair.clientSeen) == [
                .headers(1, .response, SessionPair.responseHeaders, endStream: false, oversized: false),
                .data(1, self.body),
                .headers(1, .trailers, trailers, endStream: true, oversized: false),
                .closed(1, errorCode: 0),
            ]
        )
        #expect(pair.serverSeen == [.consumed(1, self.body.count), .closed(1, errorCode: 0)])
    }

    @Test("A response ended without trailers ends with END_STREAM on the last DATA frame")
    func responseWithoutTrailers() throws {
        var pair = try SessionPair()
        let streamID = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: true)
        try pair.pump()
        pair.clientSeen = []
        try pair.server.submitResponse(streamID: streamID, SessionPair.responseHeaders, endStream: false)
        pair.server.enqueueData(streamID: streamID, self.body)
        pair.server.finishBody(streamID: streamID)
        try pair.pump()
        #expect(
            Seen.coalesced(pair.clientSeen) == [
                .headers(1, .response, SessionPair.responseHeaders, endStream: false, oversized: false),
                .data(1, self.body),
                .endStream(1),
                .closed(1, errorCode: 0),
            ]
        )
    }

    @Test("A body that arrives later is sent once it is queued (the provider defers, then resumes)")
    func deferredBody() throws {
        var pair = try SessionPair()
        let streamID = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: false)
        try pair.pump()
        #expect(pair.serverSeen.received.count == 1)
        #expect(!pair.client.wantsWrite)
        pair.client.enqueueData(streamID: streamID, [1, 2, 3])
        #expect(pair.client.wantsWrite)
        try pair.pump()
        pair.client.enqueueData(streamID: streamID, [4, 5])
        pair.client.finishBody(streamID: streamID)
        try pair.pump()
        #expect(
            pair.serverSeen.received.dropFirst().map { $0 } == [.data(1, [1, 2, 3]), .data(1, [4, 5]), .endStream(1)]
        )
    }

    @Test("A trailers-only response is one HEADERS block with END_STREAM")
    func trailersOnly() throws {
        var pair = try SessionPair()
        let streamID = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: true)
        try pair.pump()
        pair.clientSeen = []
        let fields = [
            HeaderField(":status", "200"),
            HeaderField("content-type", "application/grpc"),
            HeaderField("grpc-status", "7"),
            HeaderField("grpc-message", "milvus-guard: denied"),
        ]
        try pair.server.submitResponse(streamID: streamID, fields, endStream: true)
        try pair.pump()
        #expect(
            pair.clientSeen == [
                .headers(1, .response, fields, endStream: true, oversized: false), .closed(1, errorCode: 0),
            ]
        )
    }

    @Test("RST_STREAM from the client closes the stream on the server with its error code")
    func clientReset() throws {
        var pair = try SessionPair()
        let streamID = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: false)
        pair.client.enqueueData(streamID: streamID, [1, 2, 3])
        try pair.pump()
        pair.client.resetStream(streamID, errorCode: HTTP2ErrorCode.cancel)
        try pair.pump()
        #expect(pair.serverSeen.last == .closed(1, errorCode: HTTP2ErrorCode.cancel))
        #expect(pair.clientSeen.last == .closed(1, errorCode: HTTP2ErrorCode.cancel))
        #expect(!pair.client.enqueueData(streamID: streamID, [4]))
    }

    @Test("Answering a stream the peer already reset throws, as documented, and keeps no body queue for it")
    func respondAfterReset() throws {
        var pair = try SessionPair()
        let streamID = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: false)
        try pair.pump()
        pair.client.resetStream(streamID, errorCode: HTTP2ErrorCode.cancel)
        try pair.pump()
        #expect(pair.serverSeen.last == .closed(streamID, errorCode: HTTP2ErrorCode.cancel))
        // nghttp2_submit_response does not check that the stream exists (it drops the frame at send
        // time); the wrapper must, or a body queue would be left behind that no close ever removes.
        #expect(throws: NGHTTP2Error.self) {
            try pair.server.submitResponse(streamID: streamID, SessionPair.responseHeaders, endStream: false)
        }
        #expect(!pair.server.enqueueData(streamID: streamID, [1, 2, 3]))
        #expect(pair.server.queuedBytes(streamID: streamID) == 0)
        try pair.pump()
        #expect(!pair.clientSeen.contains { if case .headers = $0 { true } else { false } })
    }

    @Test("A stream reset with body bytes still queued leaves nothing behind for the next stream's body")
    func bodyQueueReusedAfterReset() throws {
        var pair = try SessionPair()
        let first = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: false)
        try pair.pump()
        // Queued but never framed: the stream is reset before the next flush.
        pair.client.enqueueData(streamID: first, [9, 9, 9])
        pair.client.finishBody(streamID: first)
        pair.client.resetStream(first, errorCode: HTTP2ErrorCode.cancel)
        try pair.pump()
        #expect(pair.clientSeen.contains(.consumed(first, 3)))

        pair.serverSeen = []
        let second = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: false)
        #expect(pair.client.queuedBytes(streamID: second) == 0)
        #expect(pair.client.enqueueData(streamID: second, self.body))
        pair.client.finishBody(streamID: second)
        try pair.pump()
        #expect(pair.serverSeen.body(of: second) == self.body)
        #expect(pair.serverSeen.received.last == .endStream(second))
    }

    @Test("Bodies queued in many small chunks arrive whole, stream after stream")
    func manySmallChunks() throws {
        var pair = try SessionPair()
        for _ in 0..<3 {
            let streamID = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: false)
            for byte in self.body { #expect(pair.client.enqueueData(streamID: streamID, [byte])) }
            pair.client.finishBody(streamID: streamID)
            try pair.pump()
            #expect(pair.serverSeen.body(of: streamID) == self.body)
            #expect(pair.clientSeen.consumedBytes(of: streamID) == self.body.count)
            // Closing the stream hands its body queue back to the session for the next stream.
            try pair.server.submitResponse(streamID: streamID, SessionPair.responseHeaders, endStream: true)
            try pair.pump()
            #expect(pair.clientSeen.last == .closed(streamID, errorCode: 0))
        }
    }

    @Test("Bodies in chunks that straddle DATA frames arrive byte for byte on two streams; a send stops past its limit")
    func chunksStraddleFrames() throws {
        var pair = try SessionPair()
        try pair.pump()
        let bodies = (0..<2).map { n in (0..<40_000).map { UInt8(truncatingIfNeeded: $0 &* (n + 3) &+ n) } }
        var streams: [Int32] = []
        for body in bodies {
            let streamID = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: false)
            streams.append(streamID)
            for start in stride(from: 0, to: body.count, by: 7_001) {
                #expect(pair.client.enqueueData(streamID: streamID, body[start..<min(start + 7_001, body.count)]))
            }
            pair.client.finishBody(streamID: streamID)
        }
        // A limit far below one frame: whatever each call wrote must still end where the peer can read on.
        var calls = 0
        while calls < 10_000 {
            var output: [UInt8] = []
            var events: [HTTP2Event] = []
            try pair.client.send(into: &output, limit: 100, events: &events)
            pair.clientSeen += events.map(Seen.init)
            if output.isEmpty { break }
            // At most one frame (a 9-byte header and 16 KiB of payload) beyond the limit.
            #expect(output.count < 100 + 9 + 16_384)
            try pair.serverFeed(output)
            calls += 1
        }
        #expect(calls > 4)
        for (streamID, body) in zip(streams, bodies) {
            #expect(pair.serverSeen.body(of: streamID) == body)
            #expect(pair.serverSeen.contains(.endStream(streamID)))
            #expect(pair.clientSeen.consumedBytes(of: streamID) == body.count)
        }
    }

    @Test("Long metadata repeated across requests, or changed to another value of the same length, arrives as sent")
    func repeatedMetadata() throws {
        var pair = try SessionPair()
        let values = [
            ("grpc-python/1.66.1 grpc-c/43.0.0", "Basic cm9vdDpNaWx2dXM="),
            ("grpc-python/1.66.1 grpc-c/43.0.0", "Basic cm9vdDpNaWx2dXM="),
            ("grpc-python/1.66.2 grpc-c/43.0.0", "Basic cm9vdDpNaWx2dXN="),
            ("grpc-python/1.66.1 grpc-c/43.0.0", "Basic cm9vdDpNaWx2dXM="),
        ]
        var expected: [Seen] = []
        for (agent, authorization) in values {
            let headers =
                SessionPair.requestHeaders() + [
                    HeaderField("user-agent", agent), HeaderField("authorization", authorization),
                    HeaderField("x-custom-metadata-name", "x"),
                ]
            let streamID = try pair.client.submitRequest(headers, endStream: true)
            expected.append(.headers(streamID, .request, headers, endStream: true, oversized: false))
        }
        try pair.pump()
        #expect(pair.serverSeen.received == expected)
    }

    @Test("RST_STREAM from the server closes the stream on the client with its error code")
    func serverReset() throws {
        var pair = try SessionPair()
        let streamID = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: false)
        try pair.pump()
        pair.server.resetStream(streamID, errorCode: HTTP2ErrorCode.refusedStream)
        try pair.pump()
        #expect(pair.clientSeen.last == .closed(1, errorCode: HTTP2ErrorCode.refusedStream))
        #expect(pair.serverSeen.last == .closed(1, errorCode: HTTP2ErrorCode.refusedStream))
    }

    @Test("GOAWAY reaches the client with the last processed stream and the error code")
    func goaway() throws {
        var pair = try SessionPair()
        _ = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: true)
        try pair.pump()
        pair.server.submitGoaway(errorCode: HTTP2ErrorCode.enhanceYourCalm)
        try pair.pump()
        #expect(pair.clientSeen.last == .goaway(lastStreamID: 1, errorCode: HTTP2ErrorCode.enhanceYourCalm))
        // A client that received GOAWAY opens no new streams: nghttp2 accepts the submit and closes the
        // stream with REFUSED_STREAM when it would send it (after saying the HEADERS were not sent, not for being
        // too large); the server never sees it.
        pair.clientSeen = []
        let refused = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: true)
        try pair.pump()
        #expect(
            pair.clientSeen == [
                .notSent(refused, .request, tooLarge: false), .closed(refused, errorCode: HTTP2ErrorCode.refusedStream),
            ]
        )
        #expect(!pair.serverSeen.contains { if case .headers(refused, _, _, _, _) = $0 { true } else { false } })
    }

    @Test("The shutdown notice is a GOAWAY naming the highest stream ID; streams in flight still complete")
    func shutdownNotice() throws {
        var pair = try SessionPair()
        let streamID = try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: true)
        try pair.pump()
        pair.server.submitShutdownNotice()
        try pair.pump()
        #expect(pair.clientSeen.last == .goaway(lastStreamID: Int32.max, errorCode: 0))
        try pair.server.submitResponse(streamID: streamID, SessionPair.responseHeaders, endStream: true)
        try pair.pump()
        #expect(pair.clientSeen.last == .closed(1, errorCode: 0))
    }

    @Test("The client learns the server's SETTINGS_MAX_CONCURRENT_STREAMS and keeps within it")
    func remoteSettings() throws {
        var serverSettings = HTTP2SessionSettings()
        serverSettings.maxConcurrentStreams = 2
        var pair = try SessionPair(server: serverSettings)
        #expect(pair.client.remoteMaxConcurrentStreams == 100)
        try pair.pump()
        #expect(pair.clientSeen.contains(.settings))
        #expect(pair.client.remoteMaxConcurrentStreams == 2)

        let ids = try (0..<3).map { _ in try pair.client.submitRequest(SessionPair.requestHeaders(), endStream: true) }
        #expect(ids == [1, 3, 5])
        try pair.pump()
        let opened = pair.serverSeen.compactMap { event -> Int32? in
            if case .headers(let id, .request, _, _, _) = event { id } else { nil }
        }
        #expect(opened == [1, 3])
        try pair.server.submitResponse(streamID: 1, SessionPair.responseHeaders, endStream: true)
        try pair.pump()
        #expect(pair.serverSeen.contains { if case .headers(5, .request, _, _, _) = $0 { true } else { false } })
    }

    @Test("isActive turns false once both sides said GOAWAY and nothing is left to send")
    func isActiveAfterGoaway() throws {
        var pair = try SessionPair()
        try pair.pump()
        #expect(pair.server.isActive)
        pair.server.submitGoaway(errorCode: HTTP2ErrorCode.noError)
        try pair.pump()
        #expect(!pair.server.isActive)
    }
}
