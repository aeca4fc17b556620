public import ArgumentParser
import AuditStore
import Foundation
import Glibc
import GuardPolicy
import Logging
import ProxyCore

/// `milvus-guard serve`: loads the configuration, starts the proxy and runs until SIGTERM/SIGINT.
///
/// Exit codes: 0 after a graceful drain; 1 when the proxy can't start or fails, or on a second
/// SIGTERM/SIGINT during the drain; 2 for a configuration error (nothing is started);
/// 64 for command-line syntax errors caught by ArgumentParser (unknown flag, missing value).
public struct ServeCommand: ParsableCommand {
    /// The subcommand's name and help.
    public static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the proxy.",
        discussion: """
            Without --config, reads guard.yaml from the current folder if there is one, else uses the \
            defaults. The flags below replace the file's values. SIGTERM or SIGINT drains in-flight calls \
            and exits (a second one exits at once); SIGHUP requests a policy reload.
            """
    )

    /// `--config path`.
    @Option(name: .long, help: ArgumentHelp("The config file (default: ./guard.yaml if present).", valueName: "path"))
    public var config: String?

    /// `--listen host:port`.
    @Option(name: .long, help: ArgumentHelp("Where clients connect (default 127.0.0.1:19531).", valueName: "host:port"))
    public var listen: String?

    /// `--upstream host:port|unix:/path`.
    @Option(
        name: .long,
        help: ArgumentHelp("The Milvus to forward to (default 127.0.0.1:19530).", valueName: "host:port|unix:path")
    )
    public var upstream: String?

    /// `--threads N`; text so that a bad value is reported like the file's `threads` (exit code 2).
    @Option(name: .long, help: ArgumentHelp("Event-loop threads, 1...256 (default: one per core).", valueName: "n"))
    public var threads: String?

    /// `--log-level name`.
    @Option(
        name: .long,
        help: ArgumentHelp(
            "trace, debug, info, notice, warning, error or critical (default: log_level, else info).",
            valueName: "level"
        )
    )
    public var logLevel: String?

    /// Creates the command; ArgumentParser calls this while parsing.
    public init() {}

    /// The flags that replace config-file values.
    public var overrides: ConfigOverrides {
        ConfigOverrides(listen: self.listen, upstream: self.upstream, threads: self.threads, logLevel: self.logLevel)
    }

    /// The configuration `run()` uses: the file (or defaults) with the flags applied.
    /// - Throws: ``ConfigError``.
    public func loadConfiguration(currentDirectory: String) throws -> GuardConfig {
        var config = try GuardConfig.load(configPath: self.config, currentDirectory: currentDirectory)
        try config.apply(self.overrides, currentDirectory: currentDirectory)
        return config
    }

    /// Loads the configuration, then runs the proxy on this thread until it has drained.
    /// - Throws: `ExitCode(2)` for configuration errors and `ExitCode.failure` (1) when the proxy fails;
    ///   the message has been printed to standard error by then.
    public func run() throws {
        // 1. Configuration. Nothing has been started yet, so a bad config starts nothing.
        let config: GuardConfig
        do {
            config = try self.loadConfiguration(currentDirectory: FileManager.default.currentDirectoryPath)
        } catch let error as ConfigError {
            Self.printError(error.file == nil ? "milvus-guard: \(error)" : "\(error)")
            throw ExitCode(2)
        }

        // 1b. The policy: deny by default, so without a loadable policy nothing starts.
        let policy: Policy
        let policyFiles: [PolicyFolder.File]
        do {
            policyFiles = try Self.readPolicy(config)
            policy = try PolicyFolder.merge(policyFiles)
        } catch let error as GuardPolicyError {
            for problem in error.problems { Self.printError("\(problem)") }
            Self.printError("milvus-guard: the policy folder \(config.policiesPath) does not load; nothing started")
            throw ExitCode(2)
        }
        for warning in policy.warnings { Self.printError("warning: \(warning)") }

        // 2. Signals: blocked before any thread exists, so all threads inherit the mask and only the
        //    watcher's sigwait sees them. A client closing its socket must not kill us with SIGPIPE.
        SignalWatcher.blockHandledSignals()
        signal(SIGPIPE, SIG_IGN)

        // 3. Logging to standard error at the configured level.
        let level = config.logLevel
        LoggingSystem.bootstrap { label in
            var handler = PrintableLogHandler(StreamLogHandler.standardError(label: label))
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "milvus-guard")
        logger.logLevel = level

        // 4. The audit store: opened (and migrated) before anything is served, so a store that can't be
        //    opened starts nothing. Closed after the loops have drained, writing what is queued.
        let audit: ProxyAudit?
        if config.audit.enabled {
            do {
                // The chain's head goes to the log every 10 minutes while records are written, and at exit: a log
                // shipped off the machine then holds anchors for `audit verify --anchor`.
                let store = try SQLiteAuditStore(
                    path: config.storePath,
                    options: config.audit.storeOptions
                ) { [logger] head in
                    logger.notice("audit chain head", metadata: ["anchor": "\(head)"])
                }
                audit = ProxyAudit(log: store, reads: config.audit.reads)
            } catch {
                Self.printError("milvus-guard: cannot open the audit store \(config.storePath): \(error.message)")
                throw ExitCode.failure
            }
            logger.info(
                "audit store open",
                metadata: [
                    "store": "\(config.storePath)", "reads": "\(config.audit.reads)",
                    "sync": "\(config.audit.synchronous)",
                    "commit_delay": "\(config.audit.commitDelayMilliseconds)ms",
                ]
            )
        } else {
            audit = nil
            logger.warning("audit.enabled is false: no call is recorded")
        }
        defer {
            if let log = audit?.log {
                log.close()
                if log.lost > 0 {
                    logger.error(
                        "audit records lost: records of calls that had ended were never written",
                        metadata: ["records": "\(log.lost)"]
                    )
                }
            }
        }

        // 5. The proxy (validates TLS files and addresses; binds nothing yet).
        let server: ProxyServer
        do {
            server = try ProxyServer(
                configuration: config.proxy,
                policy: ActivePolicy(policy: policy, mode: config.mode),
                audit: audit,
                logger: logger
            )
        } catch {
            Self.printError("milvus-guard: \(error)")
            throw ExitCode.failure
        }

        // The policy in force, durable in the chain before anything is served: a store that can't take it starts
        // nothing (as a reload is not applied without its record). Held over a failing store instead, it could land
        // after later records or be lost (a review).
        if let audit {
            let started = PolicyRecord.loaded(
                policy,
                files: policyFiles,
                folder: config.policiesPath,
                mode: config.mode,
                trigger: .start,
                trust: server.clientTrustDigests
            )
            do throws(AuditStoreError) {
                server.recordedStartPolicy(sequence: try audit.log.write(started))
            } catch {
                Self.printError("milvus-guard: cannot record the policy in force in the audit store: \(error.message)")
                throw ExitCode.failure
            }
        }

        // 6. The admin listener, when configured.
        var admin: AdminServer?
        if let listen = config.adminListen {
            let storePath = config.storePath
            let backend = ProxyAdminBackend(server: server, audit: audit) {
                () throws(AuditStoreError) -> any AuditReader in
                try SQLiteAuditReader(path: storePath)
            }
            do {
                admin = try AdminServer.start(
                    configuration: AdminConfiguration(listen: listen),
                    backend: backend,
                    metrics: server.metrics,
                    logger: logger
                )
            } catch {
                Self.printError("milvus-guard: cannot start the admin listener on \(listen): \(error)")
                throw ExitCode.failure
            }
            logger.info("admin listener", metadata: ["listen": "\(listen)", "port": "\(admin?.boundPort ?? 0)"])
            if !listen.isLoopback {
                logger.warning(
                    """
                    admin listener beyond loopback: it takes credentials and serves the audit log over plain HTTP; \
                    keep it on a management network
                    """,
                    metadata: ["listen": "\(listen)"]
                )
            }
        }
        defer {
            admin?.shutdown()
            admin?.join()
        }

        logger.info("policy loaded", metadata: Self.summary(of: policy, config: config))
        Self.warnOfCRLExpiry(server, logger: logger)
        if config.mode == .shadow {
            logger.warning("mode is shadow: calls the policy denies are forwarded and logged as \"would deny\"")
        }

        // 7. The signal thread: SIGTERM/SIGINT drain, SIGHUP reloads (on a thread of their own: a reload waits for
        //    the audit store).
        let reloader = PolicyReloader(
            Self.reloadHandler(config: config, overrides: self.overrides, server: server, audit: audit, logger: logger)
        )
        let watcher = SignalWatcher(
            logger: logger,
            onShutdown: { server.shutdown() },
            onReload: { sender in reloader.request(.reload(sender)) }
        )
        watcher.start()

        // 8. The pid file `milvus-guard reload` signals; removed on the way out.
        let pidWritten = FileManager.default.createFile(
            atPath: config.pidFilePath,
            contents: Data("\(getpid())\n".utf8)
        )
        if !pidWritten {
            logger.warning("cannot write the pid file", metadata: ["path": "\(config.pidFilePath)"])
        }
        defer { if pidWritten { try? FileManager.default.removeItem(atPath: config.pidFilePath) } }

        // 9. Serve until drained.
        do {
            try server.run()
        } catch {
            Self.printError("milvus-guard: \(error)")
            throw ExitCode.failure
        }
    }

    /// A warning when a client CRL in force expires within a day (or has): from its nextUpdate on, every client of
    /// its CA is refused.
    static func warnOfCRLExpiry(_ server: ProxyServer, logger: Logger) {
        guard let nextUpdate = server.clientCRLNextUpdate else { return }
        let left = nextUpdate - Int64(time(nil))
        guard left < 86_400 else { return }
        logger.warning(
            left <= 0
                ? "a client CRL has expired: every client certificate of its CA is refused until a newer one is loaded"
                : "a client CRL expires within a day: publish a newer one and reload, or its CA's clients are refused",
            metadata: ["next_update": "\(AuditTime.format(milliseconds: nextUpdate * 1000))"]
        )
    }

    /// What the log says about a policy put in force.
    static func summary(of policy: Policy, config: GuardConfig) -> Logger.Metadata {
        [
            "policies": "\(config.policiesPath)", "mode": "\(config.mode)", "users": "\(policy.users.count)",
            "api-keys": "\(policy.apiKeys.count)", "rules": "\(policy.ruleSet.ruleCount)",
        ]
    }

    /// Loads the policy folder of `config`; rule ids name files `<folder name>/<file>:<line>`.
    /// - Throws: ``GuardPolicyError`` with every problem.
    static func loadPolicy(_ config: GuardConfig) throws -> Policy {
        try PolicyFolder.merge(Self.readPolicy(config))
    }

    /// Reads the policy files of `config`'s folder, named `<folder name>/<file>`.
    /// - Throws: ``GuardPolicyError``.
    static func readPolicy(_ config: GuardConfig) throws -> [PolicyFolder.File] {
        try PolicyFolder.read(
            path: config.policiesPath,
            displayPath: (config.policiesPath as NSString).lastPathComponent
        )
    }

    /// What SIGHUP (and `milvus-guard reload`) does: re-read `mode` from the config file and the policy
    /// folder, and put them in force. A config or policy that does not load changes nothing: the old policy stays
    /// in force. With auditing on, each reload is recorded (`policy` records, docs/audit.md), a policy put in force
    /// only once its record is durable: a store that can't write keeps the old policy (and says so in the log), as it
    /// keeps every mutation from Milvus.
    static func reloadHandler(
        config: GuardConfig,
        overrides: ConfigOverrides = ConfigOverrides(),
        server: ProxyServer,
        audit: ProxyAudit?,
        logger: Logger
    ) -> @Sendable (PolicyRecord.Trigger) -> PolicyReloader.Outcome {
        let original = config
        return { trigger in
            var requester: Logger.Metadata = [:]
            if case .reload(let sender?) = trigger { requester["requested_by"] = "\(PolicyRecord.describe(sender))" }
            var current = original
            func reject(_ message: String, _ metadata: Logger.Metadata, reason: String, files: [PolicyFolder.File]?) {
                logger.error("\(message); the old policy stays in force", metadata: metadata.merging(requester) { $1 })
                server.reloadNotApplied(pending: false)
                let record = PolicyRecord.rejected(
                    reason: reason,
                    files: files,
                    folder: files == nil ? nil : current.policiesPath,
                    trigger: trigger
                )
                // Waited for, so that policy records stay in the order of the reloads.
                do throws(AuditStoreError) {
                    if let audit { try audit.log.write(record) }
                } catch {
                    logger.error(
                        "the audit store did not record the rejected reload",
                        metadata: ["error": "\(error)"]
                    )
                }
            }
            if let source = original.sourcePath {
                do {
                    var reread = try GuardConfig.load(
                        file: source,
                        currentDirectory: FileManager.default.currentDirectoryPath
                    )
                    try reread.apply(overrides, currentDirectory: FileManager.default.currentDirectoryPath)
                    current.mode = reread.mode
                    current.policiesPath = reread.policiesPath
                    let ignored = Self.settingsNeedingRestart(started: original, now: reread)
                    if !ignored.isEmpty {
                        logger.warning(
                            """
                            the config file (or a file it names, such as upstream.auth's password file) changed \
                            settings a reload does not apply; they take a restart (the TLS files are read again at \
                            the paths the guard started with)
                            """,
                            metadata: ["settings": "\(ignored.joined(separator: ", "))"]
                        )
                    }
                } catch {
                    reject(
                        "reload rejected: the config file does not load",
                        ["error": "\(error)"],
                        reason: "the config file does not load: \(error)",
                        files: nil
                    )
                    return .done
                }
            }
            var files: [PolicyFolder.File]?
            let policy: Policy
            do {
                let read = try Self.readPolicy(current)
                files = read
                policy = try PolicyFolder.merge(read)
            } catch let error as GuardPolicyError {
                let problems = error.problems.map(\.description).joined(separator: "; ")
                reject(
                    "reload rejected: the new policy does not load",
                    ["problems": "\(problems)"],
                    reason: "the new policy does not load: \(problems)",
                    files: files
                )
                return .done
            } catch {
                reject("reload rejected", ["error": "\(error)"], reason: "\(error)", files: files)
                return .done
            }
            // The TLS files read again (a renewed certificate, a new CRL): a reload applies them with the policy.
            let serverTLS: ProxyServer.ServerTLSFiles?
            do {
                serverTLS = try server.loadServerTLS()
            } catch {
                reject(
                    "reload rejected: the TLS files do not load",
                    ["error": "\(error)"],
                    reason: "the TLS files do not load: \(error)",
                    files: files
                )
                return .done
            }
            for warning in policy.warnings { logger.warning("policy: \(warning)") }
            var recordSequence: Int64?
            if let audit {
                let record = PolicyRecord.loaded(
                    policy,
                    files: files ?? [],
                    folder: current.policiesPath,
                    mode: current.mode,
                    trigger: trigger,
                    trust: serverTLS?.trustDigests ?? server.clientTrustDigests
                )
                do throws(AuditStoreError) {
                    recordSequence = try audit.log.write(record)
                } catch  where !error.committed {
                    guard error.retryable else {
                        // SQLite refused the record for what it is, or a sync failed (nothing more is written until
                        // a restart): trying again can't help.
                        logger.critical(
                            """
                            reload not applied: the audit store refuses its record for good; the old policy stays in \
                            force (restart the guard once the store is mended)
                            """,
                            metadata: ["error": "\(error)"].merging(requester) { $1 }
                        )
                        server.reloadNotApplied(pending: false)
                        return .done
                    }
                    logger.error(
                        "reload not applied: the audit store can't record it; the old policy stays in force until it can",
                        metadata: ["error": "\(error)"].merging(requester) { $1 }
                    )
                    server.reloadNotApplied(pending: true)
                    return .retry
                } catch {
                    // Committed, though syncing (or tracking the WAL for the sync) failed: the record is in the chain,
                    // so the policy it names is put in force, lest the chain say one thing and the guard do another;
                    // calls name it as usual (the store may take records again: a WAL it could not track).
                    recordSequence = error.committedSequences.first
                }
            }
            server.reload(
                ActivePolicy(policy: policy, mode: current.mode, recordSequence: recordSequence),
                serverTLS: serverTLS
            )
            logger.notice(
                "policy reloaded",
                metadata: Self.summary(of: policy, config: current).merging(requester) { $1 }
            )
            if serverTLS != nil {
                logger.notice(
                    """
                    TLS files changed and reloaded: new connections use them, open ones are checked again at their \
                    next call
                    """
                )
            }
            Self.warnOfCRLExpiry(server, logger: logger)
            return .done
        }
    }

    /// The guard.yaml keys whose values differ between the configuration the guard started with and `now`, among
    /// those a reload leaves as they were (all but `mode` and `policies`).
    static func settingsNeedingRestart(started: GuardConfig, now: GuardConfig) -> [String] {
        var keys: [String] = []
        func check(_ key: String, _ same: Bool) { if !same { keys.append(key) } }
        check("listen", started.proxy.listen == now.proxy.listen)
        check("upstream", started.proxy.upstream == now.proxy.upstream)
        check("threads", started.proxy.threads == now.proxy.threads)
        check("tls", started.proxy.tls == now.proxy.tls)
        check("limits", started.proxy.limits == now.proxy.limits)
        check("store", started.storePath == now.storePath)
        check("audit", started.audit == now.audit)
        check("admin", started.adminListen == now.adminListen)
        check("pid_file", started.pidFilePath == now.pidFilePath)
        check("log_level", started.logLevel == now.logLevel)
        return keys
    }

    /// Writes one line to standard error.
    static func printError(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
