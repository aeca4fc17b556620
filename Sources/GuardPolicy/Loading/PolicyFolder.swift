import Foundation

/// Loads every `*.yaml` and `*.yml` file of a folder (not its subfolders) and merges them into one ``Policy``.
///
/// Files are read in name order. A user, API key or role defined in two files is an error at the second
/// definition; so is a role name that no file defines, a `tls_subject` or an API key hash shared by two
/// principals, and a folder with no policy file (it would refuse everything, which is most likely a mistake).
public enum PolicyFolder {
    /// Loads the folder at `path`; messages and rule ids name files `<displayPath>/<file>`.
    ///
    /// - Parameters:
    ///   - path: the folder, absolute or relative to the process's working folder.
    ///   - displayPath: how messages name the folder (default: `path` as given).
    /// - Throws: ``GuardPolicyError`` with every problem found.
    public static func load(path: String, displayPath: String? = nil) throws -> Policy {
        try Self.merge(Self.read(path: path, displayPath: displayPath))
    }

    /// Parses and merges files as ``read(path:displayPath:)`` returns them.
    /// - Throws: ``GuardPolicyError`` with every problem found.
    public static func merge(_ files: [File]) throws -> Policy {
        try Self.merge(files.map { ($0.name, $0.text) })
    }

    /// A policy file as read: its name as messages show it (`<displayPath>/<file>`), its bytes, and their text.
    public struct File: Sendable, Hashable {
        public let name: String
        public let bytes: [UInt8]
        public let text: String
    }

    /// Reads the policy files of the folder at `path` in name order, without parsing them: what ``load(path:displayPath:)``
    /// merges, for a caller that also needs the bytes (the audit record of a policy put in force holds their digests).
    /// - Throws: ``GuardPolicyError`` if the folder can't be listed, holds no policy file, or a file can't be read or
    ///   is not UTF-8.
    public static func read(path: String, displayPath: String? = nil) throws -> [File] {
        let display = displayPath ?? path
        let prefix = display.hasSuffix("/") ? display : display + "/"
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw GuardPolicyError(problems: [PolicyProblem(file: display, line: nil, message: "no such folder")])
        }
        let names: [String]
        do {
            // In the order of their bytes (as `LC_ALL=C ls` lists them), not Swift's Unicode order.
            names = try FileManager.default.contentsOfDirectory(atPath: path)
                .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
                .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        } catch {
            throw GuardPolicyError(problems: [
                PolicyProblem(file: display, line: nil, message: "cannot list the folder")
            ])
        }
        var files: [File] = []
        var problems: [PolicyProblem] = []
        var seen: Set<String> = []
        for name in names {
            let shown = prefix + name
            // Rule ids, messages and the audit's digest lines (as `sha256sum` prints them) need a plain name.
            guard !name.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "\\") }) else {
                problems.append(
                    PolicyProblem(
                        file: shown.debugDescription,
                        line: nil,
                        message: "a policy file name may not hold a control character or a backslash; rename it"
                    )
                )
                continue
            }
            // Two names Swift takes for one text (`café.yaml` composed and decomposed) would share a rule id.
            guard seen.insert(name).inserted else {
                problems.append(
                    PolicyProblem(
                        file: shown,
                        line: nil,
                        message: "another file's name is the same text in another Unicode form; rename one"
                    )
                )
                continue
            }
            guard let data = FileManager.default.contents(atPath: (path as NSString).appendingPathComponent(name))
            else {
                problems.append(PolicyProblem(file: shown, line: nil, message: "cannot read the file"))
                continue
            }
            guard let text = String(data: data, encoding: .utf8) else {
                problems.append(PolicyProblem(file: shown, line: nil, message: "is not UTF-8 text"))
                continue
            }
            files.append(File(name: shown, bytes: [UInt8](data), text: text))
        }
        if !problems.isEmpty { throw GuardPolicyError(problems: problems) }
        guard !files.isEmpty else {
            throw GuardPolicyError(problems: [
                PolicyProblem(file: display, line: nil, message: "has no *.yaml or *.yml policy files")
            ])
        }
        return files
    }

    /// Parses and merges the given files (name as messages show it, text), in the given order.
    /// - Throws: ``GuardPolicyError`` with every problem found.
    public static func merge(_ files: [(name: String, text: String)]) throws -> Policy {
        let parsed = files.map { PolicyFile.parse($0.text, name: $0.name) }
        var problems = parsed.flatMap(\.problems)
        let warnings = parsed.flatMap(\.warnings)

        var roles: [String: Role] = [:]
        var roleOrder: [Role] = []
        var users: [String: User] = [:]
        var apiKeys: [String: APIKey] = [:]
        var anonymous: RuleID?
        var anonymousRoles: [String] = []
        var references: [PolicyFile.RoleReference] = []
        var referenceFiles: [String] = []
        var subjects: [TLSSubjectPattern: User] = [:]
        var digests: [[UInt8]: APIKey] = [:]

        func duplicate(_ what: String, at id: RuleID, first: RuleID) {
            problems.append(
                PolicyProblem(file: id.file, line: id.line, message: "\(what): defined twice (first at \(first))")
            )
        }

        for file in parsed {
            for role in file.roles {
                if let first = roles[role.name] {
                    duplicate("roles.\(role.name)", at: role.definedAt, first: first.definedAt)
                    continue
                }
                roles[role.name] = role
                roleOrder.append(role)
            }
            for (user, userReferences) in file.users {
                if let first = users[user.name] {
                    duplicate("users.\(user.name)", at: user.definedAt, first: first.definedAt)
                    continue
                }
                // A tls_subject that can't match is refused as such; it names nobody another could share.
                if let subject = user.tlsPattern, let text = user.tlsSubject, TLSSubjectPattern.problem(in: text) == nil
                {
                    if let other = subjects[subject] {
                        problems.append(
                            PolicyProblem(
                                file: user.definedAt.file,
                                line: user.definedAt.line,
                                message:
                                    "users.\(user.name).tls_subject: also names users.\(other.name) (\(other.definedAt))"
                            )
                        )
                    }
                    subjects[subject] = user
                }
                users[user.name] = user
                references += userReferences
                referenceFiles += Array(repeating: file.name, count: userReferences.count)
            }
            for (key, keyReferences) in file.apiKeys {
                if let first = apiKeys[key.name] {
                    duplicate("api_keys.\(key.name)", at: key.definedAt, first: first.definedAt)
                    continue
                }
                if let other = digests[key.sha256] {
                    problems.append(
                        PolicyProblem(
                            file: key.definedAt.file,
                            line: key.definedAt.line,
                            message:
                                "api_keys.\(key.name).sha256: same hash as api_keys.\(other.name) (\(other.definedAt))"
                        )
                    )
                }
                digests[key.sha256] = key
                apiKeys[key.name] = key
                references += keyReferences
                referenceFiles += Array(repeating: file.name, count: keyReferences.count)
            }
            if let (definedAt, anonymousReferences) = file.anonymous {
                if let first = anonymous {
                    duplicate("users.\(Principal.anonymousName)", at: definedAt, first: first)
                } else {
                    anonymous = definedAt
                    anonymousRoles = anonymousReferences.map(\.name)
                    references += anonymousReferences
                    referenceFiles += Array(repeating: file.name, count: anonymousReferences.count)
                }
            }
        }
        for (reference, file) in zip(references, referenceFiles) where roles[reference.name] == nil {
            problems.append(
                PolicyProblem(
                    file: file,
                    line: reference.line,
                    message: "\(reference.key): unknown role \(PolicyFile.quoted(reference.name))"
                )
            )
        }
        guard problems.isEmpty else {
            let order = Dictionary(files.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
            let sorted = problems.enumerated().sorted { lhs, rhs in
                let left = (order[lhs.element.file] ?? 0, lhs.element.line ?? 0, lhs.offset)
                let right = (order[rhs.element.file] ?? 0, rhs.element.line ?? 0, rhs.offset)
                return left < right
            }
            throw GuardPolicyError(problems: sorted.map(\.element))
        }
        return Policy(
            ruleSet: RuleSet(roles: roleOrder),
            users: users,
            apiKeys: apiKeys,
            anonymous: Principal(name: Principal.anonymousName, roles: anonymousRoles, authentication: .anonymous),
            modes: Dictionary(parsed.map { ($0.name, $0.mode) }, uniquingKeysWith: { first, _ in first }),
            warnings: warnings
        )
    }
}
