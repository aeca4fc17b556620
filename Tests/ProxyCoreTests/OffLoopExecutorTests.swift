import Glibc
import Synchronization
import Testing

@testable import ProxyCore

@Suite("OffLoopExecutor: keys take turns", .timeLimit(.minutes(1)))
struct OffLoopExecutorTests {
    final class Log: Sendable {
        let started = Atomic<Bool>(false)
        let open = Atomic<Bool>(false)
        let order = Mutex<[String]>([])

        func record(_ name: String) { self.order.withLock { $0.append(name) } }
        var names: [String] { self.order.withLock { $0 } }
    }

    /// Polls `condition` every millisecond for up to 10 s.
    func wait(_ condition: () -> Bool) -> Bool {
        for _ in 0..<10_000 where !condition() { usleep(1_000) }
        return condition()
    }

    /// Submits a job that holds a worker until `log.open` is set, then logs `name`; returns once it runs.
    private func holdWorker(_ executor: OffLoopExecutor, key: String, log: Log, name: String) throws {
        #expect(
            executor.submit(key: key) {
                log.started.store(true, ordering: .releasing)
                while !log.open.load(ordering: .acquiring) { usleep(1_000) }
                log.record(name)
            } == nil
        )
        try #require(self.wait { log.started.load(ordering: .acquiring) })
    }

    @Test("Keys take turns, one job each, however many each has queued; a key's queue and the whole are bounded")
    func turns() throws {
        let executor = try OffLoopExecutor(name: "test-turns", capacity: 9, capacityPerKey: 5)
        defer { executor.stop() }
        let log = Log()
        // a0 holds the thread until the others are queued.
        try self.holdWorker(executor, key: "a", log: log, name: "a0")
        for n in 1...5 { #expect(executor.submit(key: "a") { log.record("a\(n)") } == nil) }
        #expect(executor.submit(key: "a") { log.record("a6") } == .keyFull)
        #expect(executor.submit(key: "b") { log.record("b1") } == nil)
        #expect(executor.submit(key: "c") { log.record("c1") } == nil)
        #expect(executor.submit(key: "c") { log.record("c2") } == nil)
        #expect(executor.submit(key: "d") { log.record("d1") } == nil)
        #expect(executor.submit(key: "e") { log.record("e1") } == .full)  // nine queued
        log.open.store(true, ordering: .releasing)
        #expect(self.wait { log.names.count == 10 })
        #expect(log.names == ["a0", "a1", "b1", "c1", "d1", "a2", "c2", "a3", "a4", "a5"])
    }

    @Test("With two workers, a job that runs long holds one of them: the next jobs run on the other")
    func workers() throws {
        let executor = try OffLoopExecutor(name: "test-workers", capacity: 8, workers: 2)
        defer { executor.stop() }
        let log = Log()
        try self.holdWorker(executor, key: "a", log: log, name: "long")
        for n in 1...3 { #expect(executor.submit(key: "b") { log.record("b\(n)") } == nil) }
        #expect(self.wait { log.names.count == 3 })
        #expect(log.names == ["b1", "b2", "b3"])  // the long job still runs
        log.open.store(true, ordering: .releasing)
        #expect(self.wait { log.names.count == 4 })
        #expect(log.names.last == "long")
        #expect(SharedServices.decoderThreads(loops: 1) == 1)
        #expect(SharedServices.decoderThreads(loops: 2) == 1)
        #expect(SharedServices.decoderThreads(loops: 8) == 4)
    }
}

@Suite("ClientNetwork: what the verifier's turns count")
struct ClientNetworkTests {
    @Test(
        "IPv4 /24, IPv6 /64, IPv4-mapped as IPv4, anything else as it is",
        arguments: [
            ("127.0.1.64", "127.0.1"), ("10.20.30.40", "10.20.30"), ("::ffff:10.20.30.40", "10.20.30"),
            ("[2001:db8:1:2::7]", "v6:20010db800010002"), ("2001:db8:1:2:ffff::1", "v6:20010db800010002"),
            ("::1", "v6:0000000000000000"), ("unix", "unix"), ("?", "?"),
        ]
    )
    func networks(host: String, network: String) {
        #expect(ClientNetwork.of(host) == network)
    }
}
