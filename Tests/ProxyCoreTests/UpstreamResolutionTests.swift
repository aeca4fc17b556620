import Testing

@testable import ProxyCore

@Suite("Upstream name resolution: address rotation and refresh")
struct UpstreamResolutionTests {
    @Test("A fresh answer is used until its lifetime is over")
    func lifetime() {
        let resolution = UpstreamResolution(addresses: ["::1", "127.0.0.1"], now: 1_000)
        #expect(resolution.current == "::1")
        #expect(!resolution.isDue(now: 1_000 + UpstreamResolution<String>.lifetimeNanoseconds - 1))
        #expect(resolution.isDue(now: 1_000 + UpstreamResolution<String>.lifetimeNanoseconds))
    }

    @Test("A failed connect moves to the next address; when all failed in a row, the name is resolved again")
    func rotation() {
        var resolution = UpstreamResolution(addresses: ["::1", "127.0.0.1", "10.0.0.7"], now: 0)
        resolution.connectFailed()
        #expect(resolution.current == "127.0.0.1")
        #expect(!resolution.isDue(now: 1))
        resolution.connectFailed()
        #expect(resolution.current == "10.0.0.7")
        #expect(!resolution.isDue(now: 1))
        resolution.connectFailed()
        #expect(resolution.current == "::1")
        #expect(resolution.isDue(now: 1))
    }

    @Test("One address: a failed connect makes the name due at once")
    func single() {
        var resolution = UpstreamResolution(addresses: ["10.0.0.7"], now: 0)
        resolution.connectFailed()
        #expect(resolution.current == "10.0.0.7")
        #expect(resolution.isDue(now: 0))
    }

    @Test("A failed resolution keeps the last answer and tries again after a tenth of the lifetime")
    func failedResolution() {
        var resolution = UpstreamResolution(addresses: ["10.0.0.7"], now: 0)
        resolution.resolutionFailed(now: 5_000)
        #expect(resolution.current == "10.0.0.7")
        #expect(!resolution.isDue(now: 5_000 + UpstreamResolution<String>.lifetimeNanoseconds / 10 - 1))
        #expect(resolution.isDue(now: 5_000 + UpstreamResolution<String>.lifetimeNanoseconds / 10))
    }
}
