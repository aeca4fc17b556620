public import ArgumentParser
import Foundation
import GuardPolicy
import MilvusCatalog

/// `milvus-guard policy`: check and explain the policy files; its subcommands do the work.
public struct PolicyCommand: ParsableCommand {
    /// The subcommand's name, help and subcommands.
    public static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Check policy files and explain decisions.",
        subcommands: [PolicyCheckCommand.self, PolicyExplainCommand.self]
    )

    /// Creates the command; ArgumentParser calls this while parsing.
    public init() {}

    /// The folder to load: `directory` as given, else guard.yaml's `policies` (config file named by `configPath`,
    /// else ./guard.yaml if present), else ./policies. Returns the path and how to show it: by its last component,
    /// as the running guard names it in rule ids (`pol/app.yaml:12`), so that what `explain` cites is what the audit
    /// records.
    /// - Throws: ``ConfigError`` if guard.yaml is broken.
    static func policyFolder(
        directory: String?,
        configPath: String?,
        currentDirectory: String
    ) throws -> (path: String, display: String) {
        let path: String
        if let directory {
            path = ConfigValue.resolve(directory, relativeTo: currentDirectory)
        } else {
            path = try GuardConfig.load(configPath: configPath, currentDirectory: currentDirectory).policiesPath
        }
        return (path, (path as NSString).lastPathComponent)
    }
}

/// `milvus-guard policy check [DIR]`: loads the folder and reports. Exit 0 when it loads (warnings are printed),
/// 1 when it has problems (each printed as `file:line: problem`), 2 for a broken guard.yaml.
public struct PolicyCheckCommand: ParsableCommand {
    /// The subcommand's name and help.
    public static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate the policy files of a folder.",
        discussion: "Without DIR, checks the policies folder of guard.yaml, else ./policies."
    )

    /// The folder, if given.
    @Argument(help: ArgumentHelp("The policy folder.", valueName: "dir"))
    public var directory: String?

    /// `--config path`, to find the policies folder.
    @Option(name: .long, help: ArgumentHelp("The config file (default: ./guard.yaml if present).", valueName: "path"))
    public var config: String?

    /// Creates the command; ArgumentParser calls this while parsing.
    public init() {}

    /// What `run()` prints and its exit code, for tests.
    public func check(currentDirectory: String) -> (output: [String], exitCode: Int32) {
        let folder: (path: String, display: String)
        do {
            folder = try PolicyCommand.policyFolder(
                directory: self.directory,
                configPath: self.config,
                currentDirectory: currentDirectory
            )
        } catch {
            return (["\(error)"], 2)
        }
        do {
            let policy = try PolicyFolder.load(path: folder.path, displayPath: folder.display)
            let summary =
                "ok: \(counted(policy.users.count, "user")), \(counted(policy.apiKeys.count, "API key")), "
                + "\(counted(policy.ruleSet.roles.count, "role")), \(counted(policy.ruleSet.ruleCount, "rule"))"
            return ([summary] + policy.warnings.map { "warning: \($0)" }, 0)
        } catch let error as GuardPolicyError {
            return (error.problems.map(\.description), 1)
        } catch {
            return (["\(folder.display): \(error)"], 1)
        }
    }

    /// Prints the report; exits 1 on problems.
    public func run() throws {
        let (output, code) = self.check(currentDirectory: FileManager.default.currentDirectoryPath)
        for line in output { print(line) }
        if code != 0 { throw ExitCode(code) }
    }
}

/// `milvus-guard policy explain --user U --rpc R --on db.collection`: prints the decision and the rule behind it.
///
/// `--on` takes `db.collection`, `db` (a database-level call) or `*`, and may be repeated (RenameCollection's old
/// and new name). The targets follow the proxy's rules: an admin RPC acts on the cluster whatever `--on` says.
public struct PolicyExplainCommand: ParsableCommand {
    /// The subcommand's name and help.
    public static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Show what the policy decides for a user, an RPC and a target.",
        discussion: """
            Prints "allow: <rule>" or "deny: <reason>" and exits 0 either way; 1 if the policy does not load or \
            the user or RPC is unknown.
            """
    )

    /// `--user name` (a user, an API key name, or `anonymous`).
    @Option(name: .long, help: ArgumentHelp("A user, an API key's name, or anonymous.", valueName: "name"))
    public var user: String

    /// `--rpc Name`.
    @Option(name: .long, help: ArgumentHelp("The RPC, e.g. DropCollection.", valueName: "name"))
    public var rpc: String

    /// `--on db.collection` (repeatable).
    @Option(name: .long, help: ArgumentHelp("db.collection, db, or * (repeatable).", valueName: "target"))
    public var on: [String] = []

    /// `--dir path`.
    @Option(
        name: .long,
        help: ArgumentHelp("The policy folder (default: from guard.yaml, else ./policies).", valueName: "dir")
    )
    public var dir: String?

    /// `--config path`, to find the policies folder.
    @Option(name: .long, help: ArgumentHelp("The config file (default: ./guard.yaml if present).", valueName: "path"))
    public var config: String?

    /// Creates the command; ArgumentParser calls this while parsing.
    public init() {}

    /// What `run()` prints and its exit code, for tests.
    public func explain(currentDirectory: String) -> (output: [String], exitCode: Int32) {
        let policy: Policy
        do {
            let folder = try PolicyCommand.policyFolder(
                directory: self.dir,
                configPath: self.config,
                currentDirectory: currentDirectory
            )
            policy = try PolicyFolder.load(path: folder.path, displayPath: folder.display)
        } catch let error as GuardPolicyError {
            return (error.problems.map(\.description), 1)
        } catch {
            return (["\(error)"], 1)
        }
        guard let rpc = MilvusRPCs.descriptor(named: self.rpc) else {
            return (["unknown RPC \"\(self.rpc)\""], 1)
        }
        guard let principal = policy.principal(named: self.user) else {
            return (["unknown user \"\(self.user)\""], 1)
        }
        var targets: [PolicyTarget] = []
        for text in self.on {
            let collections: [String]
            let database: String
            if text == "*" {
                targets.append(.cluster)
                continue
            } else if let dot = text.firstIndex(of: ".") {
                database = String(text[..<dot])
                collections = [String(text[text.index(after: dot)...])]
            } else {
                database = text
                collections = []
            }
            targets += PolicyTarget.targets(rpc: rpc, database: database, collections: collections)
        }
        if targets.isEmpty {
            targets = PolicyTarget.targets(rpc: rpc, database: "default", collections: [])
        }
        var unique: [PolicyTarget] = []
        for target in targets where !unique.contains(target) { unique.append(target) }
        switch policy.ruleSet.evaluate(principal: principal, rpc: rpc, targets: unique) {
        case .allow(let rule):
            return (
                [
                    "allow: \(principal.name) may \(rpc.name) on \(unique.map(\.description).joined(separator: ", ")) (\(rule))"
                ], 0
            )
        case .deny(_, let reason):
            return (["deny: \(reason)"], 0)
        }
    }

    /// Prints the decision.
    public func run() throws {
        let (output, code) = self.explain(currentDirectory: FileManager.default.currentDirectoryPath)
        for line in output { print(line) }
        if code != 0 { throw ExitCode(code) }
    }
}

/// `1 user`, `2 users`: a count and its noun, plural but for one.
func counted(_ number: Int, _ noun: String) -> String {
    "\(number) \(noun)\(number == 1 ? "" : "s")"
}
