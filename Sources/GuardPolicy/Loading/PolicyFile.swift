import Foundation
import Yams

/// One policy file, parsed on its own: its users, API keys, roles and mode, plus every problem found.
///
/// It walks Yams' node tree (`Yams.compose(yaml:)`) rather than decoding with Codable, because each `Node` carries
/// its `mark`: rule ids, errors and warnings get their 1-based line. Parsing does not stop at the first problem.
/// Cross-file checks (duplicates, unknown roles) are ``PolicyFolder``'s.
struct PolicyFile {
    /// A role name as a user or API key lists it, with its line, for the unknown-role check.
    struct RoleReference {
        let name: String
        let line: Int
        let key: String
    }

    /// The file as messages and rule ids name it.
    let name: String
    var mode: Policy.Mode = .enforce
    var users: [(user: User, references: [RoleReference])] = []
    var apiKeys: [(key: APIKey, references: [RoleReference])] = []
    var roles: [Role] = []
    /// The anonymous principal's roles, if the file defines `users.anonymous`.
    var anonymous: (definedAt: RuleID, references: [RoleReference])?
    var problems: [PolicyProblem] = []
    var warnings: [PolicyProblem] = []

    private enum Keys {
        static let root = ["mode", "users", "api_keys", "roles"]
        static let user = ["password", "roles", "tls_subject"]
        static let apiKey = ["sha256", "roles"]
        static let rule = ["allow", "deny", "on"]
    }

    /// One `key: value` pair with its dotted path and the line of its key.
    private struct Entry {
        let key: String
        let name: String
        let keyLine: Int
        let value: Node
        var line: Int { self.value.mark?.line ?? self.keyLine }
    }

    /// Thrown inside the parser to abandon one entry; the problem is already recorded.
    private struct Skip: Error {}

    /// Parses the text of one file named `name`.
    static func parse(_ text: String, name: String) -> PolicyFile {
        var file = PolicyFile(name: name)
        file.parseRoot(text)
        return file
    }

    private init(name: String) {
        self.name = name
    }

    // MARK: - Sections

    private mutating func parseRoot(_ text: String) {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            self.recordSyntaxError(error, in: text)
            return
        }
        guard let root, !root.isEmptyValue else { return }
        guard let entries = try? self.entries(of: root, key: nil, line: 1) else { return }
        for entry in entries {
            switch entry.name {
            case "mode":
                guard let text = try? self.scalar(entry) else { continue }
                if let mode = Policy.Mode(rawValue: text) {
                    self.mode = mode
                } else {
                    self.problem(at: entry.line, "mode: must be enforce or shadow, got \(Self.quoted(text))")
                }
            case "users":
                self.parseUsers(entry)
            case "api_keys":
                self.parseAPIKeys(entry)
            case "roles":
                self.parseRoles(entry)
            default:
                self.unknownKey(entry, allowed: Keys.root)
            }
        }
    }

    private mutating func parseUsers(_ section: Entry) {
        guard let users = try? self.entries(of: section.value, key: section.key, line: section.keyLine) else { return }
        for entry in users {
            let id = RuleID(file: self.name, line: entry.keyLine)
            guard let fields = try? self.entries(of: entry.value, key: entry.key, line: entry.keyLine) else { continue }
            var password: PasswordHash?
            var tlsSubject: String?
            var references: [RoleReference] = []
            var hasRoles = false
            for field in fields {
                switch field.name {
                case "password":
                    guard let text = try? self.scalar(field) else { continue }
                    password = self.passwordHash(text, field)
                case "tls_subject":
                    tlsSubject = try? self.scalar(field)
                    if let text = tlsSubject, let problem = TLSSubjectPattern.problem(in: text) {
                        self.problem(at: field.line, "\(field.key): \(problem)")
                    }
                case "roles":
                    hasRoles = true
                    references = self.roleReferences(field)
                default:
                    self.unknownKey(field, allowed: Keys.user)
                }
            }
            if entry.name == Principal.anonymousName {
                if fields.contains(where: { $0.name == "password" || $0.name == "tls_subject" }) {
                    self.problem(
                        at: entry.keyLine,
                        "\(entry.key): the anonymous principal takes no password or tls_subject"
                    )
                }
                self.anonymous = (id, references)
                continue
            }
            if entry.name.isEmpty || entry.name.contains(":") {
                self.problem(at: entry.keyLine, "\(entry.key): a user name must be non-empty and have no colon")
                continue
            }
            let hasCredential = fields.contains { $0.name == "password" || $0.name == "tls_subject" }
            if !hasCredential {
                self.problem(at: entry.keyLine, "\(entry.key): needs a password or a tls_subject")
            }
            if !hasRoles {
                self.problem(at: entry.keyLine, "\(entry.key).roles: is required")
            }
            let user = User(
                name: entry.name,
                password: password,
                tlsSubject: tlsSubject,
                roles: references.map(\.name),
                definedAt: id
            )
            self.users.append((user, references))
        }
    }

    private mutating func parseAPIKeys(_ section: Entry) {
        guard let keys = try? self.entries(of: section.value, key: section.key, line: section.keyLine) else { return }
        for entry in keys {
            guard let fields = try? self.entries(of: entry.value, key: entry.key, line: entry.keyLine) else { continue }
            var digest: [UInt8]?
            var references: [RoleReference]?
            for field in fields {
                switch field.name {
                case "sha256":
                    guard let text = try? self.scalar(field) else { continue }
                    digest = Self.hexBytes(text)
                    if digest?.count != 32 {
                        digest = nil
                        self.problem(at: field.line, "\(field.key): must be 64 hexadecimal digits (a SHA-256)")
                    }
                case "roles":
                    references = self.roleReferences(field)
                default:
                    self.unknownKey(field, allowed: Keys.apiKey)
                }
            }
            if !fields.contains(where: { $0.name == "sha256" }) {
                self.problem(at: entry.keyLine, "\(entry.key).sha256: is required")
            }
            if references == nil { self.problem(at: entry.keyLine, "\(entry.key).roles: is required") }
            guard let digest, let references else { continue }
            let key = APIKey(
                name: entry.name,
                sha256: digest,
                roles: references.map(\.name),
                definedAt: RuleID(file: self.name, line: entry.keyLine)
            )
            self.apiKeys.append((key, references))
        }
    }

    private mutating func parseRoles(_ section: Entry) {
        guard let roles = try? self.entries(of: section.value, key: section.key, line: section.keyLine) else { return }
        for entry in roles {
            guard case .sequence(let items) = entry.value else {
                if entry.value.isEmptyValue {
                    self.roles.append(Role(name: entry.name, rules: [], definedAt: self.id(entry.keyLine)))
                } else {
                    self.problem(
                        at: entry.line,
                        "\(entry.key): must be a list of rules, got \(entry.value.kindForMessages)"
                    )
                }
                continue
            }
            var rules: [Rule] = []
            for (index, item) in items.enumerated() {
                let key = "\(entry.key)[\(index)]"
                if let rule = self.rule(item, key: key, fallbackLine: entry.keyLine) { rules.append(rule) }
            }
            self.roles.append(Role(name: entry.name, rules: rules, definedAt: self.id(entry.keyLine)))
        }
    }

    /// One `{allow: […], on: […]}` or `{deny: […], on: […]}`; its id is the line the item starts on.
    private mutating func rule(_ node: Node, key: String, fallbackLine: Int) -> Rule? {
        let line = node.mark?.line ?? fallbackLine
        guard let fields = try? self.entries(of: node, key: key, line: line) else { return nil }
        var effect: Rule.Effect?
        var actions: [ActionSelector]?
        var patterns: [ResourcePattern]?
        var failed = false
        for field in fields {
            switch field.name {
            case "allow", "deny":
                if effect != nil {
                    self.problem(at: field.keyLine, "\(key): a rule has allow or deny, not both")
                    failed = true
                }
                effect = field.name == "allow" ? .allow : .deny
                actions = self.list(field) { text in
                    ActionSelector(text).map { .success($0) } ?? .failure(Self.unknownAction(text))
                }
            case "on":
                patterns = self.list(field) { text in
                    do {
                        return .success(try ResourcePattern(text))
                    } catch {
                        return .failure(Message(text: "pattern \(Self.quoted(text)) \(error)"))
                    }
                }
            default:
                self.unknownKey(field, allowed: Keys.rule)
                failed = true
            }
        }
        if effect == nil {
            self.problem(at: line, "\(key): needs allow or deny")
            return nil
        }
        if !fields.contains(where: { $0.name == "on" }) {
            self.problem(at: line, "\(key).on: is required")
            return nil
        }
        guard !failed, let effect, let actions, let patterns else { return nil }
        return Rule(effect, actions, on: patterns, id: self.id(line))
    }

    // MARK: - Values

    /// A list of scalars (a single scalar counts as a one-element list), each converted by `convert`; `nil` and a
    /// recorded problem for each bad element, or for an empty list.
    private mutating func list<T>(_ entry: Entry, _ convert: (String) -> Result<T, Message>) -> [T]? {
        let nodes: [Node]
        switch entry.value {
        case .sequence(let sequence): nodes = Array(sequence)
        case .scalar where !entry.value.isEmptyValue: nodes = [entry.value]
        default:
            self.problem(at: entry.line, "\(entry.key): must be a list, got \(entry.value.kindForMessages)")
            return nil
        }
        guard !nodes.isEmpty else {
            self.problem(at: entry.line, "\(entry.key): must not be empty")
            return nil
        }
        var values: [T] = []
        var failed = false
        for node in nodes {
            let line = node.mark?.line ?? entry.line
            guard case .scalar(let scalar) = node, !node.isEmptyValue else {
                self.problem(at: line, "\(entry.key): each element must be a single value, got \(node.kindForMessages)")
                failed = true
                continue
            }
            switch convert(scalar.string) {
            case .success(let value): values.append(value)
            case .failure(let message):
                self.problem(at: line, "\(entry.key): \(message.text)")
                failed = true
            }
        }
        return failed ? nil : values
    }

    private mutating func roleReferences(_ entry: Entry) -> [RoleReference] {
        let nodes: [Node]
        switch entry.value {
        case .sequence(let sequence): nodes = Array(sequence)
        case .scalar where !entry.value.isEmptyValue: nodes = [entry.value]
        default:
            self.problem(
                at: entry.line,
                "\(entry.key): must be a list of role names, got \(entry.value.kindForMessages)"
            )
            return []
        }
        var references: [RoleReference] = []
        for node in nodes {
            let line = node.mark?.line ?? entry.line
            guard case .scalar(let scalar) = node, !node.isEmptyValue else {
                self.problem(at: line, "\(entry.key): each role must be a name, got \(node.kindForMessages)")
                continue
            }
            references.append(RoleReference(name: scalar.string, line: line, key: entry.key))
        }
        return references
    }

    /// Parses a stored password (``PasswordHash/init(encoded:)``); records a problem, or a warning for a low
    /// iteration count.
    private mutating func passwordHash(_ text: String, _ entry: Entry) -> PasswordHash? {
        let password: PasswordHash
        do {
            password = try PasswordHash(encoded: text)
        } catch {
            self.problem(at: entry.line, "\(entry.key): \(error)")
            return nil
        }
        if password.iterations < PasswordHash.recommendedIterations {
            self.warnings.append(
                PolicyProblem(
                    file: self.name,
                    line: entry.line,
                    message: "\(entry.key): \(password.iterations) PBKDF2 iterations is weak; use at least "
                        + "\(PasswordHash.recommendedIterations) (milvus-guard hash-password uses 600000)"
                )
            )
        }
        return password
    }

    // MARK: - Nodes

    /// The pairs of a mapping in file order; keys must be plain names.
    /// - Throws: ``Skip`` after recording the problem.
    private mutating func entries(of node: Node, key: String?, line: Int) throws(Skip) -> [Entry] {
        guard case .mapping(let mapping) = node else {
            let what = key.map { "\($0): " } ?? ""
            self.problem(
                at: node.mark?.line ?? line,
                "\(what)must be a mapping of keys to values, got \(node.kindForMessages)"
            )
            throw Skip()
        }
        var entries: [Entry] = []
        for (keyNode, value) in mapping {
            let keyLine = keyNode.mark?.line ?? line
            guard case .scalar(let scalar) = keyNode else {
                self.problem(at: keyLine, "\(key.map { "\($0): " } ?? "")keys must be plain names")
                continue
            }
            let path = key.map { "\($0).\(scalar.string)" } ?? scalar.string
            entries.append(Entry(key: path, name: scalar.string, keyLine: keyLine, value: value))
        }
        return entries
    }

    /// The text of a scalar; records a problem for anything else.
    private mutating func scalar(_ entry: Entry) throws(Skip) -> String {
        guard case .scalar(let scalar) = entry.value, !entry.value.isEmptyValue else {
            self.problem(at: entry.line, "\(entry.key): must be a single value, got \(entry.value.kindForMessages)")
            throw Skip()
        }
        return scalar.string
    }

    private mutating func unknownKey(_ entry: Entry, allowed: [String]) {
        self.problem(
            at: entry.keyLine,
            "\(entry.key): unknown key (expected one of \(allowed.joined(separator: ", ")))"
        )
    }

    private mutating func problem(at line: Int?, _ message: String) {
        self.problems.append(PolicyProblem(file: self.name, line: line, message: message))
    }

    private func id(_ line: Int) -> RuleID { RuleID(file: self.name, line: line) }

    private mutating func recordSyntaxError(_ error: any Error, in text: String) {
        guard let yamlError = error as? YamlError else {
            self.problem(at: nil, "YAML syntax error: \(error)")
            return
        }
        switch yamlError {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            self.problem(at: mark.line, "YAML syntax error: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let name = duplicates.first.map { "\($0): " } ?? ""
            self.problem(at: context.mark.line, "\(name)defined twice in the same mapping")
        default:
            self.problem(at: nil, "YAML syntax error: \(yamlError)")
        }
    }

    /// A problem message for ``list(_:_:)``.
    struct Message: Error {
        let text: String
    }

    private static func unknownAction(_ text: String) -> Message {
        Message(
            text: "unknown action \(Self.quoted(text)) (use read, write, ddl, destructive, admin, * or an RPC name)"
        )
    }

    static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = Self.hexValue(digits[index]), let low = Self.hexValue(digits[index + 1]) else {
                return nil
            }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    static func quoted(_ text: String) -> String {
        "\"\(text)\""
    }

}
