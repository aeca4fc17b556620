import ArgumentParser
import Foundation
import GuardCLI
import Logging
import ProxyCore
import Testing

@Suite("Command line")
struct GuardCommandTests {
    @Test("--version prints GuardVersion.current and exits 0")
    func version() {
        #expect(GuardVersion.current == "0.1.0")
        let error = #expect(throws: (any Error).self) { try GuardCommand.parseAsRoot(["--version"]) }
        guard let error else { return }
        #expect(GuardCommand.message(for: error) == GuardVersion.current)
        #expect(GuardCommand.exitCode(for: error) == .success)
    }

    @Test("The command is named milvus-guard and has serve")
    func names() {
        #expect(GuardCommand.configuration.commandName == "milvus-guard")
        #expect(GuardCommand.configuration.subcommands.contains { $0 == ServeCommand.self })
        #expect(ServeCommand.configuration.commandName == "serve")
    }

    @Test("serve parses its config path and every override")
    func serveFlags() throws {
        let command = try GuardCommand.parseAsRoot([
            "serve", "--config", "conf/guard.yaml", "--listen", "0.0.0.0:19531", "--upstream", "milvus:19530",
            "--threads", "4", "--log-level", "debug",
        ])
        let serve = try #require(command as? ServeCommand)
        #expect(serve.config == "conf/guard.yaml")
        #expect(
            serve.overrides
                == ConfigOverrides(listen: "0.0.0.0:19531", upstream: "milvus:19530", threads: "4", logLevel: "debug")
        )
    }

    @Test("serve without flags overrides nothing")
    func serveBare() throws {
        let serve = try #require(try GuardCommand.parseAsRoot(["serve"]) as? ServeCommand)
        #expect(serve.config == nil)
        #expect(serve.overrides == ConfigOverrides())
    }

    @Test(
        "Unknown flags are usage errors (exit 64), not config errors",
        arguments: [["serve", "--listne", "x"], ["serve", "--threads"]]
    )
    func usageErrors(arguments: [String]) {
        let error = #expect(throws: (any Error).self) { try GuardCommand.parseAsRoot(arguments) }
        guard let error else { return }
        #expect(GuardCommand.exitCode(for: error) == .validationFailure)
    }

    @Test("serve applies the flags on top of the file")
    func loadConfiguration() throws {
        let folder = try TemporaryFolder()
        try folder.write("guard.yaml", "threads: 2\nlog_level: error\n")
        let serve = try #require(
            try GuardCommand.parseAsRoot(["serve", "--threads", "5", "--listen", "127.0.0.1:7000"]) as? ServeCommand
        )
        let config = try serve.loadConfiguration(currentDirectory: folder.path)
        #expect(config.proxy.threads == 5)
        #expect(config.proxy.listen == .tcp(host: "127.0.0.1", port: 7_000))
        #expect(config.logLevel == .error)
        #expect(config.sourcePath == folder.file("guard.yaml"))
    }

    @Test("serve with a bad --threads throws a ConfigError for the flag")
    func badOverride() throws {
        let folder = try TemporaryFolder()
        let serve = try #require(try GuardCommand.parseAsRoot(["serve", "--threads", "0"]) as? ServeCommand)
        let error = #expect(throws: ConfigError.self) { try serve.loadConfiguration(currentDirectory: folder.path) }
        #expect(error?.description == "--threads: must be between 1 and 256, got 0")
    }

    @Test("serve with a bad config exits with code 2 and starts nothing")
    func badConfigExitCode() throws {
        let folder = try TemporaryFolder()
        let path = try folder.write("guard.yaml", "limits:\n  max_concurrent_streams: 0\n")
        let serve = try #require(try GuardCommand.parseAsRoot(["serve", "--config", path]) as? ServeCommand)
        let error = #expect(throws: ExitCode.self) { try serve.run() }
        #expect(error == ExitCode(2))
    }
}
