/// A problem with guard.yaml or with a command-line override, located as precisely as we can.
///
/// Printed as `<file>:<line>: <key>: <problem>` (for example
/// `guard.yaml:3: limits.max_concurrent_streams: must be between 1 and 2147483647, got 0`); parts that
/// don't apply are left out, so an override reads `--threads: must be between 1 and 256, got 0` and a
/// YAML syntax error `guard.yaml:4: YAML syntax error: …`. `serve` exits with code 2 on any of these.
///
/// Named after what it describes rather than `GuardCLIError`: every error this module reports is a
/// configuration error, and the name says so where it is caught.
public struct ConfigError: Error, Equatable, CustomStringConvertible {
    /// The config file as the user named it (not resolved), or nil for command-line overrides.
    public var file: String?
    /// The 1-based line in ``file``, when the problem is tied to one.
    public var line: Int?
    /// The dotted key (`limits.idle_timeout`) or the flag (`--threads`), when there is one.
    public var key: String?
    /// What is wrong, phrased to follow the key: `must be between 1 and 256, got 0`.
    public var problem: String

    /// Creates an error; see the properties for what each part means.
    public init(file: String? = nil, line: Int? = nil, key: String? = nil, problem: String) {
        self.file = file
        self.line = line
        self.key = key
        self.problem = problem
    }

    /// `<file>:<line>: <key>: <problem>`, leaving out the parts that are nil.
    public var description: String {
        var text = ""
        if let file = self.file {
            text += file
            if let line = self.line { text += ":\(line)" }
            text += ": "
        }
        if let key = self.key { text += "\(key): " }
        return text + self.problem
    }
}
