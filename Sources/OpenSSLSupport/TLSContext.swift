import COpenSSL

/// Owns one `SSL_CTX*`: the certificates, trust store and policy shared by many ``TLSConnection``s.
///
/// Built once at start-up (or on a certificate reload) and then only read; connections take their own reference to
/// the `SSL_CTX` (OpenSSL counts them), so a context may be released while its connections live on. Every context
/// allows TLS 1.2 and 1.3 only, with compression and renegotiation off, and elliptic-curve key exchange only (X25519,
/// P-256, P-384, P-521). A server context reads at most 32 KiB of a client's chain, and with client certificates resumes no
/// session.
///
/// `@unchecked Sendable`, so all event loops can share one context: every stored property is a `let` (or set only
/// before the factory returns), no method
/// changes the `SSL_CTX` after the factory returns, and OpenSSL documents an `SSL_CTX` as safe to use from many threads
/// at once for `SSL_new` (its reference count and session cache are locked internally).
public final class TLSContext: @unchecked Sendable {
    /// Which side of the handshake connections made from this context take.
    public enum Role: Hashable, Sendable {
        /// Accepts connections: presents a certificate, selects ALPN `h2`.
        case server
        /// Opens connections: verifies the server's certificate and host name, offers ALPN.
        case client
    }

    /// The owned handle; never nil after a factory returns.
    let handle: OpaquePointer
    /// Whether connections accept or connect.
    public let role: Role
    /// Whether a server context requires and verifies client certificates (mutual TLS).
    public let requiresClientCertificate: Bool
    /// How many CRLs a server context checks client chains against (`clientCRLPath`); 0 without.
    public private(set) var revocationLists = 0
    /// The earliest `nextUpdate` of those CRLs, in seconds since the Unix epoch: from then on that CRL no longer
    /// counts, and every client of its CA is refused until a newer one is loaded. nil without CRLs, or when none says.
    public private(set) var revocationListsNextUpdate: Int64?

    private init(handle: OpaquePointer, role: Role, requiresClientCertificate: Bool) {
        self.handle = handle
        self.role = role
        self.requiresClientCertificate = requiresClientCertificate
    }

    deinit {
        SSL_CTX_free(self.handle)
    }

    /// The TLS 1.2 cipher suites allowed, in the server's order of preference (Mozilla "intermediate", the set
    /// grpc-core uses).
    static let tls12Ciphers =
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

    /// The most bytes of certificate chain a server reads from a client: a leaf and a few intermediates take a few
    /// KiB; OpenSSL's default of 100 KiB let a client make each handshake cost the guard 24-32 ms of verifying.
    static let maxClientChainBytes = 32 * 1024
    /// The most CAs above a client's certificate, up to a trusted one.
    static let maxClientChainDepth: Int32 = 5

    /// The ALPN protocol id a server accepts. gRPC is HTTP/2 only (RFC 9113 §3.2, gRPC `PROTOCOL-HTTP2.md`).
    static let serverALPN: [UInt8] = Array("h2".utf8)

    /// Creates a server context.
    ///
    /// The server selects ALPN `h2` and nothing else: a client that offers other protocols only, or no ALPN at all,
    /// fails the handshake with a `no_application_protocol` alert (``OpenSSLError/Code/alpnMismatch``), because this
    /// proxy speaks nothing but HTTP/2.
    ///
    /// - Parameters:
    ///   - certificatePath: A PEM file with the server certificate first, then any intermediates.
    ///   - keyPath: A PEM file with the unencrypted private key of that certificate.
    ///   - clientCAPath: A PEM file of CAs trusted to issue client certificates. When set, every client must present
    ///     a certificate that verifies against these CAs (mutual TLS); when `nil`, none is requested.
    ///   - clientCRLPath: With `clientCAPath`, a PEM file of certificate revocation lists: a client certificate
    ///     revoked by one is refused, and every CA of a client's chain must have a CRL in it that is in force (an
    ///     expired one refuses every certificate the CA issued), as with nginx's `ssl_crl`.
    /// - Throws: ``OpenSSLError`` with ``OpenSSLError/Code/certificateLoad``, ``OpenSSLError/Code/privateKeyLoad`` or
    ///   ``OpenSSLError/Code/trustStoreLoad`` and the failing file, ``OpenSSLError/Code/invalidArgument`` for CRLs
    ///   without client CAs, or ``OpenSSLError/Code/contextCreation``.
    public static func server(
        certificatePath: String,
        keyPath: String,
        clientCAPath: String?,
        clientCRLPath: String? = nil
    ) throws(OpenSSLError) -> TLSContext {
        if clientCRLPath != nil, clientCAPath == nil {
            throw OpenSSLError(.invalidArgument, message: "a client CRL needs client CAs (clientCAPath)")
        }
        ERR_clear_error()
        guard let handle = SSL_CTX_new(TLS_server_method()) else {
            throw .drainingQueue(.contextCreation, "SSL_CTX_new failed")
        }
        // From here on, the context frees the handle whatever happens.
        let context = TLSContext(handle: handle, role: .server, requiresClientCertificate: clientCAPath != nil)
        try context.applyDefaults()
        try context.loadIdentity(certificatePath: certificatePath, keyPath: keyPath)

        if let clientCAPath {
            guard SSL_CTX_load_verify_locations(handle, clientCAPath, nil) == 1 else {
                throw .drainingQueue(.trustStoreLoad, "cannot load client CA file", file: clientCAPath)
            }
            // The CA names sent in CertificateRequest, so clients pick the right certificate.
            guard let names = SSL_load_client_CA_file(clientCAPath) else {
                throw .drainingQueue(.trustStoreLoad, "cannot read CA names", file: clientCAPath)
            }
            SSL_CTX_set_client_CA_list(handle, names)  // takes ownership of `names`
            if let clientCRLPath {
                var nextUpdate: Int64 = 0
                let loaded = copenssl_ctx_load_crls(handle, clientCRLPath, &nextUpdate)
                guard loaded > 0 else {
                    throw loaded == 0
                        ? OpenSSLError(
                            .trustStoreLoad,
                            message:
                                "no CRL in the file (PEM is read: convert a DER one with `openssl crl -inform DER`)",
                            file: clientCRLPath
                        )
                        : .drainingQueue(.trustStoreLoad, "cannot load CRL file", file: clientCRLPath)
                }
                // One that can't be used would refuse every client of its CA: refused here instead.
                var problem = [CChar](repeating: 0, count: 512)
                guard copenssl_ctx_check_crls(handle, &problem, problem.count) == 1 else {
                    let text = String(decoding: problem.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    throw OpenSSLError(.trustStoreLoad, message: text, file: clientCRLPath)
                }
                context.revocationLists = Int(loaded)
                context.revocationListsNextUpdate = nextUpdate == .max ? nil : nextUpdate
            }
            SSL_CTX_set_verify(handle, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
            // Session resumption with client certificates needs a session id context, or resumption fails.
            let sessionContext = Array("milvus-guard".utf8)
            guard SSL_CTX_set_session_id_context(handle, sessionContext, UInt32(sessionContext.count)) == 1 else {
                throw .drainingQueue(.contextCreation, "SSL_CTX_set_session_id_context failed")
            }
        } else {
            SSL_CTX_set_verify(handle, SSL_VERIFY_NONE, nil)
        }
        copenssl_ctx_limit_server(
            handle,
            Self.maxClientChainBytes,
            Self.maxClientChainDepth,
            clientCAPath != nil ? 1 : 0
        )

        // Refuse a ClientHello without ALPN before any other work: the select callback below never runs then.
        SSL_CTX_set_client_hello_cb(
            handle,
            { ssl, alert, _ in
                guard let ssl else { return SSL_CLIENT_HELLO_ERROR }
                var data: UnsafePointer<UInt8>?
                var length = 0
                guard
                    SSL_client_hello_get0_ext(
                        ssl,
                        UInt32(TLSEXT_TYPE_application_layer_protocol_negotiation),
                        &data,
                        &length
                    ) == 1
                else {
                    TLSConnection.recordALPNRejection(ssl)
                    alert?.pointee = SSL_AD_NO_APPLICATION_PROTOCOL
                    return SSL_CLIENT_HELLO_ERROR
                }
                return SSL_CLIENT_HELLO_SUCCESS
            },
            nil
        )
        SSL_CTX_set_alpn_select_cb(
            handle,
            { ssl, out, outLength, offered, offeredLength, _ in
                // `offered` is the client's list: one length byte, then the id, repeated (RFC 7301 §3.1). The
                // selection may point into it: OpenSSL copies it before the buffer goes away.
                guard let offered, let out, let outLength else { return SSL_TLSEXT_ERR_ALERT_FATAL }
                let list = UnsafeBufferPointer(start: offered, count: Int(offeredLength))
                var index = 0
                while index < list.count {
                    let length = Int(list[index])
                    let start = index + 1
                    guard start + length <= list.count else { break }  // malformed: OpenSSL checks too
                    if list[start..<(start + length)].elementsEqual(TLSContext.serverALPN) {
                        out.pointee = offered + start
                        outLength.pointee = UInt8(length)
                        return SSL_TLSEXT_ERR_OK
                    }
                    index = start + length
                }
                if let ssl { TLSConnection.recordALPNRejection(ssl) }
                return SSL_TLSEXT_ERR_ALERT_FATAL
            },
            nil
        )
        return context
    }

    /// Creates a client context for connections to an upstream.
    ///
    /// Every connection verifies the server's chain against the trust store and its certificate against the
    /// ``TLSConnection`` server name (`SSL_set1_host`); there is no way to turn verification off. A server that
    /// ignores ALPN still completes the handshake: check ``TLSConnection/negotiatedALPN`` before speaking HTTP/2.
    ///
    /// - Parameters:
    ///   - caPath: A PEM file of trusted CAs, or `nil` for the system default paths (`SSL_CTX_set_default_verify_paths`).
    ///   - alpn: Protocol ids to offer, in preference order; gRPC needs `["h2"]`. Each must be 1…255 bytes.
    ///   - certificatePath: For mutual TLS to the upstream: a PEM certificate chain to present, with `keyPath`.
    ///   - keyPath: The unencrypted PEM private key of `certificatePath`.
    /// - Throws: ``OpenSSLError`` with ``OpenSSLError/Code/trustStoreLoad`` (and the file),
    ///   ``OpenSSLError/Code/certificateLoad``, ``OpenSSLError/Code/privateKeyLoad``,
    ///   ``OpenSSLError/Code/invalidArgument`` for a bad ALPN list or a certificate without a key, or
    ///   ``OpenSSLError/Code/contextCreation``.
    public static func client(
        caPath: String?,
        alpn: [String] = ["h2"],
        certificatePath: String? = nil,
        keyPath: String? = nil
    ) throws(OpenSSLError) -> TLSContext {
        var wire: [UInt8] = []
        for id in alpn {
            let bytes = Array(id.utf8)
            guard (1...255).contains(bytes.count) else {
                throw OpenSSLError(.invalidArgument, message: "ALPN id \"\(id)\" must be 1…255 bytes")
            }
            wire.append(UInt8(bytes.count))
            wire.append(contentsOf: bytes)
        }
        guard (certificatePath == nil) == (keyPath == nil) else {
            throw OpenSSLError(.invalidArgument, message: "a client certificate needs both certificatePath and keyPath")
        }

        ERR_clear_error()
        guard let handle = SSL_CTX_new(TLS_client_method()) else {
            throw .drainingQueue(.contextCreation, "SSL_CTX_new failed")
        }
        let context = TLSContext(handle: handle, role: .client, requiresClientCertificate: false)
        try context.applyDefaults()
        SSL_CTX_set_verify(handle, SSL_VERIFY_PEER, nil)
        if let caPath {
            guard SSL_CTX_load_verify_locations(handle, caPath, nil) == 1 else {
                throw .drainingQueue(.trustStoreLoad, "cannot load CA file", file: caPath)
            }
        } else {
            guard SSL_CTX_set_default_verify_paths(handle) == 1 else {
                throw .drainingQueue(.trustStoreLoad, "cannot use the system trust store")
            }
        }
        if let certificatePath, let keyPath {
            try context.loadIdentity(certificatePath: certificatePath, keyPath: keyPath)
        }
        if !wire.isEmpty {
            // Unlike nearly every other OpenSSL call, 0 means success here.
            guard SSL_CTX_set_alpn_protos(handle, wire, UInt32(wire.count)) == 0 else {
                throw .drainingQueue(.contextCreation, "SSL_CTX_set_alpn_protos failed")
            }
        }
        return context
    }

    /// Caps connections made from now on at TLS 1.2. Internal: for tests of the TLS 1.2 path only.
    func limitToTLS12() {
        _ = copenssl_ctx_set_max_tls12(self.handle)
    }

    private func applyDefaults() throws(OpenSSLError) {
        guard copenssl_ctx_apply_defaults(self.handle) == 1 else {
            throw .drainingQueue(.contextCreation, "cannot set the minimum TLS version")
        }
        // TLS 1.2 suites: ECDHE with AEAD only. RFC 9113 §9.2.2 forbids HTTP/2 over the others (a peer may answer
        // INADEQUATE_SECURITY), and the server's preference order applies. TLS 1.3 suites are all AEAD already.
        guard SSL_CTX_set_cipher_list(self.handle, Self.tls12Ciphers) == 1 else {
            throw .drainingQueue(.contextCreation, "cannot set the TLS 1.2 cipher list")
        }
        // An encrypted key must fail to load, not block the process on a terminal passphrase prompt.
        SSL_CTX_set_default_passwd_cb(self.handle) { _, _, _, _ in 0 }
    }

    private func loadIdentity(certificatePath: String, keyPath: String) throws(OpenSSLError) {
        guard SSL_CTX_use_certificate_chain_file(self.handle, certificatePath) == 1 else {
            throw .drainingQueue(.certificateLoad, "cannot load certificate chain", file: certificatePath)
        }
        guard SSL_CTX_use_PrivateKey_file(self.handle, keyPath, SSL_FILETYPE_PEM) == 1 else {
            throw .drainingQueue(.privateKeyLoad, "cannot load private key", file: keyPath)
        }
        guard SSL_CTX_check_private_key(self.handle) == 1 else {
            throw .drainingQueue(.privateKeyLoad, "private key does not match \(certificatePath)", file: keyPath)
        }
    }
}
