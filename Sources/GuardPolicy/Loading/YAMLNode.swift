package import Yams

/// How the YAML readers (policy files here, guard.yaml in GuardCLI) speak of a node in their messages.
extension Node {
    /// Whether the node is an empty value (`key:`, `~`, `null`); a quoted "null" is a string.
    package var isEmptyValue: Bool {
        guard case .scalar = self else { return false }
        return self.tag.rawValue == Tag.Name.null.rawValue
    }

    /// A short description of the node's kind for messages: `a mapping`, `a list`, `"text"`, `nothing`.
    package var kindForMessages: String {
        switch self {
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .scalar(let scalar): self.isEmptyValue ? "nothing" : "\"\(scalar.string)\""
        case .alias: "an alias"
        }
    }
}
