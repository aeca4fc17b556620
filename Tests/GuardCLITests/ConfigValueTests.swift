import Logging
import ProxyCore
import Testing

@testable import GuardCLI

@Suite("Config value syntax")
struct ConfigValueTests {
    @Test(
        "Durations accept ms, s, m, h and bare seconds",
        arguments: [
            ("500ms", 500), ("30s", 30_000), ("5m", 300_000), ("1h", 3_600_000), ("45", 45_000), ("0s", 0),
        ]
    )
    func durations(text: String, milliseconds: Int) throws {
        #expect(try ConfigValue.milliseconds(text, in: 0...Int.max) == milliseconds)
    }

    @Test("Malformed durations are refused", arguments: ["", "5 m", "5min", "1.5s", "-1s", "s", "1d", "5M"])
    func badDurations(text: String) {
        let error = #expect(throws: ValueProblem.self) { try ConfigValue.milliseconds(text, in: 0...Int.max) }
        #expect(error?.message == "must be a duration such as 500ms, 30s, 5m or 1h, got \"\(text)\"")
    }

    @Test(
        "Sizes accept integers and KiB, MiB, GiB",
        arguments: [
            ("65536", 65_536), ("64KiB", 65_536), ("16MiB", 16_777_216), ("512MiB", 536_870_912),
            ("1GiB", 1_073_741_824),
        ]
    )
    func sizes(text: String, bytes: Int) throws {
        #expect(try ConfigValue.bytes(text, in: 0...Int.max) == bytes)
    }

    @Test("Decimal and malformed sizes are refused", arguments: ["64KB", "64k", "1.5GiB", "GiB", "-1", "1_024", " 1"])
    func badSizes(text: String) {
        let error = #expect(throws: ValueProblem.self) { try ConfigValue.bytes(text, in: 0...Int.max) }
        #expect(error?.message == "must be a size in bytes such as 65536, 64KiB, 16MiB or 1GiB, got \"\(text)\"")
    }

    @Test("A size that overflows is out of range, not a crash")
    func sizeOverflow() {
        let error = #expect(throws: ValueProblem.self) {
            try ConfigValue.bytes("99999999999999999GiB", in: ConfigLimits.maxMessageBytes)
        }
        #expect(error?.message == "must be between 1KiB and 2GiB, got 99999999999999999GiB")
    }

    @Test(
        "Ranges are shown in the largest exact unit",
        arguments: [(0, "0s"), (500, "500ms"), (1_000, "1s"), (90_000, "90s"), (300_000, "5m"), (86_400_000, "24h")]
    )
    func formatDuration(milliseconds: Int, text: String) {
        #expect(ConfigValue.formatDuration(milliseconds) == text)
    }

    @Test(
        "Sizes are shown in the largest exact unit",
        arguments: [(65_535, "65535"), (1_024, "1KiB"), (16 << 20, "16MiB"), (2 << 30, "2GiB")]
    )
    func formatBytes(bytes: Int, text: String) {
        #expect(ConfigValue.formatBytes(bytes) == text)
    }

    @Test(
        "Addresses parse as TCP or, for the upstream, Unix sockets",
        arguments: [
            ("127.0.0.1:19530", "127.0.0.1:19530"), ("milvus:19530", "milvus:19530"), ("[::1]:19530", "[::1]:19530"),
            ("unix:/run/milvus.sock", "unix:/run/milvus.sock"), ("unix:milvus.sock", "unix:/base/milvus.sock"),
        ]
    )
    func addresses(text: String, parsed: String) throws {
        let address = try ConfigValue.address(text, for: .upstream, baseDirectory: "/base")
        #expect(address.description == parsed)
    }

    @Test(
        "Bad addresses say what is wrong",
        arguments: [
            ("127.0.0.1", "must be host:port, [v6]:port or unix:/path, got \"127.0.0.1\""),
            ("127.0.0.1:0", "port must be between 1 and 65535, got 0"),
            ("127.0.0.1:70000", "port must be between 1 and 65535, got 70000"),
            ("[::1]:99999", "port must be between 1 and 65535, got 99999"),
            ("host:port", "must be host:port, [v6]:port or unix:/path, got \"host:port\""),
            ("unix:", "unix: needs a socket path, got \"unix:\""),
            (
                "unix:/" + String(repeating: "a", count: 120),
                "unix socket path must be at most 107 bytes, got /" + String(repeating: "a", count: 120)
            ),
        ]
    )
    func badAddresses(text: String, message: String) {
        let error = #expect(throws: ValueProblem.self) {
            try ConfigValue.address(text, for: .upstream, baseDirectory: "/base")
        }
        #expect(error?.message == message)
    }

    @Test("The listen address may use port 0 (a free port); the upstream may not")
    func portZero() throws {
        #expect(
            try ConfigValue.address("127.0.0.1:0", for: .listen, baseDirectory: "/") == .tcp(host: "127.0.0.1", port: 0)
        )
        let error = #expect(throws: ValueProblem.self) {
            try ConfigValue.address("127.0.0.1:0", for: .upstream, baseDirectory: "/")
        }
        #expect(error?.message == "port must be between 1 and 65535, got 0")
        let tooHigh = #expect(throws: ValueProblem.self) {
            try ConfigValue.address("127.0.0.1:65536", for: .listen, baseDirectory: "/")
        }
        #expect(tooHigh?.message == "port must be between 0 and 65535, got 65536")
    }

    @Test("The listen address must be TCP")
    func listenIsTCP() {
        let error = #expect(throws: ValueProblem.self) {
            try ConfigValue.address("unix:/tmp/guard.sock", for: .listen, baseDirectory: "/")
        }
        #expect(
            error?.message
                == "must be host:port or [v6]:port (the proxy listens on TCP), got \"unix:/tmp/guard.sock\""
        )
    }

    @Test(
        "Every swift-log level name is accepted",
        arguments: ["trace", "debug", "info", "notice", "warning", "error", "critical"]
    )
    func logLevels(name: String) throws {
        #expect(try ConfigValue.logLevel(name).rawValue == name)
    }

    @Test("Relative paths resolve against the base folder; absolute paths stay")
    func paths() {
        #expect(ConfigValue.resolve("policies", relativeTo: "/etc/guard") == "/etc/guard/policies")
        #expect(ConfigValue.resolve("../shared/p", relativeTo: "/etc/guard") == "/etc/shared/p")
        #expect(ConfigValue.resolve("./certs/a.pem", relativeTo: "/etc/guard/") == "/etc/guard/certs/a.pem")
        #expect(ConfigValue.resolve("/var/lib/guard.db", relativeTo: "/etc/guard") == "/var/lib/guard.db")
    }
}
