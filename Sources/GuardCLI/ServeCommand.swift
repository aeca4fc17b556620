public import ArgumentParser
import Foundation
import Glibc
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

        // 2. Signals: blocked before any thread exists, so all threads inherit the mask and only the
        //    watcher's sigwait sees them. A client closing its socket must not kill us with SIGPIPE.
        SignalWatcher.blockHandledSignals()
        signal(SIGPIPE, SIG_IGN)

        // 3. Logging to standard error at the configured level.
        let level = config.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "milvus-guard")
        logger.logLevel = level

        // 4. The proxy (validates TLS files and addresses; binds nothing yet).
        let server: ProxyServer
        do {
            server = try ProxyServer(configuration: config.proxy, logger: logger)
        } catch {
            Self.printError("milvus-guard: \(error)")
            throw ExitCode.failure
        }

        // 5. The signal thread: SIGTERM/SIGINT drain, SIGHUP reloads.
        let watcher = SignalWatcher(
            logger: logger,
            onShutdown: { server.shutdown() },
            onReload: Self.reloadHandler(config: config, logger: logger)
        )
        watcher.start()

        // 6. Serve until drained.
        do {
            try server.run()
        } catch {
            Self.printError("milvus-guard: \(error)")
            throw ExitCode.failure
        }
    }

    /// What SIGHUP does. The reload hook: a later part re-reads `config.policiesPath`, builds a new
    /// rule set and hands it to the server; for now it only logs.
    static func reloadHandler(config: GuardConfig, logger: Logger) -> @Sendable () -> Void {
        let policiesPath = config.policiesPath
        return {
            logger.notice("reload requested", metadata: ["policies": "\(policiesPath)"])
        }
    }

    /// Writes one line to standard error.
    static func printError(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
