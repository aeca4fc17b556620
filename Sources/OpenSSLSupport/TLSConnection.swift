import COpenSSL

/// Owns one `SSL*` and its two memory BIOs: a sans-I/O TLS endpoint for an event loop that owns the socket.
///
/// The loop moves bytes; this object never touches a file descriptor:
///
/// ```text
/// socket ──read──▶ feed(_:) ──▶ readPlaintext(into:max:) until .wantMore ──▶ nghttp2_session_mem_recv
/// nghttp2_session_mem_send ──▶ writePlaintext(_:) ──▶ takeCiphertext() ──write──▶ socket
/// ```
///
/// After *every* call that may drive the handshake or send alerts (``startHandshake()``, ``readPlaintext(into:max:)``,
/// ``writePlaintext(_:)-(UnsafeRawBufferPointer)``, ``close()``), the loop must call ``takeCiphertext()`` and send
/// the result, including after a thrown error: the fatal alert explaining the failure is waiting there.
///
/// Copies: ``feed(_:)-(UnsafeRawBufferPointer)`` copies into the read BIO; `SSL_read` decrypts into stack scratch and
/// only the bytes produced are appended to the caller's buffer (no zero-filling); `SSL_write` encrypts into the write
/// BIO and ``takeCiphertext(appendingTo:)`` copies out into a buffer the caller reuses. Once the caller's buffers
/// have grown, the steady state allocates nothing but the BIOs' own growth.
///
/// Not `Sendable`: it lives on one event loop. The OpenSSL error queue is per thread, which this relies on.
public final class TLSConnection {
    /// The outcome of ``readPlaintext(into:max:)``.
    public enum ReadResult: Hashable, Sendable {
        /// This many plaintext bytes were appended to the buffer (always at least 1). Read again: more may be ready.
        case data(Int)
        /// No plaintext is available until more ciphertext is fed. The handshake may have progressed: send
        /// ``takeCiphertext()``.
        case wantMore
        /// The peer sent `close_notify`: no more data will come. Answer with ``close()`` and close the socket.
        case closed
    }

    private enum State {
        case open
        case receivedCloseNotify
        case failed
    }

    private let ssl: OpaquePointer
    /// Ciphertext from the peer; owned by `ssl` (`SSL_set_bio`).
    private let readBIO: OpaquePointer
    /// Ciphertext for the peer; owned by `ssl`.
    private let writeBIO: OpaquePointer
    private var state: State = .open
    private var sentCloseNotify = false
    /// Set by the context's ClientHello or ALPN callback when the client offered no `h2`.
    private var alpnRejected = false
    /// Set by the info callback at `SSL_CB_HANDSHAKE_DONE`. Tracked here because OpenSSL puts a connection back
    /// "in init" when a fatal error occurs, so `SSL_is_init_finished` cannot tell a record error from a handshake one.
    private var handshakeDone = false

    /// The context this connection was made from.
    public let context: TLSContext

    /// Creates a connection in the role of its context.
    ///
    /// - Parameters:
    ///   - context: A server or client context.
    ///   - serverName: Client role only, and required there: the upstream's host name or IP address. A host name is
    ///     sent as SNI and must match the server certificate's DNS names (no partial wildcards); an IP address
    ///     must match an IP address name and is not sent as SNI (RFC 6066 §3). Must be `nil` for a server.
    /// - Throws: ``OpenSSLError`` with ``OpenSSLError/Code/invalidArgument`` for a missing or misplaced server name,
    ///   or ``OpenSSLError/Code/connectionCreation`` if OpenSSL fails to allocate.
    public init(context: TLSContext, serverName: String? = nil) throws(OpenSSLError) {
        switch (context.role, serverName) {
        case (.client, nil), (.client, ""):
            throw OpenSSLError(.invalidArgument, message: "a client connection needs the server name to verify")
        case (.server, .some):
            throw OpenSSLError(.invalidArgument, message: "a server connection takes no server name")
        default:
            break
        }
        ERR_clear_error()
        guard let ssl = SSL_new(context.handle) else {
            throw .drainingQueue(.connectionCreation, "SSL_new failed")
        }
        guard let readBIO = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw .drainingQueue(.connectionCreation, "BIO_new failed")
        }
        guard let writeBIO = BIO_new(BIO_s_mem()) else {
            BIO_free(readBIO)
            SSL_free(ssl)
            throw .drainingQueue(.connectionCreation, "BIO_new failed")
        }
        SSL_set_bio(ssl, readBIO, writeBIO)  // `ssl` owns both BIOs from here on

        if let serverName {
            do throws(OpenSSLError) {
                try Self.expectPeer(ssl, named: serverName)
            } catch {
                SSL_free(ssl)
                throw error
            }
            SSL_set_connect_state(ssl)
        } else {
            SSL_set_accept_state(ssl)
        }
        self.ssl = ssl
        self.readBIO = readBIO
        self.writeBIO = writeBIO
        self.context = context
        // OpenSSL keeps an unretained pointer to self for the callbacks; self owns `ssl`, so it outlives it.
        copenssl_set_app_data(ssl, Unmanaged.passUnretained(self).toOpaque())
        SSL_set_info_callback(ssl) { ssl, type, _ in
            guard type & SSL_CB_HANDSHAKE_DONE != 0, let ssl, let data = copenssl_get_app_data(ssl) else { return }
            Unmanaged<TLSConnection>.fromOpaque(data).takeUnretainedValue().handshakeDone = true
        }
    }

    deinit {
        SSL_free(self.ssl)
    }

    /// Sets the identity a client expects: an IP address, or a host name that is also sent as SNI.
    private static func expectPeer(_ ssl: OpaquePointer, named serverName: String) throws(OpenSSLError) {
        guard !serverName.utf8.contains(0) else {
            // C would see only the part before the NUL and verify that name instead.
            throw OpenSSLError(.invalidArgument, message: "server name contains a NUL byte")
        }
        if X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName) == 1 {
            return
        }
        ERR_clear_error()  // "not an IP address" is not an error here
        SSL_set_hostflags(ssl, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
        guard SSL_set1_host(ssl, serverName) == 1 else {
            throw .drainingQueue(.invalidArgument, "invalid server name \"\(serverName)\"")
        }
        guard copenssl_set_sni(ssl, serverName) == 1 else {
            throw .drainingQueue(.invalidArgument, "cannot send \"\(serverName)\" as SNI")
        }
    }

    /// Called from the context's callbacks, during an `SSL_read` of this connection, to note an ALPN refusal.
    static func recordALPNRejection(_ ssl: OpaquePointer) {
        guard let data = copenssl_get_app_data(ssl) else { return }
        Unmanaged<TLSConnection>.fromOpaque(data).takeUnretainedValue().alpnRejected = true
    }

    // MARK: Ciphertext in and out

    /// Queues ciphertext read from the socket. Nothing is decrypted until ``readPlaintext(into:max:)``.
    ///
    /// Bytes fed after the connection failed are dropped. The read BIO grows without bound, so the loop should
    /// read from the socket only after ``readPlaintext(into:max:)`` returned ``ReadResult/wantMore``.
    public func feed(_ ciphertext: UnsafeRawBufferPointer) {
        guard self.state != .failed, let base = ciphertext.baseAddress, !ciphertext.isEmpty else { return }
        var written = 0
        if BIO_write_ex(self.readBIO, base, ciphertext.count, &written) != 1 || written != ciphertext.count {
            // Only an allocation failure gets here; the stream is now missing bytes, so it is dead.
            ERR_clear_error()
            self.state = .failed
        }
    }

    /// Queues ciphertext read from the socket. See ``feed(_:)-(UnsafeRawBufferPointer)``.
    public func feed(_ ciphertext: ArraySlice<UInt8>) {
        ciphertext.withUnsafeBytes { self.feed($0) }
    }

    /// Queues ciphertext read from the socket. See ``feed(_:)-(UnsafeRawBufferPointer)``.
    public func feed(_ ciphertext: [UInt8]) {
        ciphertext.withUnsafeBytes { self.feed($0) }
    }

    /// The number of ciphertext bytes waiting to be sent to the peer.
    public var pendingCiphertextCount: Int {
        Int(BIO_ctrl_pending(self.writeBIO))
    }

    /// Removes and returns all ciphertext waiting to be sent (handshake messages, records, alerts).
    public func takeCiphertext() -> [UInt8] {
        let pending = self.pendingCiphertextCount
        guard pending > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: pending) { bytes, initialized in
            var read = 0
            // A memory BIO read only copies; it cannot fail for a count it just reported as pending.
            if BIO_read_ex(self.writeBIO, bytes.baseAddress, pending, &read) != 1 {
                read = 0
            }
            initialized = read
        }
    }

    /// Appends all ciphertext waiting to be sent to `buffer`, reusing its capacity; returns the count appended.
    ///
    /// The hot-path form: the loop keeps one output buffer per connection, appends here, writes what the socket
    /// takes and keeps the rest at the front for the next `EPOLLOUT`.
    @discardableResult
    public func takeCiphertext(appendingTo buffer: inout [UInt8]) -> Int {
        let pending = self.pendingCiphertextCount
        guard pending > 0 else { return 0 }
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: pending))
        var read = 0
        buffer.withUnsafeMutableBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            if BIO_read_ex(self.writeBIO, base + start, pending, &read) != 1 {
                read = 0
            }
        }
        buffer.removeLast(pending - read)
        return read
    }

    // MARK: Handshake

    /// Starts the handshake: on a client, queues the ClientHello to send. Harmless on a server or when done.
    ///
    /// The handshake then advances inside ``readPlaintext(into:max:)`` as the peer's messages are fed.
    ///
    /// - Throws: ``OpenSSLError`` if the handshake cannot start (e.g. no usable cipher), or
    ///   ``OpenSSLError/Code/connectionClosed`` on a connection that already failed.
    public func startHandshake() throws(OpenSSLError) {
        try self.checkNotFailed()
        guard !self.isHandshakeComplete else { return }
        ERR_clear_error()
        let rc = SSL_do_handshake(self.ssl)
        guard rc != 1 else { return }
        switch SSL_get_error(self.ssl, rc) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return
        default: throw self.failure()
        }
    }

    /// Whether the handshake has finished (certificates verified, ALPN selected). Stays `true` after a later
    /// failure.
    public var isHandshakeComplete: Bool {
        self.handshakeDone
    }

    /// The ALPN protocol both sides agreed on (`"h2"`), or `nil` if none was negotiated or the handshake is not done.
    public var negotiatedALPN: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(self.ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// On a server, the host name the client sent as SNI (RFC 6066 §3), for logs and routing; `nil` if it sent none.
    /// On a client, the name this connection sent.
    public var serverNameIndication: String? {
        SSL_get_servername(self.ssl, Int32(TLSEXT_NAMETYPE_host_name)).map { String(cString: $0) }
    }

    /// The negotiated protocol version, e.g. `"TLSv1.3"`, for logs.
    public var protocolVersion: String {
        String(cString: SSL_get_version(self.ssl))
    }

    /// When the chain the handshake verified stops being valid: the earliest notAfter of the peer's certificate and
    /// the CAs above it, in seconds since the Unix epoch (an intermediate that expires first ends the chain's word
    /// for the leaf). nil before the handshake or without a peer certificate; `Int64.min` (expired) when a time
    /// can't be read.
    public var peerCertificateNotAfter: Int64? {
        let count = copenssl_verified_chain_count(self.ssl)
        var certificates: [OpaquePointer] = (0..<count).compactMap { copenssl_verified_chain_at(self.ssl, $0) }
        if certificates.isEmpty, let peer = SSL_get0_peer_certificate(self.ssl) { certificates = [peer] }
        guard !certificates.isEmpty else { return nil }
        var earliest = Int64.max
        for certificate in certificates {
            var parts = tm()
            guard let notAfter = X509_get0_notAfter(certificate), ASN1_TIME_to_tm(notAfter, &parts) == 1 else {
                ERR_clear_error()
                return .min
            }
            earliest = min(earliest, Int64(timegm(&parts)))
        }
        return earliest
    }

    /// Verifies the chain this server connection's handshake verified once more, against `context`'s trust store and
    /// CRLs as they are now (a context built again after the files changed), at the current time: nil while it still
    /// verifies, else OpenSSL's reason (`certificate revoked`, `certificate has expired`, `unable to get local issuer
    /// certificate` or `self-signed certificate in certificate chain` for a CA no longer trusted). A connection without
    /// a verified client certificate gets a reason too.
    public func verifyPeerAgain(with context: TLSContext) -> String? {
        let result = copenssl_verify_peer_again(self.ssl, context.handle, TLSContext.maxClientChainDepth)
        guard result != X509_V_OK else { return nil }
        return String(cString: X509_verify_cert_error_string(Int(result)))
    }

    /// The peer certificate's subject in RFC 2253 form, most specific first, e.g. `"CN=svc,O=Example"`; UTF-8 is
    /// kept as is. `nil` before the handshake or when the peer sent no certificate (a server without mutual TLS).
    ///
    /// Once the handshake is complete the certificate has been verified against the context's trust store.
    public var peerCertificateSubject: String? {
        guard let certificate = SSL_get0_peer_certificate(self.ssl),
            let name = X509_get_subject_name(certificate),
            let bio = BIO_new(BIO_s_mem())
        else { return nil }
        defer { BIO_free(bio) }
        guard X509_NAME_print_ex(bio, name, 0, copenssl_name_flags_rfc2253_utf8()) >= 0 else {
            ERR_clear_error()
            return nil
        }
        let count = Int(BIO_ctrl_pending(bio))
        var bytes = [UInt8](repeating: 0, count: count)
        var read = 0
        bytes.withUnsafeMutableBytes { buffer in
            if let base = buffer.baseAddress, BIO_read_ex(bio, base, count, &read) != 1 {
                read = 0
            }
        }
        return String(decoding: bytes.prefix(read), as: UTF8.self)
    }

    /// The peer certificate's DNS, URI and email subject alternative names, in certificate order (IP addresses and
    /// other name types are left out). Empty before the handshake, without a peer certificate, or without SANs.
    public var peerCertificateSANs: [SubjectAlternativeName] {
        guard let certificate = SSL_get0_peer_certificate(self.ssl),
            let names = copenssl_subject_alt_names(certificate)
        else {
            ERR_clear_error()
            return []
        }
        defer { GENERAL_NAMES_free(names) }
        var result: [SubjectAlternativeName] = []
        for index in 0..<copenssl_general_names_count(names) {
            var type: Int32 = 0
            guard let string = copenssl_general_name_string(names, index, &type),
                let data = ASN1_STRING_get0_data(string)
            else { continue }
            let kind: SubjectAlternativeName.Kind
            switch type {
            case GEN_DNS: kind = .dns
            case GEN_URI: kind = .uri
            case GEN_EMAIL: kind = .email
            default: continue
            }
            let length = Int(ASN1_STRING_length(string))
            let value = String(decoding: UnsafeBufferPointer(start: data, count: length), as: UTF8.self)
            result.append(SubjectAlternativeName(kind: kind, value: value))
        }
        return result
    }

    // MARK: Plaintext

    /// Decrypts up to `max` plaintext bytes and appends them to `buffer`, driving the handshake as needed.
    ///
    /// Call in a loop after each ``feed(_:)-(UnsafeRawBufferPointer)`` until it returns ``ReadResult/wantMore`` (TLS
    /// may hold more decrypted bytes than one call returns), then send ``takeCiphertext()``.
    ///
    /// - Parameters:
    ///   - buffer: Plaintext is appended; existing contents are kept. Reuse one buffer to avoid allocations.
    ///   - max: The most bytes to append; 16 KiB (one TLS record) is a good value. Must be positive.
    /// - Returns: ``ReadResult/data(_:)``, ``ReadResult/wantMore`` or ``ReadResult/closed``.
    /// - Throws: ``OpenSSLError`` with ``OpenSSLError/Code/certificateVerificationFailed`` (OpenSSL's verify reason,
    ///   e.g. "Hostname mismatch" or "unable to get local issuer certificate"), ``OpenSSLError/Code/alpnMismatch``,
    ///   ``OpenSSLError/Code/handshakeFailed``, ``OpenSSLError/Code/protocolError`` after the handshake, or
    ///   ``OpenSSLError/Code/connectionClosed`` once the connection has failed. Any error is final: send the
    ///   pending ciphertext (the alert) and close the socket.
    public func readPlaintext(into buffer: inout [UInt8], max: Int) throws(OpenSSLError) -> ReadResult {
        precondition(max > 0, "readPlaintext needs room for at least one byte")
        try self.checkNotFailed()
        if self.state == .receivedCloseNotify {
            return .closed
        }
        // Nothing buffered anywhere and no handshake to drive: SSL_read could only say WANT_READ. Skipping it keeps the
        // last call of every read loop free.
        if self.handshakeDone && SSL_has_pending(self.ssl) == 0 && BIO_ctrl_pending(self.readBIO) == 0 {
            return .wantMore
        }
        // Decrypt into uninitialised scratch (on the stack for a record-sized `max`), then copy only what arrived:
        // growing `buffer` by `max` first would zero-fill it on every call.
        var count = 0
        ERR_clear_error()
        let rc = withUnsafeTemporaryAllocation(byteCount: max, alignment: 16) { scratch in
            let rc = SSL_read_ex(self.ssl, scratch.baseAddress, max, &count)
            if rc == 1 {
                buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[..<count]))
            }
            return rc
        }
        if rc == 1 {
            return .data(count)
        }
        switch SSL_get_error(self.ssl, rc) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .wantMore
        case SSL_ERROR_ZERO_RETURN:
            self.state = .receivedCloseNotify
            return .closed
        default:
            throw self.failure()
        }
    }

    /// Encrypts `bytes` into TLS records waiting in ``takeCiphertext()``.
    ///
    /// Takes an unsafe buffer so the loop can pass `nghttp2_session_mem_send`'s output, valid only until the next
    /// call, without copying it first. The pointer is not kept.
    ///
    /// - Returns: The number of bytes accepted: all of them once the handshake is complete, 0 while it is still in
    ///   progress (keep the bytes and retry after the next ``readPlaintext(into:max:)``).
    /// - Throws: ``OpenSSLError`` with ``OpenSSLError/Code/connectionClosed`` after ``close()`` or a failure, or the
    ///   handshake and protocol errors of ``readPlaintext(into:max:)``.
    public func writePlaintext(_ bytes: UnsafeRawBufferPointer) throws(OpenSSLError) -> Int {
        try self.checkNotFailed()
        guard !self.sentCloseNotify else {
            throw OpenSSLError(.connectionClosed, message: "write after close_notify was sent")
        }
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return 0 }
        var written = 0
        ERR_clear_error()
        let rc = SSL_write_ex(self.ssl, base, bytes.count, &written)
        if rc == 1 {
            return written
        }
        switch SSL_get_error(self.ssl, rc) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return 0
        default:
            throw self.failure()
        }
    }

    /// Encrypts `bytes`. See ``writePlaintext(_:)-(UnsafeRawBufferPointer)``.
    ///
    /// - Throws: As ``writePlaintext(_:)-(UnsafeRawBufferPointer)``.
    public func writePlaintext(_ bytes: ArraySlice<UInt8>) throws(OpenSSLError) -> Int {
        // withUnsafeBytes only rethrows untyped errors; carry the typed one out in a Result.
        try bytes.withUnsafeBytes { buffer in Result { () throws(OpenSSLError) in try self.writePlaintext(buffer) } }
            .get()
    }

    /// Encrypts `bytes`. See ``writePlaintext(_:)-(UnsafeRawBufferPointer)``.
    ///
    /// - Throws: As ``writePlaintext(_:)-(UnsafeRawBufferPointer)``.
    public func writePlaintext(_ bytes: [UInt8]) throws(OpenSSLError) -> Int {
        // withUnsafeBytes only rethrows untyped errors; carry the typed one out in a Result.
        try bytes.withUnsafeBytes { buffer in Result { () throws(OpenSSLError) in try self.writePlaintext(buffer) } }
            .get()
    }

    /// Queues a `close_notify` alert (once) so the peer knows no truncation happened; send ``takeCiphertext()``
    /// afterwards, then close the socket. Later writes throw; reads still report the peer's data and its
    /// `close_notify`. Does nothing before the handshake finished or after a failure (there is nothing to protect).
    public func close() {
        guard self.state != .failed, !self.sentCloseNotify, self.isHandshakeComplete else { return }
        self.sentCloseNotify = true
        ERR_clear_error()
        _ = SSL_shutdown(self.ssl)  // 0 means "sent, peer's not yet seen"; either way nothing to do
        ERR_clear_error()
    }

    /// Whether the peer's `close_notify` has been read.
    public var receivedCloseNotify: Bool {
        self.state == .receivedCloseNotify
    }

    // MARK: Errors

    private func checkNotFailed() throws(OpenSSLError) {
        guard self.state != .failed else {
            throw OpenSSLError(.connectionClosed, message: "the TLS connection failed earlier")
        }
    }

    /// Classifies the failure of the last `SSL_*` call, drains the error queue and marks the connection failed.
    private func failure(fileID: String = #fileID, line: UInt = #line) -> OpenSSLError {
        self.state = .failed
        let reason = ERR_GET_REASON(ERR_peek_error())
        if self.alpnRejected || reason == SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL {
            return .drainingQueue(.alpnMismatch, "the client offered no \"h2\" in ALPN", fileID: fileID, line: line)
        }
        if !self.isHandshakeComplete {
            let verify = SSL_get_verify_result(self.ssl)
            if verify != X509_V_OK {
                let why = String(cString: X509_verify_cert_error_string(verify))
                return .drainingQueue(
                    .certificateVerificationFailed,
                    "peer certificate rejected: \(why)",
                    fileID: fileID,
                    line: line
                )
            }
            if reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE {
                return .drainingQueue(
                    .certificateVerificationFailed,
                    "the client sent no certificate",
                    fileID: fileID,
                    line: line
                )
            }
            return .drainingQueue(.handshakeFailed, "TLS handshake failed", fileID: fileID, line: line)
        }
        return .drainingQueue(.protocolError, "TLS record error", fileID: fileID, line: line)
    }
}

@available(*, unavailable)
extension TLSConnection: Sendable {}

/// A DNS, URI or email subject alternative name of a certificate, with its type: a name matches only a name of its
/// own type (an email SAN `svc.example.com` is not the DNS name `svc.example.com`).
public struct SubjectAlternativeName: Hashable, Sendable, CustomStringConvertible {
    /// The GENERAL_NAME type.
    public enum Kind: String, Hashable, Sendable {
        case dns = "DNS"
        case uri = "URI"
        case email
    }

    public let kind: Kind
    /// The name as the certificate holds it (IA5String bytes, decoded as UTF-8).
    public let value: String

    public init(kind: Kind, value: String) {
        self.kind = kind
        self.value = value
    }

    /// `DNS:svc.internal`, `URI:spiffe://…`, `email:svc@example.com`.
    public var description: String { "\(self.kind.rawValue):\(self.value)" }
}
