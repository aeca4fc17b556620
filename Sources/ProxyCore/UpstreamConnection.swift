import Logging
import NGHTTP2Support
import OpenSSLSupport

/// One HTTP/2 connection from a loop to the upstream Milvus (client role).
final class UpstreamConnection: HTTP2ConnectionDelegate {
    enum State { case connecting, ready, draining, closed }

    weak var pool: UpstreamPool?
    let connection: HTTP2Connection
    private(set) var state: State = .connecting
    /// Calls with an open upstream stream, by upstream stream ID.
    var streams: [Int32: ProxiedCall] = [:]
    /// Response bytes received on this connection whose connection window is not given back yet (their clients have
    /// not taken them). Past half the window, calls give it back as bytes arrive (``ProxiedCall``).
    var responseUnconsumed = 0
    /// Half this connection's receive window: past it, ``responseUnconsumed`` stops growing.
    let responseShare: Int
    /// Calls assigned while the connection was still connecting.
    var waiting: [ProxiedCall] = []
    private var connectTimer: TimerQueue.ID?
    /// When the keepalive PING now awaiting its answer was sent.
    private var pingSentAt: UInt64?

    init(
        pool: UpstreamPool,
        socket: Socket,
        session: HTTP2Session,
        tls: TLSConnection?,
        connectTimeoutMilliseconds: Int
    ) throws {
        self.pool = pool
        self.responseShare = Int(pool.sessionSettings.connectionWindowBytes / 2)
        self.connection = try HTTP2Connection(
            loop: pool.loop,
            socket: socket,
            session: session,
            tls: tls,
            connecting: true
        )
        self.connection.delegate = self
        self.connectTimer = pool.loop.schedule(afterMilliseconds: connectTimeoutMilliseconds) { [weak self] in
            guard let self, self.state == .connecting else { return }
            self.connection.close(reason: "connect timed out after \(connectTimeoutMilliseconds) ms")
        }
    }

    var session: HTTP2Session { self.connection.session }

    func markDirty() { self.connection.loop.markDirty(self.connection) }

    /// Streams this connection can still open within the upstream's SETTINGS_MAX_CONCURRENT_STREAMS.
    var capacity: Int {
        guard self.state == .ready || self.state == .connecting else { return 0 }
        return self.session.remoteMaxConcurrentStreams - self.streams.count - self.waiting.count
    }

    /// Keepalive and idle timeout, checked about once a second (see ``UpstreamConfiguration``):
    /// - with calls open and nothing read for `keepaliveMilliseconds`, send a PING; when nothing has been read
    ///   `keepaliveTimeoutMilliseconds` after it, close the connection, failing its calls with UNAVAILABLE;
    /// - with no call, nothing read for `idleTimeoutMilliseconds`: close it quietly.
    func housekeeping(now: UInt64, configuration: UpstreamConfiguration) {
        let keepaliveMilliseconds = configuration.keepaliveMilliseconds
        let timeoutMilliseconds = configuration.keepaliveTimeoutMilliseconds
        let idleMilliseconds = configuration.idleTimeoutMilliseconds
        guard self.state == .ready || self.state == .draining else { return }
        let lastRead = self.connection.lastActivity
        let silent = now &- lastRead
        if let sent = self.pingSentAt {
            if lastRead >= sent {
                self.pingSentAt = nil  // answered, or other frames came: the upstream is there
            } else if now &- sent >= UInt64(timeoutMilliseconds) * 1_000_000 {
                self.connection.close(
                    reason:
                        "no answer to a keepalive PING within \(DurationText.seconds(milliseconds: timeoutMilliseconds))"
                )
                return
            }
        }
        if self.streams.isEmpty && self.waiting.isEmpty {
            self.pingSentAt = nil
            if idleMilliseconds > 0, silent >= UInt64(idleMilliseconds) * 1_000_000 {
                // Nothing to fail and nothing to report: the next call opens a new connection.
                self.state = .draining
                self.connection.close(reason: nil)
            }
            return
        }
        if self.pingSentAt == nil, keepaliveMilliseconds > 0, silent >= UInt64(keepaliveMilliseconds) * 1_000_000 {
            self.session.submitPing()
            self.pingSentAt = now
            self.markDirty()
        }
    }

    // MARK: Events

    /// Connected (and TLS done): our preface and SETTINGS go out. The connection becomes ready only
    /// once the upstream's SETTINGS arrive, so that its stream limit is known before any stream opens.
    func connectionDidConnect(_ connection: HTTP2Connection) {
        self.markDirty()
    }

    func connection(_ connection: HTTP2Connection, handle events: [HTTP2Event]) {
        for event in events {
            switch event {
            case .headers(let streamID, let kind, let fields, let endStream, let oversized, _):
                guard let call = self.streams[streamID] else { continue }
                if oversized {
                    call.responseBlockOversized(
                        trailers: kind != .response || endStream,
                        fields: fields,
                        limit: self.session.maxHeaderListBytes
                    )
                } else if kind == .response {
                    call.responseHeaders(fields, endStream: endStream)
                } else {
                    call.responseEnd(trailers: fields)
                }
            case .data(let streamID, let bytes):
                if let call = self.streams[streamID] {
                    call.responseData(bytes)
                } else {
                    self.session.consume(streamID: streamID, count: bytes.count)
                }
            case .endStream(let streamID):
                self.streams[streamID]?.responseEnd(trailers: nil)
            case .outboundConsumed(let streamID, let count):
                self.streams[streamID]?.requestBytesSent(count)
            case .streamClosed(let streamID, let errorCode):
                if let call = self.streams.removeValue(forKey: streamID) {
                    if errorCode != 0, call.unsentRequest == nil { self.pool?.metrics?.recordUpstreamError(.reset) }
                    call.upstreamStreamClosed(errorCode: errorCode)
                }
                self.pool?.streamFreed(on: self)
            case .remoteSettingsChanged:
                if self.state == .connecting {
                    if let timer = self.connectTimer { connection.loop.cancelTimer(timer) }
                    self.state = .ready
                    self.pool?.connectionReady(self)
                } else {
                    self.pool?.streamFreed(on: self)
                }
            case .invalidHeaderField, .requestReset:
                break  // server role only: the session resets such a response stream itself
            case .headersNotSent(let streamID, _, let error):
                // The session closes the stream with REFUSED_STREAM next: Milvus never saw the call.
                self.streams[streamID]?.requestHeadersNotSent(error, limit: self.session.maxSendHeaderBlockBytes)
            case .goaway(let lastStreamID, let errorCode):
                self.state = .draining
                self.pool?.logger.info(
                    "upstream sent GOAWAY",
                    metadata: ["last-stream": "\(lastStreamID)", "error": "\(errorCode)"]
                )
                // Streams above lastStreamID were never processed: the session closes them with
                // REFUSED_STREAM, which the calls report as UNAVAILABLE (safe to retry).
                self.pool?.connectionDraining(self)
            }
        }
    }

    func connectionDidClose(_ connection: HTTP2Connection, reason: String?) {
        if let timer = self.connectTimer { connection.loop.cancelTimer(timer) }
        let wasConnecting = self.state == .connecting
        self.state = .closed
        let address = self.pool?.address.description ?? "upstream"
        let status =
            wasConnecting
            ? GRPCStatus(.unavailable, "upstream \(address) unreachable: \(reason ?? "connection closed")")
            : GRPCStatus(.unavailable, "upstream \(address) connection lost: \(reason ?? "connection closed")")
        if reason != nil || !self.streams.isEmpty {
            let kind: UpstreamErrorKind
            if wasConnecting {
                kind =
                    reason?.contains("timed out") == true
                    ? .connectTimeout : reason?.contains("TLS") == true ? .tls : .connect
            } else {
                kind = .reset
            }
            self.pool?.metrics?.recordUpstreamError(kind)
            self.pool?.logger.warning(
                wasConnecting ? "upstream unreachable" : "upstream connection lost",
                metadata: ["upstream": "\(address)", "reason": "\(reason ?? "closed by peer")"]
            )
        }
        let calls = Array(self.streams.values) + self.waiting
        self.streams = [:]
        self.waiting = []
        self.pool?.connectionClosed(self, neverConnected: wasConnecting)
        for call in calls { call.upstreamFailed(status) }
    }

    func connection(_ connection: HTTP2Connection, rejectedPreface bytes: ArraySlice<UInt8>) -> [UInt8] { [] }
}

@available(*, unavailable)
extension UpstreamConnection: Sendable {}
