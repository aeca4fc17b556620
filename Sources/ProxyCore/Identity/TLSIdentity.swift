import GuardPolicy
import OpenSSLSupport

/// Which user a verified TLS client certificate names (`users: {svc: {tls_subject: "CN=svc"}}`): the user whose
/// ``TLSSubjectPattern`` (the whole subject, `CN=<name>`, or a subject alternative name of one type) matches it.
enum TLSIdentity {
    /// The user the certificate names, or nil. The loader guarantees that no two users share a `tls_subject`, but a
    /// certificate may still match two (one user's `CN=svc.example.com` and another's `DNS:svc.example.com`, as a CN
    /// often repeats a SAN): it then names nobody, rather than whichever name sorts first, which could be an admin.
    static func user(subject: String?, alternativeNames: [SubjectAlternativeName], in users: [String: User]) -> User? {
        guard subject != nil || !alternativeNames.isEmpty else { return nil }
        let names = alternativeNames.map(Self.pattern(of:))
        var match: User?
        for user in users.values {
            guard let wanted = user.tlsPattern, wanted.matches(subject: subject, alternativeNames: names) else {
                continue
            }
            if match != nil { return nil }  // ambiguous
            match = user
        }
        return match
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
