import COpenSSL

/// An error from OpenSSL: TLS setup, a handshake, a record, or a crypto primitive.
///
/// ``message`` holds OpenSSL's own error strings (`ERR_get_error` + `ERR_error_string_n`, the whole per-thread queue,
/// drained at once) and, for certificate failures, `X509_verify_cert_error_string`. Equality looks at ``code`` only
/// (`ASN1Error` style); ``file``, ``message`` and the location are for logs.
public struct OpenSSLError: Error, Equatable, CustomStringConvertible {
    /// What failed, as a closed set.
    public enum Code: Hashable, Sendable {
        /// `SSL_CTX_new` or a context setting failed.
        case contextCreation
        /// The certificate chain file could not be read or parsed (see ``OpenSSLError/file``).
        case certificateLoad
        /// The private key file could not be read or parsed, is encrypted, or does not match the certificate.
        case privateKeyLoad
        /// The trusted CA file could not be read or parsed, or the system default paths could not be set.
        case trustStoreLoad
        /// `SSL_new`, a BIO or a per-connection setting (SNI, expected host name) failed.
        case connectionCreation
        /// A caller-supplied argument is invalid (a client connection without a server name, an empty ALPN id…).
        case invalidArgument
        /// The peer's certificate failed verification: untrusted issuer, expired, wrong host name, missing.
        case certificateVerificationFailed
        /// The client offered no `h2` in ALPN; the server refused with a `no_application_protocol` alert.
        case alpnMismatch
        /// The handshake failed for another reason (no shared cipher or version, an alert, garbage instead of TLS).
        case handshakeFailed
        /// A TLS record after the handshake was invalid (bad MAC, unexpected message, garbage).
        case protocolError
        /// The connection is closed or failed earlier; no more I/O is possible.
        case connectionClosed
        /// A crypto primitive (PBKDF2, HMAC, digest, random bytes) failed.
        case cryptoFailure
    }

    /// The kind of failure.
    public let code: Code
    /// OpenSSL's error strings, joined with "; ", or this wrapper's description when the queue was empty.
    public let message: String
    /// The file that failed to load, for the `…Load` codes.
    public let file: String?
    /// `#fileID:#line` of the throw site.
    private let location: String

    /// Creates an error with an explicit message.
    public init(_ code: Code, message: String, file path: String? = nil, fileID: String = #fileID, line: UInt = #line) {
        self.code = code
        self.message = message
        self.file = path
        self.location = "\(fileID):\(line)"
    }

    /// Creates an error whose message is OpenSSL's error queue, drained now, after `context`.
    ///
    /// The queue is per thread, so this must run on the thread of the failing call, before any other OpenSSL call.
    static func drainingQueue(
        _ code: Code,
        _ context: String,
        file path: String? = nil,
        fileID: String = #fileID,
        line: UInt = #line
    ) -> OpenSSLError {
        let queue = Self.drainErrorQueue()
        let message = queue.isEmpty ? context : "\(context): \(queue.joined(separator: "; "))"
        return OpenSSLError(code, message: message, file: path, fileID: fileID, line: line)
    }

    /// Pops every error on this thread's OpenSSL queue as `ERR_error_string_n` text.
    static func drainErrorQueue() -> [String] {
        var messages: [String] = []
        while case let error = ERR_get_error(), error != 0 {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(error, &buffer, buffer.count)
            messages.append(
                String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            )
        }
        return messages
    }

    /// `OpenSSLError(code): message [file] (at file:line)`.
    public var description: String {
        let path = self.file.map { " [\($0)]" } ?? ""
        return "OpenSSLError(\(self.code)): \(self.message)\(path) (at \(self.location))"
    }

    /// Compares only ``code``.
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.code == rhs.code
    }
}
