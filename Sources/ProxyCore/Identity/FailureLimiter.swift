/// Counts failures per client address in fixed windows (one minute by default): from the `threshold`th failure in a
/// window, the address is blocked until the window is over. Used for failed authentications (the address is then
/// refused RESOURCE_EXHAUSTED) and for refused calls (its connections are then closed).
struct FailureLimiter {
    private struct Window {
        var started: UInt64
        var failures: Int
    }

    let threshold: Int
    let window: UInt64
    /// At most this many addresses are tracked. A new address that finds the table full is not tracked (so not
    /// limited) until windows that are over have been dropped, which is tried at most once per window: rescanning
    /// a full table at every failure would let many addresses (an IPv6 prefix) cost O(table) per refusal.
    let maxAddresses: Int
    private var windows: [String: Window] = [:]
    private var nextPrune: UInt64 = 0

    init(threshold: Int = 20, windowNanoseconds: UInt64 = 60 * 1_000_000_000, maxAddresses: Int = 100_000) {
        self.threshold = threshold
        self.window = windowNanoseconds
        self.maxAddresses = max(1, maxAddresses)
    }

    /// Nanoseconds from `started` to `now`; 0 when `now` is earlier. Loops read the clock before they take the lock
    /// the limiter sits behind, so another loop may have started a window at a later instant than the `now` this one
    /// brings (an unsigned subtraction trapped there, and two connections from a new address at once could stop the
    /// guard).
    static func elapsed(since started: UInt64, now: UInt64) -> UInt64 {
        now >= started ? now - started : 0
    }

    /// Addresses tracked now (windows over but not yet dropped included).
    var trackedAddresses: Int { self.windows.count }

    /// Whether attempts from `address` are refused at `now`.
    mutating func isBlocked(_ address: String, now: UInt64) -> Bool {
        guard let current = self.windows[address] else { return false }
        guard Self.elapsed(since: current.started, now: now) < self.window else {
            self.windows[address] = nil
            return false
        }
        return current.failures >= self.threshold
    }

    /// Records a failure from `address`.
    /// - Returns: The failures from `address` in the current window, this one included.
    @discardableResult
    mutating func recordFailure(_ address: String, now: UInt64) -> Int {
        if let current = self.windows[address] {
            let failures = Self.elapsed(since: current.started, now: now) < self.window ? current.failures + 1 : 1
            self.windows[address] = Window(started: failures == 1 ? now : current.started, failures: failures)
            return failures
        }
        if self.windows.count >= self.maxAddresses {
            guard now >= self.nextPrune else { return 1 }
            self.nextPrune = now &+ self.window
            self.windows = self.windows.filter { Self.elapsed(since: $0.value.started, now: now) < self.window }
            guard self.windows.count < self.maxAddresses else { return 1 }
        }
        self.windows[address] = Window(started: now, failures: 1)
        return 1
    }
}
