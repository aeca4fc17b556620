/// A stored password: `pbkdf2-sha256$<iterations>$<salt, base64>$<hash, base64>`, parsed but not verified.
///
/// Verification (PBKDF2-HMAC-SHA256 over the presented password with ``salt`` and ``iterations``, compared in
/// constant time with ``hash``) belongs to the proxy, which has OpenSSL; this module does not import it.
public struct PasswordHash: Hashable, Sendable {
    /// The only scheme: PBKDF2 with HMAC-SHA256.
    public static let scheme = "pbkdf2-sha256"
    /// The smallest iteration count the loader accepts.
    public static let minimumIterations = 1_000
    /// Below this count the loader warns (OWASP's 2023 advice is 600000 for PBKDF2-HMAC-SHA256).
    public static let recommendedIterations = 100_000

    /// The PBKDF2 iteration count.
    public let iterations: Int
    /// The salt's bytes.
    public let salt: [UInt8]
    /// The derived key's bytes; its length is the length to derive.
    public let hash: [UInt8]

    /// Creates a hash from its parts.
    public init(iterations: Int, salt: [UInt8], hash: [UInt8]) {
        self.iterations = iterations
        self.salt = salt
        self.hash = hash
    }
}
