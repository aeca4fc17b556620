import CLinux
import Glibc
import Synchronization

@testable import ProxyCore

/// A value shared between the test and the threads it starts.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { self.mutex = Mutex(value) }

    var value: Value { self.mutex.withLock { $0 } }

    func set(_ value: Value) { self.mutex.withLock { $0 = value } }

    func update<R: Sendable>(_ body: @Sendable (inout Value) -> R) -> R {
        self.mutex.withLock { value in body(&value) }
    }
}

/// Polls `condition` every millisecond until it holds or `timeoutMilliseconds` pass.
/// - Returns: whether the condition held in time.
@discardableResult
func waitFor(timeoutMilliseconds: Int = 5_000, _ condition: () -> Bool) -> Bool {
    let deadline = clinux_monotonic_ns() + UInt64(timeoutMilliseconds) * 1_000_000
    while !condition() {
        if clinux_monotonic_ns() >= deadline { return false }
        usleep(1_000)
    }
    return true
}

/// A thread whose end the test can wait for with a deadline (``LoopThread/join()`` alone would wait
/// forever if the thread hangs).
final class TestThread {
    private let thread: LoopThread
    private let finished: Locked<Bool>
    private var joined = false

    init(name: String, _ body: @escaping @Sendable () -> Void) throws {
        let finished = Locked(false)
        self.finished = finished
        self.thread = try LoopThread(name: name) {
            body()
            finished.set(true)
        }
    }

    var isFinished: Bool { self.finished.value }

    /// Joins the thread if it ends within the timeout.
    /// - Returns: false when it is still running (it is then left detached from the test).
    func join(timeoutMilliseconds: Int = 5_000) -> Bool {
        guard !self.joined else { return true }
        guard waitFor(timeoutMilliseconds: timeoutMilliseconds, { self.finished.value }) else { return false }
        self.thread.join()
        self.joined = true
        return true
    }
}

/// Waits until `descriptor` is readable (or writable), at most `milliseconds`.
func waitReady(_ descriptor: Int32, writable: Bool = false, milliseconds: Int32) -> Bool {
    var entry = pollfd(fd: descriptor, events: Int16(writable ? POLLOUT : POLLIN), revents: 0)
    return poll(&entry, 1, milliseconds) > 0
}
