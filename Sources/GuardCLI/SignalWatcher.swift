import CLinux
import Foundation
import Glibc
import Logging
import Synchronization

/// What to do about one signal; returned by ``SignalStateMachine/received(_:)``.
enum OnSignal: Equatable {
    /// SIGTERM or SIGINT, the first time: start a graceful drain.
    case shutdown
    /// SIGTERM or SIGINT while a drain is already under way: the operator insists, exit with code 1 now.
    case exitImmediately
    /// SIGHUP: reload the policies.
    case reload
    /// A signal we don't handle (sigwait only returns the ones asked for; this is for completeness).
    case ignore
}

/// The process that sent a signal, as the kernel tells it (`sigwaitinfo`): recorded with the policy a SIGHUP put in
/// force, so that the audit says who reloaded it.
struct SignalSender: Sendable, Hashable {
    let pid: Int32
    let uid: UInt32
}

/// The signal policy, apart from threads and system calls so tests can drive it:
/// first SIGTERM/SIGINT → drain; another → exit now; SIGHUP → reload, any number of times.
struct SignalStateMachine {
    /// Whether a drain has been asked for already.
    private(set) var shutdownRequested = false

    /// Records `signal` and says what to do about it.
    mutating func received(_ signal: Int32) -> OnSignal {
        switch signal {
        case SIGTERM, SIGINT:
            if self.shutdownRequested { return .exitImmediately }
            self.shutdownRequested = true
            return .shutdown
        case SIGHUP:
            return .reload
        default:
            return .ignore
        }
    }
}

/// Waits for SIGTERM, SIGINT and SIGHUP on one dedicated thread with `sigwait`, so the handlers are
/// ordinary code (they can lock, log and call `ProxyServer.shutdown()`), not async-signal-safe code.
///
/// For this to work the signals must be blocked in *every* thread, or the kernel delivers them to a
/// thread that isn't waiting and the default action (terminate) runs. So ``blockHandledSignals()``
/// must run on the main thread before any other thread is created: threads inherit the mask.
final class SignalWatcher: Sendable {
    /// The signals this watcher takes over.
    static let handledSignals: [Int32] = [SIGTERM, SIGINT, SIGHUP]

    private let logger: Logger
    private let onShutdown: @Sendable () -> Void
    private let onReload: @Sendable (SignalSender?) -> Void
    private let onExitImmediately: @Sendable () -> Void
    /// The watcher thread, once it has blocked the signals and is about to wait; for tests, which
    /// direct signals at it with `pthread_kill` instead of at the whole test process.
    private let thread = Mutex<pthread_t?>(nil)
    /// Set by ``stop()``; the thread checks it after every wake-up.
    private let stopped = Atomic<Bool>(false)

    /// - Parameters:
    ///   - onShutdown: the first SIGTERM/SIGINT; must return promptly (it runs on the watcher thread).
    ///   - onReload: each SIGHUP, with its sender when a process sent it; must return promptly.
    ///   - onExitImmediately: a second SIGTERM/SIGINT; by default exits the process with code 1.
    init(
        logger: Logger,
        onShutdown: @escaping @Sendable () -> Void,
        onReload: @escaping @Sendable (SignalSender?) -> Void,
        onExitImmediately: @escaping @Sendable () -> Void = { exit(1) }
    ) {
        self.logger = logger
        self.onShutdown = onShutdown
        self.onReload = onReload
        self.onExitImmediately = onExitImmediately
    }

    /// Blocks the handled signals in the calling thread, and so in every thread it creates afterwards.
    static func blockHandledSignals() {
        var set = Self.signalSet()
        let result = pthread_sigmask(SIG_BLOCK, &set, nil)
        precondition(result == 0, "pthread_sigmask failed: \(result)")
    }

    /// Starts the watcher thread. It runs for the life of the process.
    func start() {
        let thread = Thread { [self] in self.watch() }
        thread.name = "milvus-guard signals"
        thread.start()
    }

    /// Ends the watcher thread (the server never needs this; tests do, so that no thread of the test
    /// process keeps taking SIGINT and SIGTERM away from it). It wakes the thread with a SIGHUP that is
    /// directed at the thread and then ignored.
    func stop() {
        self.stopped.store(true, ordering: .sequentiallyConsistent)
        self.thread.withLock { thread in
            if let thread { _ = pthread_kill(thread, SIGHUP) }
        }
    }

    /// The watcher's thread while it is waiting for signals; nil before it starts and after it stops.
    var waitingThread: pthread_t? { self.thread.withLock { $0 } }

    private func watch() {
        var set = Self.signalSet()
        // Already blocked when started as documented; blocking again makes sigwait safe regardless.
        _ = pthread_sigmask(SIG_BLOCK, &set, nil)
        self.thread.withLock { $0 = pthread_self() }
        defer { self.thread.withLock { $0 = nil } }
        var state = SignalStateMachine()
        while !self.stopped.load(ordering: .sequentiallyConsistent) {
            var (pid, uid): (Int32, Int32) = (-1, -1)
            let signal = clinux_sigwait_sender(&set, &pid, &uid)
            guard signal > 0 else { continue }
            guard !self.stopped.load(ordering: .sequentiallyConsistent) else { return }
            switch state.received(signal) {
            case .shutdown:
                self.logger.notice("shutdown requested, draining", metadata: ["signal": "\(Self.name(signal))"])
                self.onShutdown()
            case .exitImmediately:
                self.logger.warning("second shutdown signal, exiting now", metadata: ["signal": "\(Self.name(signal))"])
                self.onExitImmediately()
            case .reload:
                self.onReload(pid > 0 && uid >= 0 ? SignalSender(pid: pid, uid: UInt32(uid)) : nil)
            case .ignore:
                break
            }
        }
    }

    private static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in Self.handledSignals { sigaddset(&set, signal) }
        return set
    }

    private static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGHUP: "SIGHUP"
        default: "signal \(signal)"
        }
    }
}
