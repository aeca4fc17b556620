import COpenSSL

/// A reusable SHA-256 context: one `EVP_MD` fetched once and one `EVP_MD_CTX`, for code that hashes many small
/// inputs on one thread (the audit writer hashes every record).
///
/// ``Crypto/sha256(_:)`` is simpler for an occasional hash; this one saves, per hash, OpenSSL 3's implicit algorithm
/// fetch, a context allocation and the output array. Not `Sendable`: use it from one thread.
public final class SHA256Digest {
    private let algorithm: OpaquePointer
    private let context: OpaquePointer

    /// - Throws: ``OpenSSLError`` with ``OpenSSLError/Code/cryptoFailure`` if OpenSSL has no SHA-256 or no memory.
    public init() throws(OpenSSLError) {
        ERR_clear_error()
        guard let algorithm = EVP_MD_fetch(nil, "SHA256", nil) else {
            throw .drainingQueue(.cryptoFailure, "EVP_MD_fetch(SHA256) failed")
        }
        guard let context = EVP_MD_CTX_new() else {
            EVP_MD_free(algorithm)
            throw .drainingQueue(.cryptoFailure, "EVP_MD_CTX_new failed")
        }
        self.algorithm = algorithm
        self.context = context
    }

    deinit {
        EVP_MD_CTX_free(self.context)
        EVP_MD_free(self.algorithm)
    }

    /// Replaces `output` with the 32-byte SHA-256 of `bytes` (keeping `output`'s storage when it has room).
    ///
    /// Non-throwing for the same reason as ``Crypto/sha256(_:)``: with a fetched built-in algorithm it fails only if
    /// memory runs out, a precondition failure here.
    public func hash(_ bytes: [UInt8], into output: inout [UInt8]) {
        self.hash(bytes[...], into: &output)
    }

    /// Replaces `output` with the 32-byte SHA-256 of `bytes` (a part of a buffer: hashed where it lies).
    public func hash(_ bytes: ArraySlice<UInt8>, into output: inout [UInt8]) {
        if output.count != 32 { output = [UInt8](repeating: 0, count: 32) }
        var length: UInt32 = 0
        let ok = bytes.withUnsafeBytes { input in
            output.withUnsafeMutableBufferPointer { out in
                EVP_DigestInit_ex2(self.context, self.algorithm, nil) == 1
                    && EVP_DigestUpdate(self.context, input.baseAddress, input.count) == 1
                    && EVP_DigestFinal_ex(self.context, out.baseAddress, &length) == 1
            }
        }
        precondition(ok && length == 32, "SHA-256 digest failed")
    }
}

@available(*, unavailable)
extension SHA256Digest: Sendable {}
