import OpenSSLSupport
import Testing

private func hex(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

@Suite("Crypto")
struct CryptoTests {
    @Test("SHA-256 of FIPS 180-2 vectors")
    func sha256() {
        #expect(
            hex(Crypto.sha256(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        )
        #expect(hex(Crypto.sha256([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test("A reused SHA256Digest gives the one-shot digest for every input in turn, the empty one included")
    func reusedDigest() throws {
        let digest = try SHA256Digest()
        var output: [UInt8] = []
        let inputs: [[UInt8]] = [Array("abc".utf8), [], Array(repeating: 0x61, count: 1000), Array("abc".utf8)]
        for input in inputs {
            digest.hash(input, into: &output)
            #expect(output == Crypto.sha256(input))
        }
        #expect(hex(output) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test(
        "PBKDF2-HMAC-SHA256 matches RFC 7914 §11 and well-known vectors",
        arguments: [
            (
                "passwd", "salt", 1, 64,
                "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
                    + "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
            ),
            (
                "Password", "NaCl", 80_000, 64,
                "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
                    + "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"
            ),
            ("password", "salt", 1, 32, "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"),
            ("password", "salt", 4096, 32, "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"),
        ]
    )
    func pbkdf2(password: String, salt: String, iterations: Int, length: Int, expected: String) throws {
        let derived = try Crypto.pbkdf2SHA256(
            password: Array(password.utf8),
            salt: Array(salt.utf8),
            iterations: iterations,
            length: length
        )
        #expect(hex(derived) == expected)
    }

    @Test("PBKDF2 rejects out-of-range parameters")
    func pbkdf2Arguments() {
        for (iterations, length) in [(0, 32), (1, 0), (1, 4096)] {
            let error = #expect(throws: OpenSSLError.self) {
                try Crypto.pbkdf2SHA256(password: [1], salt: [2], iterations: iterations, length: length)
            }
            #expect(error?.code == .invalidArgument)
        }
        // An empty password and salt are legal inputs (RFC 8018 does not forbid them).
        #expect((try? Crypto.pbkdf2SHA256(password: [], salt: [], iterations: 1, length: 16))?.count == 16)
    }

    @Test("HMAC-SHA256 matches RFC 4231 test case 2 and the empty-key value")
    func hmac() {
        let mac = Crypto.hmacSHA256(key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8))
        #expect(hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(
            hex(Crypto.hmacSHA256(key: [], data: []))
                == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"
        )
    }

    @Test("Random bytes have the requested length and differ between calls")
    func random() throws {
        let first = try Crypto.randomBytes(count: 32)
        let second = try Crypto.randomBytes(count: 32)
        #expect(first.count == 32 && second.count == 32 && first != second)
        #expect(try Crypto.randomBytes(count: 0) == [])
        #expect(throws: OpenSSLError.self) { try Crypto.randomBytes(count: -1) }
    }

    @Test("Constant-time comparison")
    func constantTime() {
        #expect(Crypto.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!Crypto.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!Crypto.constantTimeEquals([1, 2, 3], [1, 2]))
        #expect(Crypto.constantTimeEquals([], []))
    }
}
