/// Deadlines of one event loop, earliest first (a binary min-heap with lazy cancellation). Loop thread
/// only. The loop arms its timerfd for ``nextDeadline``.
struct TimerQueue {
    typealias ID = UInt64

    private var heap: [(deadline: UInt64, id: ID)] = []
    private var actions: [ID: () -> Void] = [:]
    private var nextID: ID = 1

    /// Schedules `action` at `deadline` (monotonic nanoseconds).
    mutating func schedule(at deadline: UInt64, _ action: @escaping () -> Void) -> ID {
        let id = self.nextID
        self.nextID += 1
        self.actions[id] = action
        self.heap.append((deadline, id))
        self.siftUp(self.heap.count - 1)
        return id
    }

    mutating func cancel(_ id: ID) { self.actions[id] = nil }

    /// The earliest live deadline.
    mutating func nextDeadline() -> UInt64? {
        while let top = self.heap.first, self.actions[top.id] == nil { self.popTop() }
        return self.heap.first?.deadline
    }

    /// Removes and returns the actions due at `now`.
    mutating func takeDue(now: UInt64) -> [() -> Void] {
        var due: [() -> Void] = []
        while let top = self.heap.first, top.deadline <= now {
            self.popTop()
            if let action = self.actions.removeValue(forKey: top.id) { due.append(action) }
        }
        return due
    }

    var isEmpty: Bool { self.actions.isEmpty }

    private mutating func popTop() {
        let last = self.heap.removeLast()
        guard !self.heap.isEmpty else { return }
        self.heap[0] = last
        var index = 0
        while true {
            let left = 2 * index + 1
            let right = left + 1
            var smallest = index
            if left < self.heap.count && self.heap[left].deadline < self.heap[smallest].deadline { smallest = left }
            if right < self.heap.count && self.heap[right].deadline < self.heap[smallest].deadline { smallest = right }
            if smallest == index { return }
            self.heap.swapAt(index, smallest)
            index = smallest
        }
    }

    private mutating func siftUp(_ start: Int) {
        var index = start
        while index > 0 {
            let parent = (index - 1) / 2
            if self.heap[parent].deadline <= self.heap[index].deadline { return }
            self.heap.swapAt(parent, index)
            index = parent
        }
    }
}
