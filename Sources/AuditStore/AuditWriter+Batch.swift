/// The queue's records and their waiters, and the records held over failed batches: ``AuditWriter``'s bookkeeping,
/// used on the writer thread and under its lock.
extension AuditWriter {
    /// Who waits for a queued record; `queue.records[i]` belongs to `queue.waiters[i]`.
    struct Waiter: Sendable {
        let token: UInt64
        let listener: (any AuditListener)?
    }

    /// Records and their waiters in two arrays, so a batch's records go to the sink without a copy.
    struct Batch: Sendable {
        var records: [AuditRecord] = []
        var waiters: [Waiter] = []

        var count: Int { self.records.count }
        var isEmpty: Bool { self.records.isEmpty }
        var hasListener: Bool { self.waiters.contains { $0.listener != nil } }
        /// Request records somebody waits for: calls that are refused (and write no outcome) if the batch fails.
        var awaitedRequests: Int {
            // By index, reading one field: iterating the records would copy each (a retain per field).
            var count = 0
            for index in self.records.indices
            where self.records[index].kind == .request && self.waiters[index].listener != nil {
                count += 1
            }
            return count
        }
        var requests: Int {
            var count = 0
            for index in self.records.indices where self.records[index].kind == .request { count += 1 }
            return count
        }
        /// Folds the durations of the batch's outcome records into `mean` (nil: none seen yet), nanoseconds.
        func observeCallDurations(into mean: inout Int64?) {
            for index in self.records.indices where self.records[index].kind == .outcome {
                guard let milliseconds = self.records[index].durationMilliseconds, milliseconds >= 0 else { continue }
                let nanoseconds = Int64(min(milliseconds, 3_600_000) * 1_000_000)
                mean = mean.map { $0 + (nanoseconds - $0) / AuditWriter.callDurationSmoothing } ?? nanoseconds
            }
        }

        mutating func append(contentsOf other: Batch) {
            self.records += other.records
            self.waiters += other.waiters
        }

        /// The first `count` records and their waiters.
        func prefix(_ count: Int) -> Batch {
            Batch(records: Array(self.records.prefix(count)), waiters: Array(self.waiters.prefix(count)))
        }

        mutating func removeFirst(_ count: Int) {
            self.records.removeFirst(count)
            self.waiters.removeFirst(count)
        }

        /// Splits it into the records nobody waits for (outcomes, refusals, reads' requests) and those somebody
        /// waits for (mutations' requests), each in order.
        consuming func split() -> (unwaited: Batch, waiting: Batch) {
            var unwaited = Batch()
            var waiting = Batch()
            for (record, waiter) in zip(self.records, self.waiters) {
                if waiter.listener == nil {
                    unwaited.records.append(record)
                    unwaited.waiters.append(waiter)
                } else {
                    waiting.records.append(record)
                    waiting.waiters.append(waiter)
                }
            }
            return (unwaited, waiting)
        }
    }

    /// Records of failed batches that nobody waits for, oldest first; the writer thread's alone.
    struct HeldOver {
        var batch = Batch()
        /// ``AuditRecord/estimatedBytes`` of `batch`.
        var bytes = 0
        /// How many go into the next commit: halved by each failure (a nearly full disk may take a smaller commit,
        /// and a record SQLite refuses is narrowed down to itself), doubled by each success.
        var chunk = AuditWriter.heldOverPerCommit
        /// When to try again while the store fails (monotonic milliseconds).
        var nextTry: Int64 = 0
        /// Failed tries of the oldest record alone with other commits succeeding in between, and the number of
        /// commits at the last failed try.
        var strikes = 0
        var commitsAtLastFailure = 0
        /// Failed tries of the oldest record alone, with other commits succeeding in between, after which it is
        /// given up.
        static let strikesLimit = 3

        /// Notes a failed try of the oldest record alone when `commitsSoFar` commits have succeeded; whether it has
        /// failed ``strikesLimit`` times with other commits succeeding in between (the store takes records, not it).
        mutating func strike(commitsSoFar: Int) -> Bool {
            if commitsSoFar > self.commitsAtLastFailure { self.strikes += 1 }
            self.commitsAtLastFailure = commitsSoFar
            guard self.strikes >= Self.strikesLimit else { return false }
            self.strikes = 0
            return true
        }

        var isEmpty: Bool { self.batch.isEmpty }
        var count: Int { self.batch.count }

        /// Holds the records of `other` within `limit` bytes in all; returns how many did not fit.
        mutating func hold(_ other: Batch, limit: Int) -> Int {
            var refused = 0
            for (record, waiter) in zip(other.records, other.waiters) {
                let size = record.estimatedBytes
                guard self.bytes + size <= limit else {
                    refused += 1
                    continue
                }
                self.bytes += size
                self.batch.records.append(record)
                self.batch.waiters.append(waiter)
            }
            return refused
        }

        mutating func removeFirst(_ count: Int) {
            for index in 0..<count { self.bytes -= self.batch.records[index].estimatedBytes }
            self.batch.removeFirst(count)
        }

        /// Empties it; returns how many records it held.
        mutating func drop() -> Int {
            defer { self = HeldOver() }
            return self.count
        }
    }
}
