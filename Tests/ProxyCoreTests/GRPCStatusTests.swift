import NGHTTP2Support
import Testing

@testable import ProxyCore

@Suite("GRPCStatus and grpc-timeout")
struct GRPCStatusTests {
    @Test(
        "grpc-timeout values parse to milliseconds, rounding up",
        arguments: [
            ("1H", 3_600_000), ("2M", 120_000), ("3S", 3_000), ("100m", 100), ("0m", 0), ("1u", 1), ("1000u", 1),
            ("1001u", 2), ("1500u", 2), ("1n", 1), ("1000000n", 1), ("1000001n", 2), ("99999999m", 99_999_999),
            ("99999999S", 99_999_999_000), ("99999999H", 359_999_996_400_000), ("00000005S", 5_000),
        ] as [(String, Int)]
    )
    func validTimeouts(value: String, milliseconds: Int) {
        #expect(parseGRPCTimeout(value) == milliseconds)
    }

    @Test(
        "Malformed grpc-timeout values are rejected",
        arguments: [
            "", "m", "S", "10", "123456789m", "10x", "10h", "10s", "-1m", "+1m", "1.5S", " 1m", "1m ", "1 m", "0x10m",
            "１m", "1mm", "٣S",
        ]
    )
    func malformedTimeouts(value: String) {
        #expect(parseGRPCTimeout(value) == nil)
    }

    @Test(
        "grpc-message is percent-encoded as in gRPC's PROTOCOL-HTTP2.md",
        arguments: [
            ("plain ASCII, spaces and punctuation!", "plain ASCII, spaces and punctuation!"),
            ("50% done", "50%25 done"),
            ("line\nbreak", "line%0Abreak"),
            ("tab\there", "tab%09here"),
            ("\u{7F}", "%7F"),
            ("~ and space", "~ and space"),
            ("日本", "%E6%97%A5%E6%9C%AC"),
            ("\u{1F600}", "%F0%9F%98%80"),
            ("", ""),
        ] as [(String, String)]
    )
    func percentEncoding(text: String, encoded: String) {
        #expect(GRPCStatus.percentEncoded(text) == encoded)
    }

    @Test(
        "Percent-decoding inverts the encoding and keeps malformed escapes as they are",
        arguments: [
            ("milvus-guard: 100%25 %E2%9C%93", "milvus-guard: 100% ✓"), ("no escapes", "no escapes"),
            ("%", "%"), ("%4", "%4"), ("%zz1", "%zz1"), ("a%41b", "aAb"), ("%e6%97%a5", "日"),
        ] as [(String, String)]
    )
    func percentDecoding(encoded: String, text: String) {
        #expect(GRPCStatus.percentDecoded(encoded) == text)
        #expect(GRPCStatus.percentDecoded(GRPCStatus.percentEncoded(text)) == text)
    }

    @Test("The encoding leaves only printable ASCII and decodes back to the original bytes")
    func percentRoundTrip() {
        let text = "milvus-guard: collection \"docs\" – denied 100% ✓\r\n"
        let encoded = GRPCStatus.percentEncoded(text)
        #expect(encoded.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E })
        var decoded: [UInt8] = []
        var bytes = encoded.utf8.makeIterator()
        while let byte = bytes.next() {
            if byte == UInt8(ascii: "%"), let high = bytes.next(), let low = bytes.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            {
                decoded.append(value)
            } else {
                decoded.append(byte)
            }
        }
        #expect(decoded == Array(text.utf8))
    }

    @Test("Every message the guard writes starts with milvus-guard:")
    func messagePrefix() {
        let status = GRPCStatus(.unavailable, "upstream down")
        #expect(status.message == "milvus-guard: upstream down")
        #expect(status.description == "unavailable (14): milvus-guard: upstream down")
    }

    @Test("A trailers-only response is :status 200, application/grpc, grpc-status and the encoded message")
    func trailersOnlyShape() {
        let status = GRPCStatus(.permissionDenied, "collection \"docs\" is 100% protected")
        #expect(
            status.trailersOnlyHeaders == [
                HeaderField(":status", "200"),
                HeaderField("content-type", "application/grpc"),
                HeaderField("grpc-status", "7"),
                HeaderField("grpc-message", "milvus-guard: collection \"docs\" is 100%25 protected"),
            ]
        )
        #expect(status.trailers == Array(status.trailersOnlyHeaders.dropFirst(2)))
    }

    @Test("Status codes have gRPC's numbers")
    func codes() {
        #expect(GRPCStatusCode.allCases.map(\.rawValue) == Array(0...16))
        #expect(GRPCStatusCode.deadlineExceeded.rawValue == 4)
        #expect(GRPCStatusCode.unavailable.rawValue == 14)
    }

    @Test(
        "Hop-by-hop headers are recognised; te and gRPC metadata are not hop-by-hop",
        arguments: [
            ("connection", true), ("keep-alive", true), ("proxy-connection", true), ("transfer-encoding", true),
            ("upgrade", true), ("host", true), ("te", false), ("authorization", false), ("grpc-timeout", false),
            (":authority", false), ("x-request-id", false),
        ] as [(String, Bool)]
    )
    func hopByHop(name: String, expected: Bool) {
        #expect(isHopByHop(name) == expected)
    }
}
