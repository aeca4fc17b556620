import ArgumentParser
import Foundation
import GuardCLI
import Testing

private let hash600k = "pbkdf2-sha256$600000$c2FsdHNhbHRzYWx0c2FsdA==$MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

private let policyText = """
    users:
      app: { password: "\(hash600k)", roles: [writer] }
      weak: { password: "pbkdf2-sha256$5000$c2FsdA==$MDEyMzQ1Njc4OWFiY2RlZg==", roles: [writer] }
    api_keys:
      job: { sha256: "\(String(repeating: "0f", count: 32))", roles: [writer] }
    roles:
      writer:
        - allow: [read, write]
          on: ["default.books"]
        - deny: [destructive]
          on: ["*"]
        - allow: [RenameCollection]
          on: ["default.books"]
    """

@Suite("policy check and policy explain")
struct PolicyCommandTests {
    @Test("policy is registered with check and explain")
    func registered() {
        #expect(GuardCommand.configuration.subcommands.contains { $0 == PolicyCommand.self })
        #expect(PolicyCommand.configuration.subcommands.map { $0.configuration.commandName } == ["check", "explain"])
    }

    @Test("check prints a summary and the warnings, and exits 0")
    func checkOK() throws {
        let folder = try TemporaryFolder()
        try folder.write("rules/app.yaml", policyText)
        let check = try #require(try GuardCommand.parseAsRoot(["policy", "check", "rules"]) as? PolicyCheckCommand)
        let result = check.check(currentDirectory: folder.path)
        #expect(
            result.output == [
                "ok: 2 users, 1 API key, 1 role, 3 rules",
                "warning: rules/app.yaml:3: users.weak.password: 5000 PBKDF2 iterations is weak; use at least 100000 (milvus-guard hash-password uses 600000)",
            ]
        )
        #expect(result.exitCode == 0)
    }

    @Test("check lists every problem as file:line: problem and exits 1")
    func checkProblems() throws {
        let folder = try TemporaryFolder()
        try folder.write("policies/app.yaml", "roles:\n  writer:\n    - allow: [wirte]\n      on: [\"*\"]\n")
        try folder.write("policies/users.yml", "users:\n  app: {password: \"x\", roles: [writer]}\n")
        let check = try #require(try GuardCommand.parseAsRoot(["policy", "check"]) as? PolicyCheckCommand)
        let result = check.check(currentDirectory: folder.path)
        #expect(
            result.output == [
                "policies/app.yaml:3: roles.writer[0].allow: unknown action \"wirte\" (use read, write, ddl, destructive, admin, * or an RPC name)",
                "policies/users.yml:2: users.app.password: must be \"pbkdf2-sha256$<iterations>$<salt, base64>$<hash, base64>\" (see milvus-guard hash-password)",
            ]
        )
        #expect(result.exitCode == 1)
    }

    @Test("check without DIR uses the policies folder named in guard.yaml")
    func checkFromConfig() throws {
        let folder = try TemporaryFolder()
        try folder.write("guard.yaml", "policies: conf/pol\n")
        try folder.write("conf/pol/a.yaml", policyText)
        let check = try #require(try GuardCommand.parseAsRoot(["policy", "check"]) as? PolicyCheckCommand)
        #expect(check.check(currentDirectory: folder.path).output.first == "ok: 2 users, 1 API key, 1 role, 3 rules")
        let missing = try TemporaryFolder()
        #expect(check.check(currentDirectory: missing.path) == (["policies: no such folder"], 1))
    }

    @Test(
        "explain prints the decision and the rule behind it",
        arguments: [
            (
                ["--user", "app", "--rpc", "DropCollection", "--on", "default.books"],
                "deny: app may not DropCollection on default.books (rules/app.yaml:10)"
            ),
            (
                ["--user", "app", "--rpc", "CreateIndex", "--on", "default.books"],
                "deny: app may not CreateIndex on default.books (no rule allows it)"
            ),
            (
                ["--user", "app", "--rpc", "Insert", "--on", "default.books"],
                "allow: app may Insert on default.books (rules/app.yaml:8)"
            ),
            (
                ["--user", "job", "--rpc", "Search", "--on", "default.books"],
                "allow: job may Search on default.books (rules/app.yaml:8)"
            ),
            (["--user", "app", "--rpc", "Connect"], "allow: app may Connect on * (builtin:session)"),
            (["--user", "anonymous", "--rpc", "Connect"], "deny: anonymous may not Connect on * (no rule allows it)"),
            (
                ["--user", "app", "--rpc", "ShowCollections", "--on", "default"],
                "deny: app may not ShowCollections on default (no rule allows it)"
            ),
            (
                ["--user", "app", "--rpc", "CreateUser", "--on", "default.books"],
                "unknown RPC \"CreateUser\""
            ),
            (["--user", "eve", "--rpc", "Search", "--on", "default.books"], "unknown user \"eve\""),
        ]
    )
    func explain(arguments: [String], expected: String) throws {
        let folder = try TemporaryFolder()
        try folder.write("rules/app.yaml", policyText)
        let command = try GuardCommand.parseAsRoot(["policy", "explain", "--dir", "rules"] + arguments)
        let explain = try #require(command as? PolicyExplainCommand)
        let result = explain.explain(currentDirectory: folder.path)
        #expect(result.output == [expected])
        #expect(result.exitCode == (expected.hasPrefix("unknown") ? 1 : 0))
    }

    @Test("explain with --on twice checks both names, like RenameCollection")
    func explainRename() throws {
        let folder = try TemporaryFolder()
        try folder.write(
            "rules/app.yaml",
            policyText.replacingOccurrences(of: "    - deny: [destructive]\n      on: [\"*\"]\n", with: "")
        )
        let arguments = [
            "policy", "explain", "--dir", "rules", "--user", "app", "--rpc", "RenameCollection", "--on",
            "default.books",
        ]
        let allowed = try #require(try GuardCommand.parseAsRoot(arguments) as? PolicyExplainCommand)
        #expect(
            allowed.explain(currentDirectory: folder.path).output == [
                "allow: app may RenameCollection on default.books (rules/app.yaml:10)"
            ]
        )
        let both = try #require(
            try GuardCommand.parseAsRoot(arguments + ["--on", "default.b2"]) as? PolicyExplainCommand
        )
        #expect(
            both.explain(currentDirectory: folder.path).output == [
                "deny: app may not RenameCollection on default.b2 (no rule allows it)"
            ]
        )
    }

    @Test("explain requires --user and --rpc")
    func explainUsage() {
        let error = #expect(throws: (any Error).self) {
            try GuardCommand.parseAsRoot(["policy", "explain", "--rpc", "Search"])
        }
        guard let error else { return }
        #expect(GuardCommand.exitCode(for: error) == .validationFailure)
    }
}

@Suite("policy commands and guard.yaml")
struct PolicyCommandConfigTests {
    @Test("check exits 2 when guard.yaml itself is broken")
    func brokenConfig() throws {
        let folder = try TemporaryFolder()
        try folder.write("guard.yaml", "polices: x\n")
        let check = try #require(try GuardCommand.parseAsRoot(["policy", "check"]) as? PolicyCheckCommand)
        let result = check.check(currentDirectory: folder.path)
        #expect(result.exitCode == 2)
        #expect(result.output == ["guard.yaml:1: polices: unknown key (did you mean policies?)"])
    }
}
