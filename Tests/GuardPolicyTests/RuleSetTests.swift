import GuardPolicy
import MilvusCatalog
import Testing

/// The policy of the evaluator tests. Line numbers matter: decisions cite them.
private let policyText = """
    users:
      anonymous: { roles: [public] }
    roles:
      writer:
        - allow: [read, write]
          on: ["default.books", "default.movies"]
        - allow: [ShowCollections]
          on: ["default"]
      reader:
        - allow: [read]
          on: ["default.*"]
      cautious:
        - allow: ["*"]
          on: ["*"]
        - deny: [destructive]
          on: ["prod.*"]
        - deny: [DropDatabase]
          on: ["prod"]
      renamer:
        - allow: [RenameCollection]
          on: ["default.a", "default.b", "archive.*"]
      tmp:
        - allow: ["*"]
          on: ["*.tmp_*"]
      admin-on-prod:
        - allow: [admin, read]
          on: ["prod.*"]
      public:
        - allow: [Search, Connect]
          on: ["demo.*", "*"]
      nothing:
        - deny: [Connect]
          on: ["*"]
    """

@Suite("RuleSet evaluation")
struct RuleSetTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let roles: [String]
        let call: MilvusCall
        let expected: String  // "allow <rule>" or "deny <reason>"
        var authentication: Principal.Authentication = .password
        var testDescription: String { "\(self.roles) \(self.call.rpc.name) → \(self.expected)" }
    }

    static let cases: [Case] = [
        // Collection rules.
        Case(
            roles: ["writer"],
            call: Calls.make("Insert", collection: "books"),
            expected: "allow policies/test.yaml:5"
        ),
        Case(
            roles: ["writer"],
            call: Calls.make("DropCollection", collection: "books"),
            expected: "deny app may not DropCollection on default.books (no rule allows it)"
        ),
        Case(
            roles: ["writer"],
            call: Calls.make("Search", collection: "other"),
            expected: "deny app may not Search on default.other (no rule allows it)"
        ),
        Case(
            roles: ["writer"],
            call: Calls.make("Search", database: "prod", collection: "books"),
            expected: "deny app may not Search on prod.books (no rule allows it)"
        ),
        // Database-level RPCs match `db` and `db.*`.
        Case(roles: ["writer"], call: Calls.make("ShowCollections"), expected: "allow policies/test.yaml:7"),
        Case(roles: ["reader"], call: Calls.make("ShowCollections"), expected: "allow policies/test.yaml:10"),
        Case(roles: ["reader"], call: Calls.make("DescribeDatabase"), expected: "allow policies/test.yaml:10"),
        Case(
            roles: ["writer"],
            call: Calls.make("ShowCollections", collections: ["books", "secret"]),
            expected: "deny app may not ShowCollections on default.secret (no rule allows it)"
        ),
        Case(
            roles: ["tmp"],
            call: Calls.make("CreateDatabase", database: "tmp_x"),
            expected: "deny app may not CreateDatabase on tmp_x (no rule allows it)"
        ),
        // Deny beats allow, and cites its rule.
        Case(
            roles: ["cautious"],
            call: Calls.make("DropCollection", database: "prod", collection: "books"),
            expected: "deny app may not DropCollection on prod.books (policies/test.yaml:15)"
        ),
        Case(
            roles: ["cautious"],
            call: Calls.make("DropDatabase", database: "prod"),
            expected: "deny app may not DropDatabase on prod (policies/test.yaml:15)"
        ),
        Case(
            roles: ["cautious"],
            call: Calls.make("DropCollection", collection: "books"),
            expected: "allow policies/test.yaml:13"
        ),
        Case(
            roles: ["reader", "cautious"],
            call: Calls.make("Delete", database: "prod", collection: "x"),
            expected: "deny app may not Delete on prod.x (policies/test.yaml:15)"
        ),
        // RenameCollection needs both names; Flush every collection.
        Case(
            roles: ["renamer"],
            call: Calls.make("RenameCollection", collection: "a", newName: "b"),
            expected: "allow policies/test.yaml:20"
        ),
        Case(
            roles: ["renamer"],
            call: Calls.make("RenameCollection", collection: "a", newName: "c"),
            expected: "deny app may not RenameCollection on default.c (no rule allows it)"
        ),
        Case(
            roles: ["renamer"],
            call: Calls.make("RenameCollection", collection: "c", newName: "a"),
            expected: "deny app may not RenameCollection on default.c (no rule allows it)"
        ),
        Case(
            roles: ["renamer"],
            call: Calls.make("RenameCollection", collection: "a", newName: "a", newDatabase: "archive"),
            expected: "allow policies/test.yaml:20"
        ),
        Case(
            roles: ["writer"],
            call: Calls.make("Flush", collections: ["books", "movies"]),
            expected: "allow policies/test.yaml:5"
        ),
        Case(
            roles: ["writer"],
            call: Calls.make("Flush", collections: ["books", "users"]),
            expected: "deny app may not Flush on default.users (no rule allows it)"
        ),
        // Globs inside a part.
        Case(
            roles: ["tmp"],
            call: Calls.make("DropCollection", database: "x", collection: "tmp_1"),
            expected: "allow policies/test.yaml:23"
        ),
        Case(
            roles: ["tmp"],
            call: Calls.make("DropCollection", database: "x", collection: "tmp"),
            expected: "deny app may not DropCollection on x.tmp (no rule allows it)"
        ),
        // Aliases are checked as the name the client sent.
        Case(
            roles: ["writer"],
            call: Calls.make("Search", collection: "b"),
            expected: "deny app may not Search on default.b (no rule allows it)"
        ),
        Case(
            roles: ["writer"],
            call: Calls.make("DescribeAlias", alias: "books"),
            expected: "allow policies/test.yaml:5"
        ),
        Case(
            roles: ["cautious"],
            call: Calls.make("AlterAlias", database: "prod", collection: "tmp_new", alias: "books"),
            expected: "deny app may not AlterAlias on prod.tmp_new (policies/test.yaml:15)"
        ),
        // Admin RPCs and RPCs that name no database act on the cluster: only `*` matches.
        Case(
            roles: ["admin-on-prod"],
            call: Calls.make("OperatePrivilegeV2", database: "prod", collection: "books"),
            expected: "deny app may not OperatePrivilegeV2 on * (no rule allows it)"
        ),
        Case(
            roles: ["admin-on-prod"],
            call: Calls.make("CreateRole"),
            expected: "deny app may not CreateRole on * (no rule allows it)"
        ),
        Case(
            roles: ["reader"],
            call: Calls.make("ListDatabases"),
            expected: "deny app may not ListDatabases on * (no rule allows it)"
        ),
        Case(roles: ["cautious"], call: Calls.make("CreateRole"), expected: "allow policies/test.yaml:13"),
        Case(roles: ["cautious"], call: Calls.make("ListDatabases"), expected: "allow policies/test.yaml:13"),
        Case(
            roles: ["admin-on-prod"],
            call: Calls.make("ListIndexedSegment", database: "prod", collection: "books"),
            expected: "allow policies/test.yaml:26"
        ),
        // Session RPCs: every authenticated principal, even with no roles; anonymous only explicitly.
        Case(roles: [], call: Calls.make("Connect"), expected: "allow builtin:session"),
        Case(roles: ["reader"], call: Calls.make("AllocTimestamp"), expected: "allow builtin:session"),
        Case(roles: [], call: Calls.make("GetVersion"), expected: "allow builtin:session", authentication: .apiKey),
        Case(roles: [], call: Calls.make("CheckHealth"), expected: "allow builtin:session", authentication: .tls),
        Case(
            roles: ["nothing"],
            call: Calls.make("Connect"),
            expected: "deny app may not Connect on * (policies/test.yaml:32)"
        ),
        Case(
            roles: [],
            call: Calls.make("Connect"),
            expected: "deny app may not Connect on * (no rule allows it)",
            authentication: .anonymous
        ),
        Case(
            roles: ["public"],
            call: Calls.make("Connect"),
            expected: "allow policies/test.yaml:29",
            authentication: .anonymous
        ),
        Case(
            roles: ["public"],
            call: Calls.make("GetVersion"),
            expected: "deny app may not GetVersion on * (no rule allows it)",
            authentication: .anonymous
        ),
        // Unknown roles give nothing.
        Case(
            roles: ["ghost"],
            call: Calls.make("Search", collection: "books"),
            expected: "deny app may not Search on default.books (no rule allows it)"
        ),
    ]

    @Test("Decisions follow the rules", arguments: Self.cases)
    func decisions(_ testCase: Case) throws {
        let policy = try loadPolicy(policyText)
        let decision = policy.ruleSet.evaluate(
            principal: principal("app", testCase.roles, testCase.authentication),
            call: testCase.call
        )
        switch decision {
        case .allow(let rule): #expect("allow \(rule)" == testCase.expected)
        case .deny(_, let reason): #expect("deny \(reason)" == testCase.expected)
        }
    }

    @Test("A collection named only by its ID needs an allow on every collection; any deny on a collection applies")
    func collectionByID() throws {
        let policy = try loadPolicy(
            """
            roles:
              wide:
                - allow: [read]
                  on: ["*.*"]
                - deny: [read]
                  on: ["prod.secret"]
              whole:
                - allow: [read]
                  on: ["*.*"]
              database:
                - allow: [read]
                  on: ["default.*", "default"]
            """
        )
        func decide(_ roles: [String], _ call: MilvusCall) -> String {
            switch policy.ruleSet.evaluate(principal: principal("app", roles), call: call) {
            case .allow(let rule): "allow \(rule)"
            case .deny(_, let reason): "deny \(reason)"
            }
        }
        // Milvus looks the ID up in every database, whatever db_name says: default.* is not enough.
        let byID = Calls.make("DescribeCollection", collectionIDs: [7])
        #expect(decide(["whole"], byID) == "allow policies/test.yaml:8")
        #expect(
            decide(["database"], byID) == "deny app may not DescribeCollection on <collection ID 7> (no rule allows it)"
        )
        // A deny on a collection of another database applies too: the ID may be that one.
        #expect(
            decide(["wide"], byID) == "deny app may not DescribeCollection on <collection ID 7> (policies/test.yaml:5)"
        )
        #expect(decide(["wide"], Calls.make("DescribeCollection", collection: "books")) == "allow policies/test.yaml:3")
        // Several targets (names and IDs): the deny still finds the ID.
        let batch = Calls.make("BatchDescribeCollection", collections: ["books"], collectionIDs: [7])
        #expect(
            decide(["wide"], batch)
                == "deny app may not BatchDescribeCollection on <collection ID 7> (policies/test.yaml:5)"
        )
        #expect(decide(["whole"], batch) == "allow policies/test.yaml:8")
        #expect(
            decide(["database"], batch)
                == "deny app may not BatchDescribeCollection on <collection ID 7> (no rule allows it)"
        )
    }

    @Test("A denial by no rule has no rule id; a denial by a rule cites it")
    func denialRules() throws {
        let policy = try loadPolicy(policyText)
        let none = policy.ruleSet.evaluate(
            principal: principal("app", ["writer"]),
            call: Calls.make("DropCollection", collection: "books")
        )
        #expect(none.rule == nil)
        #expect(!none.isAllowed)
        let cited = policy.ruleSet.evaluate(
            principal: principal("app", ["cautious"]),
            call: Calls.make("TruncateCollection", database: "prod", collection: "books")
        )
        #expect(cited.rule == RuleID(file: "policies/test.yaml", line: 15))
    }

    @Test("The anonymous principal gets the roles of users.anonymous and nothing else")
    func anonymous() throws {
        let policy = try loadPolicy(policyText)
        #expect(policy.anonymous == principal("anonymous", ["public"], .anonymous))
        let search = policy.ruleSet.evaluate(
            principal: policy.anonymous,
            call: Calls.make("Search", database: "demo", collection: "books")
        )
        #expect(search == .allow(by: RuleID(file: "policies/test.yaml", line: 29)))
        let insert = policy.ruleSet.evaluate(
            principal: policy.anonymous,
            call: Calls.make("Insert", database: "demo", collection: "books")
        )
        #expect(!insert.isAllowed)
        let empty = try loadPolicy("roles: {r: []}")
        #expect(empty.anonymous.roles.isEmpty)
        #expect(!empty.ruleSet.evaluate(principal: empty.anonymous, call: Calls.make("Connect")).isAllowed)
    }
}
