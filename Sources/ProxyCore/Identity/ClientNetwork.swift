import AuditStore
import Glibc

/// The network a client address belongs to, as the verifier's turns count them: an IPv4 /24 or an IPv6 /64, which
/// one party usually holds whole. Taking turns per address let an attacker with many addresses (all of 127.0.0.0/8
/// locally, a /64 from any IPv6 provider) queue a check per address, and a real user waited 41 s behind 300 of them.
enum ClientNetwork {
    /// `a.b.c` for an IPv4 address (an IPv4-mapped IPv6 one too), `v6:` and the first 16 hex digits for IPv6, the
    /// text itself otherwise (`unix`, or something unparsable).
    static func of(_ host: String) -> String {
        var text = host
        if text.hasPrefix("["), text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return Self.network(ofIPv4: withUnsafeBytes(of: &v4) { Array($0) })
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return host }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            return Self.network(ofIPv4: Array(bytes[12..<16]))
        }
        return "v6:" + Hex.encode(bytes[0..<8])
    }

    private static func network(ofIPv4 bytes: [UInt8]) -> String {
        bytes[0..<3].map { String($0) }.joined(separator: ".")
    }
}
