/// Which calls ``AuditReader/query(_:)`` returns.
///
/// Filters combine with AND and compare exactly. The selection is the newest ``limit`` matching calls (requests and
/// refusals; outcomes are joined to their requests, checkpoints are never listed), returned oldest first.
public struct AuditQuery: Sendable, Hashable {
    /// Calls at or after this time (UTC ms), inclusive.
    public var since: Int64?
    /// Calls before this time (UTC ms), exclusive.
    public var until: Int64?
    /// The principal.
    public var user: String?
    /// The database.
    public var database: String?
    /// The collection.
    public var collection: String?
    /// The RPC name.
    public var rpc: String?
    /// The decision: allowed, denied, approval_required or failed.
    public var decision: String?
    /// What became of the call (``AuditEntry/Outcome``): ok, failed (a refusal, a non-zero status, or a failed Milvus
    /// status) or unknown (forwarded, no outcome recorded).
    public var outcome: AuditEntry.Outcome?
    /// At most this many calls, the newest ones; 0 or less returns nothing.
    public var limit: Int

    /// Creates a query; with no arguments, the newest 100 calls.
    public init(
        since: Int64? = nil,
        until: Int64? = nil,
        user: String? = nil,
        database: String? = nil,
        collection: String? = nil,
        rpc: String? = nil,
        decision: String? = nil,
        outcome: AuditEntry.Outcome? = nil,
        limit: Int = 100
    ) {
        self.since = since
        self.until = until
        self.user = user
        self.database = database
        self.collection = collection
        self.rpc = rpc
        self.decision = decision
        self.outcome = outcome
        self.limit = limit
    }

    /// Whether a request or refusal record passes the filters (the in-memory store's version of the SQL WHERE), except
    /// ``outcome``, which needs the call's outcome record.
    func matches(_ record: AuditRecord) -> Bool {
        guard record.kind == .request || record.kind == .refusal else { return false }
        if let since = self.since, record.timeMilliseconds < since { return false }
        if let until = self.until, record.timeMilliseconds >= until { return false }
        if let user = self.user, record.principal != user { return false }
        if let database = self.database, record.database != database { return false }
        if let collection = self.collection, record.collection != collection { return false }
        if let rpc = self.rpc, record.rpc != rpc { return false }
        if let decision = self.decision, record.decision != decision { return false }
        return true
    }
}
