import GuardPolicy
import OpenSSLSupport
import Testing

@testable import ProxyCore

/// The identity pieces: credential parsing, verification against the policy files, the verification
/// cache and the per-address failure limit (PolicyEnforcementTests drives them through the proxy).
@Suite("Identity")
struct IdentityTests {
    @Test(
        "Base64 decodes RFC 4648's vectors",
        arguments: [
            ("", ""), ("Zg==", "f"), ("Zm8=", "fo"), ("Zm9v", "foo"), ("Zm9vYg==", "foob"), ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
        ]
    )
    func base64(encoded: String, decoded: String) {
        #expect(Base64.decode(encoded) == Array(decoded.utf8))
    }

    @Test(
        "Base64 refuses characters outside the alphabet, impossible lengths, and all but the canonical form",
        arguments: [
            "Zm9v!", "Z", "Zg===", "Zm 9v",
            // root:Milvus is cm9vdDpNaWx2dXM=; a red-team run logged in with each of these.
            "cm9vdDpNaWx2dXM", "cm9vdDpNaWx2dXM==", "cm9vdDpNaWx2dXN=", "cm9vdDpNaWx2dXP=", "Zm9vYg", "Zh==", "Zm9=",
        ]
    )
    func base64Invalid(encoded: String) {
        #expect(Base64.decode(encoded) == nil)
    }

    @Test("authorization metadata: user:password, an API key without a colon, and nothing else")
    func credentials() {
        #expect(Credential(authorization: "cm9vdDpNaWx2dXM=") == .password(user: "root", password: "Milvus"))
        #expect(Credential(authorization: "YTpiOmM=") == .password(user: "a", password: "b:c"))
        #expect(Credential(authorization: "aW5nZXN0LXRva2Vu") == .apiKey("ingest-token"))
        #expect(Credential(authorization: "OnNlY3JldA==") == nil)  // ":secret": no user
        #expect(Credential(authorization: "not base64!") == nil)
        #expect(Credential(authorization: "") == nil)
    }

    static func policy() throws -> Policy {
        let salt = Array("0123456789abcdef".utf8)
        let hash = try Crypto.pbkdf2SHA256(password: Array("Milvus".utf8), salt: salt, iterations: 1000, length: 32)
        let encoded = PasswordHash(iterations: 1000, salt: salt, hash: hash).encoded
        let key = Crypto.sha256(Array("ingest-token".utf8)).map {
            String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16)
        }.joined()
        let yaml = """
            users:
              root: { password: "\(encoded)", roles: [admin] }
            api_keys:
              ingest: { sha256: "\(key)", roles: [admin] }
            roles:
              admin:
                - allow: ["*"]
                  on: ["*"]
            """
        return try PolicyFolder.merge([(name: "test.yaml", text: yaml)])
    }

    @Test("Passwords and API keys are checked against the policy; wrong ones are rejected alike")
    func authenticator() throws {
        let policy = try Self.policy()
        guard
            case .authenticated(let root) = Authenticator.verify(
                .password(user: "root", password: "Milvus"),
                policy: policy
            )
        else {
            Issue.record("root:Milvus was rejected")
            return
        }
        #expect(root.name == "root")
        #expect(root.authentication == .password)
        guard case .authenticated(let ingest) = Authenticator.verify(.apiKey("ingest-token"), policy: policy) else {
            Issue.record("the API key was rejected")
            return
        }
        #expect(ingest.authentication == .apiKey)
        let wrong = Authenticator.verify(.password(user: "root", password: "milvus"), policy: policy)
        let unknown = Authenticator.verify(.password(user: "nobody", password: "Milvus"), policy: policy)
        #expect(wrong == .rejected("wrong user name or password for \"root\""))
        #expect(unknown == .rejected("wrong user name or password for \"nobody\""))
        #expect(Authenticator.verify(.apiKey("guess"), policy: policy) == .rejected("unknown API key"))
    }

    @Test("The cache keeps successes for their lifetime and one policy generation, never failures")
    func cache() {
        var cache = VerificationCache(ttlNanoseconds: 100, capacity: 2)
        let key = VerificationCache.key(for: "cm9vdDpNaWx2dXM=")
        let ok = Authenticator.Outcome.authenticated(Principal(name: "root", roles: [], authentication: .password))
        cache.store(.rejected("no"), for: key, now: 0, generation: 1)
        let value1 = cache.lookup(key, now: 1, generation: 1)
        #expect(value1 == nil)
        cache.store(ok, for: key, now: 0, generation: 1)
        let value2 = cache.lookup(key, now: 99, generation: 1)
        #expect(value2 == ok)
        let value3 = cache.lookup(key, now: 99, generation: 2)
        #expect(value3 == nil)  // reloaded policy
        cache.store(ok, for: key, now: 0, generation: 1)
        let value4 = cache.lookup(key, now: 100, generation: 1)
        #expect(value4 == nil)  // expired
        for index in 0..<5 { cache.store(ok, for: [UInt8(index)], now: 200, generation: 1) }
        #expect(cache.count <= 2)
        // Renewed by each use (the admin listener's monitors): alive as long as it is used within its lifetime.
        var sliding = VerificationCache(ttlNanoseconds: 100, capacity: 2)
        sliding.store(ok, for: key, now: 0, generation: 1)
        for now in stride(from: UInt64(90), through: 900, by: 90) {
            let renewed = sliding.lookup(key, now: now, generation: 1, renewing: true)
            #expect(renewed == ok)
        }
        let stale = sliding.lookup(key, now: 1_000, generation: 1, renewing: true)
        #expect(stale == nil)
    }

    @Test("From the 21st failure in a window an address is refused until the window is over")
    func failureLimit() {
        var limiter = FailureLimiter(threshold: 20, windowNanoseconds: 1_000)
        for attempt in 0..<20 {
            let blocked = limiter.isBlocked("10.0.0.1", now: UInt64(attempt))
            #expect(!blocked)
            limiter.recordFailure("10.0.0.1", now: UInt64(attempt))
        }
        let value6 = limiter.isBlocked("10.0.0.1", now: 20)
        #expect(value6)
        let value7 = limiter.isBlocked("10.0.0.2", now: 20)
        #expect(!value7)
        let value8 = limiter.isBlocked("10.0.0.1", now: 1_000)
        #expect(!value8)
    }

    @Test("A time before the window's start (another loop's clock read later, locked first) counts as in the window")
    func failureLimitEarlierClock() {
        var limiter = FailureLimiter(threshold: 2, windowNanoseconds: 1_000)
        let first = limiter.recordFailure("10.0.0.1", now: 500)
        let second = limiter.recordFailure("10.0.0.1", now: 499)  // trapped on the unsigned subtraction before
        #expect(first == 1 && second == 2)
        let blockedEarly = limiter.isBlocked("10.0.0.1", now: 10)
        let blockedLate = limiter.isBlocked("10.0.0.1", now: 1_499)
        let blockedAfter = limiter.isBlocked("10.0.0.1", now: 1_500)
        #expect(blockedEarly && blockedLate && !blockedAfter)
    }

    @Test("The table of addresses is bounded; a full table drops the windows that are over, at most once a window")
    func failureLimitTableIsBounded() {
        var limiter = FailureLimiter(threshold: 2, windowNanoseconds: 1_000, maxAddresses: 3)
        var counts: [Int] = []
        var blocked: [Bool] = []
        for host in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] { counts.append(limiter.recordFailure(host, now: 0)) }
        #expect(counts == [1, 1, 1])
        // Full: a fourth address is not tracked, so not limited; the tracked ones still are.
        counts = [limiter.recordFailure("10.0.0.4", now: 10), limiter.recordFailure("10.0.0.4", now: 11)]
        blocked.append(limiter.isBlocked("10.0.0.4", now: 12))
        counts.append(limiter.recordFailure("10.0.0.1", now: 13))
        blocked.append(limiter.isBlocked("10.0.0.1", now: 14))
        #expect(counts == [1, 1, 2])
        #expect(blocked == [false, true])
        #expect(limiter.trackedAddresses == 3)
        // Once their windows are over, the next new address makes room and is tracked.
        counts = [limiter.recordFailure("10.0.0.4", now: 1_500), limiter.recordFailure("10.0.0.4", now: 1_501)]
        let fourthBlocked = limiter.isBlocked("10.0.0.4", now: 1_502)
        #expect(counts == [1, 2])
        #expect(fourthBlocked)
        #expect(limiter.trackedAddresses == 1)
    }

}
