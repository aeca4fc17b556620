import GuardPolicy

/// Which user a verified TLS client certificate names (`users: {svc: {tls_subject: "CN=svc"}}`).
///
/// A user's `tls_subject` matches when it is
/// - the whole subject in RFC 2253 form (`CN=svc,O=Example`),
/// - `CN=<name>`, and the subject's most specific common name is `<name>`,
/// - one of the certificate's DNS, URI or email subject alternative names, with or without a `DNS:`, `URI:` or
///   `email:` prefix (`DNS:svc.example.com`, `spiffe://example.org/svc`).
enum TLSIdentity {
    /// The user the certificate names, or nil. The loader guarantees that no two users share a `tls_subject`;
    /// if a certificate matches several (a CN and a SAN of different users), the first by name wins.
    static func user(subject: String?, alternativeNames: [String], in users: [String: User]) -> User? {
        guard subject != nil || !alternativeNames.isEmpty else { return nil }
        let commonName = subject.flatMap(Self.commonName(of:))
        var match: User?
        for user in users.values {
            guard let wanted = user.tlsSubject,
                Self.matches(wanted, subject: subject, commonName: commonName, alternativeNames: alternativeNames)
            else { continue }
            if let current = match, current.name <= user.name { continue }
            match = user
        }
        return match
    }

    static func matches(_ wanted: String, subject: String?, commonName: String?, alternativeNames: [String]) -> Bool {
        if let subject, wanted == subject { return true }
        if wanted.hasPrefix("CN="), !wanted.dropFirst(3).contains(","), let commonName {
            return wanted.dropFirst(3) == commonName[...]
        }
        var name = wanted[...]
        for prefix in ["DNS:", "URI:", "email:"] where name.hasPrefix(prefix) {
            name = name.dropFirst(prefix.count)
            break
        }
        return alternativeNames.contains { $0[...] == name }
    }

    /// The first (most specific) `CN=` component of an RFC 2253 subject, unescaped.
    static func commonName(of subject: String) -> String? {
        var components: [String] = []
        var current = ""
        var escaped = false
        for character in subject {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "," || character == "+" {
                components.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        components.append(current)
        for component in components where component.hasPrefix("CN=") {
            return String(component.dropFirst(3))
        }
        return nil
    }
}
