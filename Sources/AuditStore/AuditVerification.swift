/// The result of checking the hash chain.
public enum AuditVerification: Sendable, Hashable {
    /// Every record links to the one before it and matches its hash. `head` is the last record's hash (64 zeros for
    /// an empty store): record it elsewhere to detect a later truncation of the newest records.
    case ok(count: Int, head: String)
    /// The first record that breaks the chain.
    case broken(AuditChainProblem)
    /// The records form an intact chain, but what SQLite finds them through was changed behind the store's back: an
    /// index misses records or was replaced, one milvus-guard did not make was added, a trigger was planted, or the
    /// schema version was changed. Listings (`audit`, `GET /audit`) can then skip records that are there. One
    /// sentence for people.
    case tampered(String)
}

/// How the store compares with an anchor: a head (``AuditChainHead``) recorded somewhere else. Meaningful once
/// ``AuditVerification/ok(count:head:)`` holds: the chain is then consistent, so one matching record vouches for
/// every record before it.
public enum AuditAnchorCheck: Sendable, Hashable {
    /// The record is there with the anchor's hash.
    case matches
    /// The record is there with another hash: the chain was rewritten (every hash recomputed) up to it.
    case rewritten(stored: String)
    /// The chain ends before the record (`head`: its last sequence number, 0 when empty): the newest records were
    /// removed.
    case truncated(head: Int64)
    /// The record was pruned, and no checkpoint names it: it can no longer be checked.
    case pruned
}

/// Where and how the chain breaks.
public struct AuditChainProblem: Sendable, Hashable, CustomStringConvertible {
    /// What is wrong.
    public enum Kind: String, Sendable, Hashable {
        /// The record's content no longer matches its hash (a column was updated).
        case altered
        /// Records are missing before this sequence number (deleted, and no checkpoint covers them).
        case removed
        /// The record does not link to the record before it (added behind the store's back, or its prev_hash was
        /// changed).
        case inserted
    }

    /// The sequence number of the first bad record (for ``Kind/removed``: the first missing one).
    public let sequence: Int64
    /// What is wrong.
    public let kind: Kind
    /// One sentence for people.
    public let detail: String

    /// Creates a problem report.
    public init(sequence: Int64, kind: Kind, detail: String) {
        self.sequence = sequence
        self.kind = kind
        self.detail = detail
    }

    /// `record 12 altered: …`.
    public var description: String { "record \(self.sequence) \(self.kind.rawValue): \(self.detail)" }
}

/// Reads, checks and prunes an audit store; free of CLI types so an HTTP admin endpoint can use it too.
public protocol AuditReader {
    /// The newest `query.limit` calls matching the query, oldest first.
    /// - Throws: ``AuditStoreError`` if the store cannot be read.
    func query(_ query: AuditQuery) throws(AuditStoreError) -> [AuditEntry]
    /// Checks the whole hash chain.
    /// - Throws: ``AuditStoreError`` if the store cannot be read (a broken chain is a result, not an error).
    func verify() throws(AuditStoreError) -> AuditVerification
    /// Deletes the oldest records, up to the first one other than an outcome at or after `before` (UTC ms; an
    /// outcome goes with the calls before it), and appends a checkpoint record carrying the sequence number and hash
    /// of the last deleted one.
    /// - Returns: How many records were deleted (0 appends no checkpoint).
    /// - Throws: ``AuditStoreError`` if the store cannot be written.
    func prune(before: Int64) throws(AuditStoreError) -> Int
}
