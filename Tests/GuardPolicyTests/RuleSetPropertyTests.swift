import GuardPolicy
import MilvusCatalog
import PropertyBased
import Testing

/// Random rule sets over a small universe of actions, patterns and calls, so that rules often apply.
@Suite("RuleSet properties")
struct RuleSetPropertyTests {
    static let actions: [ActionSelector] = [
        .any, .actionClass(.read), .actionClass(.write), .actionClass(.ddl), .actionClass(.destructive),
        .actionClass(.admin), .rpc(Calls.rpc("DropCollection")), .rpc(Calls.rpc("Search")),
        .rpc(Calls.rpc("RenameCollection")), .rpc(Calls.rpc("Connect")),
    ]
    static let patterns = ["*", "default", "default.*", "prod.*", "*.books", "*.tmp_*", "prod.b*", "*.*"]
    static let calls: [MilvusCall] = [
        Calls.make("Search", collection: "books"),
        Calls.make("Insert", database: "prod", collection: "books"),
        Calls.make("DropCollection", database: "prod", collection: "tmp_1"),
        Calls.make("RenameCollection", collection: "books", newName: "tmp_x"),
        Calls.make("RenameCollection", database: "prod", collection: "books", newName: "b2", newDatabase: "default"),
        Calls.make("Flush", database: "prod", collections: ["books", "tmp_9"]),
        Calls.make("ShowCollections"),
        Calls.make("DropDatabase", database: "prod"),
        Calls.make("CreateRole"),
        Calls.make("ListDatabases"),
        Calls.make("Connect"),
        Calls.make("GetVersion"),
    ]
    static let authentications: [Principal.Authentication] = [.password, .apiKey, .tls, .anonymous]

    /// Rule `index` of a role, decoded from one generated number: effect, action and pattern.
    static func rule(_ code: Int, index: Int, effect: Rule.Effect? = nil) -> Rule {
        let effect = effect ?? (code % 2 == 0 ? .allow : .deny)
        let action = Self.actions[(code / 2) % Self.actions.count]
        let pattern = Self.patterns[(code / 2 / Self.actions.count) % Self.patterns.count]
        // ResourcePattern's init only throws for malformed text; every entry above is well formed.
        let parsed = (try? ResourcePattern(pattern)) ?? .everything
        return Rule(effect, [action], on: [parsed], id: RuleID(file: "p.yaml", line: index + 1))
    }

    static func rules(_ codes: [Int], effect: Rule.Effect? = nil) -> [Rule] {
        codes.enumerated().map { Self.rule($1, index: $0, effect: effect) }
    }

    /// One role `r` holding `rules`.
    static func ruleSet(_ rules: [Rule]) -> RuleSet {
        RuleSet(roles: [Role(name: "r", rules: rules, definedAt: RuleID(file: "p.yaml", line: 1))])
    }

    static let codes = Gen.int(in: 0...10_000).array(of: 0...8)
    static let callIndex = Gen.int(in: 0...(Self.calls.count - 1))
    static let authenticationIndex = Gen.int(in: 0...3)

    @Test("Deny beats allow: when a deny rule applies to any target, the call is denied by a deny rule")
    func denyBeatsAllow() async {
        await propertyCheck(count: 300, input: Self.codes, Self.callIndex, Self.authenticationIndex) { codes, c, a in
            let call = Self.calls[c]
            let principal = Principal(name: "p", roles: ["r"], authentication: Self.authentications[a])
            let targets = PolicyTarget.targets(of: call)
            let forced = Rule(.deny, [.rpc(call.rpc)], on: [.everything], id: RuleID(file: "deny.yaml", line: 7))
            // The generated rules alone (a deny applies in some cases), then with a deny that always applies.
            for rules in [Self.rules(codes), Self.rules(codes) + [forced]] {
                let decision = Self.ruleSet(rules).evaluate(principal: principal, call: call)
                let denyApplies = rules.contains { rule in
                    rule.effect == .deny && rule.matches(call.rpc) && targets.contains { rule.covers($0) }
                }
                guard denyApplies else { continue }
                #expect(!decision.isAllowed)
                #expect(rules.contains { $0.id == decision.rule && $0.effect == .deny })
            }
        }
    }

    @Test("No allow rule means deny, except the session RPCs of authenticated principals")
    func noRuleMeansDeny() async {
        await propertyCheck(count: 300, input: Self.codes, Self.callIndex, Self.authenticationIndex) { codes, c, a in
            let call = Self.calls[c]
            let authentication = Self.authentications[a]
            let onlyDenies = Self.ruleSet(Self.rules(codes, effect: .deny))
            for roles in [[], ["r"], ["missing"]] {
                let principal = Principal(name: "p", roles: roles, authentication: authentication)
                let decision = onlyDenies.evaluate(principal: principal, call: call)
                if decision.isAllowed {
                    #expect(decision == .allow(by: .session))
                    #expect(authentication != .anonymous && RuleSet.sessionRPCs.contains(call.rpc.name))
                } else if roles != ["r"] {
                    #expect(decision.rule == nil)  // no rule at all: "no rule allows it"
                }
            }
        }
    }

    @Test("Adding an allow rule never turns an allowed call into a denied one")
    func allowIsMonotonic() async {
        await propertyCheck(
            count: 300,
            input: Self.codes,
            Gen.int(in: 0...10_000),
            Self.callIndex,
            Self.authenticationIndex
        ) { codes, extra, c, a in
            let call = Self.calls[c]
            let principal = Principal(name: "p", roles: ["r"], authentication: Self.authentications[a])
            let rules = Self.rules(codes)
            let before = Self.ruleSet(rules).evaluate(principal: principal, call: call)
            let added = Self.rule(extra, index: rules.count, effect: .allow)
            let after = Self.ruleSet(rules + [added]).evaluate(principal: principal, call: call)
            if before.isAllowed { #expect(after.isAllowed) }
            // And a denial by a deny rule is unchanged.
            if case .deny(.some, _) = before { #expect(after == before) }
        }
    }

    @Test("One target decides in one pass exactly as the per-target passes do, over several roles")
    func singleTargetPassAgrees() async {
        await propertyCheck(count: 400, input: Self.codes, Self.codes, Self.authenticationIndex) { first, second, a in
            let roles = [
                Role(name: "a", rules: Self.rules(first), definedAt: RuleID(file: "p.yaml", line: 1)),
                Role(name: "b", rules: Self.rules(second), definedAt: RuleID(file: "q.yaml", line: 1)),
            ]
            let ruleSet = RuleSet(roles: roles)
            let principal = Principal(name: "p", roles: ["a", "b"], authentication: Self.authentications[a])
            for call in Self.calls {
                for target in PolicyTarget.targets(of: call) + [.cluster] {
                    // The same target twice takes the general path, which visits deny rules first, then allows.
                    let one = ruleSet.evaluate(principal: principal, rpc: call.rpc, targets: [target])
                    let twice = ruleSet.evaluate(principal: principal, rpc: call.rpc, targets: [target, target])
                    #expect(one == twice, "\(call.rpc.name) on \(target)")
                }
            }
        }
    }
}

extension ResourcePattern {
    /// `*`.
    fileprivate static let everything: ResourcePattern = {
        guard let pattern = try? ResourcePattern("*") else { preconditionFailure("* is a valid pattern") }
        return pattern
    }()
}
