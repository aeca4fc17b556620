/// Which calls ``AuditReader/query(_:)`` returns.
///
/// Filters combine with AND and compare exactly. The selection is the newest ``limit`` matching calls (requests and
/// refusals; outcomes are joined to their requests, checkpoints are never listed) and policy records (which have no
/// user, database, collection or RPC, so those filters leave them out), returned oldest first; with
/// ``afterID``, the oldest ``limit`` after that id instead, so that a reader can page forward through the store.
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
    /// The decision: one of ``decisions``.
    public var decision: String?
    /// The decisions a record can carry (`approval_required` is kept for the approvals to come; `loaded` and
    /// `rejected` are those of policy records), and so the values a decision filter takes: anything else is a typo
    /// that would match nothing.
    public static let decisions = [
        "allowed", "denied", "would_deny", "approval_required", "failed", AuditEntry.policyLoaded, "rejected",
    ]
    /// What became of the call (``AuditEntry/Outcome``): ok, failed (a refusal, a non-zero status, or a failed Milvus
    /// status) or unknown (forwarded, no outcome recorded).
    public var outcome: AuditEntry.Outcome?
    /// At most this many calls, the newest ones (the oldest ones after ``afterID`` when that is set); 0 or less
    /// returns nothing.
    public var limit: Int
    /// Only calls whose `id` (the sequence number of their request or refusal record) is greater: a cursor for
    /// exports. Records are numbered in commit order, which their times need not follow (records held over a store
    /// outage, several guards on one store), so a reader that pages by id misses none, unlike one that pages by time.
    public var afterID: Int64?

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
        limit: Int = 100,
        afterID: Int64? = nil
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
        self.afterID = afterID
    }

    /// Whether a listed call passes the filters, ``outcome`` included unless `ignoringOutcome` (for a reader that
    /// pages through every call and filters them itself, as `audit --follow` does).
    public func selects(_ entry: AuditEntry, ignoringOutcome: Bool = false) -> Bool {
        self.matches(entry.record, sequence: entry.id) && (ignoringOutcome || self.selectsOutcome(of: entry))
    }

    /// Whether the call's outcome is the one ``outcome`` asks for (any when nil).
    public func selectsOutcome(of entry: AuditEntry) -> Bool {
        self.outcome.map { entry.outcome == $0 } ?? true
    }

    /// Whether a request, refusal or policy record numbered `sequence` passes the filters (the in-memory store's
    /// version of the SQL WHERE), except ``outcome``, which needs the call's outcome record.
    func matches(_ record: AuditRecord, sequence: Int64) -> Bool {
        guard Self.listedKinds.contains(record.kind) else { return false }
        if let afterID = self.afterID, sequence <= afterID { return false }
        if let since = self.since, record.timeMilliseconds < since { return false }
        if let until = self.until, record.timeMilliseconds >= until { return false }
        if let user = self.user, record.principal != user { return false }
        if let database = self.database, record.database != database { return false }
        if let collection = self.collection, !Self.names(record, collection) { return false }
        if let rpc = self.rpc, record.rpc != rpc { return false }
        if let decision = self.decision, record.decision != decision { return false }
        return true
    }

    /// Whether `record` acts on `collection`: its collection, or one of the list of a call naming several (Flush,
    /// ShowCollections), which the record keeps in `targets["collections"]`.
    static func names(_ record: AuditRecord, _ collection: String) -> Bool {
        if let named = record.collection { return named == collection }
        guard !collection.contains(","), let list = record.targets["collections"] else { return false }
        return list.split(separator: ",", omittingEmptySubsequences: false).contains { $0 == collection }
    }

    /// The kinds of record a listing shows, one entry each (an outcome goes with its request).
    static let listedKinds: [AuditRecord.Kind] = [.request, .refusal, .policy]
}
