import Foundation
import Glibc
import Logging
import Synchronization
import Testing

@testable import GuardCLI

@Suite("Signal handling")
struct SignalWatcherTests {
    @Test(
        "Signals map to drain, exit now and reload",
        arguments: [
            ([SIGTERM], [OnSignal.shutdown]),
            ([SIGINT], [.shutdown]),
            ([SIGTERM, SIGINT], [.shutdown, .exitImmediately]),
            ([SIGINT, SIGTERM, SIGTERM], [.shutdown, .exitImmediately, .exitImmediately]),
            ([SIGHUP, SIGHUP, SIGTERM, SIGHUP], [.reload, .reload, .shutdown, .reload]),
            ([SIGUSR1], [.ignore]),
        ]
    )
    func stateMachine(signals: [Int32], actions: [OnSignal]) {
        var machine = SignalStateMachine()
        #expect(signals.map { machine.received($0) } == actions)
    }

    /// Counts handler calls from the watcher thread.
    private final class Calls: Sendable {
        let shutdown = Atomic<Int>(0)
        let reload = Atomic<Int>(0)
        let exit = Atomic<Int>(0)
    }

    /// Polls until `condition` holds or two seconds pass.
    private func eventually(_ condition: () -> Bool) async throws -> Bool {
        for _ in 0..<200 {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    @Test("The watcher thread runs the handlers for signals sent to it")
    func watcherThread() async throws {
        let calls = Calls()
        let watcher = SignalWatcher(
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
            onShutdown: { calls.shutdown.add(1, ordering: .relaxed) },
            onReload: { _ in calls.reload.add(1, ordering: .relaxed) },
            onExitImmediately: { calls.exit.add(1, ordering: .relaxed) }
        )
        watcher.start()
        #expect(try await self.eventually { watcher.waitingThread != nil })
        // Signals are sent to the watcher thread only (it blocks them and waits for them), never to the
        // whole test process, where another thread would take the default action.
        let thread = try #require(watcher.waitingThread)
        #expect(pthread_kill(thread, SIGHUP) == 0)
        #expect(try await self.eventually { calls.reload.load(ordering: .relaxed) == 1 })
        #expect(pthread_kill(thread, SIGTERM) == 0)
        #expect(try await self.eventually { calls.shutdown.load(ordering: .relaxed) == 1 })
        #expect(pthread_kill(thread, SIGINT) == 0)
        #expect(try await self.eventually { calls.exit.load(ordering: .relaxed) == 1 })
        #expect(calls.shutdown.load(ordering: .relaxed) == 1)
        watcher.stop()
        #expect(try await self.eventually { watcher.waitingThread == nil })
        #expect(calls.reload.load(ordering: .relaxed) == 1)
    }
}
