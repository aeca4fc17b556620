/// One call as the audit log shows it: a request record joined with its outcome record, or a refusal record.
public struct AuditEntry: Sendable, Hashable {
    /// What became of the call.
    public enum Outcome: String, Sendable, Hashable {
        /// Forwarded, and the upstream answered with status 0 and no failed Milvus status.
        case ok
        /// Forwarded and answered with a non-zero status or a failed Milvus status (``milvusCode``), or refused by
        /// the guard.
        case failed
        /// Forwarded, and Milvus's answer is not known: no outcome was recorded (the guard stopped between forwarding
        /// and the answer), or the guard ended the call before Milvus answered (the client's deadline passed, the
        /// client cancelled, the connection to Milvus failed). The call may or may not have happened.
        case unknown
    }

    /// The request's (or refusal's, or policy record's) sequence number.
    public var id: Int64
    /// The request or refusal record.
    public var record: AuditRecord
    /// ok, failed or unknown.
    public var outcome: Outcome
    /// Whether the call's outcome record is in the store (always, for a refusal). A request can have one and still
    /// be ``Outcome/unknown``: the guard ended the call after it went to Milvus and before Milvus answered.
    public var outcomeRecorded: Bool
    /// The gRPC status: the outcome's, or the refusal's own.
    public var status: Int32?
    /// The rows Milvus says the call changed: its outcome record's ``AuditRecord/rows`` (Insert, Upsert, Delete).
    public var rowsAffected: Int64?
    /// Milvus's failure code when it answered gRPC OK with a failed `common.Status` (``AuditRecord/milvusCode``).
    public var milvusCode: Int32?
    /// The gRPC status message (or the failed Milvus status's reason): the outcome's, or the refusal's own.
    public var message: String?
    /// How long the call took: the outcome's, or the refusal's own.
    public var durationMilliseconds: Double?
    /// The request's (or refusal's) hash.
    public var hash: String
    /// The hash of the record before it in the chain.
    public var prevHash: String

    /// Joins a request or refusal record with the outcome of its call, if any.
    public init(id: Int64, record: AuditRecord, outcomeRecord: AuditRecord?, hash: String, prevHash: String) {
        self.id = id
        self.record = record
        self.hash = hash
        self.prevHash = prevHash
        let source = record.kind == .request ? outcomeRecord : record
        self.outcomeRecorded = source != nil
        self.status = source?.status
        self.milvusCode = source?.milvusCode
        self.rowsAffected = record.kind == .request ? outcomeRecord?.rows : nil
        self.message = source?.message
        self.durationMilliseconds = source?.durationMilliseconds
        switch (record.kind, source?.status) {
        case (.refusal, _): self.outcome = .failed
        case (.policy, _): self.outcome = record.decision == Self.policyLoaded ? .ok : .failed
        case (_, nil): self.outcome = .unknown
        case (_, 0): self.outcome = self.milvusCode == nil ? .ok : .failed
        default: self.outcome = .failed
        }
    }

    /// The decision of a policy record whose policy was put in force; any other (`rejected`) is a failed reload.
    public static let policyLoaded = "loaded"

    /// The field names of ``jsonLine()``, in order.
    public static let jsonFields = [
        "id", "time", "principal", "auth", "client", "tls", "rpc", "action", "db", "collection", "partitions",
        "targets",
        "filter", "rows", "rows_affected", "request_bytes", "decision", "rule", "policy_id", "approval_id",
        "snapshot_id",
        "outcome",
        "status",
        "milvus_code", "message", "duration_ms", "hash", "prev_hash",
    ]

    /// The entry as one JSON object on one line (no newline), fields in ``jsonFields`` order.
    ///
    /// Fields that do not apply are `null`; `partitions` is always an array and `targets` always an object, so a
    /// SIEM sees one type per field. `time` is RFC 3339 UTC with milliseconds; `duration_ms` has three decimals.
    public func jsonLine() -> String {
        let r = self.record
        func text(_ value: String?) -> String { value.map(JSONText.quote) ?? "null" }
        func number<T: BinaryInteger>(_ value: T?) -> String { value.map { String($0) } ?? "null" }
        let values: [String] = [
            String(self.id),
            JSONText.quote(AuditTime.format(milliseconds: r.timeMilliseconds)),
            text(r.principal),
            text(r.authentication),
            text(r.client),
            r.tls.map { $0 ? "true" : "false" } ?? "null",
            text(r.rpc),
            text(r.action),
            text(r.database),
            text(r.collection),
            JSONText.array(r.partitions),
            JSONText.object(r.targets),
            text(r.filter),
            number(r.rows),
            number(self.rowsAffected),
            number(r.requestBytes),
            text(r.decision),
            text(r.rule),
            number(r.policySequence),
            text(r.approvalID),
            text(r.snapshotID),
            JSONText.quote(self.outcome.rawValue),
            number(self.status),
            number(self.milvusCode),
            text(self.message),
            self.durationMilliseconds.map(Self.formatMilliseconds) ?? "null",
            JSONText.quote(self.hash),
            JSONText.quote(self.prevHash),
        ]
        return "{" + zip(Self.jsonFields, values).map { JSONText.quote($0) + ":" + $1 }.joined(separator: ",") + "}"
    }

    /// Milliseconds with exactly three decimals (the stored microseconds): `12.345`, `-0.500`.
    public static func formatMilliseconds(_ milliseconds: Double) -> String {
        let micros = ChainRow.microseconds(milliseconds)
        let magnitude = micros.magnitude
        let fraction = String(magnitude % 1000)
        return (micros < 0 ? "-" : "") + String(magnitude / 1000) + "."
            + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}
