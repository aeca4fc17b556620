public import MilvusCatalog

/// The roles of a loaded policy, immutable, evaluated per call. Sendable: a reload builds a new one and hands it
/// to every event loop; calls in flight keep the decision they got.
///
/// Evaluation (``evaluate(principal:call:)``), for the rules of the principal's roles:
/// 1. **Deny beats allow.** A deny rule whose actions match the RPC and whose patterns match any target of the
///    call decides: the call is refused, citing that rule.
/// 2. **Session RPCs.** Connect, GetVersion, CheckHealth and AllocTimestamp are allowed to every principal that
///    is not anonymous (``RuleID/session``). The anonymous principal gets them only from an explicit allow.
/// 3. **Every target needs an allow.** Each target of the call (see ``PolicyTarget/targets(of:)``) must be
///    covered by some allow rule; RenameCollection needs both names, Flush every collection it lists.
/// 4. **Otherwise deny**, with no rule: "no rule allows it".
///
/// Unknown role names in a principal give no rules (the loader refuses them in policy files).
public struct RuleSet: Hashable, Sendable {
    /// The roles, by name.
    public let roles: [String: Role]

    /// The RPCs every authenticated principal may call (rule 2).
    public static let sessionRPCs: Set<String> = ["Connect", "GetVersion", "CheckHealth", "AllocTimestamp"]

    /// Creates a rule set from roles with distinct names.
    public init(roles: [Role]) {
        self.roles = Dictionary(roles.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The number of rules over all roles.
    public var ruleCount: Int { self.roles.values.reduce(0) { $0 + $1.rules.count } }

    /// Decides whether `principal` may make `call`.
    public func evaluate(principal: Principal, call: MilvusCall) -> Decision {
        self.evaluate(principal: principal, rpc: call.rpc, targets: PolicyTarget.targets(of: call))
    }

    /// Decides whether `principal` may call `rpc` on `targets` (one or more; an empty list is treated as the
    /// cluster). Used by ``evaluate(principal:call:)`` and by `policy explain`.
    public func evaluate(principal: Principal, rpc: RPCDescriptor, targets: [PolicyTarget]) -> Decision {
        if targets.count <= 1 {
            return self.evaluate(principal: principal, rpc: rpc, target: targets.first ?? .cluster)
        }
        // Rule 1, over all roles first: a deny anywhere decides. A second pass finds the allows (rather than
        // collecting them here), so an allowed call's evaluation allocates no array of rules.
        // Rules are visited by index and read in place: a `for rule in rules` loop retains and releases every rule
        // it visits.
        for roleName in principal.roles {
            guard let rules = self.roles[roleName]?.rules else { continue }
            for index in rules.indices where rules[index].effect == .deny && rules[index].matches(rpc) {
                for target in targets where rules[index].covers(target) {
                    let id = rules[index].id
                    return .deny(by: id, reason: Self.reason(principal, rpc, target, id.description))
                }
            }
        }
        if principal.authentication != .anonymous, Self.sessionRPCs.contains(rpc.name) {
            return .allow(by: .session)
        }
        // Two targets or more here: the decision cites the allow of the first.
        guard let firstAllow = self.firstAllow(for: principal, rpc: rpc, on: targets[0]) else {
            return .deny(by: nil, reason: Self.reason(principal, rpc, targets[0], "no rule allows it"))
        }
        for target in targets.dropFirst() where self.firstAllow(for: principal, rpc: rpc, on: target) == nil {
            return .deny(by: nil, reason: Self.reason(principal, rpc, target, "no rule allows it"))
        }
        return .allow(by: firstAllow)
    }

    /// ``evaluate(principal:rpc:targets:)`` for one target (most calls), in one pass over the principal's roles:
    /// each role is looked up once, and the first matching deny still decides whatever allows came before it.
    private func evaluate(principal: Principal, rpc: RPCDescriptor, target: PolicyTarget) -> Decision {
        var allow: RuleID?
        for roleName in principal.roles {
            guard let rules = self.roles[roleName]?.rules else { continue }
            for index in rules.indices where rules[index].matches(rpc) && rules[index].covers(target) {
                if rules[index].effect == .deny {
                    let id = rules[index].id
                    return .deny(by: id, reason: Self.reason(principal, rpc, target, id.description))
                }
                if allow == nil { allow = rules[index].id }
            }
        }
        if principal.authentication != .anonymous, Self.sessionRPCs.contains(rpc.name) {
            return .allow(by: .session)
        }
        guard let allow else { return .deny(by: nil, reason: Self.reason(principal, rpc, target, "no rule allows it")) }
        return .allow(by: allow)
    }

    /// Whether `principal` holds the whole action class `action` across the cluster: some allow rule of its
    /// roles names the class (or `*`) on a pattern that covers the cluster (`*`), and no deny rule names the
    /// class (or `*`) anywhere. The admin listener asks this for `admin`; rules naming single RPCs do not count.
    /// - Returns: the allow rule, or nil.
    public func grantsActionClass(_ action: ActionClass, to principal: Principal) -> RuleID? {
        func names(_ rule: Rule) -> Bool {
            rule.actions.contains {
                if case .any = $0 { return true }
                if case .actionClass(let named) = $0 { return named == action }
                return false
            }
        }
        var granted: RuleID?
        for roleName in principal.roles {
            guard let role = self.roles[roleName] else { continue }
            for rule in role.rules where names(rule) {
                if rule.effect == .deny { return nil }
                if granted == nil, rule.covers(.cluster) { granted = rule.id }
            }
        }
        return granted
    }

    /// The first allow rule of the principal's roles (in role order, then file order) that covers `target`.
    private func firstAllow(for principal: Principal, rpc: RPCDescriptor, on target: PolicyTarget) -> RuleID? {
        for roleName in principal.roles {
            guard let rules = self.roles[roleName]?.rules else { continue }
            for index in rules.indices
            where rules[index].effect == .allow && rules[index].matches(rpc) && rules[index].covers(target) {
                return rules[index].id
            }
        }
        return nil
    }

    /// `<user> may not <Rpc> on <target> (<why>)`: the denial sentence the proxy sends after `milvus-guard: `.
    public static func reason(
        _ principal: Principal,
        _ rpc: RPCDescriptor,
        _ target: PolicyTarget,
        _ why: String
    )
        -> String
    {
        "\(principal.name) may not \(rpc.name) on \(target) (\(why))"
    }
}
