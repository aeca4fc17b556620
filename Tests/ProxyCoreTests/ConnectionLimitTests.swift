import Glibc
import Synchronization
import Testing

@testable import ProxyCore

/// The process-wide and per-address budgets of client connections that the loops take from on accept.
@Suite("Client connection limits")
struct ConnectionLimitTests {
    private func services(total: Int, perAddress: Int) throws -> SharedServices {
        var limits = Limits()
        limits.clientConnections = total
        limits.connectionsPerClient = perAddress
        return try SharedServices(limits: limits, audit: nil)
    }

    @Test("One address gets at most connections_per_client; other addresses are still admitted")
    func perAddress() throws {
        let services = try self.services(total: 100, perAddress: 2)
        defer { services.stop() }
        #expect(services.admitClient(host: "10.0.0.1") == nil)
        #expect(services.admitClient(host: "10.0.0.1") == nil)
        #expect(services.admitClient(host: "10.0.0.1") == .connectionsPerClient)
        #expect(services.admitClient(host: "10.0.0.2") == nil)
        #expect(services.admitClient(host: "2001:db8::1") == nil)
        #expect(services.openConnections(from: "10.0.0.1") == 2)
        // A refused connection takes no place, in the address's count or the process's.
        #expect(services.openClients.load(ordering: .relaxed) == 4)

        services.releaseClient(host: "10.0.0.1")
        #expect(services.openConnections(from: "10.0.0.1") == 1)
        #expect(services.admitClient(host: "10.0.0.1") == nil)
    }

    @Test("The process-wide limit applies first; Unix-socket clients count only against it")
    func processWide() throws {
        let services = try self.services(total: 3, perAddress: 1)
        defer { services.stop() }
        #expect(services.admitClient(host: nil) == nil)
        #expect(services.admitClient(host: nil) == nil)  // no address: never connectionsPerClient
        #expect(services.admitClient(host: "10.0.0.1") == nil)
        #expect(services.admitClient(host: "10.0.0.2") == .clientConnections)
        #expect(services.openConnections(from: "10.0.0.2") == 0)
        services.releaseClient(host: nil)
        #expect(services.admitClient(host: "10.0.0.2") == nil)
        for host in [nil, "10.0.0.1", "10.0.0.2"] { services.releaseClient(host: host) }
        #expect(services.openClients.load(ordering: .relaxed) == 0)
        #expect(services.openConnections(from: "10.0.0.1") == 0)
    }

    @Test("An address over refusals_per_minute is not admitted, and takes no place; others still are")
    func shutOutByRefusals() throws {
        var limits = Limits()
        limits.refusalsPerWindow = 2
        let services = try SharedServices(limits: limits, audit: nil)
        defer { services.stop() }
        let now = EventLoop.now()
        for _ in 0..<2 { services.refusals.withLock { _ = $0.recordFailure("10.0.0.1", now: now) } }
        #expect(services.admitClient(host: "10.0.0.1") == .refusalsPerMinute)
        #expect(services.admitClient(host: "10.0.0.2") == nil)
        #expect(services.admitClient(host: nil) == nil)  // a Unix-socket client has no address to shut out
        #expect(services.openClients.load(ordering: .relaxed) == 2)
        #expect(services.openConnections(from: "10.0.0.1") == 0)
    }

    @Test("An address that opened new_connections_per_minute connections is refused until its window is over")
    func newConnectionRate() throws {
        var limits = Limits()
        limits.newConnectionsPerWindow = 3
        limits.newConnectionWindowMilliseconds = 300
        let services = try SharedServices(limits: limits, audit: nil)
        defer { services.stop() }
        let started = EventLoop.now()
        for _ in 0..<3 {
            #expect(services.admitClient(host: "10.0.0.1") == nil)
            services.releaseClient(host: "10.0.0.1")  // closing a connection gives no new one back
        }
        #expect(services.admitClient(host: "10.0.0.1") == .newConnectionsPerMinute)
        #expect(services.admitClient(host: "10.0.0.2") == nil)
        for _ in 0..<5 { #expect(services.admitClient(host: nil) == nil) }  // a Unix-socket client has no address
        #expect(services.openConnections(from: "10.0.0.1") == 0)
        #expect(services.openClients.load(ordering: .relaxed) == 6)
        // Still refused within the window, however often it tries; admitted again once the window is over.
        // (The window began at the first admission, after `started`: a call that returned within 300 ms of
        // `started` was made within the window.)
        for _ in 0..<5 {
            let refusal = services.admitClient(host: "10.0.0.1")
            if EventLoop.now() - started < 300_000_000 { #expect(refusal == .newConnectionsPerMinute) }
            usleep(40_000)
        }
        var admitted = false
        for _ in 0..<40 where !admitted {  // at most 2 s
            usleep(50_000)
            admitted = services.admitClient(host: "10.0.0.1") == nil
        }
        #expect(admitted)
    }

    @Test("new_connections_per_minute 0 counts nothing")
    func newConnectionRateOff() throws {
        var limits = Limits()
        limits.newConnectionsPerWindow = 0
        let services = try SharedServices(limits: limits, audit: nil)
        defer { services.stop() }
        for _ in 0..<2_000 {
            #expect(services.admitClient(host: "10.0.0.1") == nil)
            services.releaseClient(host: "10.0.0.1")
        }
        #expect(services.newConnections.withLock(\.trackedAddresses) == 0)
    }

    @Test("A Unix-socket peer is not counted per address; an IPv6 peer counts by its address without the port")
    func countedHost() {
        #expect(ClientConnection.countedHost(of: "unix") == nil)
        #expect(ClientConnection.countedHost(of: "127.0.0.1:50000") == "127.0.0.1")
        #expect(ClientConnection.countedHost(of: "[::1]:50000") == "::1")
    }
}
