import CLinux
import Glibc

/// A joinable POSIX thread running one closure: the event loops' threads.
final class LoopThread {
    private var thread = pthread_t()

    /// Starts `body` on a new thread.
    /// - Throws: ``ProxyError`` when the system refuses a thread.
    init(name: String, _ body: @escaping @Sendable () -> Void) throws {
        final class Box {
            let body: @Sendable () -> Void
            let name: String
            init(_ body: @escaping @Sendable () -> Void, name: String) {
                self.body = body
                self.name = name
            }
        }
        let box = Unmanaged.passRetained(Box(body, name: name)).toOpaque()
        let status = pthread_create(
            &self.thread,
            nil,
            { raw in
                guard let raw else { return nil }
                let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
                clinux_set_thread_name(box.name)
                box.body()
                return nil
            },
            box
        )
        guard status == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw ProxyError("cannot start thread \(name): \(String(cString: strerror(status)))")
        }
    }

    /// Waits for the thread to end.
    func join() { pthread_join(self.thread, nil) }

    /// Lets the thread end on its own, without a ``join()``.
    func detach() { pthread_detach(self.thread) }
}

@available(*, unavailable)
extension LoopThread: Sendable {}
