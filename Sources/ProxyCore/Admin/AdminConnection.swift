import CLinux
import Logging
import Synchronization

/// One admin client connection: read one request, write one answer, close. Admin thread only.
///
/// States, in order:
/// - `reading`: bytes go to the ``AdminRequestParser`` until it has an outcome;
/// - `answering`: an admin worker thread works out the answer (every path but `/healthz`), which comes back
///   through the loop's mailbox as ``LoopMessage/adminAnswered(request:response:principal:)``;
/// - `writing`: the serialized answer goes out as the socket takes it (EPOLLOUT while it does not);
/// - `lingering`: the answer is out and our side is shut for writing; bytes still arriving are read and
///   dropped until the client closes. Closing at once with unread input would make the kernel send RST,
///   which can destroy the answer before the client reads it (RFC 9112 §9.6).
///
/// One deadline covers the whole connection (``AdminConfiguration/connectionTimeoutMilliseconds``): whatever the
/// state, the connection is closed when it passes, which is what ends a slowloris client.
final class AdminConnection: LoopHandler {
    private enum State {
        case reading
        case answering
        case writing
        case lingering
        case closed
    }

    private unowned let worker: AdminWorker
    private let socket: Socket
    private var token: UInt64 = 0
    private var parser: AdminRequestParser
    private var state = State.reading
    private var output: [UInt8] = []
    private var written = 0
    private var deadline: TimerQueue.ID = 0
    /// The request being answered, for the log line.
    private var request: AdminRequest?
    /// The client shut its side while the answer was worked out.
    private var inputEnded = false
    /// The number of the request whose answer is worked out off the loop (``AdminWorker/awaitAnswer(for:)``).
    private(set) var pendingRequest: UInt64?
    /// Closed with the connection, so that its queued work (a password check) is skipped.
    private var ticket: Cancellation?
    /// When it was accepted.
    let openedAt = EventLoop.now()
    /// Whether its request is still arriving (a client that has not sent a whole head yet).
    var isReading: Bool { self.state == .reading }
    /// Whether its answer is out already, and it only waits for the client to close.
    var isLingering: Bool { self.state == .lingering }

    init(worker: AdminWorker, socket: Socket) throws {
        self.worker = worker
        self.socket = socket
        self.parser = AdminRequestParser(maxHeadBytes: worker.configuration.maxHeadBytes)
        self.token = try worker.loop.register(
            socket.descriptor,
            events: CLINUX_EPOLLIN | CLINUX_EPOLLRDHUP,
            handler: self
        )
        self.deadline = worker.loop.schedule(afterMilliseconds: worker.configuration.connectionTimeoutMilliseconds) {
            [unowned self] in
            self.deadline = 0
            if self.state == .reading {
                self.worker.logger.notice(
                    "admin request not received in time",
                    metadata: ["peer": "\(self.socket.peer)"]
                )
            }
            self.close()
        }
    }

    func handleEvents(_ events: UInt32) {
        switch self.state {
        case .reading: self.readRequest()
        case .answering: self.readWhileAnswering(events)
        case .lingering: self.discardInput()
        case .writing: self.flush()
        case .closed: return
        }
    }

    private func readRequest() {
        while self.state == .reading {
            let result = self.worker.loop.readBuffer.withUnsafeMutableBytes { self.socket.read(into: $0) }
            switch result {
            case .bytes(let count):
                switch self.parser.feed(self.worker.loop.readBuffer[..<count]) {
                case .needMore: continue
                case .request(let request): self.answer(request)
                case .failure(let failure): self.answer(failure)
                }
            case .wouldBlock:
                return
            case .endOfFile:
                self.close()
            }
        }
    }

    private func answer(_ request: AdminRequest) {
        self.request = request
        let router = self.worker.router
        let client = ClientConnection.host(of: self.socket.peer)
        guard request.path != "/healthz" else {
            let (response, principal) = router.respond(to: request, client: client)
            return self.deliver(response, principal: principal)
        }
        self.state = .answering
        let mailbox = self.worker.loop.mailbox
        let number = self.worker.awaitAnswer(for: self)
        self.pendingRequest = number
        let ticket = Cancellation()
        self.ticket = ticket
        let answers = request.path == "/audit" ? self.worker.auditAnswers : self.worker.otherAnswers
        let busy = AdminResponse.text(503, "busy: too many admin requests in progress\n")
        if router.backend.cachedAuthorization(authorization: request.authorization) != nil {
            // Verified lately: answered without a password hash, and without waiting behind anyone's. Looked up again
            // when the job runs, which may be after a reload that revoked it (then checked as any other).
            let taken = answers.submit {
                guard !ticket.isCancelled else { return }
                // The backend finds the verification in its cache; lost since it was queued (a reload, an expiry at
                // that instant), it is checked here, outside the queue of checks, which the narrow window makes
                // acceptable.
                let (response, principal) = router.respond(to: request, client: client)
                mailbox.send(.adminAnswered(request: number, response: response, principal: principal))
            }
            if taken != nil { self.deliver(busy, principal: "-") }
            return
        }
        // A password check first, in the queue of checks where client networks take turns; then the answer, in its
        // own queue (a slow /audit query must not hold up the checks of others).
        let refused = self.worker.credentialChecks.submit(key: ClientNetwork.of(client)) {
            guard !ticket.isCancelled else { return }
            switch router.authorize(request, client: client) {
            case .success(let name):
                let taken = answers.submit {
                    guard !ticket.isCancelled else { return }
                    let (response, principal) = router.respond(to: request, principal: name)
                    mailbox.send(.adminAnswered(request: number, response: response, principal: principal))
                }
                if taken != nil { mailbox.send(.adminAnswered(request: number, response: busy, principal: name)) }
            case .failure(let refusal):
                mailbox.send(.adminAnswered(request: number, response: refusal.response, principal: refusal.principal))
            }
        }
        if refused != nil { self.deliver(busy, principal: "-") }
    }

    /// The answer to the request, from ``answer(_:)`` or (through the mailbox) an admin worker thread.
    func deliver(_ response: AdminResponse, principal: String) {
        guard self.state == .reading || self.state == .answering, let request = self.request else { return }
        if let number = self.pendingRequest { self.worker.stopAwaiting(number) }
        self.pendingRequest = nil
        self.worker.logger.info(
            "admin request",
            metadata: [
                "peer": "\(self.socket.peer)",
                "method": "\(request.method.rawValue)",
                "path": "\(request.path)",
                "status": "\(response.status)",
                "principal": "\(principal)",
            ]
        )
        self.send(response.serialized(includeBody: request.method == .get))
    }

    private func answer(_ failure: AdminRequestParser.Failure) {
        let response = self.worker.router.respond(to: failure)
        self.worker.logger.notice(
            "admin request refused",
            metadata: ["peer": "\(self.socket.peer)", "status": "\(response.status)", "reason": "\(failure)"]
        )
        self.send(response.serialized())
    }

    private func send(_ bytes: [UInt8]) {
        self.output = bytes
        self.written = 0
        self.state = .writing
        self.flush()
    }

    private func flush() {
        while self.written < self.output.count {
            let result = self.output[self.written...].withUnsafeBytes { self.socket.write($0) }
            guard let count = result else { return self.close() }
            if count == 0 {
                self.worker.loop.modify(self.socket.descriptor, token: self.token, events: CLINUX_EPOLLOUT)
                return
            }
            self.written += count
        }
        self.output = []
        self.socket.shutdownWrite()
        self.state = .lingering
        self.worker.loop.modify(self.socket.descriptor, token: self.token, events: CLINUX_EPOLLIN | CLINUX_EPOLLRDHUP)
        self.discardInput()
    }

    /// Input while the answer is worked out is dropped. A client that shut its side after the request still gets
    /// the answer: input is no longer watched, and only a hang-up or error (which epoll always reports) closes.
    private func readWhileAnswering(_ events: UInt32) {
        if self.inputEnded {
            if events & (CLINUX_EPOLLHUP | CLINUX_EPOLLERR) != 0 { self.close() }
            return
        }
        while self.state == .answering {
            let result = self.worker.loop.readBuffer.withUnsafeMutableBytes { self.socket.read(into: $0) }
            switch result {
            case .bytes: continue
            case .wouldBlock: return
            case .endOfFile:
                self.inputEnded = true
                self.worker.loop.modify(self.socket.descriptor, token: self.token, events: 0)
                return
            }
        }
    }

    private func discardInput() {
        while self.state == .lingering {
            let result = self.worker.loop.readBuffer.withUnsafeMutableBytes { self.socket.read(into: $0) }
            switch result {
            case .bytes: continue
            case .wouldBlock: return
            case .endOfFile: self.close()
            }
        }
    }

    /// Unregisters and closes the socket, cancels the deadline and leaves the worker. Idempotent.
    func close() {
        guard self.state != .closed else { return }
        self.state = .closed
        self.ticket?.cancel()
        if self.deadline != 0 { self.worker.loop.cancelTimer(self.deadline) }
        self.worker.loop.unregister(self.socket.descriptor, token: self.token)
        self.socket.close()
        self.worker.connectionClosed(self)
    }
}

@available(*, unavailable)
extension AdminConnection: Sendable {}
