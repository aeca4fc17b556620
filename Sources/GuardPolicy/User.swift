/// A user of a policy file: a name, its roles, and how it can prove who it is.
public struct User: Hashable, Sendable {
    /// The user's name (what clients put before the colon of `user:password`).
    public let name: String
    /// The stored password, or `nil` for a user that can only authenticate by TLS client certificate.
    public let password: PasswordHash?
    /// The certificate subject that names this user (`CN=svc`), or `nil`.
    public let tlsSubject: String?
    /// What ``tlsSubject`` names in a certificate.
    public let tlsPattern: TLSSubjectPattern?
    /// The user's role names, all defined in the policy.
    public let roles: [String]
    /// Where the user is defined.
    public let definedAt: RuleID

    /// Creates a user.
    public init(name: String, password: PasswordHash?, tlsSubject: String?, roles: [String], definedAt: RuleID) {
        self.name = name
        self.password = password
        self.tlsSubject = tlsSubject
        self.tlsPattern = tlsSubject.map(TLSSubjectPattern.init)
        self.roles = roles
        self.definedAt = definedAt
    }

    /// The principal this user becomes once authenticated.
    public func principal(authentication: Principal.Authentication) -> Principal {
        Principal(name: self.name, roles: self.roles, authentication: authentication)
    }
}

/// An API key of a policy file: a token without a colon, stored as its SHA-256.
public struct APIKey: Hashable, Sendable {
    /// The key's name, used as the principal's name.
    public let name: String
    /// SHA-256 of the token's bytes (32 bytes).
    public let sha256: [UInt8]
    /// The key's role names, all defined in the policy.
    public let roles: [String]
    /// Where the key is defined.
    public let definedAt: RuleID

    /// Creates an API key.
    public init(name: String, sha256: [UInt8], roles: [String], definedAt: RuleID) {
        self.name = name
        self.sha256 = sha256
        self.roles = roles
        self.definedAt = definedAt
    }

    /// The principal a call with this key becomes.
    public var principal: Principal {
        Principal(name: self.name, roles: self.roles, authentication: .apiKey)
    }
}
