import CLinux
import Glibc
import Synchronization

/// One thread that runs blocking work for the event loops (PBKDF2 verifications), in order, from a bounded
/// queue. A job must not touch loop state: it computes a value and sends it back through the loop's
/// ``LoopMailbox``.
final class OffLoopExecutor: Sendable {
    private struct State {
        var jobs: [@Sendable () -> Void] = []
        var stopping = false
    }

    private let state = Mutex(State())
    private let wakeDescriptor: Int32
    let capacity: Int
    let name: String

    /// Starts the thread.
    /// - Throws: ``ProxyError`` when the system refuses a thread.
    init(name: String, capacity: Int) throws {
        self.name = name
        self.capacity = capacity
        self.wakeDescriptor = clinux_eventfd()
        guard self.wakeDescriptor >= 0 else { throw ProxyError("eventfd failed: errno \(errno)") }
        // The thread holds the executor until ``stop()`` ends it.
        try LoopThread(name: name) { [self] in self.work() }.detach()
    }

    deinit { close(self.wakeDescriptor) }

    /// Queues a job; false when the queue is full (the caller refuses the work).
    func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        let accepted = self.state.withLock { state in
            guard !state.stopping, state.jobs.count < self.capacity else { return false }
            state.jobs.append(job)
            return true
        }
        if accepted { _ = clinux_eventfd_signal(self.wakeDescriptor) }
        return accepted
    }

    /// Lets the thread finish the queued jobs and end.
    func stop() {
        self.state.withLock { $0.stopping = true }
        _ = clinux_eventfd_signal(self.wakeDescriptor)
    }

    private func work() {
        while true {
            let (jobs, stopping) = self.state.withLock { state in
                defer { state.jobs.removeAll() }
                return (state.jobs, state.stopping)
            }
            for job in jobs { job() }
            if stopping { return }
            if jobs.isEmpty {
                var descriptor = pollfd(fd: self.wakeDescriptor, events: Int16(POLLIN), revents: 0)
                _ = poll(&descriptor, 1, 1000)
                _ = clinux_eventfd_drain(self.wakeDescriptor)
            }
        }
    }
}
