import Glibc
import NGHTTP2Support
import Testing

@testable import ProxyCore

/// The whole proxy in-process: a ``ProxyServer`` on a loopback port in front of ``TestUpstream``, driven by
/// ``TestClient``. Every wait is bounded; the suite runs serially to keep the shared CPUs calm.
@Suite("ProxyServer in front of an in-test upstream", .serialized, .timeLimit(.minutes(2)))
struct ProxyServerTests {
    static let payload = (0..<1_000).map { UInt8(truncatingIfNeeded: $0 &* 29 &+ 3) }

    @Test("A gRPC-framed request body is echoed, ending with trailers grpc-status 0")
    func echo() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port))
        let client = try TestClient(port: proxy.port)
        let body = TestClient.grpcFrame(Self.payload)
        let result = try client.call(TestClient.grpcRequest(), body: body)
        #expect(result.httpStatus == "200")
        #expect(result.headers?.contains(HeaderField("content-type", "application/grpc")) == true)
        #expect(result.body == body)
        #expect(result.trailers == [HeaderField("grpc-status", "0")])
        #expect(result.closedWith == 0)
        #expect(upstream.record.value.bodies == [body])
        #expect(proxy.stop())
    }

    @Test(
        "The longest grpc-timeout values are deadlines that never come, not a crash",
        arguments: ["99999999H", "99999999M", "5124096H"]
    )
    func longestTimeout(value: String) throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port))
        let client = try TestClient(port: proxy.port)
        let body = TestClient.grpcFrame(Self.payload)
        let result = try client.call(TestClient.grpcRequest(metadata: [HeaderField("grpc-timeout", value)]), body: body)
        #expect(result.trailers == [HeaderField("grpc-status", "0")])
        #expect(proxy.stop())
    }

    @Test("A 3 MiB body passes through the windows both ways")
    func largeEcho() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port))
        let client = try TestClient(port: proxy.port)
        let body = TestClient.grpcFrame((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 >> 3) })
        let result = try client.call(TestClient.grpcRequest(), body: body, timeoutMilliseconds: 20_000)
        #expect(result.body.count == body.count)
        // Compared outside #expect: on a mismatch, Swift Testing would describe and diff two 3 MiB arrays,
        // which takes far longer than any test may run.
        let identical = result.body == body
        #expect(identical, "the echoed body differs from the request body")
        #expect(result.grpcStatus == "0")
        #expect(proxy.stop())
    }

    @Test("The upstream sees hop-by-hop headers removed and metadata kept")
    func headersForwarded() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port))
        let client = try TestClient(port: proxy.port)
        let metadata = [
            HeaderField("host", "client.example"),
            HeaderField("authorization", "cm9vdDpNaWx2dXM="),
            HeaderField("dbname", "default"),
            HeaderField("x-request-id", "abc-123"),
            HeaderField("grpc-timeout", "5S"),
        ]
        let result = try client.call(TestClient.grpcRequest(metadata: metadata), body: TestClient.grpcFrame([]))
        #expect(result.grpcStatus == "0")
        let seen = try #require(upstream.record.value.requests.first)
        #expect(!seen.contains { $0.name == "host" })
        for field in metadata.dropFirst() { #expect(seen.contains(field), "\(field.name) was dropped") }
        #expect(seen.contains(HeaderField("te", "trailers")))
        #expect(seen.contains(HeaderField(":path", "/milvus.proto.milvus.MilvusService/Search")))
        #expect(seen.contains(HeaderField(":scheme", "http")))
        #expect(seen.contains(HeaderField(":authority", "localhost")))
        #expect(proxy.stop())
    }

    @Test("A connection-specific header is a malformed request: the stream is reset and never forwarded")
    func connectionHeaderRefused() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port))
        let client = try TestClient(port: proxy.port)
        let result = try client.call(
            TestClient.grpcRequest(metadata: [HeaderField("connection", "keep-alive")]),
            body: TestClient.grpcFrame([])
        )
        #expect(result.closedWith == HTTP2ErrorCode.protocolError)
        #expect(upstream.record.value.requests.isEmpty)
        #expect(proxy.stop())
    }

    @Test(
        "With the upstream advertising MAX_CONCURRENT_STREAMS 2, six concurrent calls complete within the limit",
        arguments: [1, 8]
    )
    func streamLimit(maxConnectionsPerLoop: Int) throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 50), maxConcurrentStreams: 2)
        let proxy = try RunningProxy(
            upstream: .tcp(host: "127.0.0.1", port: upstream.port),
            maxConnectionsPerLoop: maxConnectionsPerLoop
        )
        let client = try TestClient(port: proxy.port)
        let ids = try (0..<6).map { index in
            try client.start(TestClient.grpcRequest(), body: TestClient.grpcFrame([UInt8(index)]))
        }
        try client.run(timeoutMilliseconds: 10_000) { client in
            ids.allSatisfy { client.streams[$0]?.closedWith != nil }
        }
        let record = upstream.record.value
        #expect(record.maxOpenPerConnection <= 2)
        if maxConnectionsPerLoop == 1 { #expect(record.maxOpenStreams <= 2) }
        // Calls that arrive before the upstream's SETTINGS wait for them, then open within its limit.
        for (index, id) in ids.enumerated() {
            let result = client.streams[id]
            #expect(result?.grpcStatus == "0", "call \(index): \(result?.grpcMessage ?? "no message")")
            #expect(result?.body == TestClient.grpcFrame([UInt8(index)]))
        }
        #expect(proxy.stop())
    }

    @Test("Streams are opened within the limit once the upstream's SETTINGS are known (calls arriving later)")
    func streamLimitAfterSettings() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 50), maxConcurrentStreams: 2)
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port), maxConnectionsPerLoop: 1)
        let client = try TestClient(port: proxy.port)
        // A first call opens the upstream connection and lets its SETTINGS arrive.
        #expect(try client.call(TestClient.grpcRequest(), body: TestClient.grpcFrame([9])).grpcStatus == "0")
        let ids = try (0..<6).map { index in
            try client.start(TestClient.grpcRequest(), body: TestClient.grpcFrame([UInt8(index)]))
        }
        try client.run(timeoutMilliseconds: 10_000) { client in
            ids.allSatisfy { client.streams[$0]?.closedWith != nil }
        }
        for id in ids { #expect(client.streams[id]?.grpcStatus == "0") }
        #expect(upstream.record.value.maxOpenStreams <= 2)
        #expect(upstream.record.value.connections == 1)
        #expect(proxy.stop())
    }

    @Test("An unreachable upstream gives a trailers-only grpc-status 14 naming the guard")
    func upstreamUnreachable() throws {
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: try closedPort()))
        let client = try TestClient(port: proxy.port)
        let result = try client.call(TestClient.grpcRequest(), body: TestClient.grpcFrame(Self.payload))
        #expect(result.httpStatus == "200")
        #expect(result.trailers == nil)
        #expect(result.ended)
        #expect(result.grpcStatus == "14")
        #expect(result.grpcMessage?.hasPrefix("milvus-guard:") == true)
        #expect(result.headers?.contains(HeaderField("content-type", "application/grpc")) == true)
        // The next call tries again and fails the same way: the proxy itself stays up.
        #expect(try client.call(TestClient.grpcRequest(), body: TestClient.grpcFrame([])).grpcStatus == "14")
        #expect(proxy.stop())
    }

    @Test("An HTTP/2 request with content-type application/json gets :status 415")
    func jsonRefused() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port))
        let client = try TestClient(port: proxy.port)
        var headers = TestClient.grpcRequest(path: "/v2/vectordb/collections/list")
        headers[4] = HeaderField("content-type", "application/json")
        let result = try client.call(headers, body: Array("{}".utf8))
        #expect(result.httpStatus == "415")
        #expect(String(decoding: result.body, as: UTF8.self).hasPrefix("milvus-guard:"))
        #expect(upstream.record.value.requests.isEmpty)
        #expect(proxy.stop())
    }

    @Test("An HTTP/2 GET gets :status 405")
    func getRefused() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port))
        let client = try TestClient(port: proxy.port)
        var headers = TestClient.grpcRequest()
        headers[0] = HeaderField(":method", "GET")
        let result = try client.call(headers, body: nil)
        #expect(result.httpStatus == "405")
        #expect(upstream.record.value.requests.isEmpty)
        #expect(proxy.stop())
    }

    /// Whether a new connection gets a call through within about 2 seconds (a closed client's place is given back
    /// when the guard notices the close).
    private static func servedByNewConnection(port: UInt16) -> Bool {
        for _ in 0..<100 {
            usleep(20_000)
            guard let client = try? TestClient(port: port),
                let result = try? client.call(
                    TestClient.grpcRequest(),
                    body: TestClient.grpcFrame(Self.payload),
                    timeoutMilliseconds: 500
                )
            else { continue }
            if result.grpcStatus == "0" { return true }
        }
        return false
    }

    @Test("Beyond limits.client_connections new connections are closed at once, and a freed place is reused")
    func clientConnectionLimit() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port)) {
            $0.clientConnections = 2
        }
        let first = try TestClient(port: proxy.port)
        let second = try TestClient(port: proxy.port)
        #expect(try first.call(TestClient.grpcRequest(), body: TestClient.grpcFrame(Self.payload)).grpcStatus == "0")
        #expect(try second.call(TestClient.grpcRequest(), body: TestClient.grpcFrame(Self.payload)).grpcStatus == "0")
        // The third is accepted and closed before a byte of HTTP/2: it reads end of file.
        #expect(try rawExchange(port: proxy.port, []).isEmpty)
        first.socket.close()
        #expect(Self.servedByNewConnection(port: proxy.port))
        #expect(proxy.stop())
    }

    @Test("Beyond limits.connections_per_client from one address new connections are closed; a freed place is reused")
    func perAddressConnectionLimit() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port)) {
            $0.connectionsPerClient = 1
        }
        let first = try TestClient(port: proxy.port)
        #expect(try first.call(TestClient.grpcRequest(), body: TestClient.grpcFrame(Self.payload)).grpcStatus == "0")
        // The second from 127.0.0.1 is accepted and closed before a byte of HTTP/2, though the process has room.
        #expect(try rawExchange(port: proxy.port, []).isEmpty)
        first.socket.close()
        #expect(Self.servedByNewConnection(port: proxy.port))
        #expect(proxy.stop())
    }

    @Test("Beyond limits.new_connections_per_minute from one address new connections are closed; open ones go on")
    func newConnectionRateLimit() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port)) {
            $0.newConnectionsPerWindow = 2
        }
        let first = try TestClient(port: proxy.port)
        #expect(try first.call(TestClient.grpcRequest(), body: TestClient.grpcFrame(Self.payload)).grpcStatus == "0")
        let second = try TestClient(port: proxy.port)
        #expect(try second.call(TestClient.grpcRequest(), body: TestClient.grpcFrame(Self.payload)).grpcStatus == "0")
        second.socket.close()
        // The third from 127.0.0.1 in the minute is accepted and closed before a byte of HTTP/2, though the address
        // has one connection open and room for 999 more.
        #expect(try rawExchange(port: proxy.port, []).isEmpty)
        #expect(try first.call(TestClient.grpcRequest(), body: TestClient.grpcFrame(Self.payload)).grpcStatus == "0")
        #expect(upstream.record.value.requests.count == 3)
        #expect(proxy.stop())
    }

    @Test("Request header lists count against the held-bytes budget until their call ends")
    func headerBytesHeld() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port)) {
            $0.heldBytesPerConnection = 65_536
        }
        let client = try TestClient(port: proxy.port)
        // About 25 KB of headers each (as HPACK lets a few hundred bytes on the wire stand for): two fit, a third
        // does not, while the first two wait for bodies that never come.
        let padding = (0..<25).map { HeaderField("x-pad-\($0)", String(repeating: "p", count: 1_000)) }
        let request = TestClient.grpcRequest(path: "/milvus.proto.milvus.MilvusService/HasCollection") + padding
        let first = try client.open(request)
        let second = try client.open(request)
        let third = try client.start(request, body: TestClient.grpcFrame(Self.payload))
        try client.run { $0.streams[third]?.closedWith != nil }
        #expect(client.streams[third]?.grpcStatus == "8")
        #expect(client.streams[third]?.grpcMessage.map(GRPCStatus.percentDecoded)?.contains("bytes held") == true)
        // Once one ends, its bytes are given back and the next call goes through.
        client.session.resetStream(first, errorCode: HTTP2ErrorCode.cancel)
        try client.run { $0.session.queuedBytes(streamID: first) == 0 }
        var status: String?
        for _ in 0..<50 where status != "0" {  // the reset reaches the proxy before or after this call's headers
            status = try client.call(request, body: TestClient.grpcFrame(Self.payload)).grpcStatus
        }
        #expect(status == "0")
        #expect(client.streams[second]?.closedWith == nil)
        #expect(proxy.stop())
    }

    @Test("An upstream named by a host name is resolved off the loop, and calls go through")
    func upstreamByName() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "localhost", port: upstream.port))
        let client = try TestClient(port: proxy.port)
        // localhost may come first as ::1, where nothing listens: the next call then takes 127.0.0.1.
        var status: String?
        for _ in 0..<4 where status != "0" {
            status = try client.call(TestClient.grpcRequest(), body: TestClient.grpcFrame(Self.payload)).grpcStatus
        }
        #expect(status == "0")
        #expect(upstream.record.value.requests.count == 1)
        #expect(proxy.stop())
    }

    @Test("An upstream name that does not resolve fails calls with UNAVAILABLE naming it; the proxy keeps serving")
    func upstreamNameUnresolvable() throws {
        let proxy = try RunningProxy(upstream: .tcp(host: "no-such-host.invalid", port: 19530))
        let client = try TestClient(port: proxy.port)
        for _ in 0..<2 {
            let result = try client.call(
                TestClient.grpcRequest(),
                body: TestClient.grpcFrame(Self.payload),
                timeoutMilliseconds: 30_000
            )
            #expect(result.grpcStatus == "14")
            #expect(result.grpcMessage?.contains("cannot resolve no-such-host.invalid") == true, "\(result)")
        }
        #expect(proxy.stop())
    }

    @Test("An HTTP/1.1 request gets an HTTP/1.1 403 and the connection is closed")
    func http1Refused() throws {
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: try closedPort()))
        let response = try rawExchange(
            port: proxy.port,
            Array("GET /v2/vectordb/collections/list HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        )
        let text = String(decoding: response, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 403"))
        #expect(text.contains("milvus-guard:"))
        #expect(proxy.stop())
    }

    @Test("grpc-timeout 100m against an upstream that never answers ends with grpc-status 4")
    func deadline() throws {
        let upstream = try TestUpstream(behavior: .silent)
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port))
        let client = try TestClient(port: proxy.port)
        let started = EventLoop.now()
        let result = try client.call(
            TestClient.grpcRequest(metadata: [HeaderField("grpc-timeout", "100m")]),
            body: TestClient.grpcFrame(Self.payload)
        )
        let elapsed = (EventLoop.now() - started) / 1_000_000
        #expect(result.grpcStatus == "4")
        #expect(result.grpcMessage?.hasPrefix("milvus-guard:") == true)
        #expect(elapsed >= 100)
        #expect(elapsed < 3_000)
        // The upstream stream is cancelled.
        #expect(waitFor { upstream.record.value.resets == [HTTP2ErrorCode.cancel] })
        #expect(proxy.stop())
    }

    /// A proxy that PINGs its upstream after 1 s of silence and gives the answer 1 s.
    static func keepaliveProxy(_ upstream: TestUpstream) throws -> RunningProxy {
        try RunningProxy(
            upstream: .tcp(host: "127.0.0.1", port: upstream.port),
            configureUpstream: {
                $0.keepaliveMilliseconds = 1_000
                $0.keepaliveTimeoutMilliseconds = 1_000
            }
        )
    }

    @Test("A call on an upstream that stops answering fails UNAVAILABLE once a keepalive PING goes unanswered")
    func keepaliveUnanswered() throws {
        let upstream = try TestUpstream(behavior: .silent)
        let proxy = try Self.keepaliveProxy(upstream)
        let client = try TestClient(port: proxy.port)
        let id = try client.start(TestClient.grpcRequest(), body: TestClient.grpcFrame([1]))
        try client.run { _ in upstream.record.value.requests.count == 1 }
        upstream.freeze()
        let started = EventLoop.now()
        try client.run(timeoutMilliseconds: 8_000) { $0.streams[id]?.closedWith != nil }
        let elapsed = (EventLoop.now() - started) / 1_000_000
        #expect(client.streams[id]?.grpcStatus == "14")
        #expect(client.streams[id]?.grpcMessage?.contains("no answer to a keepalive PING within 1 s") == true)
        // Not before the PING (after 1 s of silence) and its 1 s for an answer; the 8 s of `run` bound it above.
        #expect(elapsed >= 1_000)
        #expect(proxy.stop())
    }

    @Test("Keepalive PINGs that are answered keep a slow call's connection open")
    func keepaliveAnswered() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 3_500))
        let proxy = try Self.keepaliveProxy(upstream)
        let client = try TestClient(port: proxy.port)
        let result = try client.call(
            TestClient.grpcRequest(),
            body: TestClient.grpcFrame(Self.payload),
            timeoutMilliseconds: 8_000
        )
        #expect(result.grpcStatus == "0")
        #expect(upstream.record.value.connections == 1)
        #expect(upstream.record.value.closedConnections == 0)
        #expect(proxy.stop())
    }

    @Test("An upstream connection without calls is closed after upstream.idle_timeout; the next call opens another")
    func upstreamIdleTimeout() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(
            upstream: .tcp(host: "127.0.0.1", port: upstream.port),
            configureUpstream: { $0.idleTimeoutMilliseconds = 1_000 }
        )
        let client = try TestClient(port: proxy.port)
        #expect(try client.call(TestClient.grpcRequest(), body: TestClient.grpcFrame([1])).grpcStatus == "0")
        #expect(waitFor(timeoutMilliseconds: 5_000) { upstream.record.value.closedConnections == 1 })
        #expect(try client.call(TestClient.grpcRequest(), body: TestClient.grpcFrame([2])).grpcStatus == "0")
        #expect(upstream.record.value.connections == 2)
        #expect(proxy.stop())
    }

    @Test("A malformed grpc-timeout is INVALID_ARGUMENT and never forwarded")
    func malformedTimeout() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port))
        let client = try TestClient(port: proxy.port)
        let result = try client.call(
            TestClient.grpcRequest(metadata: [HeaderField("grpc-timeout", "soon")]),
            body: TestClient.grpcFrame([])
        )
        #expect(result.grpcStatus == "3")
        #expect(upstream.record.value.requests.isEmpty)
        #expect(proxy.stop())
    }

    @Test("A client that resets its call makes the proxy cancel the upstream stream")
    func clientCancel() throws {
        let upstream = try TestUpstream(behavior: .silent)
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port))
        let client = try TestClient(port: proxy.port)
        let id = try client.start(TestClient.grpcRequest(), body: TestClient.grpcFrame([1]))
        try client.run { _ in upstream.record.value.requests.count == 1 }
        client.session.resetStream(id, errorCode: HTTP2ErrorCode.cancel)
        try client.run { $0.streams[id]?.closedWith != nil }
        #expect(waitFor { upstream.record.value.resets == [HTTP2ErrorCode.cancel] })
        #expect(proxy.stop())
    }

    @Test("shutdown() makes run() return, with no client connected")
    func shutdownIdle() throws {
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: try closedPort()))
        #expect(!proxy.hasReturned)
        #expect(proxy.stop(timeoutMilliseconds: 3_000))
    }

    @Test("shutdown() sends GOAWAY to a connected idle client, closes it, and run() returns")
    func shutdownWithClient() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port))
        let client = try TestClient(port: proxy.port)
        #expect(try client.call(TestClient.grpcRequest(), body: TestClient.grpcFrame([])).grpcStatus == "0")
        proxy.server.shutdown()
        #expect(client.waitForClose(timeoutMilliseconds: 3_000))
        #expect(client.goaway?.errorCode == 0)
        #expect(proxy.stop(timeoutMilliseconds: 3_000))
    }

    @Test("A call in flight at shutdown completes before run() returns")
    func shutdownDrains() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 200))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port))
        let client = try TestClient(port: proxy.port)
        let id = try client.start(TestClient.grpcRequest(), body: TestClient.grpcFrame([5]))
        try client.run { _ in upstream.record.value.requests.count == 1 }
        proxy.server.shutdown()
        try client.run { $0.streams[id]?.closedWith != nil }
        #expect(client.streams[id]?.grpcStatus == "0")
        #expect(proxy.stop(timeoutMilliseconds: 3_000))
    }
}
