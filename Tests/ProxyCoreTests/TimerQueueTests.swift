import Testing

@testable import ProxyCore

/// Collects what timer actions did, in order.
final class Trace {
    var entries: [String] = []
    func callAsFunction(_ entry: String) { self.entries.append(entry) }
}

@Suite("TimerQueue")
struct TimerQueueTests {
    @Test("Due actions come out earliest first, and only those due")
    func ordering() {
        var queue = TimerQueue()
        let trace = Trace()
        _ = queue.schedule(at: 30) { trace("30") }
        _ = queue.schedule(at: 10) { trace("10") }
        _ = queue.schedule(at: 20) { trace("20") }
        _ = queue.schedule(at: 40) { trace("40") }
        #expect(queue.nextDeadline() == 10)

        for action in queue.takeDue(now: 9) { action() }
        #expect(trace.entries.isEmpty)
        for action in queue.takeDue(now: 30) { action() }
        #expect(trace.entries == ["10", "20", "30"])
        #expect(queue.nextDeadline() == 40)
        #expect(!queue.isEmpty)
        for action in queue.takeDue(now: 1000) { action() }
        #expect(trace.entries == ["10", "20", "30", "40"])
        #expect(queue.isEmpty)
        #expect(queue.nextDeadline() == nil)
    }

    @Test("A deadline equal to now is due")
    func dueAtNow() {
        var queue = TimerQueue()
        _ = queue.schedule(at: 5) {}
        #expect(queue.takeDue(now: 5).count == 1)
    }

    @Test("Cancelled timers never fire and don't count as the next deadline")
    func cancellation() {
        var queue = TimerQueue()
        let trace = Trace()
        let first = queue.schedule(at: 10) { trace("10") }
        let second = queue.schedule(at: 20) { trace("20") }
        _ = queue.schedule(at: 30) { trace("30") }
        queue.cancel(first)
        #expect(queue.nextDeadline() == 20)
        queue.cancel(second)
        #expect(queue.nextDeadline() == 30)
        for action in queue.takeDue(now: 100) { action() }
        #expect(trace.entries == ["30"])
        #expect(queue.isEmpty)
        // Cancelling twice, or after firing, is harmless.
        queue.cancel(first)
        queue.cancel(3)
        #expect(queue.isEmpty)
    }

    @Test("IDs are unique and increasing")
    func identifiers() {
        var queue = TimerQueue()
        let ids = (0..<5).map { _ in queue.schedule(at: 1) {} }
        #expect(ids == ids.sorted())
        #expect(Set(ids).count == 5)
    }

    @Test("Hundreds of random deadlines come out sorted, whatever is cancelled", arguments: [1, 2, 3] as [UInt64])
    func heapOrder(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        var queue = TimerQueue()
        let trace = Trace()
        var expected: [(UInt64, UInt64)] = []
        for index in 0..<500 {
            let deadline = UInt64.random(in: 0..<1000, using: &generator)
            let id = queue.schedule(at: deadline) { trace("\(deadline)") }
            if index % 7 == 3 {
                queue.cancel(id)
            } else {
                expected.append((deadline, id))
            }
        }
        var fired: [UInt64] = []
        var now: UInt64 = 0
        while let next = queue.nextDeadline() {
            #expect(next >= now)
            now = next + UInt64.random(in: 0..<50, using: &generator)
            let before = trace.entries.count
            for action in queue.takeDue(now: now) { action() }
            fired += trace.entries[before...].compactMap { UInt64($0) }
        }
        #expect(fired == expected.map(\.0).sorted())
        #expect(queue.isEmpty)
    }

    @Test("Timers with the same deadline all fire")
    func equalDeadlines() {
        var queue = TimerQueue()
        let trace = Trace()
        for index in 0..<10 { _ = queue.schedule(at: 7) { trace("\(index)") } }
        for action in queue.takeDue(now: 7) { action() }
        #expect(trace.entries.sorted() == (0..<10).map { "\($0)" }.sorted())
    }
}

/// SplitMix64: reproducible random numbers for the tests.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
