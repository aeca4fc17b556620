import Foundation
public import GuardPolicy
public import Logging
public import ProxyCore

/// Everything `milvus-guard` reads from guard.yaml and the command line, validated and with every
/// relative path already resolved against the config file's folder.
///
/// Build one with ``GuardConfig/load(configPath:currentDirectory:)`` (the `serve` lookup rules),
/// ``GuardConfig/load(file:currentDirectory:)`` or ``GuardConfig/parse(yaml:fileName:baseDirectory:)``,
/// then apply command-line overrides with ``GuardConfig/apply(_:currentDirectory:)``.
public struct GuardConfig: Sendable, Equatable {
    /// The name `serve` looks for in the current folder when `--config` is not given.
    public static let defaultFileName = "guard.yaml"

    /// What ProxyCore runs with: listen and upstream addresses, threads, TLS and limits.
    public var proxy: ProxyConfiguration
    /// The absolute path of the policy folder (`policies`, default `policies` beside the config file).
    public var policiesPath: String
    /// `mode`: `enforce` (default) or `shadow` (forward what the policy denies, log it as `would deny`).
    public var mode: Policy.Mode = .enforce
    /// Where `serve` writes its process id and `reload` finds it (`pid_file`, default `guard.pid` beside the
    /// config file).
    public var pidFilePath: String
    /// The absolute path of the audit/approval database (`store`, default `guard.db` beside the config file).
    public var storePath: String
    /// `admin.listen`: where the admin listener serves; nil (the default) turns it off.
    public var adminListen: SocketAddress?
    /// The `audit:` section: whether reads are recorded, and how commits are synced.
    public var audit: AuditSettings
    /// The least severe log level printed (`log_level`, default `info`).
    public var logLevel: Logger.Level
    /// The absolute path of the file this was read from; nil when no file was read (all defaults).
    /// Kept so a reload can read the same file again.
    public var sourcePath: String?

    /// Creates a configuration from parts that are already valid.
    public init(
        proxy: ProxyConfiguration,
        policiesPath: String,
        storePath: String,
        pidFilePath: String,
        audit: AuditSettings = AuditSettings(),
        logLevel: Logger.Level = .info,
        sourcePath: String? = nil
    ) {
        self.proxy = proxy
        self.policiesPath = policiesPath
        self.pidFilePath = pidFilePath
        self.storePath = storePath
        self.audit = audit
        self.logLevel = logLevel
        self.sourcePath = sourcePath
    }

    /// The configuration used when a key (or the whole file) is absent.
    ///
    /// - Parameter baseDirectory: the folder the default `policies` and `guard.db` paths are resolved
    ///   against: the config file's folder, or the current folder when there is no file.
    public static func defaults(baseDirectory: String) -> GuardConfig {
        GuardConfig(
            proxy: ProxyConfiguration(
                listen: .tcp(host: "127.0.0.1", port: 19_531),
                upstream: UpstreamConfiguration(address: .tcp(host: "127.0.0.1", port: 19_530)),
                threads: Self.defaultThreads
            ),
            policiesPath: ConfigValue.resolve("policies", relativeTo: baseDirectory),
            storePath: ConfigValue.resolve("guard.db", relativeTo: baseDirectory),
            pidFilePath: ConfigValue.resolve("guard.pid", relativeTo: baseDirectory),
            logLevel: .info
        )
    }

    /// One event-loop thread per core the process may use, within the accepted 1...256.
    public static var defaultThreads: Int {
        min(max(ProcessInfo.processInfo.activeProcessorCount, 1), ConfigLimits.threads.upperBound)
    }
}
