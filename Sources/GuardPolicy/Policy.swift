/// Everything the policy files of a folder say: the rule set, the credentials, per-file modes and warnings.
public struct Policy: Sendable {
    /// How a file's rules are applied.
    public enum Mode: String, Hashable, Sendable {
        /// Denials are enforced (the default).
        case enforce
        /// Denials are logged as `would deny` and the call is forwarded (applied by the proxy; not built yet).
        case shadow
    }

    /// The roles, ready to evaluate.
    public let ruleSet: RuleSet
    /// The users, by name. `anonymous`, if defined, is not among them (see ``anonymous``).
    public let users: [String: User]
    /// The API keys, by name.
    public let apiKeys: [String: APIKey]
    /// The principal for calls without credentials: `anonymous` with the roles a policy gives it under
    /// `users: {anonymous: {roles: […]}}`, or none.
    public let anonymous: Principal
    /// Each file's `mode`, by the file's name as in ``RuleID/file``.
    public let modes: [String: Mode]
    /// Problems that do not stop loading (a low PBKDF2 iteration count).
    public let warnings: [PolicyProblem]

    /// Creates a policy; the loader checks that every referenced role exists.
    public init(
        ruleSet: RuleSet,
        users: [String: User],
        apiKeys: [String: APIKey],
        anonymous: Principal,
        modes: [String: Mode],
        warnings: [PolicyProblem]
    ) {
        self.ruleSet = ruleSet
        self.users = users
        self.apiKeys = apiKeys
        self.anonymous = anonymous
        self.modes = modes
        self.warnings = warnings
    }

    /// The mode of the file a rule is written in; built-in rules and unknown files are ``Mode/enforce``.
    public func mode(of rule: RuleID) -> Mode {
        self.modes[rule.file] ?? .enforce
    }

    /// The user named `name` as a principal (for `policy explain`), the anonymous principal for `anonymous`, an
    /// API key's principal if no user has that name, or `nil`.
    public func principal(named name: String) -> Principal? {
        if name == Principal.anonymousName { return self.anonymous }
        if let user = self.users[name] { return user.principal(authentication: .password) }
        return self.apiKeys[name]?.principal
    }
}
