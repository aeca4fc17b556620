import CLinux
import Glibc
import Synchronization

/// Where a writer thread appends batches: the SQLite file, or memory. Created on the writer thread and used only
/// there, so it need not be `Sendable`.
protocol AuditBatchSink: AnyObject {
    /// Appends `records` to the chain in one transaction.
    /// - Returns: Their sequence numbers, in order.
    /// - Throws: ``AuditStoreError`` (`audit store unavailable: …`); nothing of the batch was written.
    func append(_ records: [AuditRecord]) throws(AuditStoreError) -> [Int64]
    /// Checks, without writing a record, whether a batch could be written now.
    func probe() throws(AuditStoreError)
    /// The chain's newest record, read from the store (nil when it is empty or can't be read).
    func head() -> AuditChainHead?
    /// Makes appended batches durable on the writer's sync thread; nil when ``append(_:)`` is durable on return
    /// (or nothing is to be synced).
    var syncer: (any AuditSyncer)? { get }
    /// Set when the sink wrote its last batch but will take no more (the SQLite store's WAL was deleted under it):
    /// the store is then not writable from that commit on, not only from the next batch refused.
    var takesNoMore: AuditStoreError? { get }
}

extension AuditBatchSink {
    var syncer: (any AuditSyncer)? { nil }
    var takesNoMore: AuditStoreError? { nil }
}

/// The bounded queue and the writer thread shared by every ``AuditLog`` implementation.
///
/// Any thread submits; one thread takes *everything* queued, appends it in one transaction (group commit), then
/// reports the results to each listener. While the last write failed and nothing is queued, the thread probes the
/// store once a second so ``isWritable`` recovers without traffic. Design:
///
/// ```
/// submit ──▶ [queue ≤ capacity] ──wake──▶ writer: take all ─▶ sink.append ─┬─────────────────────────▶ listeners
///                                                                            └─▶ syncer thread: sync ─▶ listeners
/// ```
///
/// Pipelined durability: a sink with a ``AuditBatchSink/syncer`` commits without waiting for the disk and the
/// writer hands the batch to a second thread, which syncs (one sync for every batch handed over meanwhile) and only
/// then reports the results, while the writer appends the next batch. A record is reported written only once it is
/// durable. A failed sync is final: its batches and every later one fail with its error (the disk lost writes it
/// had accepted, and SQLite can't tell which), until the process restarts.
///
/// An event loop queues its records without waking the writer (`wake: false`) and wakes it once at the end of its
/// iteration: woken by each submit, the writer would preempt the loop on a shared core and commit one record at a
/// time while the loop still had the rest of the iteration's calls to submit.
///
/// Commit delay (group commit under concurrency, like PostgreSQL's `commit_delay` and `commit_siblings`): when a
/// batch that somebody waits for is small and at least `commitSiblings` other calls are in progress (requests
/// recorded whose outcome has not come yet), the writer sleeps `commitDelayMilliseconds` before committing, so that
/// the records those calls produce meanwhile share the commit and its fsync. A lone client never waits: it has no
/// siblings. A batch of ``delayedBatchLimit`` records or more is committed at once (the writer is then busy enough
/// for commits to fill up by themselves), and the wait ends as soon as that many are queued. The wait is also at
/// most 1/16 of the mean duration of recent calls, so that it never adds more than that share to their latency.
///
/// Invariant: `wakePending` is true from a submit's signal until the writer takes the queue, so each take costs at
/// most one extra (empty) wake-up.
final class AuditWriter: Sendable {
    private struct State: Sendable {
        var queue = Batch()
        var inFlight = 0
        /// Records committed and waiting for the sync thread.
        var syncing = 0
        /// Records held over from failed batches (see ``AuditWriter``), mirrored from the writer thread.
        var held = 0
        var wakePending = false
        var closing = false
        /// Calls in progress: request records queued or written whose outcome record has not been queued yet.
        /// Kept from the records themselves, so it needs no help from the proxy; clamped at zero.
        var openCalls = 0
        var thread: pthread_t?
    }

    private let state = Mutex(State())

    /// Committed batches waiting for the sync thread: their waiters and results, in commit order.
    private struct Synced: Sendable {
        var waiters: [Waiter] = []
        var results: [AuditResult] = []
        var awaitedRequests = 0
        var closing = false
    }
    private let synced = Mutex(Synced())
    private let syncWake = WakeSignal()
    /// Set by the first failed sync, then every batch fails with it.
    private let syncFailure = Mutex<AuditStoreError?>(nil)
    private let writable = Atomic<Bool>(true)
    /// Until when (monotonic milliseconds) the store counts as not writable because mutations' requests, committed
    /// on their own, were refused for what they are (SQLite said constraint, too big…: no retry cures it, so the
    /// store is not a failing one, and its probe succeeds). A store that takes transactions but refuses every record
    /// (a unique index planted behind the guard's back) refuses every mutation: for /readyz it is not writable. Cleared
    /// by the next commit of mutations' requests (not by one of outcomes or refusals alone, which such a store may
    /// take); otherwise it lapses after ``refusingMilliseconds``, so that a guard taken out of service for it gets
    /// traffic again to find out whether the store was mended (it comes back if not).
    private let refusingUntil = Atomic<Int64>(0)
    static let refusingMilliseconds: Int64 = 30_000
    /// Why the store last failed a batch or a probe (``failure`` shows it while the store is not writable).
    private let lastFailure = Mutex<AuditStoreError?>(nil)
    private let batchesCommitted = Atomic<Int>(0)
    /// Records nobody waited for that were never written (see ``run(sink:)``).
    private let recordsLost = Atomic<Int>(0)
    private let recordsCommitted = Atomic<Int>(0)
    private let wake = WakeSignal()
    private let capacity: Int
    /// Interval of the recovery probe while the store is failing and idle.
    private let probeMilliseconds: Int
    /// How long a batch that nobody waits for (outcomes, refusals) may wait for more records before it is
    /// committed; a record somebody waits for (a mutation's request) ends the wait at once.
    private let lazyMilliseconds: Int
    /// A lazy batch is committed at once from this many records.
    private static let lazyBatchLimit = 4096
    /// At most this many held-over records go with one commit, so that a store that still fails costs each try
    /// a bounded amount of work, and a recovered one drains a long backlog in commits of ordinary size.
    static let heldOverPerCommit = 4096
    /// Held-over records take at most about this many bytes (``AuditRecord/estimatedBytes``); the capacity bounds
    /// their number, this their size, since a client decides how long a Delete's filter is.
    let heldBytesLimit: Int
    /// How long a small batch that somebody waits for sleeps for company while enough other calls are in
    /// progress; 0 never.
    private let commitDelayMilliseconds: Int
    /// Other calls in progress from which a small batch is delayed.
    private let commitSiblings: Int
    /// A batch this large is never delayed.
    static let delayedBatchLimit = 64
    /// The commit delay is at most this fraction (1/n) of the mean call duration.
    static let callDurationShare: Int64 = 16
    /// Weight 1/n of each new outcome in the mean call duration (an exponential moving average).
    static let callDurationSmoothing: Int64 = 16
    /// Told the chain's head at most every ``headMilliseconds`` while records are written, and once more at close.
    private let onHead: (@Sendable (AuditChainHead) -> Void)?
    private let headMilliseconds: Int

    /// Starts the writer thread, named `name` (at most 15 bytes show in `top -H` and perf); `makeSink` runs on it.
    /// - Throws: ``AuditStoreError`` if the system refuses a thread.
    init(
        name: String,
        capacity: Int,
        probeMilliseconds: Int = 1000,
        lazyMilliseconds: Int = 0,
        commitDelayMilliseconds: Int = 0,
        commitSiblings: Int = 8,
        heldBytesLimit: Int = 64 << 20,
        headMilliseconds: Int = 600_000,
        onHead: (@Sendable (AuditChainHead) -> Void)? = nil,
        makeSink: @escaping @Sendable () -> any AuditBatchSink
    ) throws(AuditStoreError) {
        self.capacity = max(1, capacity)
        self.onHead = onHead
        self.headMilliseconds = max(1, headMilliseconds)
        self.probeMilliseconds = probeMilliseconds
        self.lazyMilliseconds = max(0, lazyMilliseconds)
        self.commitDelayMilliseconds = max(0, commitDelayMilliseconds)
        self.commitSiblings = max(1, commitSiblings)
        self.heldBytesLimit = max(0, heldBytesLimit)
        let thread = try Self.startThread(name: name) { [self] in self.run(sink: makeSink()) }
        self.state.withLock { $0.thread = thread }
    }

    /// Starts a thread named `name` (at most 15 bytes show in `top -H` and perf) running `body`.
    private static func startThread(name: String, body: @escaping () -> Void) throws(AuditStoreError) -> pthread_t {
        final class Box {
            let body: () -> Void
            init(_ body: @escaping () -> Void) { self.body = body }
        }
        let box = Unmanaged.passRetained(
            Box {
                clinux_set_thread_name(name)
                body()
            }
        ).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(
            &thread,
            nil,
            { raw in
                guard let raw else { return nil }
                Unmanaged<Box>.fromOpaque(raw).takeRetainedValue().body()
                return nil
            },
            box
        )
        guard status == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw AuditStoreError("cannot start the \(name) thread: \(String(cString: strerror(status)))")
        }
        return thread
    }

    /// Queues a record; wakes the writer unless `wake` is false (then ``wakeWriter()`` must follow).
    func submit(
        _ record: consuming AuditRecord,
        token: UInt64,
        listener: (any AuditListener)?,
        wake: Bool = true
    ) -> Bool {
        let kind = record.kind
        // Moved into the queue, not copied (a copy retains every field, and the caller's copy is then released).
        var pending = Optional(consume record)
        let (accepted, signal) = self.state.withLock { state -> (Bool, Bool) in
            // An outcome ends its call even when it can't be queued: its call is over either way.
            if kind == .outcome { state.openCalls = max(0, state.openCalls - 1) }
            guard !state.closing, state.queue.count + state.syncing + state.held < self.capacity else {
                if listener == nil { self.recordsLost.add(1, ordering: .relaxed) }
                return (false, false)
            }
            if kind == .request { state.openCalls += 1 }
            state.queue.records.append(pending.take()!)
            state.queue.waiters.append(Waiter(token: token, listener: listener))
            guard wake else { return (true, false) }
            let signal = !state.wakePending
            state.wakePending = true
            return (true, signal)
        }
        if signal { self.wake.signal() }
        return accepted
    }

    /// Wakes the writer if records wait in the queue and no wake-up is on its way.
    func wakeWriter() {
        let signal = self.state.withLock { state -> Bool in
            guard !state.queue.isEmpty, !state.wakePending else { return false }
            state.wakePending = true
            return true
        }
        if signal { self.wake.signal() }
    }

    var queueDepth: Int {
        self.state.withLock { $0.queue.count + $0.inFlight + $0.syncing + $0.held }
    }

    var isWritable: Bool {
        self.writable.load(ordering: .acquiring)
            && Self.monotonicMilliseconds() >= self.refusingUntil.load(ordering: .acquiring)
    }

    /// Why the store is not writable: the error of the last failed batch; nil while it is writable.
    var failure: AuditStoreError? {
        self.isWritable ? nil : self.lastFailure.withLock { $0 }
    }

    var committed: (batches: Int, records: Int) {
        (self.batchesCommitted.load(ordering: .relaxed), self.recordsCommitted.load(ordering: .relaxed))
    }

    /// Records nobody waited for that were never written (see ``run(sink:)``).
    var lost: Int {
        self.recordsLost.load(ordering: .relaxed)
    }

    /// Writes what is queued and joins the thread. Must not be called from a listener (the writer thread).
    func close() {
        let thread = self.state.withLock { state -> pthread_t? in
            state.closing = true
            defer { state.thread = nil }
            return state.thread
        }
        self.wake.signal()
        if let thread { pthread_join(thread, nil) }
    }

    /// Takes everything queued.
    private func take() -> (Batch, Bool) {
        self.state.withLock { state -> (Batch, Bool) in
            state.wakePending = false
            let batch = state.queue
            state.queue = Batch()
            state.inFlight += batch.count
            return (batch, state.closing)
        }
    }

    /// Group commit for records nobody waits for: while the batch holds only such records (outcomes,
    /// refusals), wait up to ``lazyMilliseconds`` for more, so that they share a commit (and its fsync) with
    /// the next mutation's request record instead of costing one of their own.
    private func extendLazily(_ batch: inout Batch, closing: inout Bool) {
        guard self.lazyMilliseconds > 0, !closing, self.isWritable, !batch.hasListener else { return }
        let deadline = Self.monotonicMilliseconds() + Int64(self.lazyMilliseconds)
        while batch.count < Self.lazyBatchLimit {
            let remaining = deadline - Self.monotonicMilliseconds()
            guard remaining > 0 else { return }
            _ = self.wake.wait(milliseconds: Int(remaining))
            let (more, closingNow) = self.take()
            batch.append(contentsOf: more)
            closing = closingNow
            if closingNow || more.hasListener { return }
        }
    }

    /// Group commit under concurrency: waits up to ``commitDelayMilliseconds`` before committing a small batch
    /// somebody waits for while at least ``commitSiblings`` other calls are in progress, then takes what they queued
    /// meanwhile. It sleeps in slices of at most a millisecond and stops once ``delayedBatchLimit`` records are
    /// there, rather than waiting on the signal: woken by every loop iteration, the writer would preempt the loops
    /// whose records it waits for.
    ///
    /// The wait is also at most 1/``callDurationShare`` of `meanCallNanoseconds`, the mean duration of recent calls
    /// (from their outcome records; nil before the first): it then adds at most that share to a call's latency.
    /// Behind a slow upstream (calls of tens of milliseconds, the guard mostly idle) the whole delay applies and
    /// saves commits; with fast calls and a busy guard, batches fill by themselves and a fixed wait would only cost
    /// closed-loop clients throughput.
    private func delayCommit(_ batch: inout Batch, closing: inout Bool, meanCallNanoseconds: Int64?) {
        guard self.commitDelayMilliseconds > 0, !closing, self.isWritable,
            batch.count < Self.delayedBatchLimit, batch.hasListener
        else { return }
        let others = self.state.withLock { $0.openCalls } - batch.requests
        guard others >= self.commitSiblings else { return }
        var delay = Int64(self.commitDelayMilliseconds) * 1_000_000
        if let meanCallNanoseconds { delay = min(delay, meanCallNanoseconds / Self.callDurationShare) }
        guard delay > 0 else { return }
        let deadline = AuditTime.monotonicNanoseconds() + delay
        while true {
            let remaining = deadline - AuditTime.monotonicNanoseconds()
            guard remaining > 0 else { break }
            AuditTime.sleep(nanoseconds: min(remaining, 1_000_000))
            let (queued, closingNow) = self.state.withLock { ($0.queue.count, $0.closing) }
            if closingNow || batch.count + queued >= Self.delayedBatchLimit { break }
        }
        let (more, closingNow) = self.take()
        batch.append(contentsOf: more)
        closing = closingNow
    }

    private static func monotonicMilliseconds() -> Int64 {
        AuditTime.monotonicNanoseconds() / 1_000_000
    }

    /// The writer thread's loop.
    ///
    /// Held over: when a batch fails, the records somebody waits for (a mutation's request) fail with it, and their
    /// calls are refused. The others (outcomes of calls already forwarded, refusals, the requests of recorded reads)
    /// are held and written later, oldest first, in commits of their own after each batch: at once after a held
    /// commit that succeeded, `probeMilliseconds` after one that failed (halving the next, down to one record;
    /// doubling after a success). So a chunk of held records never makes a mutation's commit fail, and a record SQLite
    /// refuses for what it is is narrowed down to itself. While any are held, the records of new batches that nobody
    /// waits for queue behind them (a read's request is written before its outcome). They count against the queue's
    /// capacity, so a long outage ends with submits refused (which the proxy logs), not with memory growing, and take
    /// at most ``heldBytesLimit`` bytes. Lost (``lost``): records nobody waits for that found the queue full or the
    /// held records over their budget, what the store still refuses when the writer stops, everything after a failed
    /// sync, a record SQLite refuses for what it is (``AuditStoreError/retryable``: a value longer than it takes), and
    /// a held record that keeps failing alone while other commits succeed (``HeldOver/strike(commitsSoFar:)``).
    private func run(sink: any AuditBatchSink) {
        // When the head is next announced, and whether records were written since the last announcement.
        var nextHead = Self.monotonicMilliseconds()
        var unannounced = false
        // Mean duration of recent calls, which bounds the commit delay.
        var meanCallNanoseconds: Int64?
        var held = HeldOver()
        func announceHead() {
            guard let onHead = self.onHead, let head = sink.head() else { return }
            onHead(head)
            unannounced = false
            nextHead = Self.monotonicMilliseconds() + Int64(self.headMilliseconds)
        }
        func committed(_ count: Int) {
            if let failure = sink.takesNoMore {
                self.lastFailure.withLock { $0 = failure }
                self.writable.store(false, ordering: .releasing)
            } else {
                self.markWritable()
            }
            self.batchesCommitted.add(1, ordering: .relaxed)
            self.recordsCommitted.add(count, ordering: .relaxed)
            unannounced = true
            if self.onHead != nil, Self.monotonicMilliseconds() >= nextHead { announceHead() }
        }
        // The sync thread; without one (the system refused a thread), the writer syncs each batch itself.
        let syncer = sink.syncer
        let syncThread = syncer.flatMap { syncer in
            try? Self.startThread(name: "guard-audit-sync") { [self] in self.runSync(syncer) }
        }
        defer {
            if let syncThread {
                self.synced.withLock { $0.closing = true }
                self.syncWake.signal()
                pthread_join(syncThread, nil)
            }
        }
        /// Appends `records`; synced before it returns when there is no sync thread.
        func append(_ records: [AuditRecord]) throws(AuditStoreError) -> [Int64] {
            if let failure = self.failedSync { throw failure }
            let sequences = try sink.append(records)
            if let syncer, syncThread == nil {
                do throws(AuditStoreError) {
                    try self.sync(syncer)
                } catch {
                    throw error.afterCommit(sequences)
                }
            }
            return sequences
        }
        /// Reports `results` to `waiters` in commit order: through the sync thread (after the sync, for committed
        /// records), or at once without one. `awaited`: committed requests somebody waits for. Also mirrors the
        /// held records' count and ends the batch's time in flight.
        func report(_ waiters: [Waiter], _ results: [AuditResult], awaited: Int) {
            let handOver = syncThread != nil && !waiters.isEmpty
            self.state.withLock {
                $0.inFlight = 0
                $0.held = held.count
                if handOver { $0.syncing += waiters.count }
            }
            guard handOver else {
                Self.notify(waiters, results)
                return
            }
            self.synced.withLock {
                $0.waiters += waiters
                $0.results += results
                $0.awaitedRequests += awaited
            }
            self.syncWake.signal()
        }
        func reportWritten(_ waiters: [Waiter], _ sequences: [Int64], awaited: Int) {
            report(
                waiters,
                zip(waiters, sequences).map { AuditResult(token: $0.token, sequence: $1, error: nil) },
                awaited: awaited
            )
        }
        func reportFailed(_ waiters: [Waiter], _ error: AuditStoreError) {
            // Records committed before the failure keep the sequence numbers they got (a reloaded policy names its own).
            let sequences = error.committedSequences.count == waiters.count ? error.committedSequences : nil
            let results = waiters.indices.map {
                AuditResult(token: waiters[$0].token, sequence: sequences?[$0], error: error)
            }
            report(waiters, results, awaited: 0)
        }
        func mirrorHeld() { report([], [], awaited: 0) }
        /// The held records are tried again `probeMilliseconds` from now.
        func retryHeldLater() { held.nextTry = Self.monotonicMilliseconds() + Int64(self.probeMilliseconds) }
        /// A commit failed: a store that fails is not writable, and says why; a record SQLite refused says nothing
        /// about the store.
        func failed(_ error: AuditStoreError) {
            guard error.retryable || self.failedSync != nil else { return }
            self.lastFailure.withLock { $0 = error }
            self.writable.store(false, ordering: .releasing)
        }
        while true {
            var (batch, closing) = self.take()
            // Held records are tried when their time has come (at once after a success, `probeMilliseconds` after a
            // failure: a mutation's commit that succeeds meanwhile does not make them due), and on closing.
            let heldDue = !held.isEmpty && (closing || Self.monotonicMilliseconds() >= held.nextTry)
            if batch.isEmpty && !heldDue {
                if closing {
                    if unannounced { announceHead() }
                    return
                }
                if !held.isEmpty {
                    // The held records are the probe.
                    _ = self.wake.wait(milliseconds: Int(max(1, held.nextTry - Self.monotonicMilliseconds())))
                } else if self.isWritable {
                    self.wake.wait()
                } else if !self.wake.wait(milliseconds: self.probeMilliseconds), self.failedSync == nil {
                    do throws(AuditStoreError) {
                        try sink.probe()
                        self.markWritable()
                    } catch {
                        self.lastFailure.withLock { $0 = error }
                    }
                }
                continue
            }
            // Held records are written without waiting for company: they have waited long enough.
            if held.isEmpty { self.extendLazily(&batch, closing: &closing) }
            self.delayCommit(&batch, closing: &closing, meanCallNanoseconds: meanCallNanoseconds)
            batch.observeCallDurations(into: &meanCallNanoseconds)

            // 1. The batch, at once. While records are held, those of the batch that nobody waits for queue behind
            //    them (a read's request is written before its outcome), and mutations' requests commit on their own.
            if !held.isEmpty {
                let (unwaited, waiting) = batch.split()
                batch = waiting
                self.recordsLost.add(held.hold(unwaited, limit: self.heldBytesLimit), ordering: .relaxed)
            }
            if batch.isEmpty {
                mirrorHeld()
            } else {
                do throws(AuditStoreError) {
                    let sequences = try append(batch.records)
                    committed(batch.count)
                    if batch.awaitedRequests > 0 { self.refusingUntil.store(0, ordering: .releasing) }
                    reportWritten(batch.waiters, sequences, awaited: batch.awaitedRequests)
                } catch {
                    failed(error)
                    // Committed before the failure: those somebody waits for keep the sequence numbers they got.
                    let waitingError =
                        error.committed && error.committedSequences.count == batch.count
                        ? error.afterCommit(
                            zip(batch.waiters, error.committedSequences).compactMap { $0.listener != nil ? $1 : nil }
                        ) : error
                    let (unwaited, waiting) = batch.split()
                    if error.committed {
                        // In the store, though not known to be durable: nothing to hold.
                    } else if self.failedSync != nil || (closing && error.retryable) {
                        self.recordsLost.add(unwaited.count, ordering: .relaxed)
                    } else {
                        // Held: tried again once the store takes records, or, refused for what one of them is,
                        // narrowed down to that record (see below).
                        if held.isEmpty { held.commitsAtLastFailure = self.batchesCommitted.load(ordering: .relaxed) }
                        self.recordsLost.add(held.hold(unwaited, limit: self.heldBytesLimit), ordering: .relaxed)
                        if error.retryable { retryHeldLater() }
                    }
                    // SQLite refused a record that nobody waits for, now held: the mutations' requests go alone.
                    var retried: [Int64]?
                    var retryError: AuditStoreError?
                    if !error.retryable, !error.committed, self.failedSync == nil, !unwaited.isEmpty, !waiting.isEmpty {
                        do throws(AuditStoreError) {
                            retried = try append(waiting.records)
                        } catch {
                            retryError = error
                        }
                    }
                    if let retried {
                        committed(waiting.count)
                        if waiting.awaitedRequests > 0 { self.refusingUntil.store(0, ordering: .releasing) }
                        reportWritten(waiting.waiters, retried, awaited: waiting.awaitedRequests)
                    } else {
                        // Their calls are refused: no outcome will end them.
                        if !error.retryable, !error.committed, self.failedSync == nil, waiting.awaitedRequests > 0 {
                            self.lastFailure.withLock { $0 = error }
                            let until = Self.monotonicMilliseconds() + Self.refusingMilliseconds
                            self.refusingUntil.store(until, ordering: .releasing)
                        }
                        let refused = waiting.awaitedRequests
                        self.state.withLock { $0.openCalls = max(0, $0.openCalls - refused) }
                        // A retry committed before it failed: they are in the store, as its error says.
                        reportFailed(waiting.waiters, retryError.flatMap { $0.committed ? $0 : nil } ?? waitingError)
                    }
                }
            }

            // 2. Held records, oldest first, in a commit of their own.
            guard !held.isEmpty, closing || Self.monotonicMilliseconds() >= held.nextTry else { continue }
            let count = min(held.count, held.chunk)
            let chunk = held.batch.prefix(count)
            do throws(AuditStoreError) {
                let sequences = try append(chunk.records)
                committed(count)
                held.removeFirst(count)
                held.chunk = min(held.chunk * 2, Self.heldOverPerCommit)
                held.nextTry = 0
                held.strikes = 0
                // Through the sync thread like any commit (nobody hears of them).
                reportWritten(chunk.waiters, sequences, awaited: 0)
            } catch {
                // Not ``failed(_:)``: mutations' requests are tried on their own and tell whether the store takes
                // records (a nearly full disk may take a request and not a chunk of held records).
                let commits = self.batchesCommitted.load(ordering: .relaxed)
                if error.committed {
                    held.removeFirst(count)  // in the store, though not known to be durable
                } else if self.failedSync != nil || (closing && error.retryable) {
                    // Nothing more is written (a failed sync), or this was the last try.
                    self.recordsLost.add(held.drop(), ordering: .relaxed)
                } else if count == 1, !error.retryable || held.strike(commitsSoFar: commits) {
                    // The record SQLite refuses, or one that does not fit while other commits do (a 20 MB filter
                    // on a nearly full disk): behind it, the held records would fill the queue.
                    held.removeFirst(1)
                    self.recordsLost.add(1, ordering: .relaxed)
                } else {
                    held.chunk = max(1, count / 2)
                    // A store that fails waits; a record it refuses is narrowed down at once.
                    if error.retryable { retryHeldLater() }
                }
                // While the store is not writable, held records replace the idle probe; the probe still says
                // whether the store takes a transaction at all (for /readyz, and so that mutations are tried).
                if !self.isWritable, self.failedSync == nil, (try? sink.probe()) != nil { self.markWritable() }
                mirrorHeld()
            }
        }
    }

    /// The sync thread's loop: takes every committed batch handed over, syncs them at once, then reports them.
    private func runSync(_ syncer: any AuditSyncer) {
        while true {
            let taken = self.synced.withLock { synced -> Synced in
                defer { synced = Synced(closing: synced.closing) }
                return synced
            }
            guard !taken.waiters.isEmpty else {
                if taken.closing { return }
                self.syncWake.wait()
                continue
            }
            var results = taken.results
            if let failure = self.failedSync {
                // A later fdatasync may report no error although the writes it covers come after lost ones: once a
                // sync failed, nothing more is reported durable.
                // They were committed all the same: whoever waits may need to know they are in the store.
                results = results.map {
                    AuditResult(token: $0.token, sequence: $0.sequence, error: $0.error ?? failure.afterCommit())
                }
                self.state.withLock { $0.openCalls = max(0, $0.openCalls - taken.awaitedRequests) }
            } else if results.contains(where: { $0.error == nil }) {
                do throws(AuditStoreError) {
                    try self.sync(syncer)
                } catch {
                    // Committed but maybe lost: their calls are refused, and no outcome will end them.
                    results = results.map {
                        AuditResult(token: $0.token, sequence: $0.sequence, error: $0.error ?? error.afterCommit())
                    }
                    self.state.withLock { $0.openCalls = max(0, $0.openCalls - taken.awaitedRequests) }
                }
            }
            self.state.withLock { $0.syncing -= taken.waiters.count }
            Self.notify(taken.waiters, results)
        }
    }

    /// The failure of the first sync that failed, if one did.
    private var failedSync: AuditStoreError? {
        self.syncFailure.withLock { $0 }
    }

    /// Syncs; a failure is kept, and every later batch fails with it.
    private func sync(_ syncer: any AuditSyncer) throws(AuditStoreError) {
        do {
            try syncer.sync()
        } catch {
            let failure = AuditStoreError(
                "\(error.message); the records of the last commits may be lost, so the store takes no more until "
                    + "milvus-guard restarts",
                retryable: false
            )
            self.syncFailure.withLock { if $0 == nil { $0 = failure } }
            self.lastFailure.withLock { $0 = failure }
            self.writable.store(false, ordering: .releasing)
            throw failure
        }
    }

    /// Marks the store writable after a commit or probe, unless a sync has failed: checked after the store, so that
    /// a sync failing meanwhile (which sets the failure, then clears the flag) always wins.
    private func markWritable() {
        self.writable.store(true, ordering: .releasing)
        if self.failedSync != nil { self.writable.store(false, ordering: .releasing) }
    }

    /// Calls each listener once with its records' results, in submission order. Listeners are few (one per event
    /// loop), so they are grouped by a linear search rather than a dictionary, whose in-place updates allocate.
    private static func notify(_ waiters: [Waiter], _ results: [AuditResult]) {
        var groups: [(listener: any AuditListener, results: [AuditResult])] = []
        for (waiter, result) in zip(waiters, results) {
            guard let listener = waiter.listener else { continue }
            if let index = groups.firstIndex(where: { $0.listener === listener }) {
                groups[index].results.append(result)
            } else {
                groups.append((listener, [result]))
            }
        }
        for group in groups { group.listener.auditCompleted(group.results) }
    }
}
