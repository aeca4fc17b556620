/// What a user's `tls_subject` names in a verified client certificate: the whole subject, its most specific common
/// name, or one subject alternative name of one type.
///
/// A SAN matches only a `tls_subject` of its own type: a certificate whose email SAN is `svc.example.com` does not
/// name the user of `DNS:svc.example.com` (a red-team run logged in as an admin that way, when the type was not
/// compared). The forms:
///
/// | `tls_subject` | names |
/// | --- | --- |
/// | `DNS:svc.example.com`, `URI:spiffe://example.org/svc`, `email:svc@example.com` | a SAN of that type with that value (DNS names compare without case) |
/// | `CN=svc` (one component) | the subject's most specific common name, unescaped |
/// | `CN=svc,O=Example` (anything else with `=`) | the whole subject in RFC 2253 form, exactly |
/// | without a prefix and without `=` | a URI SAN if it has `://`, an email SAN if it has `@`, else a DNS SAN |
public enum TLSSubjectPattern: Hashable, Sendable {
    /// The whole subject in RFC 2253 form.
    case subject(String)
    /// The subject's most specific common name (unescaped).
    case commonName(String)
    /// A DNS subject alternative name, lowercased.
    case dns(String)
    /// A URI subject alternative name.
    case uri(String)
    /// An email (rfc822Name) subject alternative name.
    case email(String)

    /// The pattern a `tls_subject` text stands for (prefixes in any case: `dns:` is `DNS:`).
    public init(_ text: String) {
        if let value = Self.value(of: text, prefix: "DNS:") {
            self = .dns(Self.lowercased(value))
        } else if let value = Self.value(of: text, prefix: "URI:") {
            self = .uri(String(value))
        } else if let value = Self.value(of: text, prefix: "email:") {
            self = .email(String(value))
        } else if text.contains("=") {
            let components = Self.components(of: text) ?? []
            if components.count == 1, components[0].hasPrefix("CN=") {
                self = .commonName(String(components[0].dropFirst(3)))
            } else {
                self = .subject(text)
            }
        } else if text.contains("://") {
            self = .uri(text)
        } else if text.contains("@") {
            self = .email(text)
        } else {
            self = .dns(Self.lowercased(text[...]))
        }
    }

    /// What is wrong with a `tls_subject` that could never match a certificate, or nil: the policy loader refuses such
    /// a text instead of letting its user fall back to `anonymous` without a word (a review found `IP:10.0.0.1`,
    /// `cn=svc` and OpenSSL's default `CN = svc, O = X` loading silently).
    public static func problem(in text: String) -> String? {
        let form =
            "CN=svc, DNS:svc.example.com, URI:spiffe://example.org/svc, email:svc@example.com, or the whole "
            + "subject as `openssl x509 -noout -subject -nameopt RFC2253,-esc_msb` prints it, without `subject=` "
            + "(CN=svc,O=Example)"
        if text.isEmpty { return "is empty; write \(form)" }
        if Self.value(of: text, prefix: "IP:") != nil {
            return "IP address names are not matched; write \(form)"
        }
        for prefix in ["DNS:", "URI:", "email:"] {
            if let value = Self.value(of: text, prefix: prefix), value.isEmpty {
                return "names nothing after \(prefix)"
            }
        }
        guard case .subject = TLSSubjectPattern(text) else {
            if case .commonName(let name) = TLSSubjectPattern(text), name.isEmpty { return "names an empty CN" }
            return nil
        }
        if text.contains("://") { return "is taken for a subject (it has `=`); write a URI as URI:\(text)" }
        if Self.value(of: text, prefix: "subject=") != nil { return "starts with `subject=`; leave it out" }
        if text.hasPrefix("/") { return "is in OpenSSL's old /-separated form; write \(form)" }
        if Self.components(of: text) == nil {
            return "holds a hex-escaped byte (\\XX): write UTF-8 as it is (`-nameopt RFC2253,-esc_msb`); a control "
                + "character matches no certificate"
        }
        // A whole subject: RFC 2253 writes `TYPE=value` parts without spaces around them, and OpenSSL the common types
        // in upper case (`CN`, `O`, `OU`…).
        for component in Self.components(of: text) ?? [] {
            guard let equals = component.firstIndex(of: "=") else { return "has a part without `=`; write \(form)" }
            let type = component[..<equals]
            let value = component[component.index(after: equals)...]
            if type.isEmpty || type.first == " " || type.last == " " || value.first == " " {
                return "is not a subject in RFC 2253 form (no spaces around `=` and `,`); write \(form)"
            }
            // OpenSSL's short names, as RFC 2253 output writes them (`street` in lower case), by their lower-case
            // spelling and by their long names.
            let short = [
                "cn": "CN", "o": "O", "ou": "OU", "c": "C", "l": "L", "st": "ST", "dc": "DC", "uid": "UID",
                "street": "street", "commonname": "CN", "organizationname": "O", "organizationalunitname": "OU",
                "countryname": "C", "localityname": "L", "stateorprovincename": "ST", "domaincomponent": "DC",
                "streetaddress": "street", "userid": "UID",
            ]
            if let written = short[type.lowercased()], type != written {
                return "\(type)= never matches: RFC 2253 writes \(written)=; write \(form)"
            }
        }
        return nil
    }

    /// The text after `prefix` (compared without case), or nil if `text` does not start with it.
    private static func value(of text: String, prefix: String) -> Substring? {
        guard text.utf8.count >= prefix.utf8.count,
            text.utf8.prefix(prefix.utf8.count).elementsEqual(
                prefix.lowercased().utf8.map { $0 },
                by: { a, b in
                    (a >= 0x41 && a <= 0x5A ? a + 32 : a) == b
                }
            )
        else { return nil }
        return text.dropFirst(prefix.count)
    }

    /// Whether a certificate with `subject` (RFC 2253; nil if it has none) and these subject alternative names
    /// (``dns(_:)``, ``uri(_:)`` or ``email(_:)`` values as the certificate holds them) is named by this pattern.
    ///
    /// Values compare byte for byte (UTF-8), not as Swift strings, which take composed and decomposed accents for one
    /// text: a certificate's `José` in either form must not match a `tls_subject` in the other.
    public func matches(subject: String?, alternativeNames: [TLSSubjectPattern]) -> Bool {
        switch self {
        case .subject(let wanted):
            return subject.map { Self.same($0, wanted) } ?? false
        case .commonName(let wanted):
            return subject.flatMap(Self.commonName(of:)).map { Self.same($0, wanted) } ?? false
        case .dns(let wanted):
            return alternativeNames.contains {
                if case .dns(let name) = $0 { return Self.same(Self.lowercased(name[...]), wanted) }
                return false
            }
        case .uri(let wanted):
            return alternativeNames.contains {
                if case .uri(let name) = $0 { return Self.same(name, wanted) }
                return false
            }
        case .email(let wanted):
            return alternativeNames.contains {
                if case .email(let name) = $0 { return Self.same(name, wanted) }
                return false
            }
        }
    }

    private static func same(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }

    /// The first (most specific) `CN=` component of an RFC 2253 subject, unescaped; nil when it has none, or when the
    /// name holds a byte OpenSSL prints as `\XX` (a control character): `CN=svc\01` is not the name `svc01`.
    public static func commonName(of subject: String) -> String? {
        Self.components(of: subject)?.first { $0.hasPrefix("CN=") }.map { String($0.dropFirst(3)) }
    }

    /// The components (`type=value`, value unescaped) of an RFC 2253 name, split at unescaped `,` and `+`; nil when a
    /// value holds a hex-escaped byte (`\01`), which no `tls_subject` is meant to match.
    static func components(of name: String) -> [String]? {
        var components: [String] = []
        var current = ""
        var escaped = false
        for character in name {
            if escaped {
                if character.isHexDigit { return nil }
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
        return components
    }

    /// ASCII letters lowercased (DNS names compare without case; other bytes are kept).
    private static func lowercased(_ text: Substring) -> String {
        String(
            decoding: text.utf8.map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 + 32 : $0 },
            as: UTF8.self
        )
    }
}
