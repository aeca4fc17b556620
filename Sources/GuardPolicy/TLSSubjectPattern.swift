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

    /// The pattern a `tls_subject` text stands for.
    public init(_ text: String) {
        if text.hasPrefix("DNS:") {
            self = .dns(Self.lowercased(text.dropFirst(4)))
        } else if text.hasPrefix("URI:") {
            self = .uri(String(text.dropFirst(4)))
        } else if text.hasPrefix("email:") {
            self = .email(String(text.dropFirst(6)))
        } else if text.contains("=") {
            let components = Self.components(of: text)
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

    /// Whether a certificate with `subject` (RFC 2253; nil if it has none) and these subject alternative names
    /// (``dns(_:)``, ``uri(_:)`` or ``email(_:)`` values as the certificate holds them) is named by this pattern.
    public func matches(subject: String?, alternativeNames: [TLSSubjectPattern]) -> Bool {
        switch self {
        case .subject(let wanted):
            return subject == wanted
        case .commonName(let wanted):
            return subject.flatMap(Self.commonName(of:)) == wanted
        case .dns, .uri, .email:
            return alternativeNames.contains { $0.normalized == self }
        }
    }

    /// A SAN as a certificate holds it, compared the way patterns are (DNS names without case).
    private var normalized: TLSSubjectPattern {
        if case .dns(let name) = self { return .dns(Self.lowercased(name[...])) }
        return self
    }

    /// The first (most specific) `CN=` component of an RFC 2253 subject, unescaped.
    public static func commonName(of subject: String) -> String? {
        Self.components(of: subject).first { $0.hasPrefix("CN=") }.map { String($0.dropFirst(3)) }
    }

    /// The components (`type=value`, value unescaped) of an RFC 2253 name, split at unescaped `,` and `+`.
    static func components(of name: String) -> [String] {
        var components: [String] = []
        var current = ""
        var escaped = false
        for character in name {
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
