import GuardPolicy
import OpenSSLSupport

/// Which user a verified TLS client certificate names (`users: {svc: {tls_subject: "CN=svc"}}`): the user whose
/// ``TLSSubjectPattern`` (the whole subject, `CN=<name>`, or a subject alternative name of one type) matches it.
enum TLSIdentity {
    /// The user the certificate names, or nil. The loader guarantees that no two users share a `tls_subject`, but a
    /// certificate may still match two (one user's `CN=svc.example.com` and another's `DNS:svc.example.com`, as a CN
    /// often repeats a SAN): it then names nobody, rather than whichever name sorts first, which could be an admin.
    static func user(subject: String?, alternativeNames: [SubjectAlternativeName], in users: [String: User]) -> User? {
        if case .user(let user) = Self.match(subject: subject, alternativeNames: alternativeNames, in: users) {
            return user
        }
        return nil
    }

    /// What a certificate names: one user, nobody, or several users (then nobody either).
    enum Match: Equatable {
        case user(User)
        case nobody
        case ambiguous([String])
    }

    static func match(subject: String?, alternativeNames: [SubjectAlternativeName], in users: [String: User]) -> Match {
        guard subject != nil || !alternativeNames.isEmpty else { return .nobody }
        let names = alternativeNames.map(Self.pattern(of:))
        let matching = users.values.filter { user in
            user.tlsPattern?.matches(subject: subject, alternativeNames: names) == true
        }
        switch matching.count {
        case 0: return .nobody
        case 1: return .user(matching[0])
        default: return .ambiguous(matching.map(\.name).sorted())
        }
    }

    /// Why a verified certificate made its caller nobody, for the refusal (its own names, and that they matched no
    /// user or several: never the policy's user names, which the client has no business learning) and for the log
    /// (`logged`, with the users it matched).
    static func note(
        _ match: Match,
        subject: String?,
        alternativeNames: [SubjectAlternativeName]
    ) -> (client: String, logged: String)? {
        guard subject != nil || !alternativeNames.isEmpty else { return nil }  // no certificate (TLS without mTLS)
        let names = ([subject].compactMap { $0 } + alternativeNames.map(\.description)).joined(separator: ", ")
        let shown = names.count > 200 ? String(names.prefix(200)) + "…" : names
        switch match {
        case .user:
            return nil
        case .nobody:
            let text = "the client certificate (\(shown)) names no user of the policy"
            return (text, text)
        case .ambiguous(let users):
            let text = "the client certificate (\(shown)) names several users of the policy, so none"
            return (text, "\(text): \(users.joined(separator: ", "))")
        }
    }

    /// A certificate's SAN as the pattern of its type and value.
    static func pattern(of name: SubjectAlternativeName) -> TLSSubjectPattern {
        switch name.kind {
        case .dns: .dns(name.value)
        case .uri: .uri(name.value)
        case .email: .email(name.value)
        }
    }
}
