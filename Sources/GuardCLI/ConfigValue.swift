import Foundation
import Logging
import ProxyCore

/// What is wrong with one value, before the caller ties it to a key and a line (a file entry or a flag).
struct ValueProblem: Error, Equatable {
    /// Phrased to follow a key: `must be an integer, got "two"`.
    let message: String

    init(_ message: String) { self.message = message }
}

/// Parsers for the value syntaxes guard.yaml and the flags share: integers, durations, sizes, addresses,
/// log levels and paths. They take text and return a value or a ``ValueProblem``, so a file entry and a
/// command-line override are validated by the same code and read the same.
enum ConfigValue {
    /// A decimal integer (ASCII digits, no sign, underscores or hex) within `range`.
    static func integer(_ text: String, in range: ClosedRange<Int>) throws(ValueProblem) -> Int {
        guard let value = Self.digits(text) else {
            throw ValueProblem("must be an integer, got \(Self.quoted(text))")
        }
        guard range.contains(value) else {
            throw ValueProblem("must be between \(range.lowerBound) and \(range.upperBound), got \(text)")
        }
        return value
    }

    /// A duration in milliseconds: `500ms`, `30s`, `5m`, `1h`, or a bare integer meaning seconds.
    static func milliseconds(_ text: String, in range: ClosedRange<Int>) throws(ValueProblem) -> Int {
        let (number, unit) = Self.splitUnit(text)
        let scale: Int? =
            switch unit {
            case "ms": 1
            case "s", "": 1_000
            case "m": 60_000
            case "h": 3_600_000
            default: nil
            }
        guard let scale, let count = Self.digits(number) else {
            throw ValueProblem("must be a duration such as 500ms, 30s, 5m or 1h, got \(Self.quoted(text))")
        }
        let (value, overflow) = count.multipliedReportingOverflow(by: scale)
        guard !overflow, range.contains(value) else {
            throw ValueProblem(
                "must be between \(Self.formatDuration(range.lowerBound)) and "
                    + "\(Self.formatDuration(range.upperBound)), got \(text)"
            )
        }
        return value
    }

    /// A size in bytes: an integer, or one with a binary unit: `64KiB`, `16MiB`, `1GiB`.
    ///
    /// Decimal units (`KB`, `MB`) are refused rather than guessed at: 64KB and 64KiB differ.
    static func bytes(_ text: String, in range: ClosedRange<Int>) throws(ValueProblem) -> Int {
        let (number, unit) = Self.splitUnit(text)
        let scale: Int? =
            switch unit {
            case "": 1
            case "KiB": 1 << 10
            case "MiB": 1 << 20
            case "GiB": 1 << 30
            default: nil
            }
        guard let scale, let count = Self.digits(number) else {
            throw ValueProblem(
                "must be a size in bytes such as 65536, 64KiB, 16MiB or 1GiB, got \(Self.quoted(text))"
            )
        }
        let (value, overflow) = count.multipliedReportingOverflow(by: scale)
        guard !overflow, range.contains(value) else {
            throw ValueProblem(
                "must be between \(Self.formatBytes(range.lowerBound)) and "
                    + "\(Self.formatBytes(range.upperBound)), got \(text)"
            )
        }
        return value
    }

    /// Which end of the proxy an address is for; they accept different forms.
    enum AddressRole {
        /// `listen`: TCP only; port 0 picks a free port (ProxyServer logs the one it bound).
        case listen
        /// `upstream`: TCP or `unix:/path`; port 0 is refused (there is nothing to dial).
        case upstream
    }

    /// A socket address: `host:port` or `[v6]:port`, and `unix:/path` for the upstream.
    /// A relative Unix socket path is resolved against `baseDirectory`.
    static func address(
        _ text: String,
        for role: AddressRole,
        baseDirectory: String
    ) throws(ValueProblem) -> SocketAddress {
        let expected = role == .upstream ? "host:port, [v6]:port or unix:/path" : "host:port or [v6]:port"
        let lowestPort = role == .upstream ? 1 : 0
        if text.hasPrefix("unix:") {
            guard role == .upstream else {
                throw ValueProblem("must be \(expected) (the proxy listens on TCP), got \(Self.quoted(text))")
            }
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw ValueProblem("unix: needs a socket path, got \(Self.quoted(text))") }
            let resolved = Self.resolve(path, relativeTo: baseDirectory)
            guard resolved.utf8.count <= ConfigLimits.unixPathBytes,
                let address = SocketAddress(parsing: "unix:" + resolved)
            else {
                throw ValueProblem(
                    "unix socket path must be at most \(ConfigLimits.unixPathBytes) bytes, got \(resolved)"
                )
            }
            return address
        }
        guard let address = SocketAddress(parsing: text), case .tcp(let host, let port) = address else {
            // Say what is wrong with the port when the text otherwise has the right shape.
            if let colon = text.lastIndex(of: ":"), Self.digits(String(text[text.index(after: colon)...])) != nil {
                throw ValueProblem(
                    "port must be between \(lowestPort) and 65535, got \(text[text.index(after: colon)...])"
                )
            }
            throw ValueProblem("must be \(expected), got \(Self.quoted(text))")
        }
        guard Int(port) >= lowestPort else { throw ValueProblem("port must be between 1 and 65535, got 0") }
        guard !host.contains(where: \.isWhitespace) else {
            throw ValueProblem("must be \(expected), got \(Self.quoted(text))")
        }
        return address
    }

    /// One of swift-log's levels, by its lowercase name.
    static func logLevel(_ text: String) throws(ValueProblem) -> Logger.Level {
        guard let level = Logger.Level(rawValue: text) else {
            let names = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            throw ValueProblem("must be one of \(names), got \(Self.quoted(text))")
        }
        return level
    }

    /// A filesystem path, made absolute against `baseDirectory` (`..` and `.` removed). An absolute path
    /// is kept as it is apart from that clean-up.
    static func resolve(_ path: String, relativeTo baseDirectory: String) -> String {
        let base = URL(fileURLWithPath: baseDirectory, isDirectory: true)
        return URL(fileURLWithPath: path, relativeTo: base).standardizedFileURL.path
    }

    /// Checks that `path` names a readable regular file, so a TLS file problem is reported with its
    /// key at startup rather than as an OpenSSL error later.
    static func readableFile(_ path: String) throws(ValueProblem) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ValueProblem("cannot read \(path): no such file")
        }
        guard !isDirectory.boolValue else { throw ValueProblem("cannot read \(path): it is a directory") }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw ValueProblem("cannot read \(path): permission denied")
        }
    }

    /// `500ms`, `30s`, `5m`, `1h`: the largest unit that divides the value exactly.
    static func formatDuration(_ milliseconds: Int) -> String {
        if milliseconds == 0 { return "0s" }
        for (unit, scale) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000)] where milliseconds % scale == 0 {
            return "\(milliseconds / scale)\(unit)"
        }
        return "\(milliseconds)ms"
    }

    /// `1GiB`, `16MiB`, `64KiB`, or the plain number when no binary unit divides it.
    static func formatBytes(_ bytes: Int) -> String {
        if bytes == 0 { return "0" }
        for (unit, scale) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] where bytes % scale == 0 {
            return "\(bytes / scale)\(unit)"
        }
        return "\(bytes)"
    }

    /// The value of a non-empty run of ASCII digits; nil for anything else or on overflow.
    private static func digits(_ text: String) -> Int? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        return Int(text)
    }

    /// Splits `30s` into `("30", "s")`: the leading digits and whatever follows them.
    private static func splitUnit(_ text: String) -> (number: String, unit: String) {
        let end = text.firstIndex(where: { !("0"..."9").contains($0) }) ?? text.endIndex
        return (String(text[..<end]), String(text[end...]))
    }

    /// The text in double quotes, for messages that show what was read.
    static func quoted(_ text: String) -> String { "\"\(text)\"" }
}
