import Glibc
import GuardPolicy
import Logging
import Synchronization

/// Identity: from the `authorization` metadata (user:password or API key) or the TLS client certificate.
///
/// A password costs a PBKDF2 of 600000 iterations, so it is never computed on the loop: the call waits in
/// its gate while the verifier thread works, and the result comes back through the mailbox
/// (``LoopMessage/credentialVerified(key:outcome:generation:)``). Successes are cached per loop by the
/// SHA-256 of the `authorization` value, and remembered per connection by the value itself, so a call on
/// a known connection costs a string comparison.
extension ProxyWorker {
    /// Starts identifying a call. Returns `.pending` when the call must wait for the verifier (it is then
    /// told through ``ProxiedCall/identityResolved(_:)``).
    func identify(_ call: ProxiedCall, authorization: String?, client: ClientConnection) -> CallIdentity {
        call.identifiedUnder = (self.generation, self.tlsGeneration)
        let policy = self.active.policy
        // A reload read the TLS files again: the certificate this connection was accepted with must still pass.
        if let refusal = client.trustRefusal(under: self.serverTLS) {
            return .refused(
                GRPCStatus(
                    .unauthenticated,
                    "the client certificate is no longer accepted (\(refusal)); connect again with a valid one"
                ),
                claimed: nil
            )
        }
        guard let authorization, !authorization.isEmpty else {
            if let principal = client.tlsPrincipal(in: policy, generation: self.generation) {
                // Verified at the handshake, which may be long ago: the certificate must still be valid now.
                if let expiry = client.certificateExpiry, Int64(time(nil)) > expiry {
                    return .refused(
                        GRPCStatus(
                            .unauthenticated,
                            "the client certificate of \(principal.name) has expired; connect again with a valid one"
                        ),
                        claimed: principal.name
                    )
                }
                return .known(principal)
            }
            return .known(policy.anonymous)
        }
        let now = call.startedAt
        if let principal = client.rememberedPrincipal(for: authorization, generation: self.generation, now: now) {
            return .known(principal)
        }
        let key = VerificationCache.key(for: authorization)
        if let cached = self.verifications.lookup(key, now: now, generation: self.generation) {
            return self.settle(cached, claimed: nil, authorization: authorization, client: client, now: now)
        }
        let address = client.peerHost
        if self.services.failures.withLock({ $0.isBlocked(address, now: now) }) {
            return .refused(
                GRPCStatus(
                    .resourceExhausted,
                    "too many failed authentications from \(address); try again when the minute is over"
                ),
                claimed: nil
            )
        }
        guard let credential = Credential(authorization: authorization) else {
            self.recordFailure(from: address, now: now)
            return .refused(
                GRPCStatus(
                    .unauthenticated,
                    "the authorization metadata is not base64 of \"user:password\" or of an API key"
                ),
                claimed: nil
            )
        }
        switch credential {
        case .apiKey:
            // One SHA-256 per key: cheap enough for the loop.
            let outcome = Authenticator.verify(credential, policy: policy)
            switch outcome {
            case .authenticated: self.verifications.store(outcome, for: key, now: now, generation: self.generation)
            case .rejected: self.recordFailure(from: address, now: now)
            }
            return self.settle(outcome, claimed: nil, authorization: authorization, client: client, now: now)
        case .password(let user, _):
            if self.awaitingVerification[key] != nil {
                self.awaitingVerification[key]?.append(call)
                return .pending
            }
            let mailbox = self.loop.mailbox
            let generation = self.generation
            let refused = self.services.verifier.submit(key: client.network) {
                let outcome = Authenticator.verify(credential, policy: policy)
                mailbox.send(.credentialVerified(key: key, outcome: outcome, generation: generation))
            }
            switch refused {
            case nil:
                break
            case .keyFull:
                return .refused(
                    GRPCStatus(
                        .resourceExhausted,
                        "too many password checks in progress from \(address)'s network; try again shortly"
                    ),
                    claimed: user
                )
            case .full:
                return .refused(
                    GRPCStatus(.resourceExhausted, "too many password checks in progress; try again shortly"),
                    claimed: user
                )
            }
            self.awaitingVerification[key] = [call]
            return .pending
        }
    }

    /// Identifies `call` again when a reload came after its identity was worked out (its headers arrived before,
    /// its body after): a removed user, a changed password or a revoked certificate counts for it too. False when the
    /// call waits for a password check again (``ProxiedCall/identityResolved(_:)`` follows); true when its identity
    /// is settled for the policy and TLS files in force.
    func identifiedAgainIfStale(_ call: ProxiedCall, client: ClientConnection) -> Bool {
        guard call.identifiedUnder != (self.generation, self.tlsGeneration) else { return true }
        // Refused already (and counted against its address): it stays refused.
        if case .refused = call.identity { return true }
        let identity = self.identify(call, authorization: call.authorization, client: client)
        call.identity = identity
        if case .pending = identity { return false }
        return true
    }

    /// The verifier thread's answer for the calls waiting on `key`.
    func credentialVerified(key: [UInt8], outcome: Authenticator.Outcome, generation: Int) {
        guard let calls = self.awaitingVerification.removeValue(forKey: key) else { return }
        let now = EventLoop.now()
        guard generation == self.generation else {
            // Checked against a policy that has been replaced since: check again against the one in force.
            for call in calls where !call.clientClosed {
                guard let client = call.client else { continue }
                let identity = self.identify(call, authorization: call.authorization, client: client)
                if case .pending = identity { continue }
                call.identityResolved(identity)
            }
            return
        }
        if case .authenticated = outcome {
            self.verifications.store(outcome, for: key, now: now, generation: generation)
        }
        var counted: Set<String> = []
        for call in calls where !call.clientClosed {
            guard let client = call.client else { continue }
            var claimed: String?
            if case .password(let user, _)? = call.authorization.flatMap(Credential.init(authorization:)) {
                claimed = user
            }
            if case .rejected = outcome, counted.insert(client.peerHost).inserted {
                self.recordFailure(from: client.peerHost, now: now)
            }
            call.identityResolved(
                self.settle(outcome, claimed: claimed, authorization: call.authorization, client: client, now: now)
            )
        }
    }

    private func settle(
        _ outcome: Authenticator.Outcome,
        claimed: String?,
        authorization: String?,
        client: ClientConnection,
        now: UInt64
    ) -> CallIdentity {
        switch outcome {
        case .authenticated(let principal):
            if let authorization {
                client.remember(
                    principal,
                    for: authorization,
                    generation: self.generation,
                    until: now + self.verifications.ttl
                )
            }
            return .known(principal)
        case .rejected(let reason):
            return .refused(GRPCStatus(.unauthenticated, reason), claimed: claimed)
        }
    }

    private func recordFailure(from address: String, now: UInt64) {
        _ = self.services.failures.withLock { $0.recordFailure(address, now: now) }
    }
}
