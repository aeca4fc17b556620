import NGHTTP2Support

/// gRPC status codes (grpc/grpc doc/statuscodes.md).
public enum GRPCStatusCode: Int, Sendable, CaseIterable {
    case ok = 0
    case cancelled = 1
    case unknown = 2
    case invalidArgument = 3
    case deadlineExceeded = 4
    case notFound = 5
    case alreadyExists = 6
    case permissionDenied = 7
    case resourceExhausted = 8
    case failedPrecondition = 9
    case aborted = 10
    case outOfRange = 11
    case unimplemented = 12
    case `internal` = 13
    case unavailable = 14
    case dataLoss = 15
    case unauthenticated = 16
}

/// A status the proxy itself answers with. Every message starts with `milvus-guard:` so that users can
/// tell the guard's refusals from Milvus's own errors.
///
/// pymilvus retries every code but DEADLINE_EXCEEDED, PERMISSION_DENIED, UNAUTHENTICATED,
/// INVALID_ARGUMENT, ALREADY_EXISTS, RESOURCE_EXHAUSTED and UNIMPLEMENTED up to 75 times, so a refusal
/// that retrying can't cure uses one of those; only transient upstream trouble uses UNAVAILABLE.
public struct GRPCStatus: Sendable, Hashable, CustomStringConvertible {
    public var code: GRPCStatusCode
    public var message: String

    /// - Parameter detail: the message after the `milvus-guard: ` prefix.
    public init(_ code: GRPCStatusCode, _ detail: String) {
        self.code = code
        self.message = "milvus-guard: \(detail)"
    }

    public var description: String { "\(self.code) (\(self.code.rawValue)): \(self.message)" }

    /// A trailers-only response (gRPC PROTOCOL-HTTP2.md): one HEADERS frame with END_STREAM carrying
    /// the HTTP status, the content type and the gRPC status.
    var trailersOnlyHeaders: [HeaderField] {
        [
            HeaderField(":status", "200"),
            HeaderField("content-type", "application/grpc"),
            HeaderField("grpc-status", String(self.code.rawValue)),
            HeaderField("grpc-message", Self.percentEncoded(self.message)),
        ]
    }

    /// The same status as trailers after a response that already started.
    var trailers: [HeaderField] {
        [
            HeaderField("grpc-status", String(self.code.rawValue)),
            HeaderField("grpc-message", Self.percentEncoded(self.message)),
        ]
    }

    /// Decodes a percent-encoded grpc-message value; malformed escapes are kept as they are.
    static func percentDecoded(_ text: String) -> String {
        guard text.utf8.contains(0x25) else { return text }
        let input = Array(text.utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(input.count)
        var index = 0
        func hexValue(_ byte: UInt8) -> UInt8? {
            switch byte {
            case 0x30...0x39: byte - 0x30
            case 0x41...0x46: byte - 0x37
            case 0x61...0x66: byte - 0x57
            default: nil
            }
        }
        while index < input.count {
            if input[index] == 0x25, index + 2 < input.count, let high = hexValue(input[index + 1]),
                let low = hexValue(input[index + 2])
            {
                bytes.append(high << 4 | low)
                index += 3
            } else {
                bytes.append(input[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Percent-encodes a grpc-message value: bytes outside printable ASCII (0x20–0x7E) and `%`
    /// itself become `%XX` of their UTF-8 bytes (gRPC PROTOCOL-HTTP2.md, "Responses").
    static func percentEncoded(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        let hex = Array("0123456789ABCDEF".utf8)
        var bytes: [UInt8] = []
        for byte in text.utf8 {
            if byte >= 0x20 && byte <= 0x7E && byte != 0x25 {
                bytes.append(byte)
            } else {
                bytes.append(0x25)
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0xF)])
            }
        }
        out = String(decoding: bytes, as: UTF8.self)
        return out
    }
}

/// Parses a `grpc-timeout` value (PROTOCOL-HTTP2.md: up to 8 digits and a unit H, M, S, m, u or n)
/// into milliseconds, rounding up; nil when malformed.
func parseGRPCTimeout(_ value: String) -> Int? {
    let utf8 = Array(value.utf8)
    guard utf8.count >= 2, utf8.count <= 9, let unit = utf8.last else { return nil }
    var amount = 0
    for digit in utf8.dropLast() {
        guard digit >= 0x30 && digit <= 0x39 else { return nil }
        amount = amount * 10 + Int(digit - 0x30)
    }
    switch unit {
    case UInt8(ascii: "H"): return amount * 3_600_000
    case UInt8(ascii: "M"): return amount * 60_000
    case UInt8(ascii: "S"): return amount * 1000
    case UInt8(ascii: "m"): return amount
    case UInt8(ascii: "u"): return (amount + 999) / 1000
    case UInt8(ascii: "n"): return (amount + 999_999) / 1_000_000
    default: return nil
    }
}

/// Header fields that describe one hop, never forwarded (RFC 9113 §8.2.2).
func isHopByHop(_ name: String) -> Bool {
    // Most names are rejected by their length alone (this runs for every header of every call).
    switch name.utf8.count {
    case 4, 7, 10, 16, 17: break
    default: return false
    }
    switch name {
    case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host": return true
    default: return false
    }
}

/// The fields without hop-by-hop ones; the same array (no copy) when there are none, as is usual.
func withoutHopByHop(_ fields: [HeaderField]) -> [HeaderField] {
    guard fields.contains(where: { isHopByHop($0.name) }) else { return fields }
    return fields.filter { !isHopByHop($0.name) }
}
