import GuardPolicy
import Logging
import MilvusCatalog
import NGHTTP2Support
import ProtoWire

/// One gRPC call on its way through the proxy: a client stream paired with an upstream stream.
///
/// ### Design
/// The call moves bytes between two sessions and keeps the flow-control books: every body byte it hands
/// to one session is "in flight" until that session reports it framed (`outboundConsumed`), and only
/// then is the receiving window of the other session reopened (`consume`). When either side goes away,
/// whatever is still in flight is consumed at once, so no connection window leaks.
///
/// Request bytes that arrive before an upstream stream exists wait in ``pendingBody``; they are not
/// consumed either, so the client's window bounds them.
final class ProxiedCall {
    weak var client: ClientConnection?
    let clientStreamID: Int32
    let path: String
    /// The request's header list as the client sent it, until it is forwarded or the call is answered.
    private(set) var requestHeaders: [HeaderField]
    let startedAt = EventLoop.now()

    private(set) weak var upstream: UpstreamConnection?
    private(set) var upstreamStreamID: Int32 = 0
    /// The call went to Milvus (an upstream stream was opened for it): from then on, only Milvus's answer says
    /// whether it happened. False again when Milvus refused the stream (REFUSED_STREAM, also for streams a GOAWAY
    /// left out): HTTP/2 says it then did not process the call (RFC 9113 §8.7).
    private(set) var forwarded = false

    /// Holds the request until it is complete and decided; nil once it was let through.
    var gate: RequestGate?
    /// The decoded request, once the gate has decided.
    private(set) var milvusCall: MilvusCall?
    /// `milvusCall?.rpc`, kept apart: reading a field of the stored optional copies the whole call (a retain
    /// and a release of each of its strings and arrays).
    private(set) var decodedRPC: RPCDescriptor?
    /// The client's `authorization` metadata, if any.
    var authorization: String?
    /// Who the call is from; `.pending` while a password is being verified.
    var identity: CallIdentity = .pending {
        didSet {
            if case .known(let principal) = self.identity {
                self.isProven = principal.authentication != .anonymous || !principal.roles.isEmpty
            } else {
                self.isProven = false
            }
        }
    }
    /// The policy generation and server TLS generation of the worker when ``identity`` was last worked out
    /// (``ProxyWorker/identify(_:authorization:client:)``): a call identified before a reload is identified again
    /// before it is judged (``ProxyWorker/identifiedAgainIfStale(_:client:)``).
    var identifiedUnder: (policy: Int, tls: Int) = (0, 0)
    /// The caller, once known and judged.
    var principal: Principal?
    /// The rule behind the decision.
    var rule: RuleID?
    /// What the gate decided.
    var verdict: CallVerdict?
    /// The audit sequence number of the policy record in force when the call was judged (``ActivePolicy/recordSequence``):
    /// its records name it, though a reload may have come before they were made.
    var policySequence: Int64?
    /// The audit id of the call, once a record was made.
    var callID: String?
    /// Whether a request record went to the audit store (an outcome record must follow).
    var requestRecorded = false
    /// When the request record of a mutation was queued (`EventLoop.now()`), for the audit wait histogram.
    var auditQueuedAt: UInt64 = 0
    /// The status the guard itself answered with (a refusal, a deadline), if it did.
    private(set) var guardStatus: GRPCStatus?
    /// grpc-message of the upstream's answer, percent-decoded.
    private(set) var finalMessage: String?
    /// The size of the request as held by the gate.
    private(set) var requestBytes = 0
    /// A decoded request waiting for its caller's identity: the bytes to forward and how many of them
    /// are held (counted against the held-bytes budgets).
    private var awaitingJudgement: (forward: [ArraySlice<UInt8>], held: Int)?
    /// Body bytes received from the client before the upstream stream opened.
    private var pendingBody: [ArraySlice<UInt8>] = []
    /// How many of ``pendingBody``'s bytes were held by the gate (already taken from the client's window
    /// and counted against the held-bytes budgets instead).
    private var pendingHeld = 0
    /// Request bytes queued in the upstream session and not yet framed.
    private var requestInFlight = 0
    /// How many of ``requestInFlight`` came from the gate (budget, not client window).
    private var heldInFlight = 0
    /// Response bytes queued in the client session and not yet framed.
    private var responseInFlight = 0
    /// How many of ``responseInFlight`` already gave their upstream connection window back (only the stream's waits
    /// for the client): a client that does not read must not stall every call on the upstream connection it shares.
    /// (A client with its window at 0 and 60 Queries of 361 KB open took the whole 16 MiB, and the same Query from
    /// anyone else through the guard hit its deadline for as long as it stayed.)
    private var responseAhead = 0
    /// The process's budget ``responseAhead`` counts against.
    private let responseBudget: HeldBytesBudget

    private(set) var requestEnded = false
    private var requestEndSent = false
    private(set) var responseStarted = false
    /// Milvus's response headers came (``responseStarted`` is also set by the guard's own answer).
    private(set) var milvusResponded = false
    private(set) var responseFinished = false
    private(set) var clientClosed = false
    /// The client's connection is gone: its session can no longer be told about consumed bytes.
    private var clientConnectionGone = false
    /// The upstream connection whose session received this call's response bytes. Kept after the
    /// upstream stream closes: bytes framed to the client later must still reopen that connection's
    /// window (a closed stream's bytes count for the connection only).
    private weak var accountingUpstream: UpstreamConnection?
    /// The gRPC status the client got, for the log line.
    private(set) var finalStatus: String?
    /// The first bytes of the response body of a call whose outcome is recorded, while they come in: Milvus answers
    /// most failures with gRPC OK and a failed `common.Status` at the start of the response (``MilvusStatus``). At
    /// most ``responseHeadLimit`` bytes, and no further than the end of the first message; read into
    /// ``milvusFailure`` and let go as soon as that much is here.
    private var responseHead: [UInt8]?
    /// The failed Milvus status read from ``responseHead``, once read.
    private var readFailure: MilvusStatus?
    /// Enough for the framing and a status with a long reason.
    static let responseHeadLimit = 4096
    /// For a recorded Insert, Upsert or Delete: the count of rows Milvus says it changed, read from the response as it
    /// streams past (a Delete's comes after the ids it deleted).
    private(set) var affectedRows: StreamedVarintField?
    var deadlineTimer: TimerQueue.ID?

    /// The size of ``requestHeaders`` as HTTP/2 counts a header list, held in the budgets until the call is answered
    /// by the guard or ends (``holdHeaders(_:on:)``).
    private var heldHeaderBytes = 0

    init(client: ClientConnection, streamID: Int32, path: String, headers: [HeaderField]) {
        self.client = client
        self.responseBudget = client.worker.services.responseBudget
        self.clientStreamID = streamID
        self.path = path
        self.requestHeaders = headers
    }

    var isWaitingForUpstream: Bool { self.upstream == nil && !self.responseFinished && !self.clientClosed }

    // MARK: Client → upstream

    /// Opens the upstream stream and hands it whatever body arrived so far.
    /// - Returns: false when the upstream session refused the stream.
    func attach(to upstream: UpstreamConnection, headers: [HeaderField]) -> Bool {
        let noBody = self.requestEnded && self.pendingBody.isEmpty
        let streamID: Int32
        do {
            streamID = try upstream.session.submitRequest(headers, endStream: noBody)
        } catch {
            return false
        }
        self.upstream = upstream
        self.accountingUpstream = upstream
        self.upstreamStreamID = streamID
        self.forwarded = true
        upstream.streams[streamID] = self
        for chunk in self.pendingBody {
            self.requestInFlight += chunk.count
            upstream.session.enqueueData(streamID: streamID, chunk)
        }
        self.heldInFlight += self.pendingHeld
        self.pendingHeld = 0
        self.pendingBody = []
        if self.requestEnded && !noBody {
            upstream.session.finishBody(streamID: streamID)
        }
        self.requestEndSent = self.requestEnded
        upstream.markDirty()
        self.requestHeaders = []  // nghttp2 copied them; their bytes stay counted until the call ends
        return true
    }

    /// A chunk of the client's request body.
    func requestData(_ bytes: [UInt8]) {
        if self.responseFinished {
            self.client?.session.consume(streamID: self.clientStreamID, count: bytes.count)
            return
        }
        if self.gate != nil {
            self.hold(bytes)
            return
        }
        guard let upstream = self.upstream else {
            self.pendingBody.append(bytes[...])
            return
        }
        if upstream.session.enqueueData(streamID: self.upstreamStreamID, bytes) {
            self.requestInFlight += bytes.count
            upstream.markDirty()
        } else {
            self.client?.session.consume(streamID: self.clientStreamID, count: bytes.count)
        }
    }

    /// Takes a request chunk into the gate's custody: it counts against the held-bytes budgets, and the
    /// client's window is reopened at once (the budget, not the window, bounds what a request may hold).
    private func hold(_ bytes: [UInt8]) {
        // Take the gate out (moved, not copied) while it grows: a second reference to its buffer would make every
        // append copy the whole held message (quadratic in the message size).
        guard let client = self.client, var gate = self.gate.take() else { return }
        guard client.reserveHeld(bytes.count) else {
            self.gate = gate
            self.respond(GRPCStatus(.resourceExhausted, "too many request bytes held for inspection; try again later"))
            client.session.consume(streamID: self.clientStreamID, count: bytes.count)
            return
        }
        if !self.isProven {
            guard client.worker.services.reserveUnproven(bytes.count, network: client.network) else {
                client.releaseHeld(bytes.count)
                self.gate = gate
                self.respond(
                    self.unprovenRefusal()
                        ?? GRPCStatus(
                            .resourceExhausted,
                            "too many request bytes held for callers whose credentials are being checked; try again later"
                        )
                )
                client.session.consume(streamID: self.clientStreamID, count: bytes.count)
                return
            }
            self.unprovenHeld += bytes.count
        }
        if case .pending = self.identity, gate.heldBytes + bytes.count > Self.unprovenHoldLimit {
            // Nobody is known yet: past the limit, the client's windows stay shut until its password is checked
            // (the stream window, 1 MiB, and the connection's, 16 MiB, then bound what more it can send).
            self.unconsumedWhilePending += bytes.count
        } else {
            client.session.consume(streamID: self.clientStreamID, count: bytes.count)
            client.markDirty()
        }
        do {
            try gate.append(bytes)
        } catch {
            self.gate = gate
            self.respond(error.status)
            return
        }
        let decideNow = gate.decidesOnFirstMessage && gate.hasMessage
        self.gate = gate
        if self.refusedForHoldingUnproven() { return }
        if decideNow { self.decide(atEnd: false) }
    }

    /// Request bytes of this call in ``SharedServices/unprovenBudget`` (and its network's share): held while its
    /// caller was not proven.
    private var unprovenHeld = 0

    /// Whether the caller is known and let through: a credential that passed, a certificate, or an `anonymous` with
    /// roles. Not while a password is being checked.
    /// Set with ``identity``: read for every chunk of a request, where matching the identity copied the principal.
    private(set) var isProven = false

    /// Takes the request's header list (`count` bytes as HTTP/2 counts them) into the held-bytes budgets until the
    /// call ends, and into the share of callers not proven yet while this one is not; the refusal when a budget is
    /// spent.
    func holdHeaders(_ count: Int, on client: ClientConnection) -> GRPCStatus? {
        guard client.reserveHeld(count) else {
            return GRPCStatus(.resourceExhausted, "too many request bytes held for inspection; try again later")
        }
        self.heldHeaderBytes = count
        guard !self.isProven else { return nil }
        guard client.worker.services.reserveUnproven(count, network: client.network) else {
            return self.unprovenRefusal()
                ?? GRPCStatus(
                    .resourceExhausted,
                    "too many request bytes held for callers whose credentials are being checked; try again later"
                )
        }
        self.unprovenHeld += count
        return nil
    }

    /// Gives back ``unprovenHeld``: the caller is proven now, or the bytes are let go.
    private func releaseUnproven() {
        guard self.unprovenHeld > 0, let client = self.client else { return }
        client.worker.services.releaseUnproven(self.unprovenHeld, network: client.network)
        self.unprovenHeld = 0
    }

    /// Request bytes held while the caller's password was being checked, beyond ``unprovenHoldLimit``, whose window
    /// the client gets back only once its identity is settled (or its stream closes).
    private var unconsumedWhilePending = 0

    /// Gives the client back the window of ``unconsumedWhilePending`` (on a closed stream, the connection's).
    private func consumeWhatWaitedForIdentity() {
        guard self.unconsumedWhilePending > 0, let client = self.client else { return }
        client.session.consume(streamID: self.clientStreamID, count: self.unconsumedWhilePending)
        client.markDirty()
        self.unconsumedWhilePending = 0
    }

    /// What a caller who proved no identity may make the guard hold of one request: enough for any refusal worth
    /// recording with its target (a drop, a delete with a long filter), not for an insert. Beyond it, such a call is
    /// refused at once. Without this, a client with no credential held 1 GiB for as long as it kept two streams
    /// open, and every other client was refused RESOURCE_EXHAUSTED meanwhile (a red-team run).
    static let unprovenHoldLimit = 64 * 1024

    /// Refuses the call when its gate holds more than ``unprovenHoldLimit`` for a caller known not to be let
    /// through (``unprovenRefusal()``); whether it did.
    private func refusedForHoldingUnproven() -> Bool {
        guard let held = self.gate?.heldBytes, held > Self.unprovenHoldLimit, let status = self.unprovenRefusal()
        else { return false }
        self.respond(status)
        return true
    }

    /// The refusal for a call whose caller is known not to be let through: a credential that failed, or none and a
    /// policy that gives `anonymous` no role. nil while a password is being checked, or for a known caller.
    private func unprovenRefusal() -> GRPCStatus? {
        switch self.identity {
        case .pending:
            return nil
        case .refused(let status, _):
            return status
        case .known:
            guard !self.isProven else { return nil }  // else an `anonymous` without roles
            return GRPCStatus(
                .unauthenticated,
                "no credentials: send token=\"user:password\" or an API key (a request of over 64 KiB without one is "
                    + "refused before it is complete)"
            )
        }
    }

    /// The whole request (or a bidi stream's first message) is here: decode it, let the worker judge
    /// it, then open the upstream stream with the held bytes, or refuse. A costly message (a large compressed one)
    /// is inflated and decoded on the decoder thread, and the call goes on in ``decodedOffLoop(_:)``.
    private func decide(atEnd: Bool) {
        guard self.offLoopDecoding == nil else { return }  // a bidi stream's first message is being decoded already
        // A caller known not to be let through gets no inflating: a 64 KiB gzip request can inflate to 64 MiB.
        if self.gate?.holdsCompressedMessage == true, let status = self.unprovenRefusal() {
            self.respond(status)
            return
        }
        // Nor one whose password is still being checked: the message waits for the check (a red-team run had 283 of
        // 2,400 wrong passwords' bombs inflated before their refusal).
        if self.gate?.holdsCompressedMessage == true, case .pending = self.identity {
            self.decisionWaitsForIdentity = atEnd
            return
        }
        guard let client = self.client, var gate = self.gate.take() else { return }
        let decoding: RequestGate.Decoding
        do {
            decoding = try gate.takeMessage(atEnd: atEnd)
        } catch {
            self.gate = gate
            self.respond(error.status)
            return
        }
        self.gate = gate  // its bytes stay held, and a bidi stream's later chunks go on arriving into it
        if decoding.isCostly {
            let job = DecodeJob(decoding)
            guard client.worker.decodeOffLoop(self, job) else {
                self.respond(
                    GRPCStatus(
                        .resourceExhausted,
                        "too many compressed requests being inflated; try again later, or send it uncompressed"
                    )
                )
                return
            }
            self.offLoopDecoding = job
            return
        }
        do {
            self.decoded(try decoding.decode(), message: decoding.message)
        } catch {
            self.respond(error.status)
        }
    }

    /// A compressed message complete while the caller's password was being checked: decided (`atEnd` as given then)
    /// once the check is done.
    private var decisionWaitsForIdentity: Bool?

    /// The message being decoded on the decoder thread, and what cancels that work once the call has ended.
    private var offLoopDecoding: DecodeJob?

    /// The decoder thread's outcome for this call's message (nil: skipped, the call had ended).
    func decodedOffLoop(_ outcome: DecodeOutcome?) {
        guard self.offLoopDecoding.take() != nil, let outcome, let message = self.gate?.heldMessage else { return }
        switch outcome {
        case .decoded(let call): self.decoded(call, message: message)
        case .refused(let status): self.respond(status)
        }
    }

    /// The message is decoded: the gate gives the bytes to forward, and the worker judges the call once its caller is
    /// known.
    private func decoded(_ decoded: MilvusCall, message: GRPCMessage) {
        // Ended meanwhile (refused, reset, timed out): its gate is gone with its held bytes.
        guard !self.responseFinished, !self.clientClosed, var gate = self.gate.take() else { return }
        let forward = gate.forward(message)
        self.milvusCall = decoded
        self.decodedRPC = decoded.rpc
        self.requestBytes = gate.heldBytes
        self.awaitingJudgement = (forward, gate.heldBytes)
        self.judgeIfReady(decoded)
    }

    /// The verifier settled who the call is from.
    func identityResolved(_ identity: CallIdentity) {
        self.identity = identity
        self.identitySettledAt = EventLoop.now()
        if self.isProven { self.releaseUnproven() }
        self.consumeWhatWaitedForIdentity()
        if let atEnd = self.decisionWaitsForIdentity.take() {
            self.decide(atEnd: atEnd)
        } else if let decoded = self.milvusCall {
            self.judgeIfReady(decoded)
        } else {
            // Still arriving, from a caller whose credential may just have failed: no need to wait for the rest.
            _ = self.refusedForHoldingUnproven()
        }
    }

    /// Once the request is decoded and the caller known: let the worker judge, then forward or refuse.
    /// `decoded` is ``milvusCall``, passed in so that it is not copied out of the call once more.
    private func judgeIfReady(_ decoded: borrowing MilvusCall) {
        if case .pending = self.identity { return }
        guard let (forward, held) = self.awaitingJudgement, let client = self.client else { return }
        // Identified before a reload (a stream opened, its body sent later): who it is, and whether its certificate
        // still counts, under what is in force now. A new password check ends in ``identityResolved(_:)``. (Not for a
        // call that has ended: it is let go below.)
        if !self.responseFinished, !self.clientClosed, !client.worker.identifiedAgainIfStale(self, client: client) {
            return
        }
        self.awaitingJudgement = nil
        self.releaseUnproven()
        guard !self.responseFinished, !self.clientClosed else {
            client.releaseHeld(held)
            return
        }
        if let status = client.worker.judge(self, decoded: decoded, identity: self.identity) {
            client.releaseHeld(held)
            self.respond(status)
            return
        }
        // The gate took the prefix and payload apart; what goes on is exactly what arrived.
        self.pendingBody = self.pendingBody.isEmpty ? forward : forward + self.pendingBody
        self.pendingHeld = held
        switch client.worker.auditBeforeForwarding(self, decoded: decoded) {
        case .forward: client.worker.pool.start(self)
        case .wait: break  // ``auditSettled(_:)`` follows
        case .refuse(let status): self.auditSettled(status)
        }
    }

    /// The request record is durable (nil): forward; or it can't be written: refuse, never forward.
    func auditSettled(_ refusal: GRPCStatus?) {
        guard let client = self.client, !self.responseFinished, !self.clientClosed else {
            // Ended meanwhile (its deadline): the body that waited goes back to the budgets.
            self.discardPendingBody()
            return
        }
        guard let refusal else {
            client.worker.pool.start(self)
            return
        }
        self.discardPendingBody()
        self.respond(refusal)
    }

    /// Drops the body that waited for an upstream stream: its held bytes go back to the budgets and, while
    /// the client's session is still there, the rest reopens the client's window.
    private func discardPendingBody() {
        if let client = self.client {
            let unsent = self.pendingBody.reduce(0) { $0 + $1.count }
            client.releaseHeld(self.pendingHeld)
            if !self.clientConnectionGone {
                client.session.consume(streamID: self.clientStreamID, count: unsent - self.pendingHeld)
            }
        }
        self.pendingBody = []
        self.pendingHeld = 0
    }

    /// Lets go of the request held in the gate: its bytes go back to the budgets.
    private func releaseGate() {
        self.offLoopDecoding?.cancel()
        if let gate = self.gate {
            self.gate = nil
            self.client?.releaseHeld(gate.heldBytes)
        }
        self.releaseUnproven()
    }

    /// The client ended its side (END_STREAM, or trailers).
    func requestEnd() {
        self.requestEnded = true
        if self.gate != nil {
            self.decide(atEnd: true)
            return
        }
        guard let upstream = self.upstream, !self.requestEndSent else { return }
        self.requestEndSent = true
        upstream.session.finishBody(streamID: self.upstreamStreamID)
        upstream.markDirty()
    }

    /// The upstream session framed `count` request bytes: the client may send that much more.
    func requestBytesSent(_ count: Int) {
        self.requestInFlight -= count
        // Held bytes are framed first (they were queued first): they go back to the budget.
        let held = min(count, self.heldInFlight)
        self.heldInFlight -= held
        self.client?.releaseHeld(held)
        guard count > held, let client = self.client, !self.clientConnectionGone else { return }
        client.session.consume(streamID: self.clientStreamID, count: count - held)
        client.markDirty()
    }

    // MARK: Upstream → client

    func responseHeaders(_ fields: [HeaderField], endStream: Bool) {
        guard let client = self.client, !self.clientClosed, !self.responseFinished else { return }
        let forwarded = withoutHopByHop(fields)
        do {
            try client.session.submitResponse(streamID: self.clientStreamID, forwarded, endStream: endStream)
        } catch {
            self.detachUpstream(reset: true)
            return
        }
        self.milvusResponded = true
        self.responseStarted = true
        if self.requestRecorded, let rpc = self.decodedRPC {
            if rpc.responseStatus != .none { self.responseHead = [] }
            if let field = rpc.affectedRowsField { self.affectedRows = StreamedVarintField(field: field) }
        }
        if endStream {
            self.responseFinished = true
            self.finalStatus = fields.first { $0.name == "grpc-status" }?.value
            self.finalMessage = fields.first { $0.name == "grpc-message" }.map { GRPCStatus.percentDecoded($0.value) }
        }
        client.markDirty()
    }

    func responseData(_ bytes: [UInt8]) {
        guard let client = self.client, !self.clientClosed, self.responseStarted, !self.responseFinished,
            client.session.enqueueData(streamID: self.clientStreamID, bytes)
        else {
            self.upstream?.session.consume(streamID: self.upstreamStreamID, count: bytes.count)
            return
        }
        self.responseInFlight += bytes.count
        if let upstream = self.upstream {
            // While clients take their bytes, the window is given back as they do. Once half of the connection's
            // window waits for slow clients, bytes give it back as they arrive, within the budgets of their
            // client connection and of the process: one client that does not read cannot stall the others.
            if upstream.responseUnconsumed + bytes.count <= upstream.responseShare {
                upstream.responseUnconsumed += bytes.count
            } else if client.takeResponseAhead(bytes.count) {
                self.responseAhead += bytes.count
                upstream.session.consumeConnection(count: bytes.count)
                if upstream.session.wantsWrite { upstream.markDirty() }
            } else {
                // Its client has a connection's worth of responses unread already (or all clients together the
                // process's budget): this call would start taking the window everyone shares. It ends here, reset
                // both ways, its queued bytes dropped.
                upstream.responseUnconsumed += bytes.count
                self.dropForNotReading()
                return
            }
        }
        if self.responseHead != nil { self.keepResponseHead(bytes) }
        self.affectedRows?.consume(bytes)
        client.markDirty()
    }

    /// Adds the start of `bytes` to ``responseHead``; once it holds the first message or reaches the limit, reads it
    /// and lets it go.
    private func keepResponseHead(_ bytes: [UInt8]) {
        guard var head = self.responseHead.take() else { return }
        head.append(contentsOf: bytes.prefix(Self.responseHeadLimit - head.count))
        let end = min(GRPCMessage.firstMessageEnd(in: head[...]) ?? .max, Self.responseHeadLimit)
        guard head.count >= end else {
            self.responseHead = head
            return
        }
        head.removeLast(head.count - end)
        self.readFailure = self.decodedRPC.flatMap { MilvusStatus.failure(in: head[...], shape: $0.responseStatus) }
    }

    /// The failed Milvus status of the response, if it had one (also from a response cut short of its first
    /// message); nil for a call whose response is not read.
    var milvusFailure: MilvusStatus? {
        if let head = self.responseHead, let rpc = self.decodedRPC {
            return MilvusStatus.failure(in: head[...], shape: rpc.responseStatus)
        }
        return self.readFailure
    }

    /// Trailers from upstream (nil when it ended with an empty DATA frame instead).
    func responseEnd(trailers: [HeaderField]?) {
        guard let client = self.client, !self.clientClosed, self.responseStarted, !self.responseFinished else { return }
        self.responseFinished = true
        let forwarded = trailers.map(withoutHopByHop)
        self.finalStatus = forwarded?.first { $0.name == "grpc-status" }?.value
        self.finalMessage = forwarded?.first { $0.name == "grpc-message" }.map { GRPCStatus.percentDecoded($0.value) }
        client.session.finishBody(streamID: self.clientStreamID, trailers: forwarded)
        client.markDirty()
    }

    /// Milvus sent a header block over the guard's header-list limit toward it (`limits.max_header_list_bytes`, at
    /// least 1 MiB; `limit`): the session left out the fields past it, Milvus's grpc-status perhaps among them, so the
    /// block is not forwarded cut short (the client got trailers without a status, and the call was recorded
    /// `unknown` though Milvus had answered: a review run). The call ends with RESOURCE_EXHAUSTED in the block's
    /// place, as trailers after a body already forwarded or as a trailers-only response; Milvus is told to stop if it
    /// is still sending.
    /// `fields` are those that fit: Milvus's grpc-status, when among them, is named in the message and recorded.
    func responseBlockOversized(trailers: Bool, fields: [HeaderField], limit: Int) {
        guard let client = self.client, !self.clientClosed, !self.responseFinished else { return }
        self.milvusResponded = true
        let what = trailers ? "trailers" : "response headers"
        var detail = "Milvus's \(what) exceed the guard's \(limit)-byte header list limit"
        let milvusStatus =
            trailers ? fields.first(where: { $0.name == "grpc-status" }).map { Self.recorded(status: $0.value) } : nil
        if let milvusStatus { detail += "; Milvus's grpc-status was \(milvusStatus)" }
        let status = GRPCStatus(.resourceExhausted, detail)
        client.logger.warning(
            "Milvus sent a header block over the limit",
            metadata: ["path": "\(self.path)", "limit": "\(limit)"]
        )
        guard self.responseStarted else {
            self.detachUpstream(reset: true)
            self.unsentMilvusStatus = milvusStatus
            self.respond(status)
            return
        }
        self.endInPlaceOfMilvusBlock(status, milvusStatus: milvusStatus)
        client.session.finishBody(streamID: self.clientStreamID, trailers: status.trailers)
        client.markDirty()
    }

    /// Milvus's grpc-status as a message and the audit repeat it: a value that is no number is not repeated (it
    /// could be long).
    private static func recorded(status value: String) -> String {
        Int32(value) == nil ? "invalid" : value
    }

    /// Ends a call whose response has started with `status`, which the guard sends in place of a header block of
    /// Milvus's (`milvusStatus`: Milvus's own, when it had come): Milvus is told to stop, and the audit records the
    /// guard's status and Milvus's.
    private func endInPlaceOfMilvusBlock(_ status: GRPCStatus, milvusStatus: String?) {
        self.detachUpstream(reset: true)
        self.unsentMilvusStatus = milvusStatus
        self.responseFinished = true
        self.finalStatus = String(status.code.rawValue)
        self.guardStatus = status
    }

    /// The client session framed `count` response bytes: upstream may send that much more.
    func responseBytesSent(_ count: Int) {
        self.giveBackResponse(count, to: nil)
    }

    /// `count` response bytes left ``responseInFlight`` (framed to the client, or dropped): their stream window
    /// goes back to `upstream` (else the call's), and so does their connection window unless they gave it back as
    /// they arrived (``responseAhead``). Bytes still queued when the upstream side was let go were given back then
    /// (``releaseResponseWindow(from:)``), so only what is still counted is given back.
    private func giveBackResponse(_ count: Int, to upstream: UpstreamConnection?) {
        let counted = min(count, self.responseInFlight)
        guard counted > 0 else { return }
        self.responseInFlight -= counted
        let ahead = min(self.responseAhead, counted)
        self.giveBackAhead(ahead)
        guard let upstream = upstream ?? self.upstream ?? self.accountingUpstream else { return }
        upstream.responseUnconsumed -= counted - ahead
        upstream.session.consumeStream(streamID: self.upstreamStreamID, count: counted)
        upstream.session.consumeConnection(count: counted - ahead)
        upstream.markDirty()
    }

    /// Ends a call whose client leaves too much unread (``responseData``): the upstream stream is cancelled and its
    /// windows given back, and the client's stream is reset (ENHANCE_YOUR_CALM), which drops what was queued for it.
    /// Recorded, when it is, as ended by the guard before Milvus's status.
    private func dropForNotReading() {
        guard let client = self.client else { return }
        self.detachUpstream(reset: true)
        self.responseFinished = true
        self.finalStatus = String(GRPCStatusCode.resourceExhausted.rawValue)
        self.guardStatus = GRPCStatus(
            .resourceExhausted,
            "responses left unread: over \(ClientConnection.responseAheadLimit >> 20) MiB on this connection, or "
                + "held_bytes_total in all"
        )
        client.session.resetStream(self.clientStreamID, errorCode: HTTP2ErrorCode.enhanceYourCalm)
        client.markDirty()
    }

    /// `count` bytes of ``responseAhead`` reached the client or were dropped: out of the budgets.
    private func giveBackAhead(_ count: Int) {
        guard count > 0 else { return }
        self.responseAhead -= count
        self.responseBudget.release(count)
        self.client?.releaseResponseAhead(count)
    }

    // MARK: Endings

    /// The upstream stream closed (normally or reset).
    func upstreamStreamClosed(errorCode: UInt32) {
        if errorCode == HTTP2ErrorCode.refusedStream, !self.milvusResponded { self.forwarded = false }
        // Every call ends here, and almost always after its response finished: the status is only built
        // for the rare call that still needs one (its message is a string of its own each time).
        self.upstreamEnded(resetCode: errorCode == 0 ? HTTP2ErrorCode.internalError : errorCode) {
            switch errorCode {
            case HTTP2ErrorCode.refusedStream:
                self.unsentRequest ?? GRPCStatus(.unavailable, "upstream refused the stream")
            case HTTP2ErrorCode.cancel: GRPCStatus(.cancelled, "upstream cancelled the call")
            default: GRPCStatus(.unavailable, "upstream reset the stream (HTTP/2 error \(errorCode))")
            }
        }
    }

    /// Set when the upstream session did not send the request's headers: the status the call ends with, in place of
    /// "upstream refused the stream" (the session closes the stream with REFUSED_STREAM, but Milvus refused nothing).
    private(set) var unsentRequest: GRPCStatus?

    /// The upstream session did not send the request's header block (`error`; `limit`: its send limit). Over the
    /// limit, a failure retrying can't cure: RESOURCE_EXHAUSTED, which pymilvus does not retry (it got UNAVAILABLE
    /// "upstream refused the stream", and retried). For other reasons (Milvus sent GOAWAY, the session is going
    /// away) the call ends as a refused stream, UNAVAILABLE: another connection may take it.
    func requestHeadersNotSent(_ error: NGHTTP2Error, limit: Int) {
        guard error.isTooLarge else { return }
        self.unsentRequest = GRPCStatus(
            .resourceExhausted,
            "the request's header block is too large to send to Milvus (over \(limit) bytes)"
        )
    }

    /// Milvus's grpc-status (as it sent it) when its response headers or trailers could not be sent to the client
    /// and the guard answered in their place (``responseNotSent(_:error:limit:)``); nil otherwise, or when Milvus's
    /// status had not come. The audit records the call as failed with the guard's status, and this in its message.
    private(set) var unsentMilvusStatus: String?
    /// The guard already answered in place of a block that could not be sent.
    private var replacedUnsentBlock = false

    /// The client session did not send a header block of this call's response (`kind`: its headers, or its
    /// trailers; `limit`: the session's send limit): the client's stream would stay open with nothing more to come,
    /// and the client wait until its deadline, forever without one (a red-team run, with Milvus's trailers over
    /// 64 KiB). A block over the limit is answered at once with a status of the guard's own in its place (a
    /// trailers-only response, or trailers after the body): RESOURCE_EXHAUSTED, as a gRPC client refuses metadata
    /// over its own limit, and Milvus is told to stop if it is still sending. Otherwise the stream was going away
    /// already (closed, reset, the session closing), or the guard's own block is not sent either, or can't be
    /// submitted: the stream is reset (INTERNAL_ERROR), which ends it whatever its state.
    func responseNotSent(_ kind: HeaderBlockKind, error: NGHTTP2Error, limit: Int) {
        guard let client = self.client, !self.clientClosed else { return }
        // The block was the guard's own (a refusal, a deadline), or already its replacement: no second try.
        guard error.isTooLarge, !self.replacedUnsentBlock, self.guardStatus == nil else {
            client.session.resetStream(self.clientStreamID, errorCode: HTTP2ErrorCode.internalError)
            client.markDirty()
            return
        }
        self.replacedUnsentBlock = true
        let what = kind == .trailers ? "trailers" : "response headers"
        // Milvus's status when it had come.
        let milvusStatus = self.responseFinished ? self.finalStatus.map { Self.recorded(status: $0) } : nil
        var detail =
            "Milvus's \(what) could not be sent to the client: over the guard's \(limit)-byte header block limit"
        if let milvusStatus { detail += "; Milvus's grpc-status was \(milvusStatus)" }
        let status = GRPCStatus(.resourceExhausted, detail)
        self.responseStarted = true
        self.endInPlaceOfMilvusBlock(status, milvusStatus: milvusStatus)
        do {
            if kind == .trailers {
                try client.session.submitTrailers(streamID: self.clientStreamID, status.trailers)
            } else {
                try client.session.submitResponse(
                    streamID: self.clientStreamID,
                    status.trailersOnlyHeaders,
                    endStream: true
                )
            }
            if !self.requestEnded { client.session.resetAfterResponse(streamID: self.clientStreamID) }
        } catch {
            client.session.resetStream(self.clientStreamID, errorCode: HTTP2ErrorCode.internalError)
        }
        client.markDirty()
        client.logger.warning(
            "a response header block could not be sent to the client",
            metadata: ["path": "\(self.path)", "status": "\(status.code)", "message": "\(status.message)"]
        )
    }

    /// The upstream connection failed or could not be opened.
    func upstreamFailed(_ status: GRPCStatus) {
        self.upstreamEnded(resetCode: HTTP2ErrorCode.internalError) { status }
    }

    /// The upstream side is gone before the response finished: a call whose response has not started
    /// gets the status `makeStatus` builds (called only then); one already streaming a response can only
    /// be reset with `resetCode`.
    private func upstreamEnded(resetCode: UInt32, makeStatus: () -> GRPCStatus) {
        self.upstream = nil
        self.releaseRequestWindow()
        guard !self.responseFinished, let client = self.client, !self.clientClosed else { return }
        guard self.responseStarted else {
            self.respond(makeStatus())
            return
        }
        self.responseFinished = true
        self.finalStatus = "reset"
        // REFUSED_STREAM says the stream was not processed (RFC 9113 §8.7), which a client may take as safe to
        // retry: not so once Milvus's response has started (the mutation may be done).
        let code = resetCode == HTTP2ErrorCode.refusedStream ? HTTP2ErrorCode.internalError : resetCode
        client.session.resetStream(self.clientStreamID, errorCode: code)
        client.markDirty()
    }

    /// The client's stream closed (completed, reset, or its connection is gone).
    func clientStreamClosed(connectionGone: Bool) {
        self.clientClosed = true
        self.clientConnectionGone = connectionGone
        if !connectionGone { self.consumeWhatWaitedForIdentity() }
        if let timer = self.deadlineTimer { self.client?.loop.cancelTimer(timer) }
        self.client?.releaseHeld(
            (self.gate?.heldBytes ?? 0) + (self.awaitingJudgement?.held ?? 0) + self.heldHeaderBytes
        )
        self.heldHeaderBytes = 0
        self.requestHeaders = []
        self.releaseUnproven()
        self.discardPendingBody()
        self.offLoopDecoding?.cancel()
        self.gate = nil
        self.awaitingJudgement = nil
        self.releaseResponseWindow()
        // A call that had not finished both ways is cancelled upstream.
        if self.upstream != nil && (!self.responseFinished || !self.requestEndSent) {
            self.detachUpstream(reset: true)
        }
    }

    /// The grpc-timeout passed.
    func deadlineExceeded(after milliseconds: Int) {
        self.deadlineTimer = nil
        guard !self.responseFinished, !self.clientClosed, let client = self.client else { return }
        // The response bytes still queued for the client stay in the books (the budgets, and the upstream
        // connection's window for those not given back yet) until the client takes them or resets the stream, as
        // those of a call Milvus finished: otherwise calls that outlive their deadline unread would pile bytes up
        // in memory outside every budget.
        self.detachUpstream(reset: true, keepingResponseBooks: true)
        let status = GRPCStatus(.deadlineExceeded, "deadline exceeded after \(milliseconds) ms")
        if self.responseStarted {
            self.responseFinished = true
            self.finalStatus = String(status.code.rawValue)
            self.guardStatus = status
            client.session.finishBody(streamID: self.clientStreamID, trailers: status.trailers)
            client.markDirty()
        } else {
            self.respond(status)
        }
    }

    /// When `limits.request_timeout` counts from: the request's headers, or the end of its password check (the
    /// guard may keep the client's windows shut until then).
    var requestClockStart: UInt64 { max(self.startedAt, self.identitySettledAt) }
    /// When the verifier settled the caller's identity (0: it was known at once).
    private var identitySettledAt: UInt64 = 0

    /// Whether the request is still arriving into its gate (not yet complete and decided), from a client that may
    /// send it: not while its password is checked, when the guard may keep the client's windows shut.
    var isHoldingRequest: Bool {
        if case .pending = self.identity { return false }
        return self.gate != nil && self.offLoopDecoding == nil
    }

    /// The request did not arrive whole within `limits.request_timeout` (checked once a second by the worker): a call
    /// still held in its gate is refused (its held bytes go back to the budgets, and the refusal is recorded). One
    /// already decided and forwarded (a stream whose first message was enough) goes on.
    func requestTimedOut(after milliseconds: Int) {
        guard self.gate != nil, !self.responseFinished, !self.clientClosed else { return }
        self.respond(
            GRPCStatus(
                .deadlineExceeded,
                "request not complete after \(DurationText.seconds(milliseconds: milliseconds)) (limits.request_timeout)"
            )
        )
    }

    /// Answers the client with a trailers-only status (the proxy's own refusal or failure).
    /// A request still held is let go, and a client still sending its request is told to stop with RST_STREAM
    /// NO_ERROR once the response is out (RFC 9113 §8.1): the stream closes (and the refusal is recorded) then, not
    /// whenever the client ends its side.
    func respond(_ status: GRPCStatus) {
        guard let client = self.client, !self.clientClosed, !self.responseStarted else { return }
        self.releaseGate()
        // Let go at once: a flood of streams refused in one read held every stream's list until the end of the loop's
        // iteration otherwise.
        self.requestHeaders = []
        client.releaseHeld(self.heldHeaderBytes)
        self.heldHeaderBytes = 0
        self.responseStarted = true
        self.responseFinished = true
        self.finalStatus = String(status.code.rawValue)
        self.guardStatus = status
        try? client.session.submitResponse(streamID: self.clientStreamID, status.trailersOnlyHeaders, endStream: true)
        if !self.requestEnded { client.session.resetAfterResponse(streamID: self.clientStreamID) }
        client.markDirty()
        if status.code != .ok {
            client.logger.debug(
                "refused",
                metadata: ["path": "\(self.path)", "status": "\(status.code)", "message": "\(status.message)"]
            )
        }
    }

    /// Stops talking to the upstream stream, optionally resetting it, and settles its books: those of the response
    /// too, unless `keepingResponseBooks` (the bytes queued for the client then count until it takes them, through
    /// ``accountingUpstream``).
    private func detachUpstream(reset: Bool, keepingResponseBooks: Bool = false) {
        guard let upstream = self.upstream else { return }
        if reset {
            upstream.session.resetStream(self.upstreamStreamID, errorCode: HTTP2ErrorCode.cancel)
            upstream.markDirty()
        }
        upstream.streams[self.upstreamStreamID] = nil
        self.upstream = nil
        self.releaseRequestWindow()
        if !keepingResponseBooks { self.releaseResponseWindow(from: upstream) }
        upstream.pool?.streamFreed(on: upstream)
    }

    private func releaseRequestWindow() {
        guard self.requestInFlight > 0 else { return }
        self.client?.releaseHeld(self.heldInFlight)
        if let client = self.client, !self.clientConnectionGone, self.requestInFlight > self.heldInFlight {
            client.session.consume(streamID: self.clientStreamID, count: self.requestInFlight - self.heldInFlight)
            client.markDirty()
        }
        self.requestInFlight = 0
        self.heldInFlight = 0
    }

    private func releaseResponseWindow(from upstream: UpstreamConnection? = nil) {
        self.giveBackResponse(self.responseInFlight, to: upstream)
    }
}

@available(*, unavailable)
extension ProxiedCall: Sendable {}

extension RequestGate.Refusal {
    var status: GRPCStatus {
        switch self {
        case .status(let status): status
        }
    }
}
