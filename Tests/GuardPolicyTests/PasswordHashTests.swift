import GuardPolicy
import PropertyBased
import Testing

@Suite("Password hash strings")
struct PasswordHashTests {
    @Test("Any hash round-trips through its encoded string")
    func roundTrip() async {
        await propertyCheck(
            count: 200,
            input: Gen.int(in: 1_000...10_000_000),
            Gen.uint8(in: 0 ... .max).array(of: 1...32),
            Gen.uint8(in: 0 ... .max).array(of: 16...64)
        ) { iterations, salt, hash in
            let original = PasswordHash(iterations: iterations, salt: salt, hash: hash)
            #expect((try? PasswordHash(encoded: original.encoded)) == original)
        }
    }

    @Test(
        "Malformed strings are refused",
        arguments: [
            ("", PasswordHash.EncodingProblem.format),
            ("pbkdf2-sha256$600000$c2FsdA==", .format),
            ("pbkdf2-sha1$600000$c2FsdA==$MDEyMzQ1Njc4OWFiY2RlZg==", .format),
            ("pbkdf2-sha256$600000$c2FsdA==$MDEyMzQ1Njc4OWFiY2RlZg==$x", .format),
            ("pbkdf2-sha256$999$c2FsdA==$MDEyMzQ1Njc4OWFiY2RlZg==", .iterations("999")),
            ("pbkdf2-sha256$-5$c2FsdA==$MDEyMzQ1Njc4OWFiY2RlZg==", .iterations("-5")),
            ("pbkdf2-sha256$1e6$c2FsdA==$MDEyMzQ1Njc4OWFiY2RlZg==", .iterations("1e6")),
            ("pbkdf2-sha256$600000$$MDEyMzQ1Njc4OWFiY2RlZg==", .salt),
            ("pbkdf2-sha256$600000$c2FsdA$MDEyMzQ1Njc4OWFiY2RlZg==", .salt),
            ("pbkdf2-sha256$600000$c2FsdA==$MDEy", .hash),
        ]
    )
    func malformed(text: String, problem: PasswordHash.EncodingProblem) {
        #expect(throws: problem) { try PasswordHash(encoded: text) }
    }

    @Test("A known string parses and re-encodes byte for byte")
    func example() throws {
        let hash = try PasswordHash(encoded: hash600k)
        #expect(hash.iterations == 600_000)
        #expect(hash.hash.count == 32)
        #expect(hash.encoded == hash600k)
    }
}
