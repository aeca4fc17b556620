/// A named list of rules, as a policy file defines it under `roles:`.
public struct Role: Hashable, Sendable {
    /// The role's name.
    public let name: String
    /// The rules, in file order. Order does not change a decision: deny beats allow wherever they are.
    public let rules: [Rule]
    /// Where the role is defined (its key's line).
    public let definedAt: RuleID

    /// Creates a role.
    public init(name: String, rules: [Rule], definedAt: RuleID) {
        self.name = name
        self.rules = rules
        self.definedAt = definedAt
    }
}
