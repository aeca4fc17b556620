import Testing

@testable import ProxyCore

@Suite("SocketAddress(parsing:)")
struct SocketAddressTests {
    @Test(
        "Valid addresses parse and print back the same",
        arguments: [
            ("127.0.0.1:19530", SocketAddress.tcp(host: "127.0.0.1", port: 19530)),
            ("localhost:0", .tcp(host: "localhost", port: 0)),
            ("milvus.internal:65535", .tcp(host: "milvus.internal", port: 65535)),
            ("[::1]:8080", .tcp(host: "::1", port: 8080)),
            ("[fe80::1%eth0]:19530", .tcp(host: "fe80::1%eth0", port: 19530)),
            ("0.0.0.0:1", .tcp(host: "0.0.0.0", port: 1)),
            ("unix:/tmp/milvus.sock", .unix(path: "/tmp/milvus.sock")),
            ("unix:relative.sock", .unix(path: "relative.sock")),
        ] as [(String, SocketAddress)]
    )
    func valid(text: String, address: SocketAddress) {
        #expect(SocketAddress(parsing: text) == address)
        #expect(address.description == text)
    }

    @Test(
        "Malformed addresses are rejected",
        arguments: [
            "", "127.0.0.1", ":80", "host:", "host:65536", "host:-1", "host:80x", "host:8 0", "::1:80", "[::1]",
            "[::1]80", "[::1", "[]:80", "unix:", "host:99999999999999999999",
            "unix:/" + String(repeating: "a", count: 107),
        ]
    )
    func malformed(text: String) {
        #expect(SocketAddress(parsing: text) == nil)
    }

    @Test(
        "Loopback addresses: only this machine reaches them (the admin listener warns otherwise)",
        arguments: [
            ("127.0.0.1:1", true), ("127.1.2.3:1", true), ("localhost:1", true), ("[::1]:1", true),
            ("unix:/run/g.sock", true), ("0.0.0.0:1", false), ("10.0.0.7:1", false), ("[::]:1", false),
            ("127.0.0.1.example.com:1", false), ("127.0.0.256:1", false), ("127.0.0:1", false), ("127.a.0.1:1", false),
            ("admin.internal:1", false), ("128.0.0.1:1", false),
        ]
    )
    func loopback(text: String, loopback: Bool) throws {
        #expect(try #require(SocketAddress(parsing: text)).isLoopback == loopback)
    }

    @Test("A Unix path of 107 bytes fits sun_path; 108 does not")
    func unixPathLength() {
        #expect(SocketAddress(parsing: "unix:/" + String(repeating: "a", count: 106)) != nil)
        #expect(SocketAddress(parsing: "unix:/" + String(repeating: "a", count: 107)) == nil)
    }
}
