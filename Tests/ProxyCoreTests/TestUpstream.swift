import CLinux
import Glibc
import NGHTTP2Support

@testable import ProxyCore

/// What the test upstream saw, shared with the test.
struct UpstreamRecord: Sendable {
    /// Request header blocks, in arrival order.
    var requests: [[HeaderField]] = []
    /// Request bodies by arrival index.
    var bodies: [[UInt8]] = []
    /// Error codes of streams that closed before the upstream answered them (RST_STREAM from the proxy).
    var resets: [UInt32] = []
    var connections = 0
    /// Connections that ended (closed by the proxy, or failed).
    var closedConnections = 0
    var openStreams = 0
    var maxOpenStreams = 0
    /// The most streams open at once on any single connection.
    var maxOpenPerConnection = 0
}

/// An HTTP/2 server on a loopback port, on its own thread: the Milvus stand-in behind the proxy.
///
/// One thread polls the listening socket and every connection (5 ms ticks), so the whole upstream stops
/// within a tick of ``stop()``.
final class TestUpstream {
    enum Behavior: Sendable {
        /// Answers each request, once its body ended and `delayMilliseconds` passed, with :status 200,
        /// the request body echoed and trailers grpc-status 0.
        case echo(delayMilliseconds: Int)
        /// Answers each request, once its body ended, with :status 200, `body` (sent in two DATA frames, split at
        /// `split`) and trailers grpc-status 0: a Milvus answer such as a failed common.Status.
        case reply(body: [UInt8], split: Int)
        /// Reads requests and never answers.
        case silent
        /// Resets each request, once its body ended, with REFUSED_STREAM: not processed (RFC 9113 §8.7).
        case refuse
        /// Answers each request, once its body ended, with :status 200 and `headers`, `body`, and trailers grpc-status
        /// 0 and `trailers`: a Milvus that sends large response metadata.
        case metadata(headers: [HeaderField], body: [UInt8], trailers: [HeaderField])
        /// Answers each request, once its body ended, with :status 200 and then RST_STREAM `errorCode`: a response cut
        /// off after it started.
        case resetAfterHeaders(errorCode: UInt32)
    }

    let record = Locked(UpstreamRecord())
    private let stopping = Locked(false)
    /// While set, the upstream neither reads nor writes nor accepts: a host that vanished without closing.
    private let frozen = Locked(false)
    private let boundPort = Locked<UInt16>(0)
    private let thread: TestThread

    /// Starts the upstream on a loopback TCP port, or on a Unix-domain socket at `unixPath`.
    init(behavior: Behavior, maxConcurrentStreams: UInt32 = 100, unixPath: String? = nil) throws {
        let (record, stopping, boundPort, frozen) = (self.record, self.stopping, self.boundPort, self.frozen)
        let failure = Locked<String?>(nil)
        self.thread = try TestThread(name: "test-upstream") {
            do {
                let server = try UpstreamServer(
                    behavior: behavior,
                    maxConcurrentStreams: maxConcurrentStreams,
                    record: record,
                    unixPath: unixPath
                )
                boundPort.set(unixPath == nil ? server.port : 1)
                server.run(until: stopping, frozen: frozen)
            } catch {
                failure.set("\(error)")
            }
        }
        guard waitFor({ boundPort.value != 0 || failure.value != nil }), boundPort.value != 0 else {
            self.stopping.set(true)
            _ = self.thread.join()
            throw ProxyError("test upstream did not start: \(failure.value ?? "timeout")")
        }
    }

    var port: UInt16 { self.boundPort.value }

    /// Stops answering anything, PINGs included, without closing a connection.
    func freeze() { self.frozen.set(true) }

    /// Stops the upstream thread; false when it did not end in time.
    @discardableResult
    func stop() -> Bool {
        self.stopping.set(true)
        return self.thread.join()
    }

    deinit { self.stop() }
}

/// The upstream's state, owned by its thread.
private final class UpstreamServer {
    let behavior: TestUpstream.Behavior
    let settings: HTTP2SessionSettings
    let record: Locked<UpstreamRecord>
    let listener: Socket
    var peers: [UpstreamPeer] = []

    init(
        behavior: TestUpstream.Behavior,
        maxConcurrentStreams: UInt32,
        record: Locked<UpstreamRecord>,
        unixPath: String?
    ) throws {
        self.behavior = behavior
        self.record = record
        var settings = HTTP2SessionSettings()
        settings.maxConcurrentStreams = maxConcurrentStreams
        // Like Milvus (grpc-go: 16 MiB), it takes and sends header blocks far larger than nghttp2's defaults.
        settings.maxHeaderListBytes = 4 << 20
        settings.maxContinuations = 1_000
        settings.maxSendHeaderBlockBytes = 4 << 20
        self.settings = settings
        self.listener = try Socket.listen(on: unixPath.map { .unix(path: $0) } ?? .tcp(host: "127.0.0.1", port: 0))
    }

    var port: UInt16 { self.listener.localPort ?? 0 }

    func run(until stopping: Locked<Bool>, frozen: Locked<Bool>) {
        while !stopping.value {
            if frozen.value {
                usleep(5_000)
                continue
            }
            var entries = [pollfd(fd: self.listener.descriptor, events: Int16(POLLIN), revents: 0)]
            for peer in self.peers {
                let events = POLLIN | (peer.hasPendingOutput ? POLLOUT : 0)
                entries.append(pollfd(fd: peer.socket.descriptor, events: Int16(events), revents: 0))
            }
            _ = poll(&entries, nfds_t(entries.count), 5)
            if entries[0].revents != 0 { self.acceptAll() }
            for peer in self.peers {
                peer.readAvailable()
                peer.answerDue(now: clinux_monotonic_ns())
                peer.flush()
            }
            self.peers.removeAll { $0.closed }
        }
        for peer in self.peers { peer.socket.close() }
    }

    private func acceptAll() {
        while let socket = try? Socket.accept(listener: self.listener.descriptor) {
            guard let session = try? HTTP2Session(role: .server, settings: self.settings) else { return }
            self.peers.append(
                UpstreamPeer(socket: socket, session: session, behavior: self.behavior, record: self.record)
            )
            self.record.update { $0.connections += 1 }
        }
    }
}

/// One connection to the upstream.
private final class UpstreamPeer {
    let socket: Socket
    let session: HTTP2Session
    let behavior: TestUpstream.Behavior
    let record: Locked<UpstreamRecord>
    private(set) var closed = false
    private var output: [UInt8] = []
    private var offset = 0
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    /// Open streams: arrival index and body so far.
    private var streams: [Int32: (index: Int, body: [UInt8])] = [:]
    private var due: [(at: UInt64, streamID: Int32)] = []
    /// Streams of ``Behavior/resetAfterHeaders(errorCode:)`` whose headers went out, reset from this time on.
    private var resets: [(at: UInt64, streamID: Int32)] = []

    init(socket: Socket, session: HTTP2Session, behavior: TestUpstream.Behavior, record: Locked<UpstreamRecord>) {
        self.socket = socket
        self.session = session
        self.behavior = behavior
        self.record = record
    }

    var hasPendingOutput: Bool { self.offset < self.output.count || self.session.wantsWrite }

    func readAvailable() {
        guard !self.closed else { return }
        for _ in 0..<16 {
            let result = self.buffer.withUnsafeMutableBytes { self.socket.read(into: $0) }
            switch result {
            case .wouldBlock: return
            case .endOfFile:
                self.close()
                return
            case .bytes(let count):
                var events: [HTTP2Event] = []
                do {
                    try self.session.feed(Array(self.buffer[..<count]), into: &events)
                } catch {
                    self.close()
                    return
                }
                self.handle(events)
            }
        }
    }

    private func handle(_ events: [HTTP2Event]) {
        for event in events {
            switch event {
            case .headers(let streamID, .request, let fields, let endStream, _, _):
                let open = self.streams.count + 1
                let index = self.record.update { record in
                    record.requests.append(fields)
                    record.bodies.append([])
                    record.openStreams += 1
                    record.maxOpenStreams = max(record.maxOpenStreams, record.openStreams)
                    record.maxOpenPerConnection = max(record.maxOpenPerConnection, open)
                    return record.requests.count - 1
                }
                self.streams[streamID] = (index, [])
                if endStream { self.requestEnded(streamID) }
            case .data(let streamID, let bytes):
                self.streams[streamID]?.body += bytes
                self.session.consume(streamID: streamID, count: bytes.count)
            case .endStream(let streamID):
                self.requestEnded(streamID)
            case .streamClosed(let streamID, let errorCode):
                guard self.streams.removeValue(forKey: streamID) != nil else { continue }
                self.record.update { record in
                    record.openStreams -= 1
                    if errorCode != 0 { record.resets.append(errorCode) }
                }
                self.due.removeAll { $0.streamID == streamID }
            default:
                break
            }
        }
    }

    private func requestEnded(_ streamID: Int32) {
        guard let stream = self.streams[streamID] else { return }
        let body = stream.body
        self.record.update { $0.bodies[stream.index] = body }
        switch self.behavior {
        case .echo(let delay): self.due.append((clinux_monotonic_ns() + UInt64(delay) * 1_000_000, streamID))
        case .reply: self.due.append((clinux_monotonic_ns(), streamID))
        case .metadata, .resetAfterHeaders: self.due.append((clinux_monotonic_ns(), streamID))
        case .silent: break
        case .refuse: self.session.resetStream(streamID, errorCode: HTTP2ErrorCode.refusedStream)
        }
    }

    func answerDue(now: UInt64) {
        guard !self.closed else { return }
        if case .resetAfterHeaders(let errorCode) = self.behavior {
            for (at, streamID) in self.resets where at <= now && self.streams[streamID] != nil {
                self.session.resetStream(streamID, errorCode: errorCode)
            }
            self.resets.removeAll { $0.at <= now }
        }
        let ready = self.due.filter { $0.at <= now }
        self.due.removeAll { $0.at <= now }
        for (_, streamID) in ready {
            guard let stream = self.streams[streamID] else { continue }
            var headers = [HeaderField(":status", "200"), HeaderField("content-type", "application/grpc")]
            var trailers = [HeaderField("grpc-status", "0")]
            if case .metadata(let extraHeaders, _, let extraTrailers) = self.behavior {
                headers += extraHeaders
                trailers += extraTrailers
            }
            do {
                try self.session.submitResponse(streamID: streamID, headers, endStream: false)
            } catch {
                continue
            }
            if case .resetAfterHeaders = self.behavior {
                // Reset a few ticks later, once the headers are out: reset at once, nghttp2 would drop them.
                self.resets.append((now + 20_000_000, streamID))
                continue
            }
            if case .metadata(_, let body, _) = self.behavior {
                self.session.enqueueData(streamID: streamID, body)
            } else if case .reply(let body, let split) = self.behavior {
                self.session.enqueueData(streamID: streamID, Array(body.prefix(split)))
                self.session.enqueueData(streamID: streamID, Array(body.dropFirst(split)))
            } else {
                self.session.enqueueData(streamID: streamID, stream.body)
            }
            self.session.finishBody(streamID: streamID, trailers: trailers)
        }
    }

    func flush() {
        guard !self.closed else { return }
        while true {
            if self.offset < self.output.count {
                let written = self.output.withUnsafeBytes {
                    self.socket.write(UnsafeRawBufferPointer(rebasing: $0[self.offset...]))
                }
                guard let written else {
                    self.close()
                    return
                }
                self.offset += written
                if self.offset < self.output.count { return }
            }
            self.output.removeAll(keepingCapacity: true)
            self.offset = 0
            var events: [HTTP2Event] = []
            do {
                try self.session.send(into: &self.output, limit: 64 * 1024, events: &events)
            } catch {
                self.close()
                return
            }
            self.handle(events)
            if self.output.isEmpty { return }
        }
    }

    private func close() {
        guard !self.closed else { return }
        self.closed = true
        self.socket.close()
        let open = self.streams.count
        self.streams = [:]
        self.record.update {
            $0.openStreams -= open
            $0.closedConnections += 1
        }
    }
}
