import AuditStore
import Glibc
import GuardPolicy
import Logging
import MilvusCatalog
import OpenSSLSupport
import Synchronization

/// Auditing: every mutation is recorded before it is forwarded (write-ahead), its outcome when it ends;
/// every refusal is recorded; allowed reads only with `audit.reads`.
///
/// Records go to the audit log's writer thread; a mutation waits for the result of its request record,
/// which comes back through the mailbox (``LoopMessage/audited(_:)``). If the store can't write, the
/// mutation is refused with RESOURCE_EXHAUSTED and never forwarded.
extension ProxyWorker {
    /// What to do with an allowed call before it is forwarded.
    enum AuditGate {
        /// Forward now (nothing to wait for).
        case forward
        /// The request record is on its way to the store; ``ProxiedCall/auditSettled(_:)`` follows.
        case wait
        /// Refuse: the record can't be written.
        case refuse(GRPCStatus)
    }

    /// Writes the request record of an allowed call. Mutations wait for it; reads (with `audit.reads`)
    /// don't.
    func auditBeforeForwarding(_ call: ProxiedCall, decoded: MilvusCall) -> AuditGate {
        guard let audit = self.services.audit else { return .forward }
        let mutation = decoded.rpc.actionClass != .read
        guard mutation || audit.reads else { return .forward }
        let token = self.nextAuditToken()
        var record = self.auditRecord(.request, for: call)
        Self.describe(decoded, in: &record)
        guard self.submitAudit(audit, consume record, token: token, listener: mutation ? self.auditListener : nil)
        else {
            guard mutation else { return .forward }  // a read's record is not a condition of the read
            // A queue filled behind a failing store says why the store fails, which is what an operator must fix.
            let why = audit.log.failure.map { "\($0.message), and the audit queue is full" }
            return .refuse(GRPCStatus(.resourceExhausted, why ?? "audit store unavailable: the audit queue is full"))
        }
        call.requestRecorded = true
        guard mutation else { return .forward }
        call.auditQueuedAt = EventLoop.now()
        self.awaitingAudit[token] = call
        return .wait
    }

    /// Results of a batch: forward the mutations whose records are durable, refuse the others.
    func audited(_ results: [AuditResult]) {
        let now = EventLoop.now()
        for result in results {
            guard let call = self.awaitingAudit.removeValue(forKey: result.token) else { continue }
            self.metrics.recordAuditWait(nanoseconds: now &- call.auditQueuedAt)
            if let error = result.error {
                if self.storeRefusals.happened(error.message) {
                    self.logger.error(
                        "audit store unavailable: refusing a mutation",
                        metadata: ["rpc": "\(call.decodedRPC?.name ?? call.path)", "error": "\(error.message)"]
                    )
                }
                call.requestRecorded = false  // not in the store: no outcome record can point at it
                let why =
                    error.message.hasPrefix("audit store unavailable")
                    ? error.message : "audit store unavailable: \(error.message)"
                call.auditSettled(GRPCStatus(.resourceExhausted, why))
            } else {
                call.auditSettled(nil)
            }
        }
    }

    /// A call ended (its stream closed): the outcome record of a recorded request, or the record of a
    /// refusal; and the metrics.
    func callFinished(_ call: ProxiedCall) {
        let decision: CallDecision
        switch call.verdict {
        case .allowed?, .wouldDeny?: decision = .allowed
        case .denied?: decision = .denied
        case .failed?, nil: decision = call.guardStatus == nil ? .allowed : .failed
        }
        let status: CallStatus
        if let code = call.finalStatus.flatMap({ Int($0) }).flatMap(GRPCStatusCode.init(rawValue:)) {
            status = .code(code)
        } else {
            status = call.finalStatus == "reset" ? .reset : .missing
        }
        self.metrics.recordCall(
            rpc: call.decodedRPC ?? MilvusRPCs.descriptor(forPath: call.path),
            decision: decision,
            status: status,
            durationNanoseconds: EventLoop.now() - call.startedAt
        )

        if !call.requestRecorded, let status = call.guardStatus, Self.isClientsFault(status, call.verdict),
            let client = call.client
        {
            self.countRefusal(by: client, cutOff: true)
        }

        guard let audit = self.services.audit else { return }
        let kind: AuditRecord.Kind
        if call.requestRecorded {
            kind = .outcome
        } else if call.guardStatus != nil {
            kind = .refusal
        } else {
            return
        }
        // An outcome does not describe the call again (see auditRecord).
        var record = self.auditRecord(kind, for: call)
        if kind == .refusal, let decoded = call.milvusCall { Self.describe(decoded, in: &record) }
        self.submitUnwaited(audit, consume record)
    }

    /// A request refused before it became a gRPC call: HTTP/1.1 (Milvus's REST API) or garbage on the gRPC port,
    /// another method or content type. A `refusal` record of its own, with what was asked (`rpc`: the request line
    /// or the path), decision `failed`, and the gRPC code a gRPC client maps the HTTP status to (403 ->
    /// PERMISSION_DENIED, others UNKNOWN); the message starts with the HTTP status.
    /// `onStream`: refused as an HTTP/2 stream (the connection lives on); else the connection did not speak HTTP/2
    /// and is closed anyway.
    func auditProtocolRefusal(
        _ client: ClientConnection,
        asked: String,
        httpStatus: Int,
        message: String,
        onStream: Bool
    ) {
        self.countRefusal(by: client, cutOff: onStream)
        let code: GRPCStatusCode = httpStatus == 403 ? .permissionDenied : .unknown
        self.auditConnectionRefusal(client, rpc: asked, code: code, message: "HTTP \(httpStatus): \(message)")
    }

    /// A client connection TLS ended: a failed handshake (no certificate or one the CAs do not vouch for, an expired
    /// one, no shared version or key-exchange group, no ALPN `h2`) or a broken record. A gRPC client sees only
    /// UNAVAILABLE, so the guard's side is what tells an operator why: a `refusal` record (`rpc` `TLS`, decision
    /// `failed`, status UNAVAILABLE, the reason), a log line (the first of each second; the housekeeping sums up
    /// the others), and a count against ``Limits/refusalsPerWindow``, which shuts out an address that keeps
    /// failing handshakes (each costs the guard a key exchange and a signature). Before 2026-12-06 such failures
    /// were logged at debug level only.
    /// An alert the peer sent (`tlsv1 alert unknown ca`: it does not trust the guard's certificate) is the guard's
    /// problem as much as the client's, and is not counted: clients behind one NAT retrying through an expired
    /// guard certificate must not get their address shut out.
    func auditTLSFailure(_ client: ClientConnection, reason: String) {
        if self.tlsFailures.happened("\(client.peer): \(reason)") {
            self.logger.notice("TLS connection refused", metadata: ["peer": "\(client.peer)", "reason": "\(reason)"])
        }
        if !Self.isPeerAlert(reason) { self.countRefusal(by: client, cutOff: false) }
        self.auditConnectionRefusal(client, rpc: "TLS", code: .unavailable, message: "TLS: \(reason)")
    }

    /// Whether OpenSSL's reason for a failed handshake is an alert the peer sent (`sslv3 alert …`, `tlsv1 alert …`).
    static func isPeerAlert(_ reason: String) -> Bool {
        reason.contains("sslv3 alert ") || reason.contains("tlsv1 alert ") || reason.contains("tlsv13 alert ")
    }

    /// A request whose header block nghttp2 refused and reset (PROTOCOL_ERROR, which a gRPC client reads as INTERNAL):
    /// a name with upper-case letters, a bad pseudo-header, a malformed request. A `refusal` record (`rpc`: the
    /// method of its path when there is one, decision `failed`, status INTERNAL, nghttp2's reason), counted against
    /// ``Limits/refusalsPerWindow``. Before 2026-12-06 nobody heard of these: a red-team run sent 5000 in 0.3 s,
    /// neither recorded nor counted.
    func auditResetRequest(_ client: ClientConnection, path: String?, reason: String) {
        self.countRefusal(by: client, cutOff: true)
        let rpc = path.map { MilvusRPCs.descriptor(forPath: $0)?.name ?? $0 }
        self.auditConnectionRefusal(
            client,
            rpc: rpc.map { String($0.prefix(200)) },
            code: .internal,
            message: "HTTP/2: request reset (PROTOCOL_ERROR): \(reason): a header field name with upper-case letters, "
                + "or another header HTTP/2 forbids"
        )
    }

    /// A `refusal` record that is not about a decoded call: what the connection asked (nil: nothing in particular),
    /// decision `failed`, the status, no duration.
    private func auditConnectionRefusal(
        _ client: ClientConnection,
        rpc: String?,
        code: GRPCStatusCode,
        message: String
    ) {
        guard let audit = self.services.audit else { return }
        var record = AuditRecord(
            kind: .refusal,
            callID: self.nextCallID(),
            timeMilliseconds: Self.wallClockMilliseconds()
        )
        record.client = client.peer
        record.tls = client.connection.tls != nil
        record.rpc = rpc
        record.decision = CallVerdict.failed.rawValue
        record.status = Int32(code.rawValue)
        record.message = message
        record.durationMilliseconds = 0
        self.submitUnwaited(audit, record)
    }

    /// Queues a record nobody waits for (an outcome or a refusal). With the queue full it can't refuse anything: it
    /// is dropped, and the log says what it was about, once a second (``OncePerSecondLog``): the queue is full when
    /// the writer has fallen far behind, and then every call ends this way.
    private func submitUnwaited(_ audit: ProxyAudit, _ record: consuming AuditRecord) {
        // What the log needs, taken before the record goes (references only; text is made for a dropped one).
        let (kind, rpc, principal, client, status) = (
            record.kind, record.rpc, record.principal, record.client, record.status
        )
        guard !self.submitAudit(audit, consume record, token: self.nextAuditToken(), listener: nil) else { return }
        let about =
            "kind=\(kind) rpc=\(rpc ?? "-") principal=\(principal ?? "-") client=\(client ?? "-") "
            + "status=\(status.map { String($0) } ?? "-")"
        if self.droppedRecords.happened(about) {
            self.logger.warning("audit queue full: a record was dropped", metadata: ["record": "\(about)"])
        }
    }

    /// Whether a refusal is the caller's doing, and so counts against ``Limits/refusalsPerWindow``: denied by the
    /// policy, no or wrong credential (and the failure limit that follows), a malformed request or an unknown RPC.
    /// Not what the guard or Milvus caused (UNAVAILABLE, DEADLINE_EXCEEDED, a full audit store or held-bytes
    /// budget): pymilvus retries those, and a healthy client must not be cut off for them.
    static func isClientsFault(_ status: GRPCStatus, _ verdict: CallVerdict?) -> Bool {
        switch verdict {
        case .denied?, .failed?:
            return true
        case .allowed?, .wouldDeny?, nil:
            switch status.code {
            case .permissionDenied, .unauthenticated, .invalidArgument, .unimplemented: return true
            default: return false
            }
        }
    }

    /// Counts a refusal against the client's address. At ``Limits/refusalsPerWindow`` the address is over its
    /// limit: one record says so (the refusals themselves are each recorded as usual), and from then on each of its
    /// connections gets a GOAWAY at its next refusal (`cutOff`: at this one) and new ones are closed at once
    /// (``SharedServices/admitClient(host:)``) until the window is over.
    private func countRefusal(by client: ClientConnection, cutOff: Bool) {
        guard self.services.limitsRefusals else { return }
        let limit = self.configuration.limits.refusalsPerWindow
        let count = self.services.refusals.withLock { $0.recordFailure(client.peerHost, now: EventLoop.now()) }
        guard count >= limit else { return }
        if count == limit { self.recordRefusalLimit(client, limit: limit) }
        if cutOff { client.cutOff() }
    }

    /// The record of an address going over its refusal limit: a `refusal` with no RPC, decision `failed`, status
    /// RESOURCE_EXHAUSTED; and a warning in the log.
    private func recordRefusalLimit(_ client: ClientConnection, limit: Int) {
        let window = Self.describeWindow(milliseconds: self.configuration.limits.refusalWindowMilliseconds)
        let message =
            "milvus-guard: \(limit) refused calls from \(client.peerHost) within \(window) "
            + "(limits.refusals_per_minute): its connections are closed, and new ones refused, until that window is "
            + "over"
        self.logger.warning(
            "too many refused calls: closing the address's connections",
            metadata: ["address": "\(client.peerHost)", "limit": "\(limit)", "window": "\(window)"]
        )
        self.auditConnectionRefusal(client, rpc: nil, code: .resourceExhausted, message: message)
    }

    /// `a minute`, `10 s`: the refusal window in a message.
    private static func describeWindow(milliseconds: Int) -> String {
        milliseconds == 60_000 ? "a minute" : DurationText.seconds(milliseconds: milliseconds)
    }

    /// Queues a record; the writer is woken once, at the end of this loop iteration (``wakeAuditWriter()``), so
    /// that one commit takes every record the iteration produced.
    private func submitAudit(
        _ audit: ProxyAudit,
        _ record: consuming AuditRecord,
        token: UInt64,
        listener: (any AuditListener)?
    ) -> Bool {
        // Under which policy it was decided (an outcome's request says so): a call's records name the policy that
        // judged it (``complete(_:for:)``); others, the one in force on this loop now.
        if record.kind != .outcome, record.policySequence == nil {
            record.policySequence = self.active.recordSequence
        }
        guard audit.log.submitDeferred(consume record, token: token, listener: listener) else { return false }
        self.auditWakeDue = true
        return true
    }

    /// End of a loop iteration: wake the audit writer for the records queued during it.
    func wakeAuditWriter() {
        guard self.auditWakeDue else { return }
        self.auditWakeDue = false
        self.services.audit?.log.wake()
    }

    private func nextAuditToken() -> UInt64 {
        self.auditTokens &+= 1
        return self.auditTokens
    }

    /// The record of `call`: who, from where, what, and what was decided; with the status, message and duration for
    /// outcomes and refusals. What the decoded request names (database, collection, filter, rows…) is added by
    /// ``describe(_:in:)``, from the decoded call the caller holds (passing it here as an optional would copy it).
    func auditRecord(_ kind: AuditRecord.Kind, for call: ProxiedCall) -> AuditRecord {
        var record = AuditRecord(
            kind: kind,
            callID: self.callID(for: call),
            timeMilliseconds: Self.wallClockMilliseconds()
        )
        self.complete(&record, for: call)
        return record
    }

    /// Fills in ``auditRecord(_:for:)``'s record. Apart, so that the record is returned without a copy (filled in
    /// the same function, it was copied once more on return).
    private func complete(_ record: inout AuditRecord, for call: ProxiedCall) {
        let kind = record.kind
        // An outcome points to its request by call id and carries only what the request could not know: the
        // status, its message and the duration (half the bytes to insert and hash).
        if kind != .outcome {
            self.describe(call, in: &record)
            record.policySequence = call.policySequence
        }
        if kind != .request {
            if let status = call.guardStatus, kind == .outcome, call.forwarded, call.unsentMilvusStatus == nil {
                // The guard ended a call Milvus had (its deadline passed, the connection to Milvus failed) before
                // Milvus's status: none is recorded, so the outcome is `unknown`, for the call may have happened.
                let answer = call.milvusResponded ? "its response had started, without its status" : "had not answered"
                record.message =
                    "\(status.message) (status \(status.code.rawValue) to the client; Milvus had the call and \(answer))"
            } else if let status = call.guardStatus {
                record.status = Int32(status.code.rawValue)
                record.message = status.message
                // Milvus answered, but its headers or trailers could not be sent to the client (the message says
                // with what status): what it says it changed still happened.
                if call.unsentMilvusStatus == "0", let count = call.affectedRows?.value {
                    record.rows = Int64(clamping: count)
                }
            } else if let final = call.finalStatus, let code = Int32(final) {
                // A gRPC status from upstream; an empty grpc-message (Milvus sends one with OK) is no message.
                record.status = code
                record.message = call.finalMessage.flatMap { $0.isEmpty ? nil : $0 }
                // gRPC OK, but Milvus may have said no in the response's status.
                if final == "0", let failure = call.milvusFailure {
                    if let rpc = call.decodedRPC { self.metrics.recordMilvusFailure(rpc: rpc) }
                    record.milvusCode = failure.code
                    if record.message?.isEmpty ?? true { record.message = failure.reason }
                }
                // The rows Milvus says an Insert, Upsert or Delete changed.
                if final == "0", let count = call.affectedRows?.value { record.rows = Int64(clamping: count) }
            } else if let final = call.finalStatus, final != "reset" {
                // Milvus's answer ended with a grpc-status that is no number: what the client makes of it is its own.
                record.message =
                    "Milvus ended its response with a grpc-status that is not a number: \"\(final.prefix(64))\""
            } else if call.finalStatus != nil {
                // "reset": the stream was reset after Milvus's response started, before its status.
                record.message = "stream reset after the response started, before Milvus's status"
            } else if call.responseFinished {
                record.message = "Milvus ended its response without a grpc-status"
            } else if call.forwarded {
                record.message = "cancelled by the client after it was forwarded, before Milvus's status"
            } else {
                // The client went away (RST_STREAM or a closed connection) before the call went to Milvus.
                record.status = Int32(GRPCStatusCode.cancelled.rawValue)
                record.message = "cancelled by the client before an answer"
            }
            record.durationMilliseconds = Double(EventLoop.now() - call.startedAt) / 1_000_000
            if let message = record.message, message.utf8.count > Self.recordedTextLimit {
                record.message = Self.recorded(message)
            }
        }
    }

    /// Who made the call, from where, what, and what was decided.
    private func describe(_ call: ProxiedCall, in record: inout AuditRecord) {
        switch (call.principal, call.identity) {
        case (let principal?, _), (nil, .known(let principal)):
            // A call refused before the policy was asked (malformed, over a limit) still names a caller whose
            // identity was settled by then.
            record.principal = principal.name
            record.authentication = Self.label(principal.authentication)
        case (nil, .refused(_, let claimed)):
            record.principal = claimed
        case (nil, .pending):
            break
        }
        record.client = call.client?.peer
        record.tls = call.client.map { $0.connection.tls != nil }
        record.rpc = call.decodedRPC?.name ?? MilvusRPCs.descriptor(forPath: call.path)?.name ?? call.path
        record.requestBytes = Int64(call.requestBytes)
        record.decision = (call.verdict ?? .failed).rawValue
        record.rule = call.rule?.description
    }

    /// What the decoded request asks for, and on what.
    static func describe(_ decoded: borrowing MilvusCall, in record: inout AuditRecord) {
        record.rpc = decoded.rpc.name
        record.action = decoded.rpc.actionClass.rawValue
        record.database = Self.recorded(decoded.database)
        record.collection = decoded.collection.map(Self.recorded)
        record.partitions = Self.recorded(decoded.partitions)
        record.filter = decoded.filter.map(Self.recorded)
        record.rows = decoded.rowCount.map(Int64.init)
        record.targets = Self.targets(of: decoded)
        for (key, value) in record.targets where value.utf8.count > Self.recordedTextLimit {
            record.targets[key] = Self.recorded(value)
        }
        if record.partitions.count < decoded.partitions.count {
            record.targets["partitions_in_all"] = String(decoded.partitions.count)
        }
    }

    /// How much of a request's free text (a filter, template values, a list of names) a record keeps: 16 KiB each.
    /// A 63 KB gzip request can carry a 62 MiB filter or 32 million partition names; recorded whole, a few of them
    /// made a store of gigabytes and stalled the guard. Longer text is cut at a character boundary and says so, with
    /// its length and SHA-256 (to match against what the application logged).
    static let recordedTextLimit = 16 << 10

    static func recorded(_ text: String) -> String {
        let utf8 = text.utf8
        guard utf8.count > Self.recordedTextLimit else { return text }
        var end = utf8.index(utf8.startIndex, offsetBy: Self.recordedTextLimit)
        // Back to the start of the character the limit falls in (a UTF-8 continuation byte is 10xxxxxx).
        while end > utf8.startIndex, utf8[end] & 0xC0 == 0x80 { end = utf8.index(before: end) }
        let digest = Hex.encode(Crypto.sha256(Array(utf8)))
        return String(decoding: utf8[..<end], as: UTF8.self)
            + "…[cut: \(utf8.count) bytes in all, sha256 \(digest)]"
    }

    /// The names of a list that fit in ``recordedTextLimit`` bytes together; `partitions_in_all` then says how many
    /// there were.
    static func recorded(_ names: [String]) -> [String] {
        var bytes = 0
        var kept = 0
        for name in names {
            bytes += name.utf8.count + 1
            guard bytes <= Self.recordedTextLimit else { break }
            kept += 1
        }
        return kept == names.count ? names : Array(names.prefix(kept))
    }

    /// Named targets other than database, collection and partitions.
    static func targets(of call: MilvusCall) -> [String: String] {
        var targets: [String: String] = [:]
        if let index = call.indexName { targets["index"] = index }
        if let field = call.fieldName { targets["field"] = field }
        if let alias = call.alias { targets["alias"] = alias }
        if !call.users.isEmpty { targets["user"] = call.users.joined(separator: ",") }
        if !call.roles.isEmpty { targets["role"] = call.roles.joined(separator: ",") }
        if let name = call.newCollectionName { targets["new_collection"] = name }
        if let database = call.newDatabase { targets["new_database"] = database }
        if !call.resourceGroups.isEmpty { targets["resource_group"] = call.resourceGroups.joined(separator: ",") }
        if let group = call.privilegeGroup { targets["privilege_group"] = group }
        if let snapshot = call.snapshotName { targets["snapshot"] = snapshot }
        if let parameters = call.filterParameters { targets["filter_params"] = parameters }
        if call.collections.count > 1 || (call.collection == nil && !call.collections.isEmpty) {
            targets["collections"] = call.collections.joined(separator: ",")
        }
        if !call.collectionIDs.isEmpty {
            targets["collection_ids"] = Self.recorded(call.collectionIDs.map(String.init).joined(separator: ","))
        }
        for target in call.otherTargets { targets[target.kind.rawValue] = target.value }
        return targets
    }

    static func label(_ authentication: Principal.Authentication) -> String {
        switch authentication {
        case .password: "password"
        case .apiKey: "api_key"
        case .tls: "tls"
        case .anonymous: "anonymous"
        }
    }

    /// A call's id: this loop's random prefix and a counter, 32 hex digits, made once per call.
    private func callID(for call: ProxiedCall) -> String {
        if let id = call.callID { return id }
        let id = self.nextCallID()
        call.callID = id
        return id
    }

    /// The next call id of this loop: its prefix and counter as 32 lowercase hex digits, in one allocation.
    private func nextCallID() -> String {
        self.callCounter &+= 1
        return Self.callID(prefix: self.callIDPrefix, counter: self.callCounter)
    }

    static func callID(prefix: UInt64, counter: UInt64) -> String {
        String(unsafeUninitializedCapacity: 32) { buffer in
            for index in 0..<32 {
                let value = index < 16 ? prefix : counter
                let nibble = UInt8(truncatingIfNeeded: value >> UInt64(60 - 4 * (index & 15))) & 0xF
                buffer[index] = nibble < 10 ? 0x30 + nibble : 0x57 + nibble  // 0-9, a-f
            }
            return 32
        }
    }

    static func wallClockMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000 + Int64(now.tv_nsec) / 1_000_000
    }
}

/// Log lines about an event that can happen for every call, such as a mutation refused because the audit store can't
/// write: the first of each second at once, the others of that second summed up in one line by the housekeeping
/// timer. A full disk refuses every mutation, and a line for each (20,000 a second under load) would fill the log
/// too, often on the same disk.
struct OncePerSecondLog {
    private var loggedThisSecond = false
    private var unlogged = 0
    private var lastDetail = ""

    /// Counts an event (`detail`: its error, say); true if it is the first of this second, to be logged now.
    mutating func happened(_ detail: String) -> Bool {
        self.lastDetail = detail
        guard self.loggedThisSecond else {
            self.loggedThisSecond = true
            return true
        }
        self.unlogged += 1
        return false
    }

    /// Once a second: the events not logged during it, with the last one's detail (nil if none), and a new second.
    mutating func endSecond() -> (count: Int, detail: String)? {
        defer {
            self.loggedThisSecond = false
            self.unlogged = 0
        }
        return self.unlogged > 0 ? (self.unlogged, self.lastDetail) : nil
    }
}
