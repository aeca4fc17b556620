/// How a store's writer behaves.
public struct AuditStoreOptions: Sendable, Hashable {
    /// SQLite's `PRAGMA synchronous` for the writer (guard.yaml `audit.sync`).
    public enum Synchronous: String, Sendable, Hashable, CaseIterable {
        /// Every commit is fsynced: a committed record survives a power loss. The default.
        case full
        /// In WAL mode, commits are fsynced at checkpoints only: a power loss may lose the last commits (never
        /// corrupt the file). A process crash loses nothing.
        case normal
    }

    /// Records the queue holds before ``AuditLog/submit(_:token:listener:)`` returns false.
    public var queueCapacity: Int
    /// Durability of each commit.
    public var synchronous: Synchronous
    /// How long a write waits for another process's lock before the batch fails.
    public var busyTimeoutMilliseconds: Int
    /// How long records nobody waits for (outcomes, refusals) may wait to share a commit with later records; a
    /// mutation's request record, which a call waits for, is never delayed. A crash loses at most this much of
    /// them (their requests then show outcome `unknown`). 0 commits every batch at once.
    public var lazyCommitMilliseconds: Int
    /// How long a small batch that a call waits for (a mutation's request record) sleeps before its commit while at
    /// least ``commitSiblings`` other calls are in progress, so that their records share the commit and its fsync
    /// (guard.yaml `audit.commit_delay`). It adds at most this much to a mutation's latency, and only under
    /// concurrency; 0 commits at once.
    public var commitDelayMilliseconds: Int
    /// Other calls in progress (requests recorded, outcome not yet) from which ``commitDelayMilliseconds`` applies
    /// (guard.yaml `audit.commit_siblings`).
    public var commitSiblings: Int
    /// How often, at most, a store's `onHead` is told the chain's head while records are written.
    public var headAnnouncementMilliseconds: Int

    /// Creates options; the defaults suit production.
    public init(
        queueCapacity: Int = 65_536,
        synchronous: Synchronous = .full,
        busyTimeoutMilliseconds: Int = 5_000,
        lazyCommitMilliseconds: Int = 20,
        commitDelayMilliseconds: Int = 2,
        commitSiblings: Int = 8,
        headAnnouncementMilliseconds: Int = 600_000
    ) {
        self.commitDelayMilliseconds = commitDelayMilliseconds
        self.commitSiblings = commitSiblings
        self.headAnnouncementMilliseconds = headAnnouncementMilliseconds
        self.lazyCommitMilliseconds = lazyCommitMilliseconds
        self.queueCapacity = queueCapacity
        self.synchronous = synchronous
        self.busyTimeoutMilliseconds = busyTimeoutMilliseconds
    }
}
