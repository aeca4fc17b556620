import Synchronization

/// An ``AuditLog`` and ``AuditReader`` in memory, for tests: the same queue, writer thread, group commit, hash chain,
/// queries, verification and pruning as ``SQLiteAuditStore``, without a file.
///
/// ``failWrites(with:)`` makes batches fail the way a full or read-only disk does, so the proxy's refusal path can
/// be tested.
public final class MemoryAuditStore: AuditLog, AuditReader {
    /// The rows and the injected failure, shared by the writer thread and readers.
    final class Storage: Sendable {
        struct State: Sendable {
            var rows: [ChainRow] = []
            var failure: AuditStoreError?
            /// Batches of more records than this fail with `failure` (a nearly full disk); nil: every batch.
            var failureAbove: Int?
            /// Batches holding a record `matching` accepts fail with `error` (a record too big for what is left).
            var recordFailure: (error: AuditStoreError, matching: @Sendable (AuditRecord) -> Bool)?
        }
        let state = Mutex(State())
    }

    private let storage = Storage()
    private let writer: AuditWriter

    /// Starts the writer thread.
    /// - Throws: ``AuditStoreError`` if no thread can be started.
    /// `heldBytesLimit`: how much the records held over failed batches may take (the SQLite store's default).
    public init(
        options: AuditStoreOptions = .init(),
        probeMilliseconds: Int = 1000,
        heldBytesLimit: Int = 64 << 20
    ) throws(AuditStoreError) {
        let storage = self.storage
        self.writer = try AuditWriter(
            name: "guard-audit",
            capacity: options.queueCapacity,
            probeMilliseconds: probeMilliseconds,
            heldBytesLimit: heldBytesLimit
        ) {
            MemoryBatchSink(storage: storage)
        }
    }

    deinit {
        self.writer.close()
    }

    /// Makes every batch holding a record `matching` accepts fail with `error` (nil: none), whatever
    /// ``failWrites(with:above:)`` says; probes succeed.
    public func failRecords(with error: AuditStoreError?, matching: @escaping @Sendable (AuditRecord) -> Bool) {
        self.storage.state.withLock { $0.recordFailure = error.map { ($0, matching) } }
    }

    /// Makes every batch (and probe) fail with `error` until called with nil; with `above`, only batches of more
    /// records than that (a disk with room for a little). An error marked ``AuditStoreError/committed`` fails the
    /// batch after its records were stored, as a sync that fails after the commit does.
    public func failWrites(with error: AuditStoreError?, above: Int? = nil) {
        self.storage.state.withLock {
            $0.failure = error
            $0.failureAbove = above
        }
    }

    /// Every record written so far, in sequence order (checkpoints included).
    public var records: [AuditRecord] {
        self.storage.state.withLock { $0.rows.compactMap(\.record) }
    }

    public func submit(_ record: consuming AuditRecord, token: UInt64, listener: (any AuditListener)?) -> Bool {
        self.writer.submit(consume record, token: token, listener: listener)
    }

    public func submitDeferred(_ record: consuming AuditRecord, token: UInt64, listener: (any AuditListener)?) -> Bool {
        self.writer.submit(consume record, token: token, listener: listener, wake: false)
    }

    public func wake() { self.writer.wakeWriter() }

    public var queueDepth: Int { self.writer.queueDepth }

    public var isWritable: Bool { self.writer.isWritable }

    public var failure: AuditStoreError? { self.writer.failure }

    public var committed: (batches: Int, records: Int) { self.writer.committed }

    public var lost: Int { self.writer.lost }

    public func close() { self.writer.close() }

    public func query(_ query: AuditQuery) throws(AuditStoreError) -> [AuditEntry] {
        guard query.limit > 0 else { return [] }
        let rows = self.storage.state.withLock { $0.rows }
        var outcomes: [String: AuditRecord] = [:]
        for row in rows {
            guard let record = row.record, record.kind == .outcome, outcomes[record.callID] == nil else { continue }
            outcomes[record.callID] = record
        }
        var entries: [AuditEntry] = []
        // The newest `limit`, or the oldest after the cursor.
        let ordered: [ChainRow] = query.afterID == nil ? rows.reversed() : rows
        for row in ordered {
            guard entries.count < query.limit else { break }
            guard let record = row.record, query.matches(record, sequence: row.sequence) else { continue }
            let entry = AuditEntry(
                id: row.sequence,
                record: record,
                outcomeRecord: record.kind == .request ? outcomes[record.callID] : nil,
                hash: row.hash,
                prevHash: row.prevHash
            )
            if let outcome = query.outcome, entry.outcome != outcome { continue }
            entries.append(entry)
        }
        return query.afterID == nil ? entries.reversed() : entries
    }

    public func verify() throws(AuditStoreError) -> AuditVerification {
        let rows = self.storage.state.withLock { $0.rows }
        return ChainVerifier.verify(
            rows: rows,
            checkpoints: rows.filter { $0.kind == AuditRecord.Kind.checkpoint.rawValue }
        )
    }

    public func prune(before: Int64) throws(AuditStoreError) -> Int {
        try self.storage.state.withLock { state throws(AuditStoreError) -> Int in
            if let failure = state.failure { throw failure }
            // As SQLiteAuditReader.prune: the first record other than an outcome at or after `before` is kept.
            let cut =
                state.rows.firstIndex {
                    $0.columns[1].text != AuditRecord.Kind.outcome.rawValue && ($0.columns[3].integer ?? 0) >= before
                } ?? state.rows.count
            guard cut > 0, let head = state.rows.last else { return 0 }
            let last = state.rows[cut - 1]
            state.rows.removeFirst(cut)
            let checkpoint = ChainVerifier.checkpoint(
                after: last,
                deleted: cut,
                before: before,
                now: AuditTime.nowMilliseconds()
            )
            state.rows.append(ChainRow(record: checkpoint, sequence: head.sequence + 1, prevHash: head.hash))
            return cut
        }
    }
}

/// The writer thread's side of ``MemoryAuditStore``.
final class MemoryBatchSink: AuditBatchSink {
    private let storage: MemoryAuditStore.Storage

    init(storage: MemoryAuditStore.Storage) {
        self.storage = storage
    }

    func append(_ records: [AuditRecord]) throws(AuditStoreError) -> [Int64] {
        try self.storage.state.withLock { state throws(AuditStoreError) -> [Int64] in
            if let (error, matching) = state.recordFailure, records.contains(where: matching) { throw error }
            let failure = state.failure.flatMap { records.count > (state.failureAbove ?? -1) ? $0 : nil }
            if let failure, !failure.committed { throw failure }
            var sequence = state.rows.last?.sequence ?? 0
            var prevHash = state.rows.last?.hash ?? ChainRow.zeroHash
            var sequences: [Int64] = []
            for record in records {
                sequence += 1
                let row = ChainRow(record: record, sequence: sequence, prevHash: prevHash)
                state.rows.append(row)
                sequences.append(sequence)
                prevHash = row.hash
            }
            if let failure { throw failure.afterCommit(sequences) }
            return sequences
        }
    }

    func head() -> AuditChainHead? {
        self.storage.state.withLock { state in
            state.rows.last.map { AuditChainHead(sequence: $0.sequence, hash: $0.hash) }
        }
    }

    func probe() throws(AuditStoreError) {
        if let failure = self.storage.state.withLock({ $0.failureAbove == nil ? $0.failure : nil }) { throw failure }
    }
}
