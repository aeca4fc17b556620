import CLinux
import Glibc
import Testing

@testable import ProxyCore

/// Reads one byte when its descriptor is readable, then stops the loop.
private final class PipeReader: LoopHandler {
    let descriptor: Int32
    let loop: EventLoop
    let received: Locked<[UInt8]>

    init(descriptor: Int32, loop: EventLoop, received: Locked<[UInt8]>) {
        self.descriptor = descriptor
        self.loop = loop
        self.received = received
    }

    func handleEvents(_ events: UInt32) {
        var byte: UInt8 = 0
        if Glibc.read(self.descriptor, &byte, 1) == 1 {
            let value = byte
            self.received.update { $0.append(value) }
        }
        self.loop.stop()
    }
}

@Suite("LoopMailbox and EventLoop", .timeLimit(.minutes(1)))
struct EventLoopTests {
    /// Runs an event loop on its own thread; `setUp` runs on that thread before `run()`.
    static func runLoop(
        mailbox: LoopMailbox,
        _ setUp: @escaping @Sendable (EventLoop) -> Void
    ) throws -> TestThread {
        try TestThread(name: "test-loop") {
            guard let loop = try? EventLoop(mailbox: mailbox) else { return }
            setUp(loop)
            loop.run()
        }
    }

    @Test("Messages sent from another thread wake a loop blocked in epoll_wait, one round trip at a time")
    func mailboxWakesLoop() throws {
        let mailbox = LoopMailbox()
        let received = Locked<[UInt64]>([])
        let thread = try Self.runLoop(mailbox: mailbox) { loop in
            loop.onMessage = { [unowned loop] message in
                guard case .shutdown(let deadline) = message else { return }
                received.update { $0.append(deadline) }
                if deadline == 99 { loop.stop() }
            }
        }
        for value in 0..<100 as Range<UInt64> {
            mailbox.send(.shutdown(deadline: value))
            // The next message goes out only once this one arrived, so the loop is asleep for most of them.
            #expect(waitFor { received.value.count == Int(value) + 1 }, "message \(value) not delivered")
        }
        #expect(thread.join())
        #expect(received.value == Array(0..<100))
    }

    @Test("Messages sent concurrently from four threads all arrive")
    func concurrentSenders() throws {
        let mailbox = LoopMailbox()
        let count = Locked(0)
        let loopThread = try Self.runLoop(mailbox: mailbox) { loop in
            loop.onMessage = { [unowned loop] _ in
                if count.update({ value -> Int in
                    value += 1
                    return value
                }) == 1000 {
                    loop.stop()
                }
            }
        }
        let senders = try (0..<4).map { index in
            try TestThread(name: "sender-\(index)") {
                for _ in 0..<250 { mailbox.send(.shutdown(deadline: UInt64(index))) }
            }
        }
        for sender in senders { #expect(sender.join()) }
        #expect(loopThread.join())
        #expect(count.value == 1000)
    }

    @Test("A message sent before the loop runs is delivered once it does")
    func messageBeforeRun() throws {
        let mailbox = LoopMailbox()
        mailbox.send(.shutdown(deadline: 7))
        let received = Locked<[UInt64]>([])
        let thread = try Self.runLoop(mailbox: mailbox) { loop in
            loop.onMessage = { [unowned loop] message in
                if case .shutdown(let deadline) = message { received.update { $0.append(deadline) } }
                loop.stop()
            }
        }
        #expect(thread.join())
        #expect(received.value == [7])
    }

    @Test("Timers fire in deadline order, a cancelled one never, and not before their time")
    func timersInOrder() throws {
        let mailbox = LoopMailbox()
        let trace = Locked<[String]>([])
        let elapsed = Locked<UInt64>(0)
        let thread = try Self.runLoop(mailbox: mailbox) { loop in
            let start = EventLoop.now()
            loop.schedule(afterMilliseconds: 60) { [unowned loop] in
                trace.update { $0.append("60") }
                elapsed.set(EventLoop.now() - start)
                loop.stop()
            }
            loop.schedule(afterMilliseconds: 20) { trace.update { $0.append("20") } }
            let cancelled = loop.schedule(afterMilliseconds: 30) { trace.update { $0.append("30") } }
            loop.schedule(afterMilliseconds: 40) { trace.update { $0.append("40") } }
            loop.schedule(afterMilliseconds: 0) { [unowned loop] in
                trace.update { $0.append("0") }
                // A timer scheduled from a timer, earlier than the one armed.
                loop.schedule(afterMilliseconds: 10) { trace.update { $0.append("0+10") } }
            }
            loop.cancelTimer(cancelled)
        }
        #expect(thread.join())
        #expect(trace.value == ["0", "0+10", "20", "40", "60"])
        #expect(elapsed.value >= 60_000_000)
    }

    @Test("A registered descriptor's handler runs when another thread makes it readable")
    func registeredHandler() throws {
        var pair: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        defer {
            close(pair[0])
            close(pair[1])
        }
        let (readEnd, writeEnd) = (pair[0], pair[1])
        let mailbox = LoopMailbox()
        let received = Locked<[UInt8]>([])
        let registered = Locked(false)
        let thread = try TestThread(name: "test-loop") {
            guard let loop = try? EventLoop(mailbox: mailbox) else { return }
            let reader = PipeReader(descriptor: readEnd, loop: loop, received: received)
            guard let token = try? loop.register(readEnd, events: CLINUX_EPOLLIN, handler: reader) else { return }
            registered.set(true)
            loop.run()
            loop.unregister(readEnd, token: token)
        }
        #expect(waitFor { registered.value || thread.isFinished })
        var byte: UInt8 = 0x5A
        #expect(Glibc.write(writeEnd, &byte, 1) == 1)
        #expect(thread.join())
        #expect(received.value == [0x5A])
    }
}
