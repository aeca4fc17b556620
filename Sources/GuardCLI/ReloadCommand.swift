public import ArgumentParser
import Foundation
import Glibc
import GuardPolicy
import ProxyCore

/// `milvus-guard reload`: checks the policy folder, then asks the running `serve` (found by its pid file)
/// to reload it, as SIGHUP does. A policy with problems is reported and nothing is signalled.
///
/// Exit codes: 0 when the reload was requested; 1 when no running guard was found; 2 for a config or
/// policy that does not load.
public struct ReloadCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Reload the running guard's policies (like SIGHUP), after checking them.",
        discussion: """
            Finds the running guard through pid_file of the config (default guard.pid beside guard.yaml). \
            The guard itself loads the policy again and keeps the old one if the new one does not load; \
            its log says which.
            """
    )

    @Option(name: .long, help: ArgumentHelp("The config file (default: ./guard.yaml if present).", valueName: "path"))
    public var config: String?

    @Option(name: .long, help: ArgumentHelp("The pid file (default: pid_file of the config).", valueName: "path"))
    public var pidFile: String?

    public init() {}

    public func run() throws {
        let currentDirectory = FileManager.default.currentDirectoryPath
        let config: GuardConfig
        do {
            config = try GuardConfig.load(configPath: self.config, currentDirectory: currentDirectory)
        } catch let error as ConfigError {
            ServeCommand.printError(error.file == nil ? "milvus-guard: \(error)" : "\(error)")
            throw ExitCode(2)
        }
        do {
            _ = try ServeCommand.loadPolicy(config)
        } catch let error as GuardPolicyError {
            for problem in error.problems { ServeCommand.printError("\(problem)") }
            ServeCommand.printError("milvus-guard: the policy does not load; the running guard was not asked to reload")
            throw ExitCode(2)
        }
        // The TLS files are read again by the reload too (a new CRL, a renewed certificate).
        if let tls = config.proxy.tls {
            do {
                try ProxyServer.checkServerTLS(tls)
            } catch {
                ServeCommand.printError(
                    "milvus-guard: \(error); the TLS files do not load, the running guard was not asked to reload"
                )
                throw ExitCode(2)
            }
        }
        let pidPath = self.pidFile.map { ConfigValue.resolve($0, relativeTo: currentDirectory) } ?? config.pidFilePath
        guard let pid = Self.runningGuard(pidFile: pidPath) else {
            ServeCommand.printError("milvus-guard: no running milvus-guard found through \(pidPath)")
            throw ExitCode.failure
        }
        guard kill(pid, SIGHUP) == 0 else {
            ServeCommand.printError("milvus-guard: cannot signal process \(pid): \(String(cString: strerror(errno)))")
            throw ExitCode.failure
        }
        print("reload requested of milvus-guard (pid \(pid)); its log says whether the new policy is in force")
    }

    /// The pid in the file, if that process is a milvus-guard serving (a stale file must not make us signal a
    /// process that reused the number): its command line has `serve`, and its program is named milvus-guard or is
    /// this very binary (a renamed or versioned copy, `/opt/guard-1.4`, was not recognized before).
    static func runningGuard(pidFile: String) -> pid_t? {
        guard let data = FileManager.default.contents(atPath: pidFile),
            let text = String(data: data, encoding: .utf8),
            let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0,
            let commandLine = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
        else { return nil }
        let arguments = commandLine.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard let program = arguments.first, arguments.contains("serve") else { return nil }
        if program.hasSuffix("milvus-guard") { return pid }
        let ours = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let theirs = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
        guard let ours, ours == theirs else { return nil }
        return pid
    }
}
