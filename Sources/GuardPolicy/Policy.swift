public import MilvusCatalog

/// Everything the policy files of a folder say: the rule set, the credentials, per-file modes and warnings.
public struct Policy: Sendable {
    /// How a file's rules are applied.
    public enum Mode: String, Hashable, Sendable {
        /// Denials are enforced (the default).
        case enforce
        /// The file's rules do not change what is enforced; where they would deny a call the enforced rules allow,
        /// the proxy forwards it and logs `would deny` (see ``decide(principal:call:)``).
        case shadow
    }

    /// The roles with every rule of every file, ready to evaluate.
    public let ruleSet: RuleSet
    /// The roles with the rules of `enforce` files only; the same as ``ruleSet`` when no file is in shadow mode.
    public let enforcedRuleSet: RuleSet
    /// Whether some file in shadow mode has rules (else ``enforcedRuleSet`` is ``ruleSet``).
    private let hasShadowRules: Bool
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
        self.hasShadowRules = ruleSet.roles.values.contains { role in
            role.rules.contains { modes[$0.id.file] == .shadow }
        }
        if self.hasShadowRules {
            self.enforcedRuleSet = RuleSet(
                roles: ruleSet.roles.values.map { role in
                    Role(
                        name: role.name,
                        rules: role.rules.filter { modes[$0.id.file] != .shadow },
                        definedAt: role.definedAt
                    )
                }
            )
        } else {
            self.enforcedRuleSet = ruleSet
        }
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

    /// What the proxy does with a call: the enforced decision, and the decision of all rules when shadow-mode
    /// rules would deny a call that the enforced rules allow.
    public struct Outcome: Hashable, Sendable {
        /// The decision to enforce (from ``enforcedRuleSet``).
        public let decision: Decision
        /// A denial by all rules, shadow files included, of a call that ``decision`` allows: log it as
        /// `would deny`. `nil` otherwise.
        public let wouldDeny: Decision?

        /// Creates an outcome.
        public init(decision: Decision, wouldDeny: Decision?) {
            self.decision = decision
            self.wouldDeny = wouldDeny
        }
    }

    /// Decides a call. Shadow-mode files never change what is enforced: their deny rules only produce
    /// ``Outcome/wouldDeny``, and their allow rules grant nothing until the file is switched to `enforce`.
    public func decide(principal: Principal, call: MilvusCall) -> Outcome {
        let enforced = self.enforcedRuleSet.evaluate(principal: principal, call: call)
        guard enforced.isAllowed, self.hasShadowRules else {
            return Outcome(decision: enforced, wouldDeny: nil)
        }
        let full = self.ruleSet.evaluate(principal: principal, call: call)
        return Outcome(decision: enforced, wouldDeny: full.isAllowed ? nil : full)
    }
}
