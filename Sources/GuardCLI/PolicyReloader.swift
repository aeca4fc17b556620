import Foundation
import Glibc
import Synchronization

/// Runs policy reloads one at a time on a thread of their own, so that the signal thread never waits for one: a
/// reload waits until the audit store has its record, and a second SIGTERM must still exit at once meanwhile.
///
/// SIGHUPs that arrive during a reload are folded into one more reload after it (with the last one's sender): the
/// files are read again then, so nothing they changed is missed.
final class PolicyReloader: Sendable {
    private struct State {
        var running = false
        /// A reload asked for while one runs: the trigger of the last such request.
        var again: PolicyRecord.Trigger?
    }

    /// What became of one reload.
    enum Outcome: Sendable {
        /// Applied, or rejected for what the files say: nothing to try again.
        case done
        /// Not applied because the audit store could not record it: tried again (files read anew) after a pause
        /// that doubles from ``firstRetryMilliseconds`` up to ``lastRetryMilliseconds``, until it is applied or
        /// rejected, or another SIGHUP comes (then that one is tried). A revocation must not be lost to an outage.
        case retry
    }

    static let firstRetryMilliseconds = 1_000
    static let lastRetryMilliseconds = 30_000

    private let state = Mutex(State())
    private let reload: @Sendable (PolicyRecord.Trigger) -> Outcome
    private let retryMilliseconds: (first: Int, last: Int)

    /// - Parameter reload: loads and puts the policy in force; runs on the reloader's thread.
    init(
        retryMilliseconds: (first: Int, last: Int) = (
            PolicyReloader.firstRetryMilliseconds, PolicyReloader.lastRetryMilliseconds
        ),
        _ reload: @escaping @Sendable (PolicyRecord.Trigger) -> Outcome
    ) {
        self.retryMilliseconds = retryMilliseconds
        self.reload = reload
    }

    /// Reloads on the reloader's thread, at once or after the reload under way.
    func request(_ trigger: PolicyRecord.Trigger) {
        let start = self.state.withLock { state -> Bool in
            if state.running {
                state.again = trigger
                return false
            }
            state.running = true
            return true
        }
        guard start else { return }
        let thread = Thread { [self] in
            var next: PolicyRecord.Trigger? = trigger
            var pause = self.retryMilliseconds.first
            while let current = next {
                if self.reload(current) == .retry {
                    // In slices, so that a SIGHUP meanwhile (a revocation once the store is back) waits at most one.
                    var waited = 0
                    while waited < pause, self.state.withLock({ $0.again == nil }) {
                        let slice = min(100, pause - waited)
                        usleep(UInt32(slice) * 1_000)
                        waited += slice
                    }
                    pause = min(pause * 2, self.retryMilliseconds.last)
                    // A SIGHUP meanwhile replaces the one being tried; the files are read anew either way.
                    next = self.state.withLock { state in
                        defer { state.again = nil }
                        return state.again ?? current
                    }
                    continue
                }
                pause = self.retryMilliseconds.first
                next = self.state.withLock { state in
                    defer { state.again = nil }
                    if state.again == nil { state.running = false }
                    return state.again
                }
            }
        }
        thread.name = "milvus-guard reload"
        thread.start()
    }
}
