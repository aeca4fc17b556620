/// Checks stored rows one by one, in sequence order, against the chain rules (see ``ChainRow``).
///
/// The start of the chain is either record 1 with a prev_hash of 64 zeros, or, after a prune, the record right after
/// the newest checkpoint's `pruned_through_sequence`, whose prev_hash must be that checkpoint's
/// `pruned_through_hash`. Each later record must have the next sequence number (else: removed), match its own hash
/// (else: altered; if it also fails to link, inserted) and link to the previous record's hash (else: inserted).
///
/// A prune appends its checkpoint before it deletes, oldest first, so while it runs (or after it was interrupted)
/// the oldest records may be ones the checkpoint covers. The first of them starts the chain whatever its prev_hash;
/// they must still be consecutive and linked, and the one the checkpoint names must have the hash it recorded, so
/// none of them can be altered or inserted unnoticed either.
struct ChainVerifier {
    /// The targets keys a checkpoint record carries.
    static let prunedSequenceKey = "pruned_through_sequence"
    static let prunedHashKey = "pruned_through_hash"

    /// What the newest checkpoint says was pruned; nil when nothing was.
    private var coverage: (sequence: Int64, hash: String)?
    private var previous: (sequence: Int64, hash: String)?
    private(set) var count = 0

    /// - Parameter checkpoints: the rows of every checkpoint record (read before verifying; each is checked again
    ///   when the pass reaches it).
    init(checkpoints: [ChainRow]) {
        var best: (sequence: Int64, hash: String)?
        for row in checkpoints {
            // One that claims to cover itself or later records is not taken; check() reports it when it gets there.
            guard let covered = Self.covered(by: row), covered.sequence < row.sequence else { continue }
            if best == nil || covered.sequence > best!.sequence { best = covered }
        }
        self.coverage = best
    }

    /// What a checkpoint row says it pruned through; nil for other rows and for a checkpoint without it.
    private static func covered(by row: ChainRow) -> (sequence: Int64, hash: String)? {
        guard row.kind == AuditRecord.Kind.checkpoint.rawValue,
            let targets = row.columns[13].text.flatMap(JSONText.parseObject),
            let sequence = targets[Self.prunedSequenceKey].flatMap({ Int64($0) }),
            let hash = targets[Self.prunedHashKey]
        else { return nil }
        return (sequence, hash)
    }

    /// Records after the last one checked are gone (a prune ran while the rows were read in parts): if
    /// `checkpoints`, read now, cover everything before `sequence`, the next row starts the chain again as at the
    /// start of a store; if not, ``check(_:)`` reports the records removed.
    mutating func restart(checkpoints: [ChainRow], at sequence: Int64) {
        guard let coverage = ChainVerifier(checkpoints: checkpoints).coverage, coverage.sequence >= sequence - 1
        else { return }
        self.coverage = coverage
        self.previous = nil
    }

    /// Checks the next row; returns the problem if it breaks the chain (stop there).
    mutating func check(_ row: ChainRow) -> AuditChainProblem? {
        let sequence = row.sequence
        let expected: (sequence: Int64, hash: String)
        if let previous = self.previous {
            expected = (previous.sequence + 1, previous.hash)
        } else if sequence == 1 || self.coverage == nil {
            expected = (1, ChainRow.zeroHash)
        } else if sequence <= self.coverage!.sequence {
            expected = (sequence, row.prevHash)  // covered, not yet deleted: its predecessor is gone
        } else {
            expected = (self.coverage!.sequence + 1, self.coverage!.hash)
        }
        self.count += 1
        defer { self.previous = (sequence, row.hash) }
        if sequence > expected.sequence {
            let range =
                sequence - 1 == expected.sequence
                ? "record \(expected.sequence) is" : "records \(expected.sequence)…\(sequence - 1) are"
            let why = self.previous == nil && self.coverage == nil ? " and no checkpoint covers them" : ""
            return AuditChainProblem(
                sequence: expected.sequence,
                kind: .removed,
                detail: "\(range) missing before record \(sequence)\(why)"
            )
        }
        if sequence < expected.sequence {
            return AuditChainProblem(
                sequence: sequence,
                kind: .inserted,
                detail: "sequence \(sequence) where \(expected.sequence) was expected"
            )
        }
        let links = row.prevHash == expected.hash
        let matches = ChainRow.hash(prevHash: row.prevHash, columns: row.columns) == row.hash
        switch (matches, links) {
        case (true, true):
            if let covered = Self.covered(by: row), covered.sequence >= sequence {
                return AuditChainProblem(
                    sequence: sequence,
                    kind: .altered,
                    detail: "a checkpoint cannot cover records from itself on (it names record \(covered.sequence))"
                )
            }
            if let coverage = self.coverage, sequence == coverage.sequence, row.hash != coverage.hash {
                return AuditChainProblem(
                    sequence: sequence,
                    kind: .altered,
                    detail: "its hash is not the one the newest checkpoint recorded when it pruned it"
                )
            }
            return nil
        case (false, true):
            return AuditChainProblem(
                sequence: sequence,
                kind: .altered,
                detail: "its content does not match its hash"
            )
        case (_, false):
            let previous = sequence == 1 ? "the start of the chain" : "record \(sequence - 1)"
            return AuditChainProblem(
                sequence: sequence,
                kind: .inserted,
                detail:
                    "its prev_hash does not link to \(previous)\(matches ? "" : ", and its content does not match its hash")"
            )
        }
    }

    /// The result once every row passed.
    var result: AuditVerification {
        .ok(count: self.count, head: self.previous?.hash ?? self.coverage?.hash ?? ChainRow.zeroHash)
    }

    /// Verifies `rows` (in sequence order) given the store's checkpoint rows.
    static func verify(rows: some Sequence<ChainRow>, checkpoints: [ChainRow]) -> AuditVerification {
        var verifier = ChainVerifier(checkpoints: checkpoints)
        for row in rows {
            if let problem = verifier.check(row) { return .broken(problem) }
        }
        return verifier.result
    }

    /// The checkpoint record appended by prune after deleting records through `last`.
    static func checkpoint(after last: ChainRow, deleted: Int, before: Int64, now: Int64) -> AuditRecord {
        var record = AuditRecord(kind: .checkpoint, callID: String(last.hash.prefix(32)), timeMilliseconds: now)
        record.targets = [Self.prunedSequenceKey: String(last.sequence), Self.prunedHashKey: last.hash]
        record.rows = Int64(deleted)
        record.message = "pruned \(deleted) records before \(AuditTime.format(milliseconds: before))"
        return record
    }
}
