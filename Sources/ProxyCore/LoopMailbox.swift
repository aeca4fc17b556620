import AuditStore
import CLinux
import Glibc
import MilvusCatalog
import OpenSSLSupport
import Synchronization

/// Messages other threads may send to an event loop. Values only: never closures over loop state.
enum LoopMessage: Sendable {
    /// Begin a graceful shutdown: GOAWAY to clients, stop accepting, exit once calls have drained or
    /// the deadline (monotonic nanoseconds) has passed.
    case shutdown(deadline: UInt64)
    /// A reloaded policy: decide new calls with it and forget cached verifications.
    case policyChanged(ActivePolicy, generation: Int)
    /// The server TLS files read again (a reload): new client connections use the context, and a live connection's
    /// client certificate is verified against it at its next call (``ClientConnection/trustRefusal(under:)``).
    case serverTLSChanged(TLSContext)
    /// The verifier thread checked a password: `key` is the cache key of the `authorization` value,
    /// `generation` the policy it was checked against.
    case credentialVerified(key: [UInt8], outcome: Authenticator.Outcome, generation: Int)
    /// The audit writer committed (or failed) a batch holding records this loop submitted.
    case audited([AuditResult])
    /// The resolver thread's answer for the upstream's host name.
    case resolved(SocketAddress, Result<[Socket.ResolvedAddress], ProxyError>)
    /// An admin worker thread's answer to admin request `request` (numbered by the admin loop, never reused: a
    /// connection closed meanwhile may have given its address to a new one, which must not get this answer).
    case adminAnswered(request: UInt64, response: AdminResponse, principal: String)
    /// The decoder thread inflated and decoded request `request`'s message (numbered by the loop), or refused it;
    /// nil when the call had ended and the work was skipped.
    case decoded(request: UInt64, outcome: DecodeOutcome?)
}

/// What decoding a request message off the loop came to.
enum DecodeOutcome: Sendable {
    case decoded(MilvusCall)
    case refused(GRPCStatus)
}

/// The only way into an event loop from another thread: a queue under a mutex plus an eventfd that
/// wakes the loop's epoll.
final class LoopMailbox: Sendable {
    private let queue = Mutex<[LoopMessage]>([])
    /// The eventfd registered for EPOLLIN in the loop's epoll set.
    let wakeDescriptor: Int32

    init() {
        self.wakeDescriptor = clinux_eventfd()
        precondition(self.wakeDescriptor >= 0, "eventfd failed: errno \(errno)")
    }

    deinit { close(self.wakeDescriptor) }

    /// Queues a message and wakes the loop. Safe from any thread.
    func send(_ message: LoopMessage) {
        self.queue.withLock { $0.append(message) }
        _ = clinux_eventfd_signal(self.wakeDescriptor)
    }

    /// Takes every queued message. Loop thread only.
    func drain() -> [LoopMessage] {
        _ = clinux_eventfd_drain(self.wakeDescriptor)
        return self.queue.withLock { queue in
            defer { queue.removeAll() }
            return queue
        }
    }
}
