public import AuditStore

/// guard.yaml's `audit:` section.
public struct AuditSettings: Sendable, Equatable {
    /// `audit.enabled`: whether calls are audited at all. Default true; false only for measuring the cost.
    public var enabled: Bool = true
    /// `audit.reads`: whether read RPCs (Search, Query, Get…) are recorded too. Default false: only mutations,
    /// administration and refusals are.
    public var reads: Bool
    /// `audit.sync`: `full` (default, every commit fsynced) or `normal` (fsynced at WAL checkpoints).
    public var synchronous: AuditStoreOptions.Synchronous

    /// Creates settings; the defaults are those of a file without an `audit:` section.
    public init(reads: Bool = false, synchronous: AuditStoreOptions.Synchronous = .full) {
        self.reads = reads
        self.synchronous = synchronous
    }
}
