import CLinux
import NGHTTP2Support
import OpenSSLSupport

/// What owns a connection: a client connection or an upstream connection.
protocol HTTP2ConnectionDelegate: AnyObject {
    /// Events from the session, in order. Called on the loop thread.
    func connection(_ connection: HTTP2Connection, handle events: [HTTP2Event])
    /// An outgoing connection finished connecting (and its TLS handshake, if any).
    func connectionDidConnect(_ connection: HTTP2Connection)
    /// The connection is closed; `reason` is nil for an orderly close.
    func connectionDidClose(_ connection: HTTP2Connection, reason: String?)
    /// The first bytes from a client are not the HTTP/2 connection preface. Return a response to
    /// write before closing (an HTTP/1.1 refusal).
    func connection(_ connection: HTTP2Connection, rejectedPreface bytes: ArraySlice<UInt8>) -> [UInt8]
}

/// A socket carrying one HTTP/2 session: reads feed the session, the session's output is written back,
/// with back-pressure. Used for both sides of the proxy; the delegate gives it meaning.
///
/// Output is pulled from the session only while the previous output has been written out completely,
/// so a slow peer stops the session from producing frames, and with no automatic window updates the
/// other side of the proxy then stops receiving data for it.
final class HTTP2Connection: LoopHandler {
    enum State { case connecting, open, closing, closed }

    unowned let loop: EventLoop
    let socket: Socket
    let session: HTTP2Session
    /// TLS between the socket and the session, when this hop is encrypted.
    let tls: TLSConnection?
    weak var delegate: (any HTTP2ConnectionDelegate)?
    private(set) var state: State
    private var token: UInt64 = 0
    private var output: [UInt8] = []
    private var outputOffset = 0
    private var writableRegistered = false
    private var events: [HTTP2Event] = []
    /// The buffer ``dispatchEvents()`` hands to the delegate, kept empty between dispatches for reuse.
    private var spareEvents: [HTTP2Event] = []
    /// Decrypted bytes (TLS only), reused between reads.
    private var plaintext: [UInt8] = []
    /// Session output waiting to be encrypted (TLS only), reused between writes.
    private var sessionOutput: [UInt8] = []
    /// The TLS handshake finished and was reported (ALPN checked, delegate told).
    private var handshakeReported = false
    /// Bytes of the client preface checked so far (server side only; nil once verified).
    private var prefaceChecked: Int?
    /// Set by the loop while the connection waits in its dirty list.
    var isMarkedDirty = false
    /// Monotonic time of the last byte read, for idle timeouts.
    private(set) var lastActivity: UInt64 = EventLoop.now()
    /// When the connection was accepted or opened, for the handshake timeout.
    let openedAt: UInt64 = EventLoop.now()

    /// Whether the peer has yet to complete the TLS handshake or (as a client) the HTTP/2 preface.
    var isHandshaking: Bool {
        self.prefaceChecked != nil || (self.tls.map { !$0.isHandshakeComplete } ?? false)
    }

    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    private static let outputChunk = 64 * 1024

    /// Wraps an accepted (open) or connecting socket and registers it with the loop.
    init(loop: EventLoop, socket: Socket, session: HTTP2Session, tls: TLSConnection? = nil, connecting: Bool) throws {
        self.loop = loop
        self.socket = socket
        self.session = session
        self.tls = tls
        self.state = connecting ? .connecting : .open
        self.prefaceChecked = session.role == .server ? 0 : nil
        let mask = connecting ? CLINUX_EPOLLOUT : CLINUX_EPOLLIN
        self.writableRegistered = connecting
        self.token = try loop.register(socket.descriptor, events: mask | CLINUX_EPOLLRDHUP, handler: self)
    }

    var peer: String { self.socket.peer }

    // MARK: Readiness

    func handleEvents(_ events: UInt32) {
        if self.state == .connecting {
            if let error = self.socket.connectionError() {
                self.close(reason: error)
                return
            }
            self.state = .open
            self.updateInterest()
            if let tls = self.tls {
                do {
                    try tls.startHandshake()
                } catch {
                    self.close(reason: "TLS: \(error)")
                    return
                }
            } else {
                self.delegate?.connectionDidConnect(self)
            }
            self.loop.markDirty(self)
            return
        }
        if events & (CLINUX_EPOLLIN | CLINUX_EPOLLHUP | CLINUX_EPOLLERR | CLINUX_EPOLLRDHUP) != 0 {
            self.readAvailable()
        }
        if events & CLINUX_EPOLLOUT != 0, self.state != .closed {
            self.flush()
        }
    }

    private func readAvailable() {
        // Bounded per wake-up so one busy connection cannot starve the others on this loop.
        for _ in 0..<8 {
            guard self.state == .open else { return }
            let result = self.loop.readBuffer.withUnsafeMutableBytes { self.socket.read(into: $0) }
            switch result {
            case .wouldBlock:
                return
            case .endOfFile:
                self.close(reason: nil)
                return
            case .bytes(let count):
                self.lastActivity = EventLoop.now()
                self.loop.readBuffer.withUnsafeBytes { raw in
                    let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<count])
                    if self.tls != nil {
                        self.receivedCiphertext(bytes)
                    } else {
                        self.received(bytes)
                    }
                }
                self.loop.markDirty(self)
                // A short read drained the socket: skip the read that would only say EAGAIN (epoll is
                // level-triggered and wakes us again for anything that arrives later).
                if count < self.loop.readBuffer.count { return }
            }
        }
    }

    /// Decrypts what arrived and hands the plaintext to the session; reports a finished handshake.
    private func receivedCiphertext(_ bytes: UnsafeRawBufferPointer) {
        guard let tls = self.tls else { return }
        tls.feed(bytes)
        while self.state == .open {
            self.plaintext.removeAll(keepingCapacity: true)
            let result: TLSConnection.ReadResult
            do {
                result = try tls.readPlaintext(into: &self.plaintext, max: 16 * 1024)
            } catch {
                // Its message, without the wrapper's source location: it goes into audit records.
                self.failTLS(error.message)
                return
            }
            if !self.handshakeReported && tls.isHandshakeComplete {
                self.handshakeReported = true
                guard tls.negotiatedALPN == "h2" else {
                    self.failTLS("the peer did not negotiate ALPN h2")
                    return
                }
                if self.session.role == .client { self.delegate?.connectionDidConnect(self) }
            }
            switch result {
            case .data:
                self.plaintext.withUnsafeBytes { self.received($0) }
            case .wantMore:
                return
            case .closed:
                tls.close()
                self.state = .closing
                return
            }
        }
    }

    /// Sends the pending alert, then closes.
    private func failTLS(_ reason: String) {
        if let tls = self.tls {
            var alert = tls.takeCiphertext()
            if !alert.isEmpty { _ = alert.withUnsafeBytes { self.socket.write($0) } }
            alert.removeAll()
        }
        self.close(reason: ClientConnection.tlsFailurePrefix + reason)
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        if let checked = self.prefaceChecked {
            let n = min(bytes.count, Self.preface.count - checked)
            if !bytes.prefix(n).elementsEqual(Self.preface[checked..<(checked + n)]) {
                let response = self.delegate?.connection(self, rejectedPreface: ArraySlice(bytes)) ?? []
                self.writeAndClose(response)
                return
            }
            self.prefaceChecked = checked + n == Self.preface.count ? nil : checked + n
        }
        do {
            try self.session.feed(bytes, into: &self.events)
        } catch {
            // nghttp2 queued a GOAWAY; deliver what was understood, send it, then close.
            self.dispatchEvents()
            self.state = .closing
            return
        }
        self.dispatchEvents()
    }

    private func dispatchEvents() {
        guard !self.events.isEmpty else { return }
        // Hand the batch over by swapping buffers, so neither array is shared when it is emptied: copying
        // `events` and then emptying it with `keepingCapacity` would allocate a fresh buffer every time.
        // A nested dispatch (from the delegate) finds no spare buffer and simply allocates one.
        var batch = self.spareEvents
        self.spareEvents = []
        swap(&batch, &self.events)
        self.delegate?.connection(self, handle: batch)
        batch.removeAll(keepingCapacity: true)
        self.spareEvents = batch
    }

    // MARK: Writing

    /// Writes pending output, then pulls more frames from the session while the socket takes them.
    func flush() {
        guard self.state == .open || self.state == .closing else { return }
        // Until a client has sent the HTTP/2 preface, no frame goes out (TLS handshake records do): a
        // client speaking HTTP/1.1 must see a plain HTTP/1.1 refusal, not our SETTINGS frame.
        let sessionMaySend = self.prefaceChecked == nil
        while true {
            if self.outputOffset < self.output.count {
                let written = self.output.withUnsafeBytes { raw in
                    self.socket.write(UnsafeRawBufferPointer(rebasing: raw[self.outputOffset...]))
                }
                guard let written else {
                    self.close(reason: "write failed: \(errnoText())")
                    return
                }
                self.outputOffset += written
                if self.outputOffset < self.output.count {
                    self.setWritableInterest(true)
                    return
                }
            }
            self.output.removeAll(keepingCapacity: true)
            self.outputOffset = 0
            if let tls = self.tls {
                // Until the handshake is done only handshake records go out; the session's frames wait.
                if tls.isHandshakeComplete && sessionMaySend {
                    self.sessionOutput.removeAll(keepingCapacity: true)
                    do {
                        try self.session.send(into: &self.sessionOutput, limit: Self.outputChunk, events: &self.events)
                        if !self.sessionOutput.isEmpty { _ = try tls.writePlaintext(self.sessionOutput) }
                    } catch {
                        self.close(reason: "HTTP/2 over TLS failed: \(error)")
                        return
                    }
                    self.dispatchEvents()
                }
                _ = tls.takeCiphertext(appendingTo: &self.output)
            } else if sessionMaySend {
                do {
                    try self.session.send(into: &self.output, limit: Self.outputChunk, events: &self.events)
                } catch {
                    self.close(reason: "HTTP/2 session failed: \(error.message)")
                    return
                }
                self.dispatchEvents()
            }
            if self.output.isEmpty { break }
        }
        self.setWritableInterest(false)
        let handshaking = self.tls.map { !$0.isHandshakeComplete } ?? false
        if self.state == .closing || (!handshaking && sessionMaySend && !self.session.isActive) {
            if let tls = self.tls, self.state == .closing, tls.isHandshakeComplete {
                tls.close()
                var notify = tls.takeCiphertext()
                if !notify.isEmpty { _ = notify.withUnsafeBytes { self.socket.write($0) } }
                notify.removeAll()
            }
            self.close(reason: nil)
        }
    }

    /// Sends raw bytes (not HTTP/2) and closes: used to answer an HTTP/1.1 request.
    private func writeAndClose(_ bytes: [UInt8]) {
        self.prefaceChecked = nil
        self.output = bytes
        self.outputOffset = 0
        self.state = .closing
        // The session never saw a preface; don't let it add frames.
        while self.outputOffset < self.output.count {
            let written = self.output.withUnsafeBytes { raw in
                self.socket.write(UnsafeRawBufferPointer(rebasing: raw[self.outputOffset...]))
            }
            guard let written, written > 0 else { break }
            self.outputOffset += written
        }
        self.socket.shutdownWrite()
        self.close(reason: nil)
    }

    /// Closes after flushing what the session has queued (GOAWAY, last frames).
    func closeGracefully() {
        guard self.state == .open else { return }
        self.state = .closing
        self.loop.markDirty(self)
    }

    /// Closes at once and tells the delegate.
    func close(reason: String?) {
        guard self.state != .closed else { return }
        self.state = .closed
        self.loop.unregister(self.socket.descriptor, token: self.token)
        self.socket.close()
        self.output = []
        self.delegate?.connectionDidClose(self, reason: reason)
    }

    private func setWritableInterest(_ on: Bool) {
        guard on != self.writableRegistered else { return }
        self.writableRegistered = on
        self.updateInterest()
    }

    private func updateInterest() {
        guard self.state != .closed else { return }
        var mask = CLINUX_EPOLLIN | CLINUX_EPOLLRDHUP
        if self.writableRegistered || self.state == .connecting { mask |= CLINUX_EPOLLOUT }
        self.loop.modify(self.socket.descriptor, token: self.token, events: mask)
    }
}

@available(*, unavailable)
extension HTTP2Connection: Sendable {}
