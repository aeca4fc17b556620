import CLinux
import Glibc
import Synchronization

/// Threads (one, or ``init(name:capacity:capacityPerKey:workers:)``'s `workers`) that run blocking work for the event
/// loops (PBKDF2 verifications, DNS lookups, inflating large messages) from a bounded queue.
/// A job must not touch loop state: it computes a value and sends it back through the loop's ``LoopMailbox``.
///
/// Jobs are queued per key (the verifier's: a client network) and the keys take turns, one job each: a key with
/// many jobs queued delays the others by one job per turn, not by all of its own. (The verifier ran its queue in
/// order before, and a real user's password check waited 180 s behind 1000 guesses queued from one address.)
final class OffLoopExecutor: Sendable {
    /// Why ``submit(key:_:)`` did not take a job.
    enum Refusal: Equatable {
        /// ``capacity`` jobs are queued.
        case full
        /// ``capacityPerKey`` jobs of this key are queued.
        case keyFull
    }

    private struct State {
        var queues: [String: [@Sendable () -> Void]] = [:]
        /// Keys with jobs queued, in the order of their turns.
        var turns: [String] = []
        var next = 0
        var count = 0
        var stopping = false

        /// The next key's oldest job; the key goes to the back of the turns if it has more.
        mutating func take() -> (@Sendable () -> Void)? {
            guard self.next < self.turns.count else { return nil }
            let key = self.turns[self.next]
            self.next += 1
            let job = self.queues[key]!.removeFirst()
            if self.queues[key]!.isEmpty {
                self.queues[key] = nil
            } else {
                self.turns.append(key)
            }
            if self.next > 64, self.next * 2 > self.turns.count {
                self.turns.removeFirst(self.next)
                self.next = 0
            }
            self.count -= 1
            return job
        }
    }

    private let state = Mutex(State())
    private let wakeDescriptor: Int32
    let capacity: Int
    let capacityPerKey: Int
    let name: String

    /// Starts `workers` threads, which take the queued jobs in turn order, each the next one.
    /// - Throws: ``ProxyError`` when the system refuses a thread.
    init(name: String, capacity: Int, capacityPerKey: Int? = nil, workers: Int = 1) throws {
        self.name = name
        self.capacity = capacity
        self.capacityPerKey = capacityPerKey ?? capacity
        self.wakeDescriptor = clinux_eventfd()
        guard self.wakeDescriptor >= 0 else { throw ProxyError("eventfd failed: errno \(errno)") }
        // Each thread holds the executor until ``stop()`` ends it.
        for worker in 0..<max(1, workers) {
            try LoopThread(name: workers > 1 ? "\(name)-\(worker)" : name) { [self] in self.work() }.detach()
        }
    }

    deinit { close(self.wakeDescriptor) }

    /// Queues a job under `key`; nil when taken, else why not (the caller refuses the work).
    func submit(key: String = "", _ job: @escaping @Sendable () -> Void) -> Refusal? {
        let refusal = self.state.withLock { state -> Refusal? in
            guard !state.stopping, state.count < self.capacity else { return .full }
            let queued = state.queues[key]?.count ?? 0
            guard queued < self.capacityPerKey else { return .keyFull }
            if queued == 0 { state.turns.append(key) }
            state.queues[key, default: []].append(job)
            state.count += 1
            return nil
        }
        if refusal == nil { _ = clinux_eventfd_signal(self.wakeDescriptor) }
        return refusal
    }

    /// Lets the threads finish the queued jobs and end.
    func stop() {
        self.state.withLock { $0.stopping = true }
        _ = clinux_eventfd_signal(self.wakeDescriptor)
    }

    private func work() {
        while true {
            let (job, stopping) = self.state.withLock { state in (state.take(), state.stopping) }
            if let job {
                job()
                continue
            }
            if stopping { return }
            var descriptor = pollfd(fd: self.wakeDescriptor, events: Int16(POLLIN), revents: 0)
            _ = poll(&descriptor, 1, 1000)
            _ = clinux_eventfd_drain(self.wakeDescriptor)
        }
    }
}

/// Whether the work a queued job was for is still wanted: a job for a closed admin connection, or a call that ended
/// while its message waited to be decoded, is skipped instead of spending a password hash or an inflation on nobody.
final class Cancellation: Sendable {
    private let cancelled = Atomic<Bool>(false)

    var isCancelled: Bool { self.cancelled.load(ordering: .acquiring) }

    func cancel() { self.cancelled.store(true, ordering: .releasing) }
}
