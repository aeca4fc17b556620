import AuditStore
import Foundation
import GuardPolicy
import Logging
import ProxyCore
import Yams

/// Turns the text of guard.yaml into a ``GuardConfig``, with every error located at its line.
///
/// It walks Yams' node tree (`Yams.compose(yaml:)`) rather than decoding with Codable: each `Node`
/// carries its `mark`, so an unknown key, a bad value or a missing file is reported as
/// `<file>:<line>: <key>: <problem>`. Keys are visited in file order and the first problem is
/// reported, so the error a user sees is the topmost one.
struct ConfigParser {
    /// The file as the user named it, for messages.
    let fileName: String
    /// The config file's folder: relative paths in the file are resolved against it.
    let baseDirectory: String

    /// The keys each mapping accepts; anything else is an error (a typo must not pass silently).
    private enum Keys {
        static let root = [
            "listen", "upstream", "policies", "mode", "store", "audit", "admin", "threads", "tls", "limits",
            "log_level", "pid_file",
        ]
        static let audit = ["enabled", "reads", "sync", "commit_delay", "commit_siblings"]
        static let admin = ["listen"]
        static let upstream = [
            "address", "tls", "max_connections", "connect_timeout", "keepalive", "keepalive_timeout", "idle_timeout",
            "auth",
        ]
        static let upstreamAuth = ["user", "password_file"]
        static let upstreamTLS = ["ca", "server_name"]
        static let tls = ["cert", "key", "client_ca", "client_crl"]
        static let limits = [
            "max_message_bytes", "max_concurrent_streams", "max_header_list_bytes", "idle_timeout", "drain_timeout",
            "stream_window_bytes", "connection_window_bytes", "held_bytes_per_connection", "held_bytes_total",
            "handshake_timeout", "auth_failures_per_minute", "credential_cache", "client_connections",
            "connections_per_client", "refusals_per_minute", "new_connections_per_minute", "request_timeout",
        ]
    }

    /// One `key: value` pair with its dotted path and the line of its key.
    private struct Entry {
        /// The dotted path: `limits.idle_timeout`.
        let key: String
        /// The last path component: `idle_timeout`.
        let name: String
        let keyLine: Int
        let value: Node

        /// The value's line (a block value may start below its key), else the key's.
        var line: Int { self.value.mark?.line ?? self.keyLine }
    }

    /// Parses a whole file. An empty file (or one with only comments) gives the defaults.
    /// - Throws: ``ConfigError`` for YAML syntax errors, unknown keys and invalid values.
    func parse(_ yaml: String) throws -> GuardConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw self.syntaxError(error, in: yaml)
        }
        var config = GuardConfig.defaults(baseDirectory: self.baseDirectory)
        guard let root else { return config }
        if root.isEmptyValue { return config }
        for entry in try self.entries(of: root, key: nil, line: root.mark?.line ?? 1) {
            switch entry.name {
            case "listen":
                config.proxy.listen = try self.value(entry) { text throws(ValueProblem) in
                    try ConfigValue.address(text, for: .listen, baseDirectory: self.baseDirectory)
                }
            case "upstream":
                config.proxy.upstream = try self.upstream(entry)
            case "policies":
                config.policiesPath = try self.path(entry)
            case "mode":
                let text = try self.string(entry)
                guard let mode = Policy.Mode(rawValue: text) else {
                    throw self.error(at: entry.line, key: entry.key, "must be enforce or shadow, not \"\(text)\"")
                }
                config.mode = mode
            case "pid_file":
                config.pidFilePath = try self.path(entry)
            case "admin":
                config.adminListen = try self.admin(entry)
            case "store":
                config.storePath = try self.path(entry)
            case "audit":
                config.audit = try self.audit(entry)
            case "threads":
                config.proxy.threads = try self.integer(entry, in: ConfigLimits.threads)
            case "tls":
                config.proxy.tls = try self.serverTLS(entry)
            case "limits":
                config.proxy.limits = try self.limits(entry)
            case "log_level":
                config.logLevel = try self.value(entry) { text throws(ValueProblem) in
                    try ConfigValue.logLevel(text)
                }
            default:
                throw self.unknownKey(entry, allowed: Keys.root)
            }
        }
        return config
    }

    // MARK: - Sections

    /// `upstream: "host:port"`, `upstream: "unix:/path"`, or a mapping with `address` and options.
    private func upstream(_ entry: Entry) throws -> UpstreamConfiguration {
        guard case .mapping = entry.value else {
            return UpstreamConfiguration(address: try self.upstreamAddress(entry))
        }
        var address: SocketAddress?
        var upstream = UpstreamConfiguration(address: .tcp(host: "127.0.0.1", port: 19_530))
        for child in try self.entries(of: entry.value, key: entry.key, line: entry.keyLine) {
            switch child.name {
            case "address":
                address = try self.upstreamAddress(child)
            case "tls":
                upstream.tls = try self.upstreamTLS(child)
            case "max_connections":
                upstream.maxConnectionsPerLoop = try self.integer(child, in: ConfigLimits.maxConnections)
            case "connect_timeout":
                upstream.connectTimeoutMilliseconds = try self.duration(child, in: ConfigLimits.connectTimeout)
            case "keepalive":
                upstream.keepaliveMilliseconds = try self.duration(child, in: ConfigLimits.upstreamKeepalive)
            case "keepalive_timeout":
                upstream.keepaliveTimeoutMilliseconds = try self.duration(
                    child,
                    in: ConfigLimits.upstreamKeepaliveTimeout
                )
            case "idle_timeout":
                upstream.idleTimeoutMilliseconds = try self.duration(child, in: ConfigLimits.upstreamIdleTimeout)
            case "auth":
                upstream.authorization = try self.upstreamAuth(child)
            default:
                throw self.unknownKey(child, allowed: Keys.upstream)
            }
        }
        guard let address else {
            throw self.error(at: entry.keyLine, key: "\(entry.key).address", "is required when upstream is a mapping")
        }
        upstream.address = address
        return upstream
    }

    private func upstreamAddress(_ entry: Entry) throws -> SocketAddress {
        try self.value(entry) { text throws(ValueProblem) in
            try ConfigValue.address(text, for: .upstream, baseDirectory: self.baseDirectory)
        }
    }

    /// `upstream.auth: {user: …, password_file: …}`: the credential the guard sends to Milvus instead of the
    /// client's, as the `authorization` value (base64 of `user:password`). The file holds the password; one
    /// trailing newline is ignored.
    private func upstreamAuth(_ entry: Entry) throws -> String {
        guard case .mapping = entry.value else {
            throw self.error(at: entry.line, key: entry.key, "must be a mapping with user and password_file")
        }
        var user: String?
        var password: String?
        for child in try self.entries(of: entry.value, key: entry.key, line: entry.keyLine) {
            switch child.name {
            case "user":
                let name = try self.string(child)
                guard !name.isEmpty, !name.contains(":") else {
                    throw self.error(at: child.line, key: child.key, "must be a non-empty user name without a colon")
                }
                user = name
            case "password_file":
                let path = try self.readableFile(child)
                guard let data = FileManager.default.contents(atPath: path),
                    var text = String(data: data, encoding: .utf8)
                else {
                    throw self.error(at: child.line, key: child.key, "cannot read \(path) as UTF-8 text")
                }
                if text.hasSuffix("\r\n") {
                    text.removeLast(2)
                } else if text.hasSuffix("\n") {
                    text.removeLast()
                }
                guard !text.isEmpty else { throw self.error(at: child.line, key: child.key, "\(path) is empty") }
                password = text
            default:
                throw self.unknownKey(child, allowed: Keys.upstreamAuth)
            }
        }
        guard let user else { throw self.error(at: entry.keyLine, key: "\(entry.key).user", "is required") }
        guard let password else {
            throw self.error(at: entry.keyLine, key: "\(entry.key).password_file", "is required")
        }
        return Data("\(user):\(password)".utf8).base64EncodedString()
    }

    /// `upstream.tls`: `true` (system trust store), `false`, or `{ca: …, server_name: …}`.
    private func upstreamTLS(_ entry: Entry) throws -> ClientTLSConfiguration? {
        guard case .mapping = entry.value else {
            return try self.bool(entry) ? ClientTLSConfiguration() : nil
        }
        var tls = ClientTLSConfiguration()
        for child in try self.entries(of: entry.value, key: entry.key, line: entry.keyLine) {
            switch child.name {
            case "ca":
                tls.caPath = try self.readableFile(child)
            case "server_name":
                tls.serverName = try self.string(child)
            default:
                throw self.unknownKey(child, allowed: Keys.upstreamTLS)
            }
        }
        return tls
    }

    /// `tls: {cert: …, key: …, client_ca: …, client_crl: …}`; `cert` and `key` are required, `client_crl` needs
    /// `client_ca`.
    private func serverTLS(_ entry: Entry) throws -> ServerTLSConfiguration {
        var certificate: String?
        var key: String?
        var clientCA: String?
        var clientCRL: (path: String, line: Int)?
        for child in try self.entries(of: entry.value, key: entry.key, line: entry.keyLine) {
            switch child.name {
            case "cert": certificate = try self.readableFile(child)
            case "key": key = try self.readableFile(child)
            case "client_ca": clientCA = try self.readableFile(child)
            case "client_crl": clientCRL = (try self.readableFile(child), child.keyLine)
            default: throw self.unknownKey(child, allowed: Keys.tls)
            }
        }
        guard let certificate else { throw self.error(at: entry.keyLine, key: "\(entry.key).cert", "is required") }
        guard let key else { throw self.error(at: entry.keyLine, key: "\(entry.key).key", "is required") }
        if let clientCRL, clientCA == nil {
            throw self.error(
                at: clientCRL.line,
                key: "\(entry.key).client_crl",
                "needs client_ca: it revokes client certificates, which only client_ca asks for"
            )
        }
        return ServerTLSConfiguration(
            certificatePath: certificate,
            keyPath: key,
            clientCAPath: clientCA,
            clientCRLPath: clientCRL?.path
        )
    }

    /// `audit: {reads: true|false, sync: full|normal, commit_delay: 2ms, commit_siblings: 8}`; keys left out keep
    /// their defaults.
    private func audit(_ entry: Entry) throws -> AuditSettings {
        var audit = AuditSettings()
        for child in try self.entries(of: entry.value, key: entry.key, line: entry.keyLine) {
            switch child.name {
            case "enabled":
                audit.enabled = try self.bool(child)
            case "reads":
                let text = try self.scalarText(child)
                guard let value = child.value.bool else {
                    throw self.error(at: child.line, key: child.key, "must be true or false, got \"\(text)\"")
                }
                audit.reads = value
            case "sync":
                audit.synchronous = try self.value(child) { text throws(ValueProblem) in
                    guard let mode = AuditStoreOptions.Synchronous(rawValue: text) else {
                        throw ValueProblem("must be full or normal, got \(ConfigValue.quoted(text))")
                    }
                    return mode
                }
            case "commit_delay":
                audit.commitDelayMilliseconds = try self.duration(child, in: ConfigLimits.commitDelay)
            case "commit_siblings":
                audit.commitSiblings = try self.integer(child, in: ConfigLimits.commitSiblings)
            default:
                throw self.unknownKey(child, allowed: Keys.audit)
            }
        }
        return audit
    }

    /// `admin: {listen: host:port}`: where the admin listener serves /healthz, /readyz, /metrics, /audit.
    private func admin(_ entry: Entry) throws -> SocketAddress {
        guard case .mapping = entry.value else {
            throw self.error(at: entry.line, key: entry.key, "must be a mapping with listen")
        }
        var listen: SocketAddress?
        for child in try self.entries(of: entry.value, key: entry.key, line: entry.keyLine) {
            switch child.name {
            case "listen":
                listen = try self.value(child) { text throws(ValueProblem) in
                    try ConfigValue.address(text, for: .listen, baseDirectory: self.baseDirectory)
                }
            default:
                throw self.unknownKey(child, allowed: Keys.admin)
            }
        }
        guard let listen else { throw self.error(at: entry.keyLine, key: "\(entry.key).listen", "is required") }
        return listen
    }

    /// `limits: {…}`; keys left out keep ProxyCore's defaults.
    private func limits(_ entry: Entry) throws -> Limits {
        var limits = Limits()
        for child in try self.entries(of: entry.value, key: entry.key, line: entry.keyLine) {
            switch child.name {
            case "max_message_bytes":
                limits.maxMessageBytes = try self.bytes(child, in: ConfigLimits.maxMessageBytes)
            case "max_concurrent_streams":
                limits.maxConcurrentStreams = try self.integer(child, in: ConfigLimits.maxConcurrentStreams)
            case "max_header_list_bytes":
                limits.maxHeaderListBytes = try self.bytes(child, in: ConfigLimits.maxHeaderListBytes)
            case "idle_timeout":
                limits.idleTimeoutMilliseconds = try self.duration(child, in: ConfigLimits.idleTimeout)
            case "request_timeout":
                limits.requestTimeoutMilliseconds = try self.duration(child, in: ConfigLimits.requestTimeout)
            case "drain_timeout":
                limits.drainTimeoutMilliseconds = try self.duration(child, in: ConfigLimits.drainTimeout)
            case "stream_window_bytes":
                limits.streamWindowBytes = try self.bytes(child, in: ConfigLimits.windowBytes)
            case "connection_window_bytes":
                limits.connectionWindowBytes = try self.bytes(child, in: ConfigLimits.windowBytes)
            case "handshake_timeout":
                limits.handshakeTimeoutMilliseconds = try self.duration(child, in: ConfigLimits.handshakeTimeout)
            case "auth_failures_per_minute":
                limits.authFailuresPerWindow = try self.integer(child, in: ConfigLimits.authFailures)
            case "refusals_per_minute":
                limits.refusalsPerWindow = try self.integer(child, in: ConfigLimits.refusals)
            case "new_connections_per_minute":
                limits.newConnectionsPerWindow = try self.integer(child, in: ConfigLimits.newConnections)
            case "credential_cache":
                limits.credentialCacheMilliseconds = try self.duration(child, in: ConfigLimits.credentialCache)
            case "client_connections":
                limits.clientConnections = try self.integer(child, in: ConfigLimits.clientConnections)
            case "connections_per_client":
                limits.connectionsPerClient = try self.integer(child, in: ConfigLimits.connectionsPerClient)
            case "held_bytes_per_connection":
                limits.heldBytesPerConnection = try self.bytes(child, in: ConfigLimits.heldBytes)
            case "held_bytes_total":
                limits.heldBytesTotal = try self.bytes(child, in: ConfigLimits.heldBytes)
            default:
                throw self.unknownKey(child, allowed: Keys.limits)
            }
        }
        return limits
    }

    // MARK: - Values

    /// The pairs of a mapping in file order; keys must be plain names. Callers refuse unknown names
    /// with ``unknownKey(_:allowed:)`` as they reach them, so the first problem in the file is reported.
    private func entries(of node: Node, key: String?, line: Int) throws -> [Entry] {
        guard case .mapping(let mapping) = node else {
            throw self.error(
                at: node.mark?.line ?? line,
                key: key,
                "must be a mapping of keys to values, got \(node.kindForMessages)"
            )
        }
        return try mapping.map { keyNode, value in
            let keyLine = keyNode.mark?.line ?? line
            guard case .scalar(let scalar) = keyNode else {
                throw self.error(at: keyLine, key: key, "keys must be plain names, got \(keyNode.kindForMessages)")
            }
            let name = scalar.string
            let path = key.map { "\($0).\(name)" } ?? name
            return Entry(key: path, name: name, keyLine: keyLine, value: value)
        }
    }

    /// Runs a text parser on a scalar value and places its problem at the value's key and line.
    private func value<T>(_ entry: Entry, _ parse: (String) throws(ValueProblem) -> T) throws -> T {
        let text = try self.scalarText(entry)
        do {
            return try parse(text)
        } catch {
            throw self.error(at: entry.line, key: entry.key, error.message)
        }
    }

    /// The text of a scalar value; mappings, sequences and empty (null) values are errors.
    private func scalarText(_ entry: Entry) throws -> String {
        guard case .scalar(let scalar) = entry.value else {
            throw self.error(
                at: entry.line,
                key: entry.key,
                "must be a single value, got \(entry.value.kindForMessages)"
            )
        }
        guard !entry.value.isEmptyValue else { throw self.error(at: entry.line, key: entry.key, "needs a value") }
        return scalar.string
    }

    private func string(_ entry: Entry) throws -> String {
        try self.value(entry) { text throws(ValueProblem) in
            guard !text.isEmpty else { throw ValueProblem("must not be empty") }
            return text
        }
    }

    private func bool(_ entry: Entry) throws -> Bool {
        let text = try self.scalarText(entry)
        guard let value = entry.value.bool else {
            throw self.error(at: entry.line, key: entry.key, "must be true, false or a mapping, got \"\(text)\"")
        }
        return value
    }

    /// A path resolved against the config file's folder.
    private func path(_ entry: Entry) throws -> String {
        ConfigValue.resolve(try self.string(entry), relativeTo: self.baseDirectory)
    }

    /// A path resolved against the config file's folder that must name a readable file.
    private func readableFile(_ entry: Entry) throws -> String {
        let path = try self.path(entry)
        do {
            try ConfigValue.readableFile(path)
        } catch {
            throw self.error(at: entry.line, key: entry.key, error.message)
        }
        return path
    }

    private func integer(_ entry: Entry, in range: ClosedRange<Int>) throws -> Int {
        try self.value(entry) { text throws(ValueProblem) in try ConfigValue.integer(text, in: range) }
    }

    private func duration(_ entry: Entry, in range: ClosedRange<Int>) throws -> Int {
        try self.value(entry) { text throws(ValueProblem) in try ConfigValue.milliseconds(text, in: range) }
    }

    private func bytes(_ entry: Entry, in range: ClosedRange<Int>) throws -> Int {
        try self.value(entry) { text throws(ValueProblem) in try ConfigValue.bytes(text, in: range) }
    }

    // MARK: - Errors

    private func error(at line: Int?, key: String?, _ problem: String) -> ConfigError {
        ConfigError(file: self.fileName, line: line, key: key, problem: problem)
    }

    /// An unknown key, at the key's line, with a suggestion: a typo must not pass silently.
    private func unknownKey(_ entry: Entry, allowed: [String]) -> ConfigError {
        self.error(at: entry.keyLine, key: entry.key, "unknown key\(Self.suggestion(for: entry.name, among: allowed))")
    }

    /// Places a Yams error at its line. Duplicate keys name the key (Yams gives its first occurrence).
    private func syntaxError(_ error: any Error, in yaml: String) -> ConfigError {
        guard let yamlError = error as? YamlError else {
            return self.error(at: nil, key: nil, "YAML syntax error: \(error)")
        }
        switch yamlError {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return self.error(at: mark.line, key: nil, "YAML syntax error: \(problem)")
        case .reader(let problem, let offset, _, _):
            let line = offset.map { offset in yaml.prefix(offset).reduce(1) { $1 == "\n" ? $0 + 1 : $0 } }
            return self.error(at: line, key: nil, "cannot read YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return self.error(
                at: context.mark.line,
                key: duplicates.first,
                "appears more than once in the same mapping"
            )
        default:
            return self.error(at: nil, key: nil, "YAML syntax error: \(yamlError)")
        }
    }

    /// `" (did you mean max_concurrent_streams?)"` for a close typo (at most two edits, ignoring case,
    /// or one name extending the other, like `listen_addr`), else the list of accepted keys.
    private static func suggestion(for name: String, among allowed: [String]) -> String {
        let lowered = name.lowercased()
        let close = allowed.filter { key in
            Self.editDistance(lowered, key) <= 2
                || (min(lowered.count, key.count) >= 2 && (lowered.hasPrefix(key) || key.hasPrefix(lowered)))
        }
        if let best = close.min(by: { Self.editDistance(lowered, $0) < Self.editDistance(lowered, $1) }) {
            return " (did you mean \(best)?)"
        }
        return " (expected one of \(allowed.joined(separator: ", ")))"
    }

    /// Levenshtein distance, for typo suggestions on short key names.
    private static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8)
        let b = Array(b.utf8)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            previous = current
        }
        return previous[b.count]
    }
}
