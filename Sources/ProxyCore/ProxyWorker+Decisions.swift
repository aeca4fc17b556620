import GuardPolicy
import Logging
import MilvusCatalog

/// Decisions: the policy's verdict on a decoded call from a known caller, mapped to gRPC in one place.
///
/// | outcome | status |
/// | --- | --- |
/// | allowed | forwarded |
/// | denied by the policy | PERMISSION_DENIED `milvus-guard: <user> may not <Rpc> on <db>.<collection> (<rule>)` |
/// | denied, no credential (anonymous) | UNAUTHENTICATED |
/// | a database call without db_name, a name no Milvus creates | INVALID_ARGUMENT |
/// | wrong or malformed credential | UNAUTHENTICATED |
/// | too many failed authentications | RESOURCE_EXHAUSTED |
/// | denied in shadow mode | forwarded, logged as `would deny` |
///
/// None of these codes is retried by pymilvus.
extension ProxyWorker {
    /// Decides a decoded call: nil lets it through, a status refuses it. Records on the call who made it
    /// and what was decided (for logs and, later, the audit record).
    func judge(_ call: ProxiedCall, decoded: MilvusCall, identity: CallIdentity) -> GRPCStatus? {
        call.policySequence = self.active.recordSequence
        let principal: Principal
        switch identity {
        case .pending:
            preconditionFailure("a call is judged only once its identity is settled")
        case .refused(let status, let claimed):
            return self.refuse(call, status, user: claimed, rpc: decoded.rpc)
        case .known(let known):
            principal = known
        }
        call.principal = principal
        if let refusal = Self.unanswerable(decoded) {
            // Decoded, and recorded as decoded: the security team sees the name that was sent.
            return self.refuse(call, refusal, user: principal.name, rpc: decoded.rpc)
        }
        let outcome = self.active.policy.decide(principal: principal, call: decoded)
        call.rule = outcome.decision.rule
        switch outcome.decision {
        case .allow:
            call.verdict = .allowed
            if let wouldDeny = outcome.wouldDeny, case .deny(let rule, let reason) = wouldDeny {
                self.logWouldDeny(call, reason: reason, rule: rule, scope: "shadow file")
            }
            if self.logger.logLevel <= .debug { self.logDecoded(decoded, principal: principal) }
            return nil
        case .deny(let rule, let reason):
            if principal.authentication == .anonymous {
                call.verdict = .failed
                // A verified certificate that named nobody says why: a typo in a tls_subject, or two users it matches.
                let note = call.client?.certificateNote
                var metadata: Logger.Metadata = ["rpc": "\(decoded.rpc.name)", "reason": "\(reason)"]
                if let note { metadata["certificate"] = "\(note.logged)" }
                self.logger.info("refused anonymous call", metadata: metadata)
                return GRPCStatus(
                    .unauthenticated,
                    "no credentials: \(note.map { $0.client + "; " } ?? "")send token=\"user:password\" or an API key "
                        + "(\(reason))"
                )
            }
            if self.active.mode == .shadow {
                call.verdict = .wouldDeny
                self.logWouldDeny(call, reason: reason, rule: rule, scope: "shadow mode")
                return nil
            }
            call.verdict = .denied
            self.logger.info(
                "denied",
                metadata: [
                    "user": "\(principal.name)", "rpc": "\(decoded.rpc.name)",
                    "rule": "\(rule.map { "\($0)" } ?? "no rule allows it")", "reason": "\(reason)",
                ]
            )
            return GRPCStatus(.permissionDenied, reason)
        }
    }

    /// Refuses a call before the policy is asked: decision `failed`, logged with who (`user`, the claimed name for a
    /// failed credential) and why.
    private func refuse(_ call: ProxiedCall, _ status: GRPCStatus, user: String?, rpc: RPCDescriptor) -> GRPCStatus {
        call.verdict = .failed
        self.logger.info(
            "refused",
            metadata: [
                "client": "\(call.client?.peerHost ?? "-")", "user": "\(user ?? "-")", "rpc": "\(rpc.name)",
                "reason": "\(status.message)",
            ]
        )
        return status
    }

    /// A call the policy can't be held to, whoever makes it: INVALID_ARGUMENT.
    ///
    /// - CreateDatabase, DropDatabase, AlterDatabase and DescribeDatabase act on their own `db_name`. Without one,
    ///   the database is the server's guess (milvus-lite takes the `dbname` header, then `default`), and the policy
    ///   would decide on `""`: a user denied `prod.*` and allowed `*.*` altered `prod` that way.
    /// - A name no Milvus creates (``MilvusCall/unacceptableName``): a server may read it its own way.
    static func unanswerable(_ decoded: borrowing MilvusCall) -> GRPCStatus? {
        if decoded.rpc.targetsOwnDatabase, decoded.database.isEmpty {
            return GRPCStatus(.invalidArgument, "\(decoded.rpc.name) request names no database (db_name is empty)")
        }
        if let (kind, name) = decoded.unacceptableName {
            let shown =
                name.utf8.count <= 128
                ? "\"\(name)\"" : "\"\(String(name.unicodeScalars.prefix(64)))…\" (\(name.utf8.count) bytes)"
            return GRPCStatus(
                .invalidArgument,
                "\(kind) name \(shown) is not a Milvus name (at most \(MilvusCall.maxNameBytes) bytes of ASCII "
                    + "letters, digits, _ $ -)"
            )
        }
        return nil
    }

    private func logWouldDeny(_ call: ProxiedCall, reason: String, rule: RuleID?, scope: String) {
        self.logger.notice(
            "would deny",
            metadata: [
                "reason": "\(reason)", "rule": "\(rule.map { "\($0)" } ?? "no rule allows it")",
                "scope": "\(scope)",
            ]
        )
    }

    private func logDecoded(_ decoded: MilvusCall, principal: Principal) {
        self.logger.debug(
            "decoded",
            metadata: [
                "user": "\(principal.name)",
                "rpc": "\(decoded.rpc.name)",
                "action": "\(decoded.rpc.actionClass)",
                "db": "\(decoded.database)",
                "collection": "\(decoded.collection ?? "-")",
                "partitions": "\(decoded.partitions)",
                "rows": "\(decoded.rowCount.map(String.init) ?? "-")",
                "filter": "\(decoded.filter ?? "-")",
            ]
        )
    }
}

/// What became of a call at the gate, for logs and the audit record.
enum CallVerdict: String {
    /// The policy allowed it.
    case allowed
    /// The policy denied it (PERMISSION_DENIED).
    case denied
    /// The policy would deny it, but shadow mode forwarded it.
    case wouldDeny = "would_deny"
    /// Refused before a policy decision: no or wrong credential, malformed request, limits.
    case failed
}
