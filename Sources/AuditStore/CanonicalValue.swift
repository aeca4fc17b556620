/// One column value of a stored record as the hash chain sees it: SQL's INTEGER, TEXT and NULL.
///
/// Independent of any database so every backend (SQLite now, PostgreSQL later) hashes the same bytes.
enum CanonicalValue: Hashable, Sendable {
    case integer(Int64)
    case text(String)
    case null

    /// The value in the canonical JSON array: a decimal integer, a JSON string, or `null`.
    var json: String {
        switch self {
        case .integer(let value): String(value)
        case .text(let value): JSONText.quote(value)
        case .null: "null"
        }
    }

    init(_ value: String?) { self = value.map { .text($0) } ?? .null }
    init(_ value: Int64?) { self = value.map { .integer($0) } ?? .null }

    var text: String? {
        if case .text(let value) = self { value } else { nil }
    }

    var integer: Int64? {
        if case .integer(let value) = self { value } else { nil }
    }
}
