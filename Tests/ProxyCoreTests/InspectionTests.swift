import Glibc
import MilvusCatalog
import NGHTTP2Support
import ProtoWire
import Testing
import ZlibSupport

@testable import ProxyCore

/// The gate in front of the upstream: every request is complete and decoded before a byte of it is
/// forwarded, and what cannot be decoded is refused with a code pymilvus does not retry.
@Suite("Requests are inspected before they are forwarded", .serialized, .timeLimit(.minutes(2)))
struct InspectionTests {
    /// DropCollectionRequest with collection_name (3) given twice: Milvus acts on the last one.
    static let dropTwice: [UInt8] = [0x1A, 1] + Array("a".utf8) + [0x1A, 1] + Array("b".utf8)

    private func run(
        _ headers: [HeaderField],
        body: [UInt8],
        configure: (inout Limits) -> Void = { _ in }
    ) throws -> (StreamResult, UpstreamRecord) {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port), configure: configure)
        let client = try TestClient(port: proxy.port)
        let result = try client.call(headers, body: body)
        #expect(proxy.stop())
        return (result, upstream.record.value)
    }

    @Test("A request whose field repeats is forwarded byte for byte")
    func repeatedFieldForwardedUnchanged() throws {
        let body = TestClient.rawGRPCFrame(Self.dropTwice)
        let (result, record) = try self.run(
            TestClient.grpcRequest(path: "/milvus.proto.milvus.MilvusService/DropCollection"),
            body: body
        )
        #expect(result.grpcStatus == "0")
        #expect(record.bodies == [body])
    }

    @Test("A request that arrives in several DATA frames is forwarded byte for byte, prefix included")
    func splitRequestForwardedUnchanged() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port))
        let client = try TestClient(port: proxy.port)
        let body = TestClient.rawGRPCFrame(Self.dropTwice)
        // Inside the prefix, then inside the payload.
        let streamID = try client.start(
            TestClient.grpcRequest(path: "/milvus.proto.milvus.MilvusService/DropCollection"),
            chunks: [Array(body[..<3]), Array(body[3..<8]), Array(body[8...])]
        )
        try client.run { $0.streams[streamID]?.closedWith != nil }
        #expect(client.streams[streamID]?.grpcStatus == "0")
        #expect(proxy.stop())
        #expect(upstream.record.value.bodies == [body])
    }

    @Test(
        "Unknown RPC paths are refused with UNIMPLEMENTED and never forwarded",
        arguments: [
            "/milvus.proto.milvus.MilvusService/dropCollection",
            "/milvus.proto.milvus.MilvusService/DropCollection?x=1",
            "/milvus.proto.milvus.MilvusService/DropCollection/",
            "/v2/vectordb/collections/drop",
            "/grpc.health.v1.Health/Check",
        ]
    )
    func unknownPath(path: String) throws {
        let (result, record) = try self.run(
            TestClient.grpcRequest(path: path),
            body: TestClient.rawGRPCFrame(Self.dropTwice)
        )
        #expect(result.grpcStatus == "12")
        #expect(result.grpcMessage?.hasPrefix("milvus-guard:") == true)
        #expect(record.requests.isEmpty)
    }

    @Test(
        "Malformed, truncated and doubled messages are refused with INVALID_ARGUMENT and never forwarded",
        arguments: [
            TestClient.rawGRPCFrame([0x1A, 5, 0x61]),  // a string cut short
            TestClient.rawGRPCFrame([0x1B]),  // wire type 3 (group)
            Array(TestClient.rawGRPCFrame(dropTwice).dropLast()),  // the frame ends early
            TestClient.rawGRPCFrame(dropTwice) + TestClient.rawGRPCFrame(dropTwice),  // two messages on a unary RPC
            [1, 0, 0, 0, 2, 0x1A, 0],  // compressed flag without grpc-encoding
            [],  // no message at all
        ]
    )
    func malformed(body: [UInt8]) throws {
        let (result, record) = try self.run(
            TestClient.grpcRequest(path: "/milvus.proto.milvus.MilvusService/DropCollection"),
            body: body
        )
        #expect(result.grpcStatus == "3")
        #expect(result.grpcMessage?.hasPrefix("milvus-guard:") == true)
        #expect(record.requests.isEmpty)
    }

    @Test(
        "A database call without db_name is refused, not decided on an empty name while Milvus picks one",
        arguments: ["AlterDatabase", "DescribeDatabase", "DropDatabase", "CreateDatabase"]
    )
    func databaseCallWithoutName(rpc: String) throws {
        for message: [UInt8] in [[], [0x12, 0], [0x12, 4] + Array("prod".utf8) + [0x12, 0]] {
            let (result, record) = try self.run(
                TestClient.grpcRequest(
                    path: "/milvus.proto.milvus.MilvusService/" + rpc,
                    metadata: [HeaderField("dbname", "prod")]
                ),
                body: TestClient.rawGRPCFrame(message)
            )
            #expect(result.grpcStatus == "3")
            #expect(result.grpcMessage == "milvus-guard: \(rpc) request names no database (db_name is empty)")
            #expect(record.requests.isEmpty)
        }
        let (named, record) = try self.run(
            TestClient.grpcRequest(path: "/milvus.proto.milvus.MilvusService/" + rpc),
            body: TestClient.rawGRPCFrame([0x12, 4] + Array("prod".utf8))
        )
        #expect(named.grpcStatus == "0")
        #expect(record.requests.count == 1)
    }

    @Test(
        "A name no Milvus creates (a path, spaces, non-ASCII) is refused and never forwarded",
        arguments: [
            ("DropCollection", "../../../collections/books", "collection"),
            ("DropCollection", "tmp_a/../prod", "collection"),
            ("DropCollection", " books", "collection"), ("DropCollection", "b\u{F6}oks", "collection"),
            ("HasPartition", "p/../x", "partition"),
        ]
    )
    func unacceptableNames(rpc: String, name: String, kind: String) throws {
        // DropCollection: 3 collection_name; HasPartition: 3 collection_name, 4 partition_name.
        let field: UInt8 = kind == "partition" ? 0x22 : 0x1A
        let prefix: [UInt8] = kind == "partition" ? [0x1A, 5] + Array("books".utf8) : []
        let message = prefix + [field, UInt8(name.utf8.count)] + Array(name.utf8)
        let (result, record) = try self.run(
            TestClient.grpcRequest(path: "/milvus.proto.milvus.MilvusService/" + rpc),
            body: TestClient.rawGRPCFrame(message)
        )
        #expect(result.grpcStatus == "3")
        #expect(result.grpcMessage?.hasPrefix("milvus-guard: \(kind) name ") == true, "\(result.grpcMessage ?? "-")")
        #expect(record.requests.isEmpty)
    }

    @Test("A name longer than 1 KiB is refused, and the refusal shows only its start and length")
    func longName() throws {
        func drop(_ name: String) throws -> (StreamResult, UpstreamRecord) {
            var message = WireWriter()
            message.writeStringField(3, name)
            return try self.run(
                TestClient.grpcRequest(path: "/milvus.proto.milvus.MilvusService/DropCollection"),
                body: TestClient.rawGRPCFrame(message.bytes)
            )
        }
        let (result, record) = try drop(String(repeating: "a", count: 2_000))
        #expect(result.grpcStatus == "3")
        #expect(
            result.grpcMessage.map(GRPCStatus.percentDecoded)
                == "milvus-guard: collection name \"\(String(repeating: "a", count: 64))…\" (2000 bytes) is not a Milvus "
                + "name (at most 1024 bytes of ASCII letters, digits, _ $ -)"
        )
        #expect(record.requests.isEmpty)
        // One character of 1,000 combining marks: the message shows 64 scalars of it, not the whole character.
        let (marks, _) = try drop("a" + String(repeating: "\u{301}", count: 1_000))
        #expect((marks.grpcMessage.map(GRPCStatus.percentDecoded)?.utf8.count ?? .max) < 300)
        #expect(try drop(String(repeating: "a", count: 1_024)).0.grpcStatus == "0")
    }

    @Test("Names Milvus creates, and * for every collection of a grant, are forwarded")
    func acceptableNames() throws {
        for name in ["books", "_t1", "Books_2024$v2", "part-2024", "*"] {
            let (result, record) = try self.run(
                TestClient.grpcRequest(path: "/milvus.proto.milvus.MilvusService/DropCollection"),
                body: TestClient.rawGRPCFrame([0x1A, UInt8(name.utf8.count)] + Array(name.utf8))
            )
            #expect(result.grpcStatus == "0", "\(name)")
            #expect(record.requests.count == 1)
        }
    }

    @Test("A message over the size limit is refused before it is buffered")
    func oversized() throws {
        let (result, record) = try self.run(
            TestClient.grpcRequest(path: "/milvus.proto.milvus.MilvusService/Insert"),
            body: TestClient.grpcFrame([UInt8](repeating: 7, count: 4096))
        ) { limits in
            limits.maxMessageBytes = 1024
        }
        #expect(result.grpcStatus == "3")
        #expect(record.requests.isEmpty)
    }

    @Test("A request beyond the held-bytes budget is refused with RESOURCE_EXHAUSTED")
    func overBudget() throws {
        let (result, record) = try self.run(
            TestClient.grpcRequest(path: "/milvus.proto.milvus.MilvusService/Insert"),
            body: TestClient.grpcFrame([UInt8](repeating: 7, count: 200_000))
        ) { limits in
            limits.heldBytesPerConnection = 100_000
        }
        #expect(result.grpcStatus == "8")
        #expect(result.grpcMessage?.hasPrefix("milvus-guard:") == true)
        #expect(record.requests.isEmpty)
    }

    @Test("A gzip-compressed request is inflated for inspection and forwarded compressed, unchanged")
    func gzip() throws {
        let body = try TestClient.gzipFrame(Self.dropTwice)
        let (result, record) = try self.run(
            TestClient.grpcRequest(
                path: "/milvus.proto.milvus.MilvusService/DropCollection",
                metadata: [HeaderField("grpc-encoding", "gzip")]
            ),
            body: body
        )
        #expect(result.grpcStatus == "0")
        #expect(record.bodies == [body])
    }

    @Test("A large gzip request is inflated and decoded off the loop, then forwarded compressed, unchanged")
    func gzipOffLoop() throws {
        // A Delete whose filter names 6,000 pseudo-random ids: about 40 KB, 15 KB or so compressed.
        var generator = SeededGenerator(seed: 7)
        let ids = (0..<6_000).map { _ in String(generator.next() % 1_000_000_007) }.joined(separator: ",")
        var delete = WireWriter()
        delete.writeStringField(3, "books")
        delete.writeStringField(5, "id in [\(ids)]")
        let body = try TestClient.gzipFrame(delete.bytes)
        #expect(body.count - 5 > RequestGate.offLoopCompressedBytes)
        let (result, record) = try self.run(
            TestClient.grpcRequest(
                path: "/milvus.proto.milvus.MilvusService/Delete",
                metadata: [HeaderField("grpc-encoding", "gzip")]
            ),
            body: body
        )
        #expect(result.grpcStatus == "0")
        #expect(record.bodies == [body])
        // And a bomb large enough to go off the loop is refused there.
        let (bomb, bombRecord) = try self.gzipZeros(count: 32 << 20, maxMessageBytes: 512 << 20)
        #expect(bomb.grpcStatus == "3")
        #expect(bomb.grpcMessage.map(GRPCStatus.percentDecoded)?.contains("more than 200 times") == true)
        #expect(bombRecord.requests.isEmpty)
    }

    @Test("A decode job gives its message up when cancelled, so a queued job of an ended call holds no bytes")
    func decodeJobCancel() throws {
        var gate = RequestGate(
            rpc: try #require(MilvusRPCs.descriptor(named: "DropCollection")),
            encoding: .gzip,
            metadataDatabase: nil,
            maxMessageBytes: 1 << 20
        )
        try gate.append([1, 0, 0, 0, 3, 1, 2, 3])
        let job = DecodeJob(try gate.takeMessage(atEnd: true))
        job.cancel()
        #expect(job.take() == nil)
        let kept = DecodeJob(try gate.takeMessage(atEnd: false))
        #expect(kept.take()?.message.payload.count == 3)
        #expect(kept.take() == nil)
    }

    /// A DropCollection whose compressed message is `count` zeros, through a proxy with `maxMessageBytes`.
    private func gzipZeros(count: Int, maxMessageBytes: Int) throws -> (StreamResult, UpstreamRecord) {
        let body = try TestClient.gzipFrame([UInt8](repeating: 0, count: count))
        return try self.run(
            TestClient.grpcRequest(
                path: "/milvus.proto.milvus.MilvusService/DropCollection",
                metadata: [HeaderField("grpc-encoding", "gzip")]
            ),
            body: body
        ) { limits in
            limits.maxMessageBytes = maxMessageBytes
        }
    }

    @Test("A gzip message that inflates more than 200 times its size (past its first MiB) is refused")
    func gzipRatio() throws {
        // 4 MiB of zeros compress to about 4 KB: a ratio of about 1000, under the 64 MiB message limit.
        let (result, record) = try self.gzipZeros(count: 4 << 20, maxMessageBytes: 64 << 20)
        #expect(result.grpcStatus == "3")
        #expect(
            result.grpcMessage.map(GRPCStatus.percentDecoded)
                == "milvus-guard: DropCollection request inflates to more than 200 times its compressed size; "
                + "send it uncompressed"
        )
        #expect(record.requests.isEmpty)
    }

    @Test("A gzip bomb stops at the message limit and is refused")
    func gzipBomb() throws {
        let (result, record) = try self.gzipZeros(count: 1 << 20, maxMessageBytes: 64 * 1024)
        #expect(result.grpcStatus == "3")
        #expect(record.requests.isEmpty)
    }

    @Test("An encoding the guard can't inflate is refused with UNIMPLEMENTED")
    func unknownEncoding() throws {
        let (result, record) = try self.run(
            TestClient.grpcRequest(
                path: "/milvus.proto.milvus.MilvusService/DropCollection",
                metadata: [HeaderField("grpc-encoding", "snappy")]
            ),
            body: TestClient.rawGRPCFrame(Self.dropTwice)
        )
        #expect(result.grpcStatus == "12")
        #expect(record.requests.isEmpty)
    }

    @Test("Many calls over one upstream connection never exhaust its connection window (regression)")
    func connectionWindowIsReturned() throws {
        // Response bytes framed to the client after the upstream stream has closed must still reopen the
        // upstream connection's window; with 64 KiB windows, 40 calls of 8 KiB would stall otherwise.
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port), maxConnectionsPerLoop: 1) {
            limits in
            limits.streamWindowBytes = 65_535
            limits.connectionWindowBytes = 65_535
        }
        let client = try TestClient(port: proxy.port)
        for index in 0..<40 {
            let body = TestClient.grpcFrame([UInt8](repeating: UInt8(index), count: 8192))
            let result = try client.call(TestClient.grpcRequest(), body: body, timeoutMilliseconds: 5_000)
            #expect(result.grpcStatus == "0", "call \(index)")
            #expect(result.body == body)
        }
        #expect(upstream.record.value.connections == 1)
        #expect(proxy.stop())
    }

    @Test(
        "A client that never reads its large responses does not stall other clients' calls on the same upstream",
        arguments: [60, 100]
    )
    func slowReaderDoesNotStallOthers(calls: Int) throws {
        // Every answer is 700 KB: 60 of them are far more than one upstream connection's window (16 MiB); 100 are
        // more than the window, half of it and the slow client's own 16 MiB budget together.
        let answer = TestClient.grpcFrame([UInt8](repeating: 0x33, count: 700_000))
        let upstream = try TestUpstream(behavior: .reply(body: answer, split: 100))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port))
        let slow = try TestClient(port: proxy.port, reads: false)
        var slowStreams: [Int32] = []
        for _ in 0..<calls {
            slowStreams.append(try slow.start(TestClient.grpcRequest(), body: TestClient.grpcFrame([1, 2, 3])))
        }
        // Until its windows are spent: then it reads nothing more.
        try slow.run(timeoutMilliseconds: 10_000) { client in
            slowStreams.reduce(0) { $0 + (client.streams[$1]?.body.count ?? 0) } >= 15 << 20
        }
        let fast = try TestClient(port: proxy.port)
        let call = try fast.call(
            TestClient.grpcRequest(),
            body: TestClient.grpcFrame([4, 5, 6]),
            timeoutMilliseconds: 10_000
        )
        #expect(call.grpcStatus == "0")
        #expect(call.body == answer)
        if calls == 100 {
            // Past its budget, the slow client's calls that would take the shared window were reset.
            try slow.run(timeoutMilliseconds: 10_000) { client in
                slowStreams.contains { client.streams[$0]?.closedWith == HTTP2ErrorCode.enhanceYourCalm }
            }
        }
        #expect(proxy.stop())
    }

    @Test("Response bytes queued for a client after its call's deadline stay in the budgets until it takes them")
    func deadlineKeepsUnreadBytesInBudgets() throws {
        // Each answer is larger than the guard's stream window toward Milvus (1 MiB): it never finishes while its
        // client reads nothing (windows of 0), and the call ends by its deadline.
        let answer = TestClient.grpcFrame([UInt8](repeating: 0x44, count: 1_500_000))
        let upstream = try TestUpstream(behavior: .reply(body: answer, split: 100))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port))
        var closed = HTTP2SessionSettings()
        closed.streamWindowBytes = 0
        do {
            let slow = try TestClient(port: proxy.port, reads: false, settings: closed)
            let timed = TestClient.grpcRequest(metadata: [HeaderField("grpc-timeout", "400m")])
            // 20 MiB in all: 8 MiB (half the upstream connection's window) waits for the client, 12 MiB is given
            // back ahead, within the client connection's 16 MiB.
            let first = try (0..<20).map { _ in try slow.start(timed, body: TestClient.grpcFrame([1])) }
            try slow.run(timeoutMilliseconds: 10_000) { client in
                first.allSatisfy { client.streams[$0]?.headers != nil }
            }
            usleep(1_000_000)  // the deadlines pass
            #expect(first.allSatisfy { slow.streams[$0]?.closedWith == nil })  // their bytes wait for the client
            // The first calls' unread 20 MiB still count: 20 MiB more from the same client exceed its budget, so
            // some of these calls are reset rather than piled up. Released at the deadline, all 20 would fit.
            let second = try (0..<20).map { _ in
                try slow.start(TestClient.grpcRequest(), body: TestClient.grpcFrame([2]))
            }
            try slow.run(timeoutMilliseconds: 10_000) { client in
                second.contains { client.streams[$0]?.closedWith == HTTP2ErrorCode.enhanceYourCalm }
            }
            #expect(!proxy.server.metrics.render().contains("milvus_guard_held_bytes{budget=\"responses\"} 0\n"))
        }
        // The client is gone: the bytes it left unread leave the budget.
        #expect(
            waitFor { proxy.server.metrics.render().contains("milvus_guard_held_bytes{budget=\"responses\"} 0\n") }
        )
        // Once the client is gone everything is given back: another client gets a whole answer.
        let fast = try TestClient(port: proxy.port)
        let call = try fast.call(TestClient.grpcRequest(), body: TestClient.grpcFrame([3]), timeoutMilliseconds: 10_000)
        #expect(call.grpcStatus == "0")
        #expect(call.body == answer)
        #expect(proxy.stop())
    }

    @Test("A refusal at the headers of a request whose body is still coming ends the stream with NO_ERROR after it")
    func earlyRefusalResetsTheStream() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port))
        let client = try TestClient(port: proxy.port)
        for path in ["/milvus.proto.milvus.MilvusService/NoSuchCall", "/milvus.proto.milvus.MilvusService/Insert"] {
            let metadata = path.hasSuffix("Insert") ? [HeaderField("grpc-encoding", "zstd")] : []
            let streamID = try client.open(TestClient.grpcRequest(path: path, metadata: metadata))
            client.session.enqueueData(streamID: streamID, [0, 0, 0, 1, 0])  // a prefix, and never the rest
            try client.run { $0.streams[streamID]?.closedWith != nil }
            #expect(client.streams[streamID]?.grpcStatus == "12", "\(path)")
            #expect(client.streams[streamID]?.closedWith == HTTP2ErrorCode.noError)
        }
        #expect(proxy.stop())
        #expect(upstream.record.value.requests.isEmpty)
    }

    @Test("The upstream can be a Unix-domain socket")
    func unixUpstream() throws {
        let path = "/tmp/milvus-guard-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        defer { unlink(path) }
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0), unixPath: path)
        let proxy = try RunningProxy(upstream: .unix(path: path))
        let client = try TestClient(port: proxy.port)
        let body = TestClient.grpcFrame([1, 2, 3])
        let result = try client.call(TestClient.grpcRequest(), body: body)
        #expect(result.grpcStatus == "0")
        #expect(result.body == body)
        #expect(upstream.record.value.connections == 1)
        #expect(proxy.stop())
    }

    @Test("A client that connects and never sends the HTTP/2 preface is disconnected after the handshake timeout")
    func handshakeTimeout() throws {
        let upstream = try TestUpstream(behavior: .echo(delayMilliseconds: 0))
        let proxy = try RunningProxy(upstream: .tcp(host: "127.0.0.1", port: upstream.port)) { limits in
            limits.handshakeTimeoutMilliseconds = 1_000
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = proxy.port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        try #require(connected == 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        // Nothing is sent; the guard closes the connection (EOF) well before the 5 s receive timeout.
        #expect(recv(fd, &byte, 1, 0) == 0)
        #expect(proxy.stop())
    }
}
