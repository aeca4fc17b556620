import ArgumentParser
import GuardPolicy
import Testing

@testable import GuardCLI

@Suite("milvus-guard hash-password")
struct HashPasswordCommandTests {
    @Test("The hash matches PBKDF2-HMAC-SHA256 as Python's hashlib computes it, in the policy-file format")
    func knownVector() throws {
        // python3: base64(hashlib.pbkdf2_hmac('sha256', b'Milvus', b'0123456789abcdef', 1000))
        let hash = try HashPasswordCommand.hash(
            password: "Milvus",
            iterations: 1000,
            salt: Array("0123456789abcdef".utf8)
        )
        #expect(
            hash.encoded == "pbkdf2-sha256$1000$MDEyMzQ1Njc4OWFiY2RlZg==$Cscr6mBSPHClat8Dzwnj5tq3xBICrnhiSe1QJhlvBlA="
        )
        #expect(try PasswordHash(encoded: hash.encoded) == hash)
    }

    @Test("Each run draws a fresh salt, so the same password hashes differently")
    func freshSalt() throws {
        let first = try HashPasswordCommand.hash(password: "secret", iterations: 1000)
        let second = try HashPasswordCommand.hash(password: "secret", iterations: 1000)
        #expect(first.salt.count == 16)
        #expect(first.salt != second.salt)
        #expect(first.hash != second.hash)
    }

    @Test("The default is 600000 iterations and fewer than 1000 are refused")
    func iterations() throws {
        let command = try #require(try GuardCommand.parseAsRoot(["hash-password"]) as? HashPasswordCommand)
        #expect(command.iterations == 600_000)
        #expect(throws: (any Error).self) { try GuardCommand.parseAsRoot(["hash-password", "--iterations", "999"]) }
    }
}
