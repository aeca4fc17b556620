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
    private var windows: [String: Window] = [:]

    init(threshold: Int = 20, windowNanoseconds: UInt64 = 60 * 1_000_000_000) {
        self.threshold = threshold
        self.window = windowNanoseconds
    }

    /// Whether attempts from `address` are refused at `now`.
    mutating func isBlocked(_ address: String, now: UInt64) -> Bool {
        guard let current = self.windows[address] else { return false }
        guard now - current.started < self.window else {
            self.windows[address] = nil
            return false
        }
        return current.failures >= self.threshold
    }

    /// Records a failure from `address`.
    /// - Returns: The failures from `address` in the current window, this one included.
    @discardableResult
    mutating func recordFailure(_ address: String, now: UInt64) -> Int {
        let failures: Int
        if var current = self.windows[address], now - current.started < self.window {
            current.failures += 1
            failures = current.failures
            self.windows[address] = current
        } else {
            failures = 1
            self.windows[address] = Window(started: now, failures: 1)
        }
        if self.windows.count > 100_000 {
            // Many addresses: drop the windows that are over, so the table stays bounded.
            self.windows = self.windows.filter { now - $0.value.started < self.window }
        }
        return failures
    }
}
