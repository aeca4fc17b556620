public import ArgumentParser

/// The `milvus-guard` root command. It does nothing itself; each subcommand lives in its own file
/// (`ServeCommand.swift`, `PolicyCommand.swift`, and later the password, reload and audit commands).
///
/// The executable target's `Entry.swift` holds `@main extension GuardCommand {}`.
public struct GuardCommand: ParsableCommand {
    /// The command's name, version and subcommands.
    public static let configuration = CommandConfiguration(
        commandName: "milvus-guard",
        abstract: "A policy-enforcing gRPC proxy in front of Milvus.",
        version: GuardVersion.current,
        subcommands: [
            ServeCommand.self, PolicyCommand.self, HashPasswordCommand.self, ReloadCommand.self, AuditCommand.self,
        ]
    )

    /// Creates the command; ArgumentParser calls this while parsing.
    public init() {}

    /// The process entry: ArgumentParser's `main`, after ``AuditCommand/subcommandFirst(_:)``.
    public static func main() {
        Self.main(AuditCommand.subcommandFirst(Array(CommandLine.arguments.dropFirst())))
    }
}
