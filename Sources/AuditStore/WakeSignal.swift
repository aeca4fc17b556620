import Glibc

/// A POSIX semaphore the writer thread sleeps on; any thread may signal it.
///
/// `@unchecked Sendable` because it only holds a pointer to a `sem_t` that lives as long as the object:
/// `sem_post`, `sem_wait` and `sem_timedwait` are thread-safe by POSIX, and the pointer itself never changes.
/// (Synchronization's `Mutex` has no condition variable, which is what this replaces.)
final class WakeSignal: @unchecked Sendable {
    private let semaphore: UnsafeMutablePointer<sem_t>

    init() {
        self.semaphore = .allocate(capacity: 1)
        let status = sem_init(self.semaphore, 0, 0)
        precondition(status == 0, "sem_init failed: errno \(errno)")
    }

    deinit {
        sem_destroy(self.semaphore)
        self.semaphore.deallocate()
    }

    /// Wakes one waiter (or the next one to wait).
    func signal() {
        sem_post(self.semaphore)
    }

    /// Sleeps until signalled.
    func wait() {
        while sem_wait(self.semaphore) != 0 && errno == EINTR {}
    }

    /// Sleeps until signalled or `milliseconds` have passed. Returns false on timeout.
    func wait(milliseconds: Int) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let nanoseconds = Int(deadline.tv_nsec) + (milliseconds % 1000) * 1_000_000
        deadline.tv_sec += milliseconds / 1000 + nanoseconds / 1_000_000_000
        deadline.tv_nsec = nanoseconds % 1_000_000_000
        while true {
            if sem_timedwait(self.semaphore, &deadline) == 0 { return true }
            if errno != EINTR { return false }
        }
    }
}
