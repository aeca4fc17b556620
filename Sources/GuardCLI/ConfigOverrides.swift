import Foundation
import ProxyCore

/// The `serve` flags that replace a config-file value, as typed. Each is validated by the same parser
/// as its key in guard.yaml and reported under the flag's name (`--threads: must be between 1 and 256,
/// got 0`).
public struct ConfigOverrides: Sendable, Equatable {
    /// `--listen host:port`: replaces `listen`.
    public var listen: String?
    /// `--upstream host:port|unix:/path`: replaces the upstream *address* only; `upstream.tls`,
    /// `max_connections`, the timeouts and `auth` from the file still apply.
    public var upstream: String?
    /// `--threads N`: replaces `threads`.
    public var threads: String?
    /// `--log-level name`: replaces `log_level`.
    public var logLevel: String?

    /// Creates overrides; nil leaves the file's (or the default) value.
    public init(listen: String? = nil, upstream: String? = nil, threads: String? = nil, logLevel: String? = nil) {
        self.listen = listen
        self.upstream = upstream
        self.threads = threads
        self.logLevel = logLevel
    }
}

extension GuardConfig {
    /// Applies command-line overrides on top of the file's values.
    ///
    /// - Parameter currentDirectory: what a relative `unix:` path in `--upstream` is relative to
    ///   (a flag is typed in the shell, so it is not relative to the config file).
    /// - Throws: ``ConfigError`` whose key is the flag, with no file or line.
    public mutating func apply(_ overrides: ConfigOverrides, currentDirectory: String) throws {
        if let listen = overrides.listen {
            self.proxy.listen = try Self.flag("--listen") { () throws(ValueProblem) in
                try ConfigValue.address(listen, for: .listen, baseDirectory: currentDirectory)
            }
        }
        if let upstream = overrides.upstream {
            self.proxy.upstream.address = try Self.flag("--upstream") { () throws(ValueProblem) in
                try ConfigValue.address(upstream, for: .upstream, baseDirectory: currentDirectory)
            }
        }
        if let threads = overrides.threads {
            self.proxy.threads = try Self.flag("--threads") { () throws(ValueProblem) in
                try ConfigValue.integer(threads, in: ConfigLimits.threads)
            }
        }
        if let logLevel = overrides.logLevel {
            self.logLevel = try Self.flag("--log-level") { () throws(ValueProblem) in
                try ConfigValue.logLevel(logLevel)
            }
        }
    }

    /// Runs one value parser and names its problem after the flag.
    private static func flag<T>(_ name: String, _ parse: () throws(ValueProblem) -> T) throws -> T {
        do {
            return try parse()
        } catch {
            throw ConfigError(key: name, problem: error.message)
        }
    }
}
