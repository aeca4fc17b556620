import CLinux
import Glibc
import NGHTTP2Support
import ZlibSupport

@testable import ProxyCore

/// What a client saw on one stream.
struct StreamResult {
    var headers: [HeaderField]?
    var body: [UInt8] = []
    var trailers: [HeaderField]?
    var ended = false
    /// Set once the stream closed: 0 when it completed, else the RST_STREAM error code.
    var closedWith: UInt32?

    /// grpc-status from the trailers, or from the headers of a trailers-only response.
    var grpcStatus: String? { self.field("grpc-status") }
    var grpcMessage: String? { self.field("grpc-message") }
    var httpStatus: String? { self.headers?.first { $0.name == ":status" }?.value }

    private func field(_ name: String) -> String? {
        (self.trailers ?? self.headers)?.first { $0.name == name }?.value
    }
}

/// An HTTP/2 client over a loopback socket, driven from the test's thread with bounded waits.
final class TestClient {
    let socket: Socket
    let session: HTTP2Session
    private(set) var streams: [Int32: StreamResult] = [:]
    private(set) var goaway: (lastStreamID: Int32, errorCode: UInt32)?
    private(set) var peerClosed = false
    private var output: [UInt8] = []
    private var offset = 0
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    /// Whether the client gives back the windows of the response bytes it receives; a client that does not is
    /// a reader that stalls once its windows are spent.
    let reads: Bool

    init(port: UInt16, reads: Bool = true, settings: HTTP2SessionSettings = HTTP2SessionSettings()) throws {
        self.reads = reads
        self.socket = try Socket.connect(to: .tcp(host: "127.0.0.1", port: port))
        guard waitReady(self.socket.descriptor, writable: true, milliseconds: 5_000) else {
            throw ProxyError("connect to port \(port) timed out")
        }
        if let error = self.socket.connectionError() { throw ProxyError("connect failed: \(error)") }
        self.session = try HTTP2Session(role: .client, settings: settings)
    }

    /// The request headers of a gRPC call to `path`, with `metadata` appended.
    static func grpcRequest(
        path: String = "/milvus.proto.milvus.MilvusService/Search",
        metadata: [HeaderField] = []
    ) -> [HeaderField] {
        [
            HeaderField(":method", "POST"),
            HeaderField(":scheme", "http"),
            HeaderField(":authority", "localhost"),
            HeaderField(":path", path),
            HeaderField("content-type", "application/grpc"),
            HeaderField("te", "trailers"),
        ] + metadata
    }

    /// A gRPC-framed SearchRequest carrying `payload`: `collection_name` (field 3) = "books" and
    /// `placeholder_group` (field 6, bytes) = payload. The proxy decodes every request before it
    /// forwards it, so test bodies must be real Milvus messages; the echo upstream returns it unchanged.
    static func grpcFrame(_ payload: [UInt8]) -> [UInt8] {
        var message: [UInt8] = [0x1A, 5] + Array("books".utf8) + [0x32]
        var length = UInt64(payload.count)
        while length >= 0x80 {
            message.append(UInt8(length & 0x7F) | 0x80)
            length >>= 7
        }
        message.append(UInt8(length))
        return Self.rawGRPCFrame(message + payload)
    }

    /// A gRPC length-prefixed message (PROTOCOL-HTTP2.md: compressed flag, u32 big-endian length).
    static func rawGRPCFrame(_ payload: [UInt8], compressed: Bool = false) -> [UInt8] {
        let count = UInt32(payload.count)
        let flag: UInt8 = compressed ? 1 : 0
        return [flag, UInt8(count >> 24), UInt8((count >> 16) & 0xFF), UInt8((count >> 8) & 0xFF), UInt8(count & 0xFF)]
            + payload
    }

    /// A gRPC frame holding `message` gzip-compressed (send it with `grpc-encoding: gzip`).
    static func gzipFrame(_ message: [UInt8]) throws -> [UInt8] {
        Self.rawGRPCFrame(try GzipDeflater.deflate(message[...], format: .gzip), compressed: true)
    }

    /// Opens a stream; `body` nil means no body (END_STREAM on HEADERS).
    func start(_ headers: [HeaderField], body: [UInt8]?) throws -> Int32 {
        let streamID = try self.session.submitRequest(headers, endStream: body == nil)
        self.streams[streamID] = StreamResult()
        if let body {
            self.session.enqueueData(streamID: streamID, body)
            self.session.finishBody(streamID: streamID)
        }
        return streamID
    }

    /// Opens a stream whose body goes out in `chunks`, each written to the socket before the next is queued,
    /// so that each travels in DATA frames of its own; the body ends after the last one.
    func start(_ headers: [HeaderField], chunks: [[UInt8]]) throws -> Int32 {
        let streamID = try self.open(headers)
        for chunk in chunks {
            self.session.enqueueData(streamID: streamID, chunk)
            try self.run { $0.session.queuedBytes(streamID: streamID) == 0 }
        }
        self.session.finishBody(streamID: streamID)
        return streamID
    }

    /// Opens a stream whose body the test queues itself (`session.enqueueData`), and may never end.
    func open(_ headers: [HeaderField]) throws -> Int32 {
        let streamID = try self.session.submitRequest(headers, endStream: false)
        self.streams[streamID] = StreamResult()
        return streamID
    }

    /// One call: opens it and exchanges bytes until it closes.
    func call(_ headers: [HeaderField], body: [UInt8]?, timeoutMilliseconds: Int = 5_000) throws -> StreamResult {
        let streamID = try self.start(headers, body: body)
        try self.run(timeoutMilliseconds: timeoutMilliseconds) { $0.streams[streamID]?.closedWith != nil }
        return self.streams[streamID] ?? StreamResult()
    }

    /// Writes and reads until `condition` holds.
    /// - Throws: when the condition does not hold within the timeout.
    func run(timeoutMilliseconds: Int = 5_000, until condition: (TestClient) -> Bool) throws {
        let deadline = clinux_monotonic_ns() + UInt64(timeoutMilliseconds) * 1_000_000
        while !condition(self) {
            guard clinux_monotonic_ns() < deadline else {
                throw ProxyError("timed out after \(timeoutMilliseconds) ms; streams: \(self.streams)")
            }
            guard !self.peerClosed else { throw ProxyError("the proxy closed the connection") }
            try self.flush()
            if waitReady(self.socket.descriptor, milliseconds: 5) { try self.readAvailable() }
        }
        try self.flush()
    }

    /// Waits until the proxy closes the connection; true if it did in time.
    func waitForClose(timeoutMilliseconds: Int = 5_000) -> Bool {
        (try? self.run(timeoutMilliseconds: timeoutMilliseconds) { $0.peerClosed }) != nil || self.peerClosed
    }

    private func flush() throws {
        while true {
            if self.offset < self.output.count {
                let written = self.output.withUnsafeBytes {
                    self.socket.write(UnsafeRawBufferPointer(rebasing: $0[self.offset...]))
                }
                guard let written else {
                    self.peerClosed = true
                    return
                }
                self.offset += written
                if self.offset < self.output.count { return }
            }
            self.output.removeAll(keepingCapacity: true)
            self.offset = 0
            var events: [HTTP2Event] = []
            try self.session.send(into: &self.output, limit: 64 * 1024, events: &events)
            self.handle(events)
            if self.output.isEmpty { return }
        }
    }

    private func readAvailable() throws {
        for _ in 0..<16 {
            let result = self.buffer.withUnsafeMutableBytes { self.socket.read(into: $0) }
            switch result {
            case .wouldBlock: return
            case .endOfFile:
                self.peerClosed = true
                return
            case .bytes(let count):
                var events: [HTTP2Event] = []
                try self.session.feed(Array(self.buffer[..<count]), into: &events)
                self.handle(events)
            }
        }
    }

    private func handle(_ events: [HTTP2Event]) {
        for event in events {
            switch event {
            case .headers(let streamID, let kind, let fields, let endStream, _, _):
                if kind == .trailers {
                    self.streams[streamID]?.trailers = fields
                } else {
                    self.streams[streamID]?.headers = fields
                }
                if endStream { self.streams[streamID]?.ended = true }
            case .data(let streamID, let bytes):
                self.streams[streamID]?.body += bytes
                if self.reads { self.session.consume(streamID: streamID, count: bytes.count) }
            case .endStream(let streamID):
                self.streams[streamID]?.ended = true
            case .streamClosed(let streamID, let errorCode):
                self.streams[streamID]?.closedWith = errorCode
            case .goaway(let lastStreamID, let errorCode):
                self.goaway = (lastStreamID, errorCode)
            case .remoteSettingsChanged, .outboundConsumed, .invalidHeaderField, .requestReset, .headersNotSent:
                break
            }
        }
    }
}

/// Sends raw bytes on a fresh connection and reads until the peer closes (bounded).
func rawExchange(port: UInt16, _ bytes: [UInt8], timeoutMilliseconds: Int = 5_000) throws -> [UInt8] {
    let socket = try Socket.connect(to: .tcp(host: "127.0.0.1", port: port))
    guard waitReady(socket.descriptor, writable: true, milliseconds: 5_000), socket.connectionError() == nil else {
        throw ProxyError("connect failed")
    }
    _ = bytes.withUnsafeBytes { socket.write($0) }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 16 * 1024)
    let deadline = clinux_monotonic_ns() + UInt64(timeoutMilliseconds) * 1_000_000
    while clinux_monotonic_ns() < deadline {
        guard waitReady(socket.descriptor, milliseconds: 10) else { continue }
        switch buffer.withUnsafeMutableBytes({ socket.read(into: $0) }) {
        case .bytes(let count): received += buffer[..<count]
        case .wouldBlock: continue
        case .endOfFile: return received
        }
    }
    throw ProxyError("the peer did not close within \(timeoutMilliseconds) ms; got \(received.count) bytes")
}
