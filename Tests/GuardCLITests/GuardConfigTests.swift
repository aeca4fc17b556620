import AuditStore
import Foundation
import Logging
import ProxyCore
import Testing

@testable import GuardCLI

@Suite("guard.yaml parsing")
struct GuardConfigTests {
    private func load(_ yaml: String, in folder: TemporaryFolder) throws -> GuardConfig {
        try folder.loadConfig(yaml)
    }

    private func failure(_ yaml: String, in folder: TemporaryFolder) throws -> String? {
        try folder.configFailure(yaml)
    }

    @Test("A reload names the changed settings it does not apply; mode and policies it applies are not named")
    func settingsNeedingRestart() throws {
        let folder = try TemporaryFolder()
        let started = try self.load("listen: 127.0.0.1:19531\nmode: enforce\n", in: folder)
        #expect(ServeCommand.settingsNeedingRestart(started: started, now: started).isEmpty)
        let applied = try self.load("listen: 127.0.0.1:19531\nmode: shadow\npolicies: other\n", in: folder)
        #expect(ServeCommand.settingsNeedingRestart(started: started, now: applied).isEmpty)
        try folder.write("c.pem", "certificate")
        try folder.write("k.pem", "key")
        let changed = try self.load(
            "listen: 127.0.0.1:19999\ntls: {cert: c.pem, key: k.pem}\nlimits: {idle_timeout: 1m}\nlog_level: debug\n",
            in: folder
        )
        #expect(
            ServeCommand.settingsNeedingRestart(started: started, now: changed) == [
                "listen", "tls", "limits", "log_level",
            ]
        )
    }

    @Test("An empty file gives the defaults, with paths beside the file", arguments: ["", "# only a comment\n", "~\n"])
    func emptyFile(yaml: String) throws {
        let folder = try TemporaryFolder()
        let config = try self.load(yaml, in: folder)
        #expect(config.proxy.listen == .tcp(host: "127.0.0.1", port: 19_531))
        #expect(config.proxy.upstream == UpstreamConfiguration(address: .tcp(host: "127.0.0.1", port: 19_530)))
        #expect(config.proxy.threads == GuardConfig.defaultThreads)
        #expect(config.proxy.tls == nil)
        #expect(config.proxy.limits == Limits())
        #expect(config.policiesPath == folder.file("policies"))
        #expect(config.storePath == folder.file("guard.db"))
        #expect(config.logLevel == .info)
        #expect(config.sourcePath == folder.file("guard.yaml"))
    }

    @Test("Without --config and without guard.yaml, the defaults apply beside the current folder")
    func noFile() throws {
        let folder = try TemporaryFolder()
        let config = try GuardConfig.load(configPath: nil, currentDirectory: folder.path)
        #expect(config == GuardConfig.defaults(baseDirectory: folder.path))
        #expect(config.sourcePath == nil)
        #expect(config.policiesPath == folder.file("policies"))
    }

    @Test("Without --config, guard.yaml in the current folder is read")
    func implicitFile() throws {
        let folder = try TemporaryFolder()
        try folder.write("guard.yaml", "threads: 3\n")
        let config = try GuardConfig.load(configPath: nil, currentDirectory: folder.path)
        #expect(config.proxy.threads == 3)
        #expect(config.sourcePath == folder.file("guard.yaml"))
    }

    @Test("Default thread count is one per core")
    func defaultThreads() {
        #expect(GuardConfig.defaultThreads == min(max(ProcessInfo.processInfo.activeProcessorCount, 1), 256))
    }

    @Test("Every key is read into the configuration")
    func everyKey() throws {
        let folder = try TemporaryFolder()
        for name in ["cert.pem", "key.pem", "clients.pem", "clients.crl", "milvus-ca.pem"] {
            try folder.write(name, "PEM")
        }
        let config = try self.load(
            """
            listen: "0.0.0.0:29531"
            upstream:
              address: "milvus:19530"
              tls: {ca: milvus-ca.pem, server_name: milvus.internal}
              max_connections: 4
              connect_timeout: 2500ms
              keepalive: 30s
              keepalive_timeout: 5s
              idle_timeout: 0
            policies: rules
            store: data/audit.db
            threads: 3
            tls: {cert: cert.pem, key: key.pem, client_ca: clients.pem, client_crl: clients.crl}
            limits:
              max_message_bytes: 64MiB
              max_concurrent_streams: 250
              max_header_list_bytes: 32KiB
              idle_timeout: 10m
              drain_timeout: 45
              stream_window_bytes: 2MiB
              connection_window_bytes: 33554432
            log_level: debug
            """,
            in: folder
        )
        var limits = Limits()
        limits.maxMessageBytes = 64 << 20
        limits.maxConcurrentStreams = 250
        limits.maxHeaderListBytes = 32 << 10
        limits.idleTimeoutMilliseconds = 600_000
        limits.drainTimeoutMilliseconds = 45_000
        limits.streamWindowBytes = 2 << 20
        limits.connectionWindowBytes = 32 << 20
        let expected = ProxyConfiguration(
            listen: .tcp(host: "0.0.0.0", port: 29_531),
            upstream: UpstreamConfiguration(
                address: .tcp(host: "milvus", port: 19_530),
                tls: ClientTLSConfiguration(caPath: folder.file("milvus-ca.pem"), serverName: "milvus.internal"),
                maxConnectionsPerLoop: 4,
                connectTimeoutMilliseconds: 2_500,
                keepaliveMilliseconds: 30_000,
                keepaliveTimeoutMilliseconds: 5_000,
                idleTimeoutMilliseconds: 0
            ),
            threads: 3,
            tls: ServerTLSConfiguration(
                certificatePath: folder.file("cert.pem"),
                keyPath: folder.file("key.pem"),
                clientCAPath: folder.file("clients.pem"),
                clientCRLPath: folder.file("clients.crl")
            ),
            limits: limits
        )
        #expect(config.proxy == expected)
        #expect(config.policiesPath == folder.file("rules"))
        #expect(config.storePath == folder.file("data/audit.db"))
        #expect(config.logLevel == .debug)
    }

    @Test("guard.yaml.example at the repository root parses to the defaults")
    func example() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let config = try GuardConfig.load(configPath: "guard.yaml.example", currentDirectory: root.path)
        var expected = GuardConfig.defaults(baseDirectory: root.standardizedFileURL.path)
        expected.sourcePath = config.sourcePath
        #expect(config == expected)
    }

    @Test("Limits left out keep their defaults")
    func partialLimits() throws {
        let folder = try TemporaryFolder()
        let config = try self.load("limits:\n  idle_timeout: 1h\n  request_timeout: 0\n", in: folder)
        var expected = Limits()
        expected.idleTimeoutMilliseconds = 3_600_000
        expected.requestTimeoutMilliseconds = 0
        #expect(config.proxy.limits == expected)
    }

    @Test(
        "The upstream may be an address, a Unix socket or a mapping",
        arguments: [
            ("upstream: \"10.0.0.5:19530\"", "10.0.0.5:19530", false),
            ("upstream: \"[::1]:19530\"", "[::1]:19530", false),
            ("upstream: unix:/run/milvus.sock", "unix:/run/milvus.sock", false),
            ("upstream: {address: \"milvus:19530\", tls: true}", "milvus:19530", true),
            ("upstream: {address: \"milvus:19530\", tls: false}", "milvus:19530", false),
        ]
    )
    func upstreamForms(yaml: String, address: String, tls: Bool) throws {
        let folder = try TemporaryFolder()
        let config = try self.load(yaml, in: folder)
        #expect(config.proxy.upstream.address.description == address)
        #expect((config.proxy.upstream.tls != nil) == tls)
        #expect(config.proxy.upstream.maxConnectionsPerLoop == 8)
        #expect(config.proxy.upstream.connectTimeoutMilliseconds == 5_000)
    }

    @Test("Relative paths are resolved against the config file's folder, not the current one")
    func relativePaths() throws {
        let folder = try TemporaryFolder()
        try folder.write("etc/certs/cert.pem", "PEM")
        try folder.write("etc/certs/key.pem", "PEM")
        try folder.write(
            "etc/guard.yaml",
            """
            upstream: unix:run/milvus.sock
            policies: ../shared/policies
            store: /var/lib/milvus-guard/guard.db
            tls: {cert: certs/cert.pem, key: ./certs/key.pem}
            """
        )
        let config = try GuardConfig.load(configPath: "etc/guard.yaml", currentDirectory: folder.path)
        #expect(config.proxy.upstream.address == .unix(path: folder.file("etc/run/milvus.sock")))
        #expect(config.policiesPath == folder.file("shared/policies"))
        #expect(config.storePath == "/var/lib/milvus-guard/guard.db")
        #expect(config.proxy.tls?.certificatePath == folder.file("etc/certs/cert.pem"))
        #expect(config.proxy.tls?.keyPath == folder.file("etc/certs/key.pem"))
        #expect(config.proxy.tls?.clientCAPath == nil)
        #expect(config.sourcePath == folder.file("etc/guard.yaml"))
        // Defaults follow the file too.
        let defaults = try GuardConfig.load(file: "etc/guard.yaml", currentDirectory: folder.path)
        #expect(defaults.proxy.upstream == config.proxy.upstream)
    }

    @Test("Default policies and store sit beside a config file in another folder")
    func defaultsBesideFile() throws {
        let folder = try TemporaryFolder()
        try folder.write("conf/guard.yaml", "threads: 1\n")
        let config = try GuardConfig.load(configPath: folder.file("conf/guard.yaml"), currentDirectory: "/")
        #expect(config.policiesPath == folder.file("conf/policies"))
        #expect(config.storePath == folder.file("conf/guard.db"))
    }

    @Test(
        "Bad values are reported with their line and dotted key",
        arguments: [
            (
                "listen: \"127.0.0.1:19531\"\nthreads: 2\nlimits:\n  max_concurrent_streams: 0\n",
                "guard.yaml:4: limits.max_concurrent_streams: must be between 1 and 2147483647, got 0"
            ),
            ("threads: 0", "guard.yaml:1: threads: must be between 1 and 256, got 0"),
            ("\n\nthreads: 257", "guard.yaml:3: threads: must be between 1 and 256, got 257"),
            ("threads: two", "guard.yaml:1: threads: must be an integer, got \"two\""),
            ("threads: 2.5", "guard.yaml:1: threads: must be an integer, got \"2.5\""),
            ("threads: {n: 2}", "guard.yaml:1: threads: must be a single value, got a mapping"),
            ("threads:", "guard.yaml:1: threads: needs a value"),
            ("upstream: \"127.0.0.1:0\"", "guard.yaml:1: upstream: port must be between 1 and 65535, got 0"),
            ("listen: \"127.0.0.1:65536\"", "guard.yaml:1: listen: port must be between 0 and 65535, got 65536"),
            ("listen: localhost", "guard.yaml:1: listen: must be host:port or [v6]:port, got \"localhost\""),
            (
                "listen: unix:/tmp/g.sock",
                "guard.yaml:1: listen: must be host:port or [v6]:port (the proxy listens on TCP), got \"unix:/tmp/g.sock\""
            ),
            (
                "upstream: milvus",
                "guard.yaml:1: upstream: must be host:port, [v6]:port or unix:/path, got \"milvus\""
            ),
            (
                "upstream:\n  tls: true\n",
                "guard.yaml:1: upstream.address: is required when upstream is a mapping"
            ),
            (
                "upstream:\n  address: \"m:1\"\n  max_connections: 0\n",
                "guard.yaml:3: upstream.max_connections: must be between 1 and 256, got 0"
            ),
            (
                "upstream:\n  address: \"m:1\"\n  connect_timeout: 5\n  tls: yes please\n",
                "guard.yaml:4: upstream.tls: must be true, false or a mapping, got \"yes please\""
            ),
            (
                "upstream: {address: \"m:1\", connect_timeout: 1ms}",
                "guard.yaml:1: upstream.connect_timeout: must be between 10ms and 10m, got 1ms"
            ),
            (
                "upstream: {address: \"m:1\", keepalive_timeout: 0}",
                "guard.yaml:1: upstream.keepalive_timeout: must be between 1s and 10m, got 0"
            ),
            (
                "upstream: {address: \"m:1\", keepalive: 2h}",
                "guard.yaml:1: upstream.keepalive: must be between 0s and 1h, got 2h"
            ),
            ("store: \"\"", "guard.yaml:1: store: must not be empty"),
            ("policies: [a, b]", "guard.yaml:1: policies: must be a single value, got a list"),
            (
                "log_level: verbose",
                "guard.yaml:1: log_level: must be one of trace, debug, info, notice, warning, error, critical, got \"verbose\""
            ),
            ("limits: 5", "guard.yaml:1: limits: must be a mapping of keys to values, got \"5\""),
            ("tls: true", "guard.yaml:1: tls: must be a mapping of keys to values, got \"true\""),
            ("- listen", "guard.yaml:1: must be a mapping of keys to values, got a list"),
        ]
    )
    func badValues(yaml: String, message: String) throws {
        #expect(try self.failure(yaml, in: TemporaryFolder()) == message)
    }

    @Test(
        "Limits are range-checked",
        arguments: [
            ("max_message_bytes: 512", "limits.max_message_bytes: must be between 1KiB and 2GiB, got 512"),
            ("max_message_bytes: 3GiB", "limits.max_message_bytes: must be between 1KiB and 2GiB, got 3GiB"),
            (
                "max_message_bytes: 64KB",
                "limits.max_message_bytes: must be a size in bytes such as 65536, 64KiB, 16MiB or 1GiB, got \"64KB\""
            ),
            (
                "max_concurrent_streams: 2147483648",
                "limits.max_concurrent_streams: must be between 1 and 2147483647, got 2147483648"
            ),
            ("max_header_list_bytes: 32MiB", "limits.max_header_list_bytes: must be between 1KiB and 16MiB, got 32MiB"),
            ("idle_timeout: 0", "limits.idle_timeout: must be between 1s and 24h, got 0"),
            (
                "idle_timeout: 5 minutes",
                "limits.idle_timeout: must be a duration such as 500ms, 30s, 5m or 1h, got \"5 minutes\""
            ),
            ("drain_timeout: 2h", "limits.drain_timeout: must be between 0s and 1h, got 2h"),
            ("request_timeout: 25h", "limits.request_timeout: must be between 0s and 24h, got 25h"),
            (
                "stream_window_bytes: 65534",
                "limits.stream_window_bytes: must be between 65535 and 2147483647, got 65534"
            ),
            (
                "connection_window_bytes: 2GiB",
                "limits.connection_window_bytes: must be between 65535 and 2147483647, got 2GiB"
            ),
        ]
    )
    func limitRanges(line: String, message: String) throws {
        let yaml = "threads: 1\nlog_level: info\nlimits:\n  \(line)\n"
        #expect(try self.failure(yaml, in: TemporaryFolder()) == "guard.yaml:4: \(message)")
    }

    @Test(
        "Unknown keys are errors, with a suggestion for a typo",
        arguments: [
            ("threads: 2\nlisten_addr: \"a:1\"\n", "guard.yaml:2: listen_addr: unknown key (did you mean listen?)"),
            ("Threads: 2\n", "guard.yaml:1: Threads: unknown key (did you mean threads?)"),
            (
                "limits:\n  idle_timeout: 5m\n  max_concurent_streams: 10\n",
                "guard.yaml:3: limits.max_concurent_streams: unknown key (did you mean max_concurrent_streams?)"
            ),
            (
                "tls:\n  certificate: c.pem\n",
                "guard.yaml:2: tls.certificate: unknown key (did you mean cert?)"
            ),
            (
                "tls:\n  chain: c.pem\n",
                "guard.yaml:2: tls.chain: unknown key (expected one of cert, key, client_ca, client_crl)"
            ),
            (
                "upstream:\n  address: \"m:1\"\n  tls: {ca_file: x}\n",
                "guard.yaml:3: upstream.tls.ca_file: unknown key (did you mean ca?)"
            ),
            (
                "metrics: true\n",
                "guard.yaml:1: metrics: unknown key (expected one of listen, upstream, policies, mode, store, audit, admin, threads, tls, limits, log_level, pid_file)"
            ),
        ]
    )
    func unknownKeys(yaml: String, message: String) throws {
        #expect(try self.failure(yaml, in: TemporaryFolder()) == message)
    }

    @Test("The first problem in file order is the one reported")
    func firstProblemWins() throws {
        let message = try self.failure("threads: 0\nlistne: x\n", in: TemporaryFolder())
        #expect(message == "guard.yaml:1: threads: must be between 1 and 256, got 0")
    }

    @Test(
        "YAML syntax errors carry their line",
        arguments: [
            ("threads: 2\nlisten: \"127.0.0.1:1\n", 3),
            ("threads: 2\nlimits:\n  idle_timeout: 5m\n   drain_timeout: 1s\n", 4),
            ("threads: 2\nlimits: [1, 2\n", 3),
            ("threads: 2\n\tlisten: x\n", 2),
        ]
    )
    func syntaxErrors(yaml: String, line: Int) throws {
        let message = try #require(try self.failure(yaml, in: TemporaryFolder()))
        #expect(message.hasPrefix("guard.yaml:\(line): YAML syntax error: "), "\(message)")
    }

    @Test("A key given twice is an error")
    func duplicateKey() throws {
        let message = try self.failure("threads: 2\nlisten: \"a:1\"\nthreads: 3\n", in: TemporaryFolder())
        #expect(message == "guard.yaml:1: threads: appears more than once in the same mapping")
    }

    @Test("TLS files must exist; the error names the key and the resolved path")
    func missingTLSFiles() throws {
        let folder = try TemporaryFolder()
        try folder.write("cert.pem", "PEM")
        try FileManager.default.createDirectory(atPath: folder.file("ca"), withIntermediateDirectories: true)
        #expect(
            try self.failure("tls:\n  cert: cert.pem\n  key: missing.pem\n", in: folder)
                == "guard.yaml:3: tls.key: cannot read \(folder.file("missing.pem")): no such file"
        )
        #expect(
            try self.failure("tls: {cert: cert.pem, key: cert.pem, client_ca: ca}\n", in: folder)
                == "guard.yaml:1: tls.client_ca: cannot read \(folder.file("ca")): it is a directory"
        )
        #expect(
            try self.failure("tls:\n  cert: cert.pem\n  key: cert.pem\n  client_crl: cert.pem\n", in: folder)
                == "guard.yaml:4: tls.client_crl: needs client_ca: it revokes client certificates, which only "
                + "client_ca asks for"
        )
        #expect(
            try self.failure("upstream:\n  address: \"m:1\"\n  tls:\n    ca: nope.pem\n", in: folder)
                == "guard.yaml:4: upstream.tls.ca: cannot read \(folder.file("nope.pem")): no such file"
        )
        #expect(
            try self.failure("\ntls:\n  cert: cert.pem\n", in: folder)
                == "guard.yaml:2: tls.key: is required"
        )
        #expect(try self.failure("tls: {key: cert.pem}\n", in: folder) == "guard.yaml:1: tls.cert: is required")
    }

    @Test("A missing --config file is an error without a line")
    func missingFile() throws {
        let folder = try TemporaryFolder()
        let error = #expect(throws: ConfigError.self) {
            try GuardConfig.load(configPath: "other.yaml", currentDirectory: folder.path)
        }
        #expect(error?.description == "other.yaml: cannot read the config file: no such file")
        #expect(error?.line == nil)
    }

    @Test("Overrides replace the file's values; --upstream keeps the file's upstream options")
    func overrides() throws {
        let folder = try TemporaryFolder()
        var config = try self.load(
            "threads: 2\nlog_level: warning\nupstream: {address: \"m:1\", tls: true, max_connections: 2}\n",
            in: folder
        )
        try config.apply(
            ConfigOverrides(listen: "0.0.0.0:9000", upstream: "unix:milvus.sock", threads: "7", logLevel: "trace"),
            currentDirectory: "/run"
        )
        #expect(config.proxy.listen == .tcp(host: "0.0.0.0", port: 9_000))
        #expect(config.proxy.upstream.address == .unix(path: "/run/milvus.sock"))
        #expect(config.proxy.upstream.tls == ClientTLSConfiguration())
        #expect(config.proxy.upstream.maxConnectionsPerLoop == 2)
        #expect(config.proxy.threads == 7)
        #expect(config.logLevel == .trace)
    }

    @Test("No overrides change nothing")
    func emptyOverrides() throws {
        let folder = try TemporaryFolder()
        var config = try self.load("threads: 2\n", in: folder)
        let before = config
        try config.apply(ConfigOverrides(), currentDirectory: folder.path)
        #expect(config == before)
    }

    @Test(
        "Bad overrides are validated like the file and named by their flag",
        arguments: [
            (ConfigOverrides(threads: "0"), "--threads: must be between 1 and 256, got 0"),
            (ConfigOverrides(threads: "many"), "--threads: must be an integer, got \"many\""),
            (ConfigOverrides(listen: "127.0.0.1:99999"), "--listen: port must be between 0 and 65535, got 99999"),
            (
                ConfigOverrides(upstream: "milvus"),
                "--upstream: must be host:port, [v6]:port or unix:/path, got \"milvus\""
            ),
            (
                ConfigOverrides(logLevel: "loud"),
                "--log-level: must be one of trace, debug, info, notice, warning, error, critical, got \"loud\""
            ),
        ]
    )
    func badOverrides(overrides: ConfigOverrides, message: String) {
        var config = GuardConfig.defaults(baseDirectory: "/")
        let error = #expect(throws: ConfigError.self) { try config.apply(overrides, currentDirectory: "/") }
        #expect(error?.description == message)
        #expect(error?.file == nil)
    }
}

@Suite("guard.yaml audit section")
struct AuditConfigTests {
    private func load(_ yaml: String) throws -> GuardConfig {
        let folder = try TemporaryFolder()
        try folder.write("guard.yaml", yaml)
        return try GuardConfig.load(configPath: "guard.yaml", currentDirectory: folder.path)
    }

    @Test("Without an audit section, reads are not recorded and commits are fully synced")
    func defaults() throws {
        #expect(try self.load("threads: 2\n").audit == AuditSettings(reads: false, synchronous: .full))
    }

    @Test("audit.reads and audit.sync are read")
    func values() throws {
        #expect(
            try self.load("audit:\n  reads: true\n  sync: normal\n").audit
                == AuditSettings(reads: true, synchronous: .normal)
        )
        #expect(try self.load("audit: {sync: full}\n").audit == AuditSettings(reads: false, synchronous: .full))
        let tuned = try self.load("audit: {commit_delay: 5ms, commit_siblings: 32}\n").audit
        #expect(tuned.commitDelayMilliseconds == 5 && tuned.commitSiblings == 32)
        #expect(tuned.storeOptions.commitDelayMilliseconds == 5 && tuned.storeOptions.commitSiblings == 32)
        #expect(try self.load("audit: {commit_delay: 0}\n").audit.commitDelayMilliseconds == 0)
    }

    @Test(
        "Bad audit values are located at their line",
        arguments: [
            ("audit:\n  reads: maybe\n", "guard.yaml:2: audit.reads: must be true or false, got \"maybe\""),
            ("audit:\n  sync: off\n", "guard.yaml:2: audit.sync: must be full or normal, got \"off\""),
            ("threads: 1\naudit:\n  read: true\n", "guard.yaml:3: audit.read: unknown key (did you mean reads?)"),
            ("audit: yes\n", "guard.yaml:1: audit: must be a mapping of keys to values, got \"yes\""),
            ("audit:\n  commit_delay: 1s\n", "guard.yaml:2: audit.commit_delay: must be between 0s and 100ms, got 1s"),
            (
                "audit:\n  commit_siblings: 0\n",
                "guard.yaml:2: audit.commit_siblings: must be between 1 and 1000000, got 0"
            ),
        ]
    )
    func errors(yaml: String, message: String) throws {
        let folder = try TemporaryFolder()
        try folder.write("guard.yaml", yaml)
        let error = #expect(throws: ConfigError.self) {
            try GuardConfig.load(configPath: "guard.yaml", currentDirectory: folder.path)
        }
        #expect(error?.description == message)
    }
}
