import Foundation
import GuardPolicy
import MilvusCatalog
import Testing

/// A valid PBKDF2 string with 600000 iterations (16-byte salt, 32-byte hash).
let hash600k = "pbkdf2-sha256$600000$c2FsdHNhbHRzYWx0c2FsdA==$MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

private func fixture(_ name: String) throws -> String {
    let folder = try #require(Bundle.module.path(forResource: "Fixtures", ofType: nil))
    return folder + "/" + name
}

/// The problems of loading `text` as `policies/app.yaml`, as printed.
private func problems(_ text: String) -> [String] {
    do {
        _ = try loadPolicy(text, file: "policies/app.yaml")
        return []
    } catch let error as GuardPolicyError {
        return error.problems.map(\.description)
    } catch {
        return ["unexpected \(error)"]
    }
}

@Suite("Loading policy files")
struct PolicyFolderTests {
    @Test("All *.yaml and *.yml files of a folder are merged; other files are ignored")
    func merging() throws {
        let policy = try PolicyFolder.load(path: try fixture("merged"), displayPath: "policies")
        #expect(policy.users.keys.sorted() == ["alice", "app", "svc"])
        #expect(policy.apiKeys.keys.sorted() == ["ingest"])
        #expect(policy.ruleSet.roles.keys.sorted() == ["admin", "reader", "writer"])
        #expect(policy.ruleSet.ruleCount == 4)
        #expect(policy.warnings.isEmpty)
        #expect(policy.modes == ["policies/a-users.yaml": .enforce, "policies/b-roles.yml": .shadow])
        #expect(policy.mode(of: RuleID(file: "policies/b-roles.yml", line: 6)) == .shadow)
        #expect(policy.mode(of: .session) == .enforce)

        let app = try #require(policy.users["app"])
        #expect(app.roles == ["writer"])
        #expect(app.definedAt == RuleID(file: "policies/a-users.yaml", line: 3))
        let password = try #require(app.password)
        #expect(password.iterations == 600_000)
        #expect(password.salt == Array("saltsaltsaltsalt".utf8))
        #expect(password.hash == Array("0123456789abcdef0123456789abcdef".utf8))
        #expect(policy.users["svc"]?.tlsSubject == "CN=svc")
        #expect(policy.users["svc"]?.password == nil)
        #expect(policy.apiKeys["ingest"]?.sha256.count == 32)
        #expect(policy.apiKeys["ingest"]?.sha256.first == 0x62)

        // Rules from both files work together, and cite their own file.
        let drop = policy.ruleSet.evaluate(
            principal: app.principal(authentication: .password),
            call: Calls.make("DropCollection", collection: "books")
        )
        #expect(
            drop
                == .deny(
                    by: RuleID(file: "policies/b-roles.yml", line: 8),
                    reason: "app may not DropCollection on default.books (policies/b-roles.yml:8)"
                )
        )
        let search = policy.ruleSet.evaluate(
            principal: try #require(policy.principal(named: "alice")),
            call: Calls.make("Search", collection: "x")
        )
        #expect(search == .allow(by: RuleID(file: "policies/b-roles.yml", line: 11)))
        #expect(policy.principal(named: "ingest")?.authentication == .apiKey)
        #expect(policy.principal(named: "nobody") == nil)
    }

    @Test("A user or role defined in two files is an error at the second definition")
    func duplicatesAcrossFiles() throws {
        let error = #expect(throws: GuardPolicyError.self) {
            try PolicyFolder.load(path: try fixture("duplicates"), displayPath: "policies/")
        }
        #expect(
            error?.problems.map(\.description) == [
                "policies/b.yaml:3: roles.writer: defined twice (first at policies/a.yaml:4)",
                "policies/b.yaml:7: users.app: defined twice (first at policies/a.yaml:2)",
            ]
        )
    }

    @Test("A missing folder and a folder without policy files are errors")
    func folders() throws {
        let missing = #expect(throws: GuardPolicyError.self) {
            try PolicyFolder.load(path: "/nonexistent/policies", displayPath: "policies")
        }
        #expect(missing?.problems.map(\.description) == ["policies: no such folder"])
        let empty = #expect(throws: GuardPolicyError.self) {
            try PolicyFolder.load(path: try fixture("empty"), displayPath: "policies")
        }
        #expect(empty?.problems.map(\.description) == ["policies: has no *.yaml or *.yml policy files"])
    }

    @Test("The shipped policies/example.yaml loads without warnings")
    func shippedExample() throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let policy = try PolicyFolder.load(path: repository.path + "/policies", displayPath: "policies")
        #expect(policy.warnings.isEmpty)
        #expect(policy.users["root"]?.roles == ["admin"])
        #expect(policy.users["root"]?.password?.iterations == 600_000)
        let app = try #require(policy.principal(named: "app"))
        #expect(policy.ruleSet.evaluate(principal: app, call: Calls.make("Insert", collection: "books")).isAllowed)
        #expect(
            !policy.ruleSet.evaluate(principal: app, call: Calls.make("DropCollection", collection: "books")).isAllowed
        )
    }

    struct ErrorCase: Sendable, CustomTestStringConvertible {
        let yaml: String
        let expected: [String]
        var testDescription: String { self.expected.first ?? "" }
    }

    static let errorCases: [ErrorCase] = [
        ErrorCase(
            yaml: "rolez: {}\n",
            expected: ["policies/app.yaml:1: rolez: unknown key (expected one of mode, users, api_keys, roles)"]
        ),
        ErrorCase(
            yaml: "roles:\n  writer:\n    - allow: [read, wirte]\n      on: [\"*\"]\n",
            expected: [
                "policies/app.yaml:3: roles.writer[0].allow: unknown action \"wirte\" (use read, write, ddl, destructive, admin, * or an RPC name)"
            ]
        ),
        ErrorCase(
            yaml: "roles:\n  r:\n    - deny:\n        - DropCollections\n      on: [\"*\"]\n",
            expected: [
                "policies/app.yaml:4: roles.r[0].deny: unknown action \"DropCollections\" (use read, write, ddl, destructive, admin, * or an RPC name)"
            ]
        ),
        ErrorCase(
            yaml: "roles:\n  r:\n    - allow: [read]\n      on: [\"a.b.c\"]\n",
            expected: [
                "policies/app.yaml:4: roles.r[0].on: pattern \"a.b.c\" has more than one dot (patterns are db or db.collection)"
            ]
        ),
        ErrorCase(
            yaml: "roles:\n  r:\n    - allow: [read]\n      on: []\n",
            expected: ["policies/app.yaml:4: roles.r[0].on: must not be empty"]
        ),
        ErrorCase(
            yaml: "roles:\n  r:\n    - allow: [read]\n      deny: [write]\n      on: [\"*\"]\n",
            expected: [
                "policies/app.yaml:4: roles.r[0]: a rule has allow or deny, not both"
            ]
        ),
        ErrorCase(
            yaml: "roles:\n  r:\n    - on: [\"*\"]\n",
            expected: ["policies/app.yaml:3: roles.r[0]: needs allow or deny"]
        ),
        ErrorCase(
            yaml: "roles:\n  r:\n    - allow: [read]\n",
            expected: ["policies/app.yaml:3: roles.r[0].on: is required"]
        ),
        ErrorCase(
            yaml: "roles:\n  r:\n    - allow: [read]\n      on: [\"*\"]\n      when: x\n",
            expected: [
                "policies/app.yaml:5: roles.r[0].when: unknown key (expected one of allow, deny, on)"
            ]
        ),
        ErrorCase(
            yaml: "roles:\n  r: read\n",
            expected: ["policies/app.yaml:2: roles.r: must be a list of rules, got \"read\""]
        ),
        ErrorCase(
            yaml: "users:\n  app: {password: \"\(hash600k)\", roles: [writer]}\n",
            expected: [
                "policies/app.yaml:2: users.app.roles: unknown role \"writer\""
            ]
        ),
        ErrorCase(
            yaml: "users:\n  app: {password: \"\(hash600k)\", roles: [], group: x}\n",
            expected: [
                "policies/app.yaml:2: users.app.group: unknown key (expected one of password, roles, tls_subject)"
            ]
        ),
        ErrorCase(
            yaml: "users:\n  app: {roles: []}\n",
            expected: ["policies/app.yaml:2: users.app: needs a password or a tls_subject"]
        ),
        ErrorCase(
            yaml: "users:\n  app: {password: \"\(hash600k)\"}\n",
            expected: ["policies/app.yaml:2: users.app.roles: is required"]
        ),
        ErrorCase(
            yaml: "users:\n  \"a:b\": {password: \"\(hash600k)\", roles: []}\n",
            expected: [
                "policies/app.yaml:2: users.a:b: a user name must be non-empty and have no colon"
            ]
        ),
        ErrorCase(
            yaml: "users:\n  anonymous: {password: \"\(hash600k)\", roles: []}\n",
            expected: [
                "policies/app.yaml:2: users.anonymous: the anonymous principal takes no password or tls_subject"
            ]
        ),
        ErrorCase(
            yaml: "users:\n  app:\n    password: \"md5$1$x$y\"\n    roles: []\n",
            expected: [
                "policies/app.yaml:3: users.app.password: must be \"pbkdf2-sha256$<iterations>$<salt, base64>$<hash, base64>\" (see milvus-guard hash-password)"
            ]
        ),
        ErrorCase(
            yaml:
                "users:\n  app:\n    password: \"pbkdf2-sha256$999$c2FsdA==$MDEyMzQ1Njc4OWFiY2RlZg==\"\n    roles: []\n",
            expected: [
                "policies/app.yaml:3: users.app.password: the iteration count must be a number of at least 1000, got \"999\""
            ]
        ),
        ErrorCase(
            yaml:
                "users:\n  app:\n    password: \"pbkdf2-sha256$100000$c2Fs!!==$MDEyMzQ1Njc4OWFiY2RlZg==\"\n    roles: []\n",
            expected: [
                "policies/app.yaml:3: users.app.password: the salt is not valid, non-empty base64"
            ]
        ),
        ErrorCase(
            yaml: "users:\n  app:\n    password: \"pbkdf2-sha256$100000$c2FsdA==$MDEy\"\n    roles: []\n",
            expected: [
                "policies/app.yaml:3: users.app.password: the hash is not valid base64 of at least 16 bytes"
            ]
        ),
        ErrorCase(
            yaml: "api_keys:\n  k: {sha256: \"abc\", roles: []}\n",
            expected: [
                "policies/app.yaml:2: api_keys.k.sha256: must be 64 hexadecimal digits (a SHA-256)"
            ]
        ),
        ErrorCase(
            yaml: "api_keys:\n  k: {roles: []}\n",
            expected: ["policies/app.yaml:2: api_keys.k.sha256: is required"]
        ),
        ErrorCase(
            yaml: "mode: audit\n",
            expected: ["policies/app.yaml:1: mode: must be enforce or shadow, got \"audit\""]
        ),
        ErrorCase(
            yaml: "- roles\n",
            expected: ["policies/app.yaml:1: must be a mapping of keys to values, got a list"]
        ),
        ErrorCase(
            yaml: "roles:\n  r: []\n  r: []\n",
            expected: ["policies/app.yaml:2: r: defined twice in the same mapping"]
        ),
        ErrorCase(
            yaml: "roles: [\n",
            expected: ["policies/app.yaml:2: YAML syntax error: did not find expected node content"]
        ),
        ErrorCase(
            yaml: "users:\n  a: {tls_subject: \"CN=x\", roles: []}\n  b: {tls_subject: \"CN=x\", roles: []}\n",
            expected: ["policies/app.yaml:3: users.b.tls_subject: also names users.a (policies/app.yaml:2)"]
        ),
        // Two spellings of one DNS name (with and without the prefix, in another case) name one certificate.
        ErrorCase(
            yaml: "users:\n  a: {tls_subject: \"DNS:svc.Example.com\", roles: []}\n"
                + "  b: {tls_subject: \"svc.example.com\", roles: []}\n",
            expected: ["policies/app.yaml:3: users.b.tls_subject: also names users.a (policies/app.yaml:2)"]
        ),
        // Several problems are all reported, in line order.
        ErrorCase(
            yaml: "roles:\n  r:\n    - allow: [reed]\n      on: [\"*\"]\n    - allow: [read]\n      on: [\"x.\"]\n",
            expected: [
                "policies/app.yaml:3: roles.r[0].allow: unknown action \"reed\" (use read, write, ddl, destructive, admin, * or an RPC name)",
                "policies/app.yaml:6: roles.r[1].on: pattern \"x.\" needs a name or * on both sides of the dot",
            ]
        ),
    ]

    @Test("Every problem names its file and line", arguments: Self.errorCases)
    func errors(_ errorCase: ErrorCase) {
        #expect(problems(errorCase.yaml) == errorCase.expected)
    }

    @Test("Fewer than 100000 iterations load with a warning")
    func weakIterations() throws {
        let policy = try loadPolicy(
            "users:\n  app:\n    password: \"pbkdf2-sha256$1000$c2FsdA==$MDEyMzQ1Njc4OWFiY2RlZg==\"\n    roles: []\n",
            file: "policies/app.yaml"
        )
        #expect(
            policy.warnings.map(\.description) == [
                "policies/app.yaml:3: users.app.password: 1000 PBKDF2 iterations is weak; use at least 100000 (milvus-guard hash-password uses 600000)"
            ]
        )
        #expect(policy.users["app"]?.password?.iterations == 1_000)
    }

    @Test("Two API keys with the same hash are an error")
    func sameKeyHash() {
        let key = String(repeating: "ab", count: 32)
        #expect(
            problems(
                "api_keys:\n  a: {sha256: \"\(key)\", roles: []}\n  b: {sha256: \"\(key.uppercased())\", roles: []}\n"
            )
                == ["policies/app.yaml:3: api_keys.b.sha256: same hash as api_keys.a (policies/app.yaml:2)"]
        )
    }

    @Test("An empty file and an empty role load; the role grants nothing")
    func emptyThings() throws {
        let policy = try PolicyFolder.merge([
            ("a.yaml", ""), ("b.yaml", "# nothing\n"), ("c.yaml", "roles:\n  none:\n"),
        ])
        #expect(policy.ruleSet.roles["none"]?.rules == [])
        #expect(policy.users.isEmpty)
    }
}

@Suite("Shadow mode")
struct ShadowModeTests {
    static let enforced = """
        roles:
          writer:
            - allow: [read, write, destructive]
              on: ["default.*"]
        """
    static let shadow = """
        mode: shadow
        roles:
          extra:
            - allow: ["*"]
              on: ["*"]
          strict:
            - deny: [destructive]
              on: ["default.*"]
        """

    @Test("Shadow files never change what is enforced; their denials are reported as would-deny")
    func shadowRules() throws {
        let policy = try PolicyFolder.merge([("p/a.yaml", Self.enforced), ("p/b.yaml", Self.shadow)])
        let app = principal("app", ["writer", "strict", "extra"])
        let drop = policy.decide(principal: app, call: Calls.make("DropCollection", collection: "books"))
        #expect(drop.decision == .allow(by: RuleID(file: "p/a.yaml", line: 3)))
        #expect(
            drop.wouldDeny
                == .deny(
                    by: RuleID(file: "p/b.yaml", line: 7),
                    reason: "app may not DropCollection on default.books (p/b.yaml:7)"
                )
        )
        #expect(policy.mode(of: RuleID(file: "p/b.yaml", line: 7)) == .shadow)

        let insert = policy.decide(principal: app, call: Calls.make("Insert", collection: "books"))
        #expect(insert.decision.isAllowed)
        #expect(insert.wouldDeny == nil)

        // The shadow file's allow grants nothing yet.
        let other = policy.decide(principal: app, call: Calls.make("Search", database: "prod", collection: "x"))
        #expect(other.decision == .deny(by: nil, reason: "app may not Search on prod.x (no rule allows it)"))
        #expect(other.wouldDeny == nil)
        #expect(
            policy.ruleSet.evaluate(principal: app, call: Calls.make("Search", database: "prod", collection: "x"))
                .isAllowed
        )
    }

    @Test("Without shadow files, decide is evaluate")
    func enforceOnly() throws {
        let policy = try PolicyFolder.merge([("p/a.yaml", Self.enforced)])
        let call = Calls.make("DropCollection", collection: "books")
        let app = principal("app", ["writer"])
        #expect(
            policy.decide(principal: app, call: call)
                == Policy.Outcome(decision: policy.ruleSet.evaluate(principal: app, call: call), wouldDeny: nil)
        )
    }
}

@Suite("tls_subject patterns")
struct TLSSubjectPatternTests {
    @Test(
        "Each form of tls_subject names one thing",
        arguments: [
            ("DNS:svc.Example.com", TLSSubjectPattern.dns("svc.example.com")),
            ("URI:spiffe://example.org/svc", .uri("spiffe://example.org/svc")),
            ("email:svc@example.com", .email("svc@example.com")),
            ("CN=svc", .commonName("svc")),
            ("CN=a\\,b", .commonName("a,b")),
            ("CN=svc,O=Example", .subject("CN=svc,O=Example")),
            ("O=Example", .subject("O=Example")),
            ("spiffe://example.org/svc", .uri("spiffe://example.org/svc")),
            ("svc@example.com", .email("svc@example.com")),
            ("svc.example.com", .dns("svc.example.com")),
            ("https://x.example/?a=b", .subject("https://x.example/?a=b")),  // `=`: write URI: for such a URI
        ]
    )
    func forms(text: String, pattern: TLSSubjectPattern) {
        #expect(TLSSubjectPattern(text) == pattern)
        #expect((TLSSubjectPattern.problem(in: text) == nil) == !text.hasPrefix("https://"))
    }

    @Test("Prefixes are taken in any case")
    func prefixCase() {
        #expect(TLSSubjectPattern("dns:Svc.example.com") == .dns("svc.example.com"))
        #expect(TLSSubjectPattern("uri:spiffe://x/y") == .uri("spiffe://x/y"))
        #expect(TLSSubjectPattern("EMAIL:a@b") == .email("a@b"))
    }

    @Test(
        "A tls_subject that could never match is a load error",
        arguments: [
            "", "IP:10.0.0.1", "ip:10.0.0.1", "cn=svc", "Cn=svc", "CN = svc, O = X", "CN=svc, O=X", "DNS:", "CN=",
            "CN=svc\\01,O=X", "subject=CN=svc,O=X", "CN=Jos\\C3\\A9,O=X", "commonName=svc", "/CN=svc/O=X",
            "STREET=x,CN=y", "streetAddress=x,CN=y",
        ]
    )
    func neverMatches(text: String) {
        #expect(TLSSubjectPattern.problem(in: text) != nil)
    }

    @Test(
        "Subjects OpenSSL prints in RFC 2253 form load",
        arguments: ["emailAddress=a@b.c,CN=x,O=Y", "2.5.4.3=x", "O=X,DC=example,UID=u1,street=Main St,CN=svc"]
    )
    func subjects(text: String) {
        #expect(TLSSubjectPattern.problem(in: text) == nil)
    }
}
