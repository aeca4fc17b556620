/// The identity of a rule: where it is written (`policies/app.yaml:12`), or a built-in name (`builtin:session`).
///
/// Decisions, logs and audit records cite it, so that "why was this refused" always points at a line of a policy
/// file, or names the built-in behaviour that decided.
public struct RuleID: Hashable, Sendable, CustomStringConvertible {
    /// The policy file as the loader named it (`policies/app.yaml`), or `builtin` for built-in rules.
    public let file: String
    /// The 1-based line of the rule in ``file``; 0 for built-in rules.
    public let line: Int
    /// The built-in rule's name, or `nil` for a rule of a policy file.
    public let builtinName: String?
    /// `file:line`, or `builtin:<name>`: made once, since every audit record and decision log of the rule cites it.
    public let description: String

    /// A rule written at `line` of `file`.
    public init(file: String, line: Int) {
        self.file = file
        self.line = line
        self.builtinName = nil
        self.description = "\(file):\(line)"
    }

    private init(builtin name: String) {
        self.file = "builtin"
        self.line = 0
        self.builtinName = name
        self.description = "builtin:\(name)"
    }

    /// The built-in rule that lets every authenticated principal call the session RPCs (Connect, GetVersion,
    /// CheckHealth, AllocTimestamp).
    public static let session = RuleID(builtin: "session")
}
