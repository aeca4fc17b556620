import GuardPolicy
import Logging
import MilvusCatalog
import NGHTTP2Support
import OpenSSLSupport

/// A client's HTTP/2 connection to the proxy (server role): turns its streams into ``ProxiedCall``s,
/// refuses what is not gRPC, and relays the events of each call.
final class ClientConnection: HTTP2ConnectionDelegate {
    unowned let worker: ProxyWorker
    let connection: HTTP2Connection
    let logger: Logger
    private var calls: [Int32: ProxiedCall] = [:]
    /// Request bytes this connection's calls hold for inspection (see ``Limits/heldBytesPerConnection``).
    private var heldBytes = 0
    /// The client's address without the port (the unit of the authentication-failure limit).
    let peerHost: String
    /// ``ClientNetwork`` of ``peerHost``: what the verifier's turns and the budget of unproven callers count by.
    let network: String
    /// The client's address and port, for audit records.
    let peer: String
    /// The last `authorization` value verified on this connection and whom it named: clients send the same
    /// one on every call, so a call costs a string comparison.
    private var memo: (authorization: String, principal: Principal, generation: Int, expires: UInt64)?
    /// The principal the TLS client certificate names, per policy generation (nil inside: names nobody).
    private var certificatePrincipal: (generation: Int, principal: Principal?)?
    /// When the client's verified chain expires (Unix seconds; `Int64.min` when a time can't be read), read with its
    /// principal: a connection outlives the handshake that verified it, and must not go on as that user past this.
    private(set) var certificateExpiry: Int64?
    /// ``trustRefusal(under:)``'s answer for the context it last checked. The context itself, not its address: a
    /// context freed after a later reload could leave its address to a newer one, which would then find an answer
    /// meant for another.
    private var trustChecked: (context: TLSContext, refusal: String?)?
    /// Why a verified client certificate named nobody (no user, or several), for the refusal of its anonymous calls
    /// and for the log (``TLSIdentity/note(_:subject:alternativeNames:)``); nil when it named a user or there is none.
    private(set) var certificateNote: (client: String, logged: String)?

    init(worker: ProxyWorker, socket: Socket, session: HTTP2Session, tls: TLSConnection?) throws {
        self.worker = worker
        self.connection = try HTTP2Connection(
            loop: worker.loop,
            socket: socket,
            session: session,
            tls: tls,
            connecting: false
        )
        self.peer = socket.peer
        self.peerHost = Self.host(of: socket.peer)
        self.network = ClientNetwork.of(self.peerHost)
        var logger = worker.logger
        logger[metadataKey: "client"] = "\(socket.peer)"
        self.logger = logger
        self.connection.delegate = self
    }

    var loop: EventLoop { self.worker.loop }
    var session: HTTP2Session { self.connection.session }
    var hasCalls: Bool { !self.calls.isEmpty }
    /// Set by ``cutOff()``: the client was told to open no new streams, and the connection closes once its calls
    /// are done.
    private(set) var isCutOff = false

    func markDirty() { self.loop.markDirty(self.connection) }

    // MARK: Events

    func connection(_ connection: HTTP2Connection, handle events: [HTTP2Event]) {
        for event in events {
            switch event {
            case .headers(let streamID, let kind, let fields, let endStream, let oversized, let listBytes):
                let invalid = self.invalidFields.isEmpty ? nil : self.invalidFields.removeValue(forKey: streamID)
                if kind == .request {
                    self.openCall(
                        streamID: streamID,
                        fields: fields,
                        listBytes: listBytes,
                        endStream: endStream,
                        oversized: oversized
                    )
                    if let invalid, !oversized, let call = self.calls[streamID], !call.forwarded {
                        self.refuseInvalidField(call, invalid)
                    }
                } else if oversized, let call = self.calls[streamID], !call.forwarded {
                    self.refuseOversized(call, "request trailers exceed")
                } else if let invalid, let call = self.calls[streamID] {
                    if call.forwarded {
                        // A stream already going on (bidi) can't be answered: reset, as nghttp2 would have done.
                        self.session.resetStream(streamID, errorCode: HTTP2ErrorCode.protocolError)
                        self.markDirty()
                        self.worker.auditResetRequest(
                            self,
                            path: call.path,
                            reason: "invalid header field \"\(invalid)\" in trailers"
                        )
                    } else {
                        self.refuseInvalidField(call, invalid)
                    }
                } else {
                    self.calls[streamID]?.requestEnd()  // request trailers end the request
                }
            case .invalidHeaderField(let streamID, let name):
                if self.invalidFields[streamID] == nil { self.invalidFields[streamID] = name }
            case .requestReset(let streamID, let fields, let reason):
                if !self.invalidFields.isEmpty { self.invalidFields[streamID] = nil }
                // A request's header block, or a call's trailers (the call then ends as its stream closes, and a read
                // would leave no record of why).
                let path = self.calls[streamID]?.path ?? fields.first { $0.name == ":path" }?.value
                self.worker.auditResetRequest(self, path: path, reason: reason)
            case .data(let streamID, let bytes):
                if let call = self.calls[streamID] {
                    call.requestData(bytes)
                } else {
                    self.session.consume(streamID: streamID, count: bytes.count)
                }
            case .endStream(let streamID):
                self.calls[streamID]?.requestEnd()
            case .outboundConsumed(let streamID, let count):
                self.calls[streamID]?.responseBytesSent(count)
            case .streamClosed(let streamID, _):
                if !self.invalidFields.isEmpty { self.invalidFields[streamID] = nil }
                if let call = self.calls.removeValue(forKey: streamID) {
                    call.clientStreamClosed(connectionGone: false)
                    self.logCompletion(call)
                    self.worker.callFinished(call)
                    if self.isCutOff && self.calls.isEmpty { self.connection.closeGracefully() }
                }
            case .headersNotSent(let streamID, let kind, let error):
                // A block of a call's response (a refusal of a stream that is not a call is a few bytes).
                self.calls[streamID]?.responseNotSent(kind, error: error, limit: self.session.maxSendHeaderBlockBytes)
            case .goaway, .remoteSettingsChanged:
                break
            }
        }
    }

    func connectionDidConnect(_ connection: HTTP2Connection) {}

    func connectionDidClose(_ connection: HTTP2Connection, reason: String?) {
        if let reason { self.logger.debug("client connection closed", metadata: ["reason": "\(reason)"]) }
        if let reason, reason.hasPrefix(Self.tlsFailurePrefix) {
            self.worker.auditTLSFailure(self, reason: String(reason.dropFirst(Self.tlsFailurePrefix.count)))
        }
        let calls = self.calls
        self.calls = [:]
        for call in calls.values {
            call.clientStreamClosed(connectionGone: true)
            self.worker.callFinished(call)
        }
        self.worker.clientClosed(self)
    }

    /// Streams whose header block in progress had an invalid field (``HTTP2Event/invalidHeaderField(streamID:name:)``),
    /// until its block arrives.
    private var invalidFields: [Int32: String] = [:]

    /// How ``HTTP2Connection`` names a close caused by TLS (a failed handshake, a broken record).
    static let tlsFailurePrefix = "TLS: "

    func connection(_ connection: HTTP2Connection, rejectedPreface bytes: ArraySlice<UInt8>) -> [UInt8] {
        self.logger.warning("refused a request that is not HTTP/2 (HTTP/1.1, REST or garbage)")
        let body = "milvus-guard: only gRPC over HTTP/2 is accepted; HTTP/1.1 and the REST API are refused\n"
        self.worker.auditProtocolRefusal(
            self,
            asked: Self.requestLine(bytes),
            httpStatus: 403,
            message: "only gRPC over HTTP/2 is accepted; HTTP/1.1 and the REST API are refused",
            onStream: false
        )
        let response =
            "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: \(body.utf8.count)\r\n"
            + "connection: close\r\n\r\n" + body
        return Array(response.utf8)
    }

    /// What a refused non-HTTP/2 client asked, for its audit record: the first line of what it sent (`POST
    /// /v2/vectordb/collections/drop HTTP/1.1`), printable ASCII only, at most 200 bytes.
    static func requestLine(_ bytes: ArraySlice<UInt8>) -> String {
        var line: [UInt8] = []
        for byte in bytes.prefix(200) {
            if byte == 0x0D || byte == 0x0A { break }
            line.append(byte >= 0x20 && byte < 0x7F ? byte : UInt8(ascii: "?"))
        }
        return line.isEmpty ? "(not HTTP/2)" : String(decoding: line, as: UTF8.self)
    }

    // MARK: Calls

    private func openCall(streamID: Int32, fields: [HeaderField], listBytes: Int, endStream: Bool, oversized: Bool) {
        var path = ""
        var method = ""
        var contentType = ""
        var timeout: String?
        var encoding: String?
        var database: String?
        var authorization: String?
        var repeated: String?
        for field in fields {
            switch field.name {
            case ":path": path = field.value
            case ":method": method = field.value
            case "content-type": contentType = field.value
            case "grpc-timeout": timeout = field.value
            case "grpc-encoding": encoding = field.value
            case "dbname":
                if database != nil { repeated = "dbname" }
                database = field.value
            case "authorization":
                if authorization != nil { repeated = "authorization" }
                authorization = field.value
            default: break
            }
        }
        let call = ProxiedCall(client: self, streamID: streamID, path: path, headers: fields)
        self.calls[streamID] = call

        if oversized {
            self.refuseOversized(call, "request header list exceeds")
            return
        }
        guard method == "POST",
            contentType == "application/grpc" || contentType.hasPrefix("application/grpc+")
                || contentType.hasPrefix("application/grpc;")
        else {
            self.refuseNonGRPC(streamID: streamID, method: method, contentType: contentType, path: path)
            self.calls[streamID] = nil
            return
        }
        // The guard and Milvus must read the same value: Milvus takes the first of a repeated key, so a
        // second `dbname` could otherwise name the database the policy checked while Milvus acts on another.
        if let repeated {
            call.respond(GRPCStatus(.invalidArgument, "the \(repeated) metadata appears more than once"))
            return
        }
        guard let rpc = MilvusRPCs.descriptor(forPath: path) else {
            call.respond(GRPCStatus(.unimplemented, "unknown RPC \"\(path)\"; only MilvusService RPCs are served"))
            return
        }
        let gateEncoding: RequestGate.Encoding
        switch encoding {
        case nil, "identity": gateEncoding = .identity
        case "gzip": gateEncoding = .gzip
        case "deflate": gateEncoding = .deflate
        case let other?:
            call.respond(GRPCStatus(.unimplemented, "grpc-encoding \"\(other)\" can't be inspected; use gzip or none"))
            return
        }
        call.gate = RequestGate(
            rpc: rpc,
            encoding: gateEncoding,
            metadataDatabase: database,
            maxMessageBytes: self.worker.configuration.limits.maxMessageBytes
        )
        if let timeout {
            guard let milliseconds = parseGRPCTimeout(timeout) else {
                call.respond(GRPCStatus(.invalidArgument, "malformed grpc-timeout \"\(timeout)\""))
                return
            }
            call.deadlineTimer = self.loop.schedule(afterMilliseconds: milliseconds) { [weak call] in
                call?.deadlineExceeded(after: milliseconds)
            }
        }
        // Identity is settled while the body arrives (a password check runs off the loop meanwhile).
        call.authorization = authorization
        call.identity = self.worker.identify(call, authorization: authorization, client: self)
        // The header list is kept until the call ends (it is forwarded once the request is decided), and HPACK lets a
        // few bytes on the wire stand for a large list (one 4 KB value in the dynamic table, referenced by a byte at a
        // time): it counts against the held-bytes budgets like the request's body (a caller not proven yet, against
        // its share), so that streams that send such headers and never finish can't take the machine's memory (a
        // review run: 863 MB from 217 KB sent).
        if let refusal = call.holdHeaders(listBytes, on: self) {
            call.respond(refusal)
            return
        }
        // The call waits in its gate until its request is complete; a request with no body at all is
        // decided now (and refused: every Milvus RPC carries a message).
        if endStream { call.requestEnd() }
    }

    /// Refuses a call whose header block had a field HTTP/2 does not allow and nghttp2 left out (a byte a name or
    /// value may not hold: a NUL, CR or LF in a value, a space in a name): a gRPC status instead of the PROTOCOL_ERROR
    /// reset nghttp2 would send, recorded and counted like other refusals, rather than the call going on without
    /// the field. (Upper-case names are reset by nghttp2 itself: ``ProxyWorker/auditResetRequest(_:path:reason:)``.)
    private func refuseInvalidField(_ call: ProxiedCall, _ name: String) {
        call.verdict = .failed
        call.respond(
            GRPCStatus(
                .invalidArgument,
                "header field \"\(name)\" is not valid in HTTP/2 (a byte its name or value may not hold)"
            )
        )
    }

    /// Refuses a call whose header block (`what`: "request trailers exceed") was over `limits.max_header_list_bytes`:
    /// its stream is reset already (ENHANCE_YOUR_CALM), so this records it, counted as the client's doing (an HPACK
    /// bomb, say) toward `refusals_per_minute`.
    private func refuseOversized(_ call: ProxiedCall, _ what: String) {
        call.verdict = .failed
        let limit = self.worker.configuration.limits.maxHeaderListBytes
        call.respond(GRPCStatus(.resourceExhausted, "\(what) \(limit) bytes"))
    }

    /// Refuses the calls whose request has not arrived whole within `timeoutMilliseconds` of their headers
    /// (`limits.request_timeout`; checked once a second, so up to a second late).
    func refuseUnfinishedRequests(now: UInt64, timeoutMilliseconds: Int) {
        let limit = UInt64(timeoutMilliseconds) * 1_000_000
        for call in self.calls.values
        where call.isHoldingRequest && now > call.requestClockStart && now - call.requestClockStart > limit {
            call.requestTimedOut(after: timeoutMilliseconds)
        }
    }

    // MARK: Identity

    /// The principal remembered for `authorization` on this connection, if still valid.
    func rememberedPrincipal(for authorization: String, generation: Int, now: UInt64) -> Principal? {
        guard let memo = self.memo, memo.generation == generation, memo.expires > now,
            memo.authorization == authorization
        else { return nil }
        return memo.principal
    }

    func remember(_ principal: Principal, for authorization: String, generation: Int, until expires: UInt64) {
        self.memo = (authorization, principal, generation, expires)
    }

    /// Why this connection's client certificate is no longer accepted under `context`, the server TLS context in
    /// force (a reload read the files again: a CRL that now revokes it, a CA no longer trusted, or it expired); nil
    /// while it is. Verified once per context (``TLSConnection/verifyPeerAgain(with:)``), not at all while the
    /// connection's own context is in force (its handshake verified it) or without client certificates.
    func trustRefusal(under context: TLSContext?) -> String? {
        guard let tls = self.connection.tls, let context, context !== tls.context, context.requiresClientCertificate
        else { return nil }
        if let checked = self.trustChecked, checked.context === context { return checked.refusal }
        let refusal = tls.verifyPeerAgain(with: context)
        self.trustChecked = (context, refusal)
        return refusal
    }

    /// The user the verified TLS client certificate names, as a principal; nil without TLS, without a client
    /// certificate, or when no user's `tls_subject` matches it.
    func tlsPrincipal(in policy: Policy, generation: Int) -> Principal? {
        guard let tls = self.connection.tls else { return nil }
        if let known = self.certificatePrincipal, known.generation == generation { return known.principal }
        if self.certificateExpiry == nil { self.certificateExpiry = tls.peerCertificateNotAfter }
        let (subject, alternativeNames) = (tls.peerCertificateSubject, tls.peerCertificateSANs)
        let match = TLSIdentity.match(subject: subject, alternativeNames: alternativeNames, in: policy.users)
        self.certificateNote = TLSIdentity.note(match, subject: subject, alternativeNames: alternativeNames)
        var principal: Principal?
        if case .user(let user) = match { principal = user.principal(authentication: .tls) }
        self.certificatePrincipal = (generation, principal)
        return principal
    }

    /// The address a connection from `peer` counts against in ``Limits/connectionsPerClient``: its host, or nil for
    /// a Unix-socket client (all of them share the peer name `unix`).
    static func countedHost(of peer: String) -> String? {
        peer == "unix" ? nil : Self.host(of: peer)
    }

    /// `1.2.3.4:5` → `1.2.3.4`, `[::1]:5` → `::1`; anything else as is.
    static func host(of peer: String) -> String {
        if peer.hasPrefix("["), let close = peer.firstIndex(of: "]") {
            return String(peer[peer.index(after: peer.startIndex)..<close])
        }
        if let colon = peer.lastIndex(of: ":"), !peer[..<colon].contains(":") { return String(peer[..<colon]) }
        return peer
    }

    /// Takes `count` bytes from this connection's and the process's held-bytes budgets.
    func reserveHeld(_ count: Int) -> Bool {
        guard self.heldBytes + count <= self.worker.configuration.limits.heldBytesPerConnection,
            self.worker.heldBudget.reserve(count)
        else { return false }
        self.heldBytes += count
        return true
    }

    /// Response bytes of this connection's calls that wait for the client while their upstream connection window
    /// was given back; at most ``responseAheadLimit``.
    private var responseAhead = 0
    /// As much as one upstream connection's window (with the default `connection_window_bytes`). Past it, a call of
    /// this connection that would start taking the window every client shares is reset instead.
    static let responseAheadLimit = 16 << 20

    /// Takes `count` response bytes into the budgets of this connection and the process; false when either is
    /// spent (the bytes then keep their upstream connection window until the client reads them).
    func takeResponseAhead(_ count: Int) -> Bool {
        guard self.responseAhead + count <= Self.responseAheadLimit, self.worker.services.responseBudget.reserve(count)
        else { return false }
        self.responseAhead += count
        return true
    }

    /// Gives back what ``takeResponseAhead(_:)`` took of this connection's budget (the call gives back the
    /// process's).
    func releaseResponseAhead(_ count: Int) {
        self.responseAhead -= count
    }

    func releaseHeld(_ count: Int) {
        guard count > 0 else { return }
        self.heldBytes -= count
        self.worker.heldBudget.release(count)
    }

    /// Answers a request that is not gRPC (wrong method or content type) with an HTTP error and a
    /// one-line reason; it is never forwarded.
    private func refuseNonGRPC(streamID: Int32, method: String, contentType: String, path: String) {
        let status = method == "POST" ? "415" : "405"
        let reason =
            method == "POST"
            ? "milvus-guard: content-type \"\(contentType)\" is not gRPC; only application/grpc is served\n"
            : "milvus-guard: method \(method) not allowed; only gRPC (POST, application/grpc) is served\n"
        self.logger.warning(
            "refused a non-gRPC request",
            metadata: ["path": "\(path)", "method": "\(method)", "content-type": "\(contentType)"]
        )
        self.worker.auditProtocolRefusal(
            self,
            asked: "\(method.prefix(16)) \(path.prefix(200))",
            httpStatus: method == "POST" ? 415 : 405,
            message: String(reason.dropFirst("milvus-guard: ".count).dropLast()),
            onStream: true
        )
        let headers = [
            HeaderField(":status", status),
            HeaderField("content-type", "text/plain; charset=utf-8"),
            HeaderField("content-length", String(reason.utf8.count)),
        ]
        do {
            try self.session.submitResponse(streamID: streamID, headers, endStream: false)
            self.session.enqueueData(streamID: streamID, Array(reason.utf8))
            self.session.finishBody(streamID: streamID)
        } catch {
            self.session.resetStream(streamID, errorCode: HTTP2ErrorCode.refusedStream)
        }
        self.markDirty()
    }

    private func logCompletion(_ call: ProxiedCall) {
        guard self.logger.logLevel <= .debug else { return }
        let elapsed = Double(EventLoop.now() - call.startedAt) / 1_000_000
        self.logger.debug(
            "call",
            metadata: [
                "path": "\(call.path)",
                "grpc-status": "\(call.finalStatus ?? "none")",
                "ms": "\((elapsed * 1000).rounded() / 1000)",
            ]
        )
    }

    // MARK: Shutdown

    /// First step of a graceful shutdown: tell the client to open no new streams.
    func beginShutdown() {
        self.session.submitShutdownNotice()
        self.session.submitGoaway(errorCode: HTTP2ErrorCode.noError)
        self.markDirty()
    }

    /// Ends a connection whose address went over ``Limits/refusalsPerWindow``: a GOAWAY (ENHANCE_YOUR_CALM) naming
    /// the last stream processed, so the client opens no new streams here; the calls in flight end as usual, then
    /// the connection closes.
    func cutOff() {
        guard !self.isCutOff else { return }
        self.isCutOff = true
        self.logger.info("too many refused calls from this address: closing the connection")
        self.session.submitGoaway(errorCode: HTTP2ErrorCode.enhanceYourCalm)
        self.markDirty()
        if self.calls.isEmpty { self.connection.closeGracefully() }
    }

    /// Closes now if no call is open (after a GOAWAY, or when idle past the timeout).
    func closeIfIdle() {
        guard self.calls.isEmpty else { return }
        self.session.submitGoaway(errorCode: HTTP2ErrorCode.noError)
        self.connection.closeGracefully()
    }

    var lastActivity: UInt64 { self.connection.lastActivity }

    /// Closes a connection whose client has not finished the TLS handshake and the HTTP/2 preface
    /// within the handshake timeout (a slowloris holds sockets open without ever speaking).
    func closeIfStillHandshaking(now: UInt64, limit: UInt64) {
        guard self.connection.isHandshaking, now - self.connection.openedAt > limit else { return }
        self.logger.warning("closing a connection that did not complete its handshake in time")
        self.connection.close(reason: "handshake timeout")
    }
}

@available(*, unavailable)
extension ClientConnection: Sendable {}
