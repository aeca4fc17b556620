public import AuditStore

/// What the loops record and where: the audit log (behind its protocol) and whether allowed reads are
/// recorded too (`audit.reads`).
public struct ProxyAudit: Sendable {
    public let log: any AuditLog
    public let reads: Bool

    public init(log: any AuditLog, reads: Bool) {
        self.log = log
        self.reads = reads
    }
}

/// Hands the writer thread's results to one loop, through its mailbox (one message per batch).
final class LoopAuditListener: AuditListener {
    private let mailbox: LoopMailbox

    init(mailbox: LoopMailbox) {
        self.mailbox = mailbox
    }

    func auditCompleted(_ results: [AuditResult]) {
        self.mailbox.send(.audited(results))
    }
}
