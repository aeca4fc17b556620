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
    /// `audit.commit_delay`: how long a small commit that a mutation waits for may wait for company while at least
    /// `commit_siblings` other calls are in progress (``AuditStoreOptions/commitDelayMilliseconds``).
    public var commitDelayMilliseconds: Int
    /// `audit.commit_siblings` (``AuditStoreOptions/commitSiblings``).
    public var commitSiblings: Int

    /// Creates settings; the defaults are those of a file without an `audit:` section.
    public init(
        reads: Bool = false,
        synchronous: AuditStoreOptions.Synchronous = .full,
        commitDelayMilliseconds: Int = AuditStoreOptions().commitDelayMilliseconds,
        commitSiblings: Int = AuditStoreOptions().commitSiblings
    ) {
        self.reads = reads
        self.synchronous = synchronous
        self.commitDelayMilliseconds = commitDelayMilliseconds
        self.commitSiblings = commitSiblings
    }

    /// The store's options for these settings.
    public var storeOptions: AuditStoreOptions {
        AuditStoreOptions(
            synchronous: self.synchronous,
            commitDelayMilliseconds: self.commitDelayMilliseconds,
            commitSiblings: self.commitSiblings
        )
    }
}
