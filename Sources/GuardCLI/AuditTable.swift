import AuditStore

/// The `audit` table for people: one line per call, columns aligned, `-` for what does not apply. A policy record's
/// line shows `(policy)` as its RPC, who asked for the reload as its client, and the start of the digest over the
/// policy files as its target.
enum AuditTable {
    static let header = ["TIME", "PRINCIPAL", "CLIENT", "RPC", "TARGET", "ROWS", "DECISION", "OUTCOME", "DURATION"]

    /// The header and one line per entry.
    static func lines(_ entries: [AuditEntry]) -> [String] {
        let rows = [Self.header] + entries.map(Self.cells)
        var widths = Array(repeating: 0, count: Self.header.count)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        return rows.map { row in
            var line = ""
            for (index, cell) in row.enumerated() {
                let last = index == row.count - 1
                line += last ? cell : cell + String(repeating: " ", count: widths[index] - cell.count + 2)
            }
            return line
        }
    }

    /// The cells of one call, escaped (``PrintableText``): names and filters are whatever bytes the client sent.
    static func cells(_ entry: AuditEntry) -> [String] {
        Self.rawCells(entry).map(PrintableText.escaped)
    }

    private static func rawCells(_ entry: AuditEntry) -> [String] {
        let record = entry.record
        if record.kind == .policy { return Self.policyCells(entry) }
        // A call without one collection: the list it names (Flush), or the IDs it gives instead of a name, as the
        // policy's messages write them (without the database: Milvus looks an ID up in all of them).
        let named = record.collection ?? record.targets["collections"]
        let target =
            switch (record.database, named, record.targets["collection_ids"]) {
            case (_, nil, let ids?): "<collection ID \(ids)>"
            case (let db?, let collection?, _): "\(db).\(collection)"
            case (let db?, nil, _): db
            case (nil, let collection?, _): collection
            case (nil, nil, _): "-"
            }
        let outcome =
            switch entry.outcome {
            case .ok: "ok"
            case .unknown: "unknown"
            case .failed:
                if let code = entry.milvusCode, entry.status == 0 {
                    "failed (milvus \(code))"
                } else {
                    entry.status.map { "failed (\($0))" } ?? "failed"
                }
            }
        return [
            AuditTime.format(milliseconds: record.timeMilliseconds),
            record.principal ?? "-",
            record.client ?? "-",
            record.rpc ?? "-",
            target,
            (record.rows ?? entry.rowsAffected).map { String($0) } ?? "-",
            record.decision ?? "-",
            outcome,
            entry.durationMilliseconds.map { AuditEntry.formatMilliseconds($0) + " ms" } ?? "-",
        ]
    }

    private static func policyCells(_ entry: AuditEntry) -> [String] {
        let record = entry.record
        return [
            AuditTime.format(milliseconds: record.timeMilliseconds),
            "-",
            record.targets["requested_by"] ?? record.targets["trigger"] ?? "-",
            "(policy)",
            record.targets["policy_sha256"].map { "sha256:" + $0.prefix(12) } ?? "-",
            "-",
            record.decision ?? "-",
            entry.outcome == .ok ? "ok" : "failed",
            "-",
        ]
    }
}
