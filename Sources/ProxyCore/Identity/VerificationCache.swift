import OpenSSLSupport

/// Successful verifications, keyed by the SHA-256 of the presented `authorization` value (the credential
/// itself is never kept), so that a call costs no PBKDF2. Entries live ``ttl`` nanoseconds and belong to one
/// policy generation: a reload bumps the generation, and older entries no longer count.
struct VerificationCache {
    private struct Entry {
        var principal: Outcome
        var expires: UInt64
        var generation: Int
    }

    typealias Outcome = Authenticator.Outcome

    let ttl: UInt64
    let capacity: Int
    private var entries: [[UInt8]: Entry] = [:]

    init(ttlNanoseconds: UInt64 = 300 * 1_000_000_000, capacity: Int = 10_000) {
        self.ttl = ttlNanoseconds
        self.capacity = capacity
    }

    /// The cache key of an `authorization` value.
    static func key(for authorization: String) -> [UInt8] { Crypto.sha256(Array(authorization.utf8)) }

    /// The cached success for the key, if it is still valid for `generation` at `now`. `renewing`: a hit lives
    /// ``ttl`` from now (a sliding expiry; a reload still ends it, by its generation).
    mutating func lookup(_ key: [UInt8], now: UInt64, generation: Int, renewing: Bool = false) -> Outcome? {
        guard let entry = self.entries[key] else { return nil }
        guard entry.generation == generation, entry.expires > now else {
            self.entries[key] = nil
            return nil
        }
        if renewing { self.entries[key]?.expires = now + self.ttl }
        return entry.principal
    }

    /// Remembers a success (failures are never cached: a corrected password must work at once).
    mutating func store(_ outcome: Outcome, for key: [UInt8], now: UInt64, generation: Int) {
        guard case .authenticated = outcome else { return }
        if self.entries.count >= self.capacity {
            self.entries = self.entries.filter { $0.value.generation == generation && $0.value.expires > now }
            if self.entries.count >= self.capacity { self.entries.removeAll(keepingCapacity: true) }
        }
        self.entries[key] = Entry(principal: outcome, expires: now + self.ttl, generation: generation)
    }

    var count: Int { self.entries.count }
}
