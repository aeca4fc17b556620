/// A failure of the audit store, with a short message meant for people.
///
/// Write failures read `audit store unavailable: <why>` (for example
/// `audit store unavailable: /var/lib/milvus-guard/guard.db is read-only`); the proxy refuses the call with
/// RESOURCE_EXHAUSTED and `milvus-guard: <message>`. Query, verify and prune failures say what went wrong in the
/// same short form.
public struct AuditStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The message, shown as it is.
    public let message: String

    /// Creates an error with its message.
    public init(_ message: String) {
        self.message = message
    }

    /// A write failure: `audit store unavailable: <reason>`.
    static func unavailable(_ reason: String) -> AuditStoreError {
        AuditStoreError("audit store unavailable: \(reason)")
    }

    /// The message.
    public var description: String { self.message }
}
