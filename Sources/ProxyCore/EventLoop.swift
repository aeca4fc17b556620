import CLinux
import Glibc

/// Something registered with an event loop for readiness of one descriptor.
protocol LoopHandler: AnyObject {
    /// Called on the loop thread with the EPOLL* mask that fired.
    func handleEvents(_ events: UInt32)
}

/// One event-loop thread: an epoll set, a mailbox (eventfd) and a timerfd. Everything registered here
/// (sockets, HTTP/2 sessions, calls) belongs to this loop and is touched only from its thread; other
/// threads reach it through ``mailbox`` alone.
///
/// Each iteration waits for readiness, dispatches it, runs due timers and then flushes every connection
/// that was marked dirty, so frames produced while handling one socket (window updates, forwarded data)
/// go out in the same iteration; then ``onIterationEnd`` runs.
final class EventLoop {
    let mailbox: LoopMailbox
    private let epoll: Int32
    private let timerDescriptor: Int32
    private var handlers: [UInt64: any LoopHandler] = [:]
    private var nextToken: UInt64 = 2
    private var timers = TimerQueue()
    private var armedDeadline: UInt64 = 0
    private var dirty: [HTTP2Connection] = []
    /// The buffer ``flushDirty()`` works through, kept empty between rounds for reuse.
    private var spareDirty: [HTTP2Connection] = []
    private var running = true
    /// Receives mailbox messages on the loop thread.
    var onMessage: (LoopMessage) -> Void = { _ in }
    /// Runs at the end of every iteration, after the dirty connections are flushed (the proxy wakes the audit
    /// writer here, once for all the records the iteration queued).
    var onIterationEnd: () -> Void = {}
    /// A scratch buffer every socket read of this loop uses (reads are sequential on a loop).
    var readBuffer = [UInt8](repeating: 0, count: 64 * 1024)

    private static let mailboxToken: UInt64 = 0
    private static let timerToken: UInt64 = 1

    init(mailbox: LoopMailbox) throws {
        self.mailbox = mailbox
        self.epoll = clinux_epoll_create()
        self.timerDescriptor = clinux_timerfd()
        guard self.epoll >= 0, self.timerDescriptor >= 0 else {
            throw ProxyError("cannot create an event loop: \(errnoText())")
        }
        _ = clinux_epoll_ctl(
            self.epoll,
            CLINUX_EPOLL_CTL_ADD,
            self.mailbox.wakeDescriptor,
            CLINUX_EPOLLIN,
            Self.mailboxToken
        )
        _ = clinux_epoll_ctl(self.epoll, CLINUX_EPOLL_CTL_ADD, self.timerDescriptor, CLINUX_EPOLLIN, Self.timerToken)
    }

    deinit {
        close(self.epoll)
        close(self.timerDescriptor)
    }

    // MARK: Registration

    /// Registers `descriptor` for `events`; returns the token to modify or remove it.
    func register(_ descriptor: Int32, events: UInt32, handler: any LoopHandler) throws -> UInt64 {
        let token = self.nextToken
        self.nextToken += 1
        guard clinux_epoll_ctl(self.epoll, CLINUX_EPOLL_CTL_ADD, descriptor, events, token) == 0 else {
            throw ProxyError("epoll_ctl failed: \(errnoText())")
        }
        self.handlers[token] = handler
        return token
    }

    func modify(_ descriptor: Int32, token: UInt64, events: UInt32) {
        _ = clinux_epoll_ctl(self.epoll, CLINUX_EPOLL_CTL_MOD, descriptor, events, token)
    }

    func unregister(_ descriptor: Int32, token: UInt64) {
        _ = clinux_epoll_ctl(self.epoll, CLINUX_EPOLL_CTL_DEL, descriptor, 0, token)
        self.handlers[token] = nil
    }

    // MARK: Timers

    static func now() -> UInt64 { clinux_monotonic_ns() }

    /// Runs `action` on this loop after `milliseconds` (a delay past the end of the clock never comes).
    @discardableResult
    func schedule(afterMilliseconds milliseconds: Int, _ action: @escaping () -> Void) -> TimerQueue.ID {
        let (delay, tooLong) = UInt64(max(0, milliseconds)).multipliedReportingOverflow(by: 1_000_000)
        let (due, past) = Self.now().addingReportingOverflow(delay)
        return self.timers.schedule(at: tooLong || past ? .max : due, action)
    }

    func cancelTimer(_ id: TimerQueue.ID) { self.timers.cancel(id) }

    // MARK: Flushing

    /// Marks a connection to be flushed at the end of this iteration.
    func markDirty(_ connection: HTTP2Connection) {
        guard !connection.isMarkedDirty else { return }
        connection.isMarkedDirty = true
        self.dirty.append(connection)
    }

    private func flushDirty() {
        // Flushing one connection can dirty another (consumed bytes open a window on the other side).
        var rounds = 0
        while !self.dirty.isEmpty && rounds < 16 {
            rounds += 1
            // Swap buffers rather than copy `dirty` and empty it: emptying a shared array with
            // `keepingCapacity` allocates a fresh buffer every round (as in `HTTP2Connection.dispatchEvents`).
            var batch = self.spareDirty
            self.spareDirty = []
            swap(&batch, &self.dirty)
            for connection in batch {
                connection.isMarkedDirty = false
                connection.flush()
            }
            batch.removeAll(keepingCapacity: true)
            self.spareDirty = batch
        }
    }

    // MARK: Running

    /// Runs until ``stop()``. Call on the loop's own thread.
    func run() {
        var tokens = [UInt64](repeating: 0, count: 256)
        var masks = [UInt32](repeating: 0, count: 256)
        while self.running {
            self.armTimer()
            let count = tokens.withUnsafeMutableBufferPointer { t in
                masks.withUnsafeMutableBufferPointer { m in
                    // Connections still dirty after the last flush rounds must not wait for an
                    // unrelated wake-up: poll without blocking then.
                    clinux_epoll_wait(self.epoll, t.baseAddress, m.baseAddress, 256, self.dirty.isEmpty ? -1 : 0)
                }
            }
            if count < 0 { continue }
            for index in 0..<Int(count) {
                switch tokens[index] {
                case Self.mailboxToken:
                    for message in self.mailbox.drain() { self.onMessage(message) }
                case Self.timerToken:
                    _ = clinux_timerfd_drain(self.timerDescriptor)
                    self.armedDeadline = 0
                default:
                    self.handlers[tokens[index]]?.handleEvents(masks[index])
                }
            }
            for action in self.timers.takeDue(now: Self.now()) { action() }
            self.flushDirty()
            self.onIterationEnd()
        }
    }

    func stop() { self.running = false }

    private func armTimer() {
        guard let next = self.timers.nextDeadline() else { return }
        guard self.armedDeadline == 0 || next < self.armedDeadline else { return }
        let now = Self.now()
        _ = clinux_timerfd_arm(self.timerDescriptor, next > now ? next - now : 1)
        self.armedDeadline = next
    }
}

@available(*, unavailable)
extension EventLoop: Sendable {}
