public import MilvusCatalog

/// One entry of a role: `allow:` or `deny:` some actions `on:` some resources.
///
/// A rule *covers* a target of a call when one of its actions matches the call's RPC and one of its patterns
/// matches the target. A rule never decides alone; ``RuleSet`` combines the rules of a principal's roles.
///
/// An immutable class rather than a struct: evaluation visits a principal's rules on every call, and a copy of a
/// struct rule retains and releases each of its arrays and strings, where a copy of a reference costs one retain.
/// Equality and hashing are by value.
public final class Rule: Hashable, Sendable {
    /// Whether the rule grants or refuses.
    public enum Effect: String, Hashable, Sendable {
        case allow, deny
    }

    /// Grants or refuses.
    public let effect: Effect
    /// What the rule is about; never empty.
    public let actions: [ActionSelector]
    /// Where it applies; never empty.
    public let patterns: [ResourcePattern]
    /// Where the rule is written.
    public let id: RuleID

    /// Creates a rule. `actions` and `patterns` must not be empty (the loader refuses such rules).
    public init(_ effect: Effect, _ actions: [ActionSelector], on patterns: [ResourcePattern], id: RuleID) {
        precondition(!actions.isEmpty && !patterns.isEmpty, "a rule needs actions and patterns")
        self.effect = effect
        self.actions = actions
        self.patterns = patterns
        self.id = id
    }

    public static func == (lhs: Rule, rhs: Rule) -> Bool {
        lhs === rhs
            || (lhs.effect == rhs.effect && lhs.actions == rhs.actions && lhs.patterns == rhs.patterns
                && lhs.id == rhs.id)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.effect)
        hasher.combine(self.actions)
        hasher.combine(self.patterns)
        hasher.combine(self.id)
    }

    /// Whether one of the rule's actions matches `rpc`.
    public func matches(_ rpc: RPCDescriptor) -> Bool {
        self.actions.contains { $0.matches(rpc) }
    }

    /// Whether one of the rule's patterns matches `target`; for a deny rule, whether one may match it
    /// (``ResourcePattern/mayMatch(_:)``: a collection named only by its ID could be the one the rule denies).
    public func covers(_ target: PolicyTarget) -> Bool {
        if self.effect == .deny { return self.patterns.contains { $0.mayMatch(target) } }
        return self.patterns.contains { $0.matches(target) }
    }
}
