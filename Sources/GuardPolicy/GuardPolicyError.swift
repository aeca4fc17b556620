/// One problem (or warning) found while loading policy files, located at a file and line.
///
/// Printed `policies/app.yaml:12: roles.writer[0].allow: unknown action "wirte"`.
public struct PolicyProblem: Hashable, Sendable, CustomStringConvertible {
    /// The file as the loader named it (`policies/app.yaml`).
    public let file: String
    /// The 1-based line, or `nil` when the problem is the file as a whole (unreadable, not UTF-8).
    public let line: Int?
    /// What is wrong, with the dotted key first where there is one.
    public let message: String

    /// Creates a problem.
    public init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    /// `file:line: message` (`file: message` without a line).
    public var description: String {
        if let line = self.line { return "\(self.file):\(line): \(self.message)" }
        return "\(self.file): \(self.message)"
    }
}

/// The policy could not be loaded: every problem found, in file and line order.
///
/// Loading does not stop at the first problem, so `policy check` can list them all.
public struct GuardPolicyError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The problems, never empty.
    public let problems: [PolicyProblem]

    /// Creates an error from at least one problem.
    public init(problems: [PolicyProblem]) {
        precondition(!problems.isEmpty, "an error needs a problem")
        self.problems = problems
    }

    /// One problem per line.
    public var description: String {
        self.problems.map(\.description).joined(separator: "\n")
    }
}
