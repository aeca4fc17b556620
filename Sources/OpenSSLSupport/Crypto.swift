import COpenSSL

/// Cryptographic primitives from libcrypto for the identity layer: password hashing, digests, MACs, randomness.
///
/// A caseless namespace (like NIO's `enum Posix`); every function is stateless and safe on any thread.
public enum Crypto {
    /// PBKDF2 with HMAC-SHA-256 (RFC 8018 §5.2), through `PKCS5_PBKDF2_HMAC`.
    ///
    /// For stored password hashes use a random salt of at least 16 bytes (``randomBytes(count:)``), an iteration
    /// count of at least 600 000 (OWASP 2023), and compare with ``constantTimeEquals(_:_:)``.
    ///
    /// - Parameters:
    ///   - password: The password bytes (UTF-8 for text passwords).
    ///   - salt: The salt; may be empty only for test vectors.
    ///   - iterations: At least 1.
    ///   - length: Derived key length in bytes, 1…1024.
    /// - Returns: `length` derived bytes.
    /// - Throws: ``OpenSSLError`` with ``OpenSSLError/Code/invalidArgument`` for an out-of-range count or length,
    ///   ``OpenSSLError/Code/cryptoFailure`` if OpenSSL fails.
    public static func pbkdf2SHA256(
        password: [UInt8],
        salt: [UInt8],
        iterations: Int,
        length: Int
    ) throws(OpenSSLError) -> [UInt8] {
        guard iterations >= 1, iterations <= Int(Int32.max) else {
            throw OpenSSLError(.invalidArgument, message: "PBKDF2 iterations must be in 1…\(Int32.max)")
        }
        guard (1...1024).contains(length) else {
            throw OpenSSLError(.invalidArgument, message: "PBKDF2 length must be in 1…1024")
        }
        guard password.count <= Int(Int32.max), salt.count <= Int(Int32.max) else {
            throw OpenSSLError(.invalidArgument, message: "PBKDF2 input too large")
        }
        ERR_clear_error()
        var output = [UInt8](repeating: 0, count: length)
        let rc = Self.withNonNullBytes(password) { passwordBytes in
            Self.withNonNullBytes(salt) { saltBytes in
                PKCS5_PBKDF2_HMAC(
                    passwordBytes.baseAddress?.assumingMemoryBound(to: CChar.self),
                    Int32(password.count),
                    saltBytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
                    Int32(salt.count),
                    Int32(iterations),
                    EVP_sha256(),
                    Int32(length),
                    &output
                )
            }
        }
        guard rc == 1 else {
            throw .drainingQueue(.cryptoFailure, "PKCS5_PBKDF2_HMAC failed")
        }
        return output
    }

    /// SHA-256 of `bytes` (FIPS 180-4), 32 bytes, through `EVP_Digest`.
    ///
    /// Non-throwing: `EVP_Digest` with a built-in algorithm fails only if memory runs out, which is a precondition
    /// failure here rather than an input error.
    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let rc = Self.withNonNullBytes(bytes) { input in
            EVP_Digest(input.baseAddress, input.count, &output, &length, EVP_sha256(), nil)
        }
        precondition(rc == 1 && length == 32, "EVP_Digest(SHA-256) failed")
        return output
    }

    /// HMAC-SHA-256 of `data` under `key` (RFC 2104), 32 bytes, through `HMAC`.
    ///
    /// Non-throwing for the same reason as ``sha256(_:)``. Keys longer than 64 bytes are hashed first, per RFC 2104.
    public static func hmacSHA256(key: [UInt8], data: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let result = Self.withNonNullBytes(key) { keyBytes in
            Self.withNonNullBytes(data) { dataBytes in
                HMAC(
                    EVP_sha256(),
                    keyBytes.baseAddress,
                    Int32(clamping: key.count),
                    dataBytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
                    data.count,
                    &output,
                    &length
                ) != nil
            }
        }
        precondition(result && length == 32, "HMAC(SHA-256) failed")
        return output
    }

    /// `count` bytes from OpenSSL's CSPRNG (`RAND_bytes`), for salts, tokens and request ids.
    ///
    /// - Throws: ``OpenSSLError`` with ``OpenSSLError/Code/invalidArgument`` for a negative or huge count, or
    ///   ``OpenSSLError/Code/cryptoFailure`` if the generator is not seeded (never silently weaker bytes).
    public static func randomBytes(count: Int) throws(OpenSSLError) -> [UInt8] {
        guard count >= 0, count <= Int(Int32.max) else {
            throw OpenSSLError(.invalidArgument, message: "random byte count must be in 0…\(Int32.max)")
        }
        guard count > 0 else { return [] }
        ERR_clear_error()
        var output = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&output, Int32(count)) == 1 else {
            throw .drainingQueue(.cryptoFailure, "RAND_bytes failed")
        }
        return output
    }

    /// Whether `lhs` and `rhs` are equal, in time that depends only on their lengths (`CRYPTO_memcmp`).
    ///
    /// Use it for every comparison of a secret-derived value (password hash, MAC, token), so timing reveals nothing
    /// about how many leading bytes matched. Lengths are not secret: different lengths return `false` at once.
    public static func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        guard !lhs.isEmpty else { return true }
        return lhs.withUnsafeBytes { left in
            rhs.withUnsafeBytes { right in
                CRYPTO_memcmp(left.baseAddress, right.baseAddress, left.count) == 0
            }
        }
    }

    /// Calls `body` with a pointer that is never NULL, even for an empty array: some OpenSSL functions treat NULL as
    /// "no argument" rather than "zero bytes".
    private static func withNonNullBytes<R>(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if bytes.isEmpty {
            return withUnsafeTemporaryAllocation(byteCount: 1, alignment: 1) { scratch in
                body(UnsafeRawBufferPointer(start: scratch.baseAddress, count: 0))
            }
        }
        return bytes.withUnsafeBytes(body)
    }
}
