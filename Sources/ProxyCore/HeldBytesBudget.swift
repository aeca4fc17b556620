import Synchronization

/// The process-wide budget of request bytes held for inspection, shared by every loop.
final class HeldBytesBudget: Sendable {
    private let held = Atomic<Int>(0)
    let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Takes `count` bytes from the budget; false (and nothing taken) when that would exceed it.
    func reserve(_ count: Int) -> Bool {
        var current = self.held.load(ordering: .relaxed)
        while true {
            guard current + count <= self.limit else { return false }
            let (exchanged, original) = self.held.compareExchange(
                expected: current,
                desired: current + count,
                ordering: .relaxed
            )
            if exchanged { return true }
            current = original
        }
    }

    func release(_ count: Int) {
        guard count > 0 else { return }
        self.held.subtract(count, ordering: .relaxed)
    }

    /// Bytes held right now (for metrics and tests).
    var current: Int { self.held.load(ordering: .relaxed) }
}
