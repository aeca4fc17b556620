import Foundation
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

    private let state = Mutex(State())
    private let reload: @Sendable (PolicyRecord.Trigger) -> Void

    /// - Parameter reload: loads and puts the policy in force; runs on the reloader's thread.
    init(_ reload: @escaping @Sendable (PolicyRecord.Trigger) -> Void) {
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
            while let current = next {
                self.reload(current)
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
