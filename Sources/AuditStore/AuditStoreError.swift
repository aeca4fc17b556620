/// A failure of the audit store, with a short message meant for people.
///
/// Write failures read `audit store unavailable: <why>` (for example
/// `audit store unavailable: /var/lib/milvus-guard/guard.db is read-only`); the proxy refuses the call with
/// RESOURCE_EXHAUSTED and `milvus-guard: <message>`. Query, verify and prune failures say what went wrong in the
/// same short form.
public struct AuditStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The message, shown as it is.
    public let message: String
    /// Whether writing the same records again may succeed once the store recovers (a full disk, a lock, a read-only
    /// file); false when SQLite refused what was written (a value too big for it), or a sync failed (nothing more is
    /// written until the guard restarts), which no retry cures.
    public let retryable: Bool
    /// Whether the records were committed before it failed (tracking or syncing the commit): they are in the store,
    /// though not known to be durable, and must not be written again.
    public let committed: Bool
    /// With ``committed``: the sequence numbers the records got, in order, when known (empty otherwise).
    public let committedSequences: [Int64]

    /// Creates an error with its message.
    public init(_ message: String, retryable: Bool = true, committed: Bool = false, committedSequences: [Int64] = []) {
        self.message = message
        self.retryable = retryable
        self.committed = committed
        self.committedSequences = committed ? committedSequences : []
    }

    /// This error, after the records were committed as `sequences` (empty: not known).
    public func afterCommit(_ sequences: [Int64] = []) -> AuditStoreError {
        AuditStoreError(self.message, retryable: self.retryable, committed: true, committedSequences: sequences)
    }

    /// A write failure: `audit store unavailable: <reason>`.
    static func unavailable(_ reason: String, retryable: Bool = true) -> AuditStoreError {
        AuditStoreError("audit store unavailable: \(reason)", retryable: retryable)
    }

    /// The message.
    public var description: String { self.message }
}
