import GuardPolicy
import OpenSSLSupport

/// Checks a credential against the users and API keys of the policy files.
///
/// A password costs one PBKDF2 (600000 iterations take a sizeable fraction of a second), so this runs off the
/// event loops and its successes are cached (``VerificationCache``); an API key costs one SHA-256.
enum Authenticator {
    /// The outcome of a check: who the caller is, or why not (for the UNAUTHENTICATED message).
    enum Outcome: Hashable, Sendable {
        case authenticated(Principal)
        case rejected(String)
    }

    static func verify(_ credential: Credential, policy: Policy) -> Outcome {
        switch credential {
        case .password(let name, let password):
            // The same message for an unknown user and a wrong password: no user enumeration.
            let rejected = Outcome.rejected("wrong user name or password for \"\(name)\"")
            guard let user = policy.users[name], let stored = user.password else {
                // Nor by the time taken: a PBKDF2 as long as the costliest user's (an unknown user answered in
                // 2 ms, a known one in 150-300 ms).
                if let decoy = policy.users.values.compactMap(\.password).max(by: { $0.iterations < $1.iterations }) {
                    _ = try? Crypto.pbkdf2SHA256(
                        password: Array(password.utf8),
                        salt: decoy.salt,
                        iterations: decoy.iterations,
                        length: decoy.hash.count
                    )
                }
                return rejected
            }
            guard
                let derived = try? Crypto.pbkdf2SHA256(
                    password: Array(password.utf8),
                    salt: stored.salt,
                    iterations: stored.iterations,
                    length: stored.hash.count
                ),
                Crypto.constantTimeEquals(derived, stored.hash)
            else { return rejected }
            return .authenticated(user.principal(authentication: .password))
        case .apiKey(let key):
            let digest = Crypto.sha256(Array(key.utf8))
            // Every key is compared, in constant time, so the time taken says nothing about which matched.
            var match: APIKey?
            for candidate in policy.apiKeys.values where Crypto.constantTimeEquals(candidate.sha256, digest) {
                match = candidate
            }
            guard let match else { return .rejected("unknown API key") }
            return .authenticated(match.principal)
        }
    }
}
