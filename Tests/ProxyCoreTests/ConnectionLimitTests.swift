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
        #expect(services.admitClient(host: "10.0.0.1") == .addressFull)
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
        #expect(services.admitClient(host: nil) == nil)  // no address: never addressFull
        #expect(services.admitClient(host: "10.0.0.1") == nil)
        #expect(services.admitClient(host: "10.0.0.2") == .processFull)
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
        #expect(services.admitClient(host: "10.0.0.1") == .tooManyRefusals)
        #expect(services.admitClient(host: "10.0.0.2") == nil)
        #expect(services.admitClient(host: nil) == nil)  // a Unix-socket client has no address to shut out
        #expect(services.openClients.load(ordering: .relaxed) == 2)
        #expect(services.openConnections(from: "10.0.0.1") == 0)
    }

    @Test("A Unix-socket peer is not counted per address; an IPv6 peer counts by its address without the port")
    func countedHost() {
        #expect(ClientConnection.countedHost(of: "unix") == nil)
        #expect(ClientConnection.countedHost(of: "127.0.0.1:50000") == "127.0.0.1")
        #expect(ClientConnection.countedHost(of: "[::1]:50000") == "::1")
    }
}
