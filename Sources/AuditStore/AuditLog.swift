import Synchronization

/// The outcome of writing one submitted record.
public struct AuditResult: Sendable, Hashable {
    /// The token passed to ``AuditLog/submit(_:token:listener:)``.
    public let token: UInt64
    /// The record's sequence number in the chain when it was written, or committed before its batch failed (then
    /// with an ``error`` that says ``AuditStoreError/committed``); nil when it was not.
    public let sequence: Int64?
    /// Why the record was not written; nil when it was.
    public let error: AuditStoreError?

    /// Creates a result; `sequence`, `error`, or both for a record committed before its batch failed.
    public init(token: UInt64, sequence: Int64?, error: AuditStoreError?) {
        self.token = token
        self.sequence = sequence
        self.error = error
    }
}

/// Receives the results of records it submitted.
///
/// Called on the store's writer thread after each batch, once per listener with the results of that listener's
/// records in submission order. It must return quickly and never block: the proxy forwards the results to its loop
/// through `LoopMailbox.send(_:)`.
public protocol AuditListener: AnyObject, Sendable {
    /// The results of this listener's records in the batch just committed (or failed).
    func auditCompleted(_ results: [AuditResult])
}

/// Where the proxy writes audit records: a bounded queue in front of one writer thread.
///
/// The writer commits everything queued in one transaction (group commit), then reports to each listener. A
/// record is durable when its result arrives without an error; the proxy forwards a mutation only then.
public protocol AuditLog: Sendable {
    /// Queues a record.
    ///
    /// - Returns: false when the bounded queue is full or the store is closed; the proxy then refuses the call with
    ///   RESOURCE_EXHAUSTED. Nothing is reported to `listener` for a record that was not queued.
    func submit(_ record: consuming AuditRecord, token: UInt64, listener: (any AuditListener)?) -> Bool
    /// Queues a record like ``submit(_:token:listener:)``, without waking the writer: for a burst of records (an
    /// event loop's iteration), followed by one ``wake()``, so that the writer takes the whole burst into one
    /// commit instead of starting a commit for the first record while the loop still produces the others.
    func submitDeferred(_ record: consuming AuditRecord, token: UInt64, listener: (any AuditListener)?) -> Bool
    /// Wakes the writer for the records queued with ``submitDeferred(_:token:listener:)`` (nothing if none wait).
    func wake()
    /// Records queued, being written, or held over from failed batches (see `AuditWriter`).
    var queueDepth: Int { get }
    /// Whether the last batch (or the last probe, while idle after a failure) could write; for /readyz.
    var isWritable: Bool { get }
    /// While the store is not writable, the error its last batch failed with (nil otherwise).
    var failure: AuditStoreError? { get }
    /// Batches committed and records in them since the store was opened (for /metrics: records per batch is
    /// what group commit achieves).
    var committed: (batches: Int, records: Int) { get }
    /// Records nobody waited for (outcomes, refusals) that were never written: the queue was full, the records held
    /// over failed batches were at their budget, a sync had failed, the store still refused them when it closed, or
    /// SQLite refused them for what they are. Short of that, the writer holds the records of failed batches and tries
    /// again (see `AuditWriter`).
    var lost: Int { get }
    /// Writes what is queued, then stops the writer thread. Later submits return false. Idempotent.
    func close()
}

extension AuditLog {
    /// Queues `record` and waits until it is durable, or refused: for a record that must be in the store before what
    /// it describes takes effect (a reloaded policy). It waits as long as the writer takes to commit or fail the
    /// batch, and returns at once if the record can't be queued. Never call it from an event loop or a listener.
    /// - Returns: The record's sequence number in the chain, once it is written.
    /// - Throws: Why it was not (``AuditStoreError/committed``: it is in the store, though its sync failed).
    @discardableResult
    public func write(_ record: consuming AuditRecord) throws(AuditStoreError) -> Int64 {
        let waiter = AuditWaiter()
        guard self.submit(record, token: 0, listener: waiter) else {
            throw .unavailable("the audit queue is full or the store is closing")
        }
        return try waiter.wait()
    }
}

/// The listener of ``AuditLog/write(_:)``: holds the one result and wakes the thread waiting for it.
private final class AuditWaiter: AuditListener {
    private let result = Mutex<AuditResult?>(nil)
    private let signal = WakeSignal()

    func auditCompleted(_ results: [AuditResult]) {
        self.result.withLock { $0 = results.first }
        self.signal.signal()
    }

    /// Sleeps until the result arrives: the record's sequence number once it is written.
    func wait() throws(AuditStoreError) -> Int64 {
        self.signal.wait()
        let result = self.result.withLock { $0 }
        guard let result else { throw .unavailable("the record was not written") }
        if let error = result.error {
            // Committed, as its own sequence number if known (the batch's error names the batch's).
            throw error.committed ? error.afterCommit(result.sequence.map { [$0] } ?? []) : error
        }
        guard let sequence = result.sequence else { throw .unavailable("the record was not written") }
        return sequence
    }
}
