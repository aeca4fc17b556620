/// Who is calling: a name, the roles the policy gives it, and how it proved who it is.
///
/// ProxyCore's identity layer makes one from a verified credential: ``User/principal(authentication:)``,
/// ``APIKey/principal``, or ``Policy/anonymous``.
public struct Principal: Hashable, Sendable {
    /// How the principal was authenticated.
    public enum Authentication: String, Hashable, Sendable {
        /// `user:password` in the `authorization` header, checked against a PBKDF2 hash.
        case password
        /// A token without a colon, checked against an API key's SHA-256.
        case apiKey
        /// A TLS client certificate whose subject names a user (`tls_subject`).
        case tls
        /// No credential: the `anonymous` principal, which has only the roles a policy gives it explicitly.
        case anonymous
    }

    /// The user's or API key's name; `anonymous` for ``Authentication/anonymous``.
    public let name: String
    /// The names of the principal's roles, as the policy lists them.
    public let roles: [String]
    /// How the principal was authenticated.
    public let authentication: Authentication

    /// Creates a principal.
    public init(name: String, roles: [String], authentication: Authentication) {
        self.name = name
        self.roles = roles
        self.authentication = authentication
    }

    /// The name of the principal a call without credentials gets.
    public static let anonymousName = "anonymous"
}
