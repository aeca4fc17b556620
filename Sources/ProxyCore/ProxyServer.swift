public import Logging

/// The running proxy: N event loops, each with its own listening socket, client connections and
/// upstream pool. (Interface fixed; implementation in progress.)
public final class ProxyServer: Sendable {
    public let configuration: ProxyConfiguration

    /// Validates the configuration (TLS files load, the listen address parses) without binding.
    /// - Throws: ``ProxyError`` naming the problem.
    public init(configuration: ProxyConfiguration, logger: Logger) throws {
        self.configuration = configuration
    }

    /// Binds, starts the loops and blocks until a shutdown has drained.
    /// - Throws: ``ProxyError`` when the listen address can't be bound.
    public func run() throws {}

    /// Starts a graceful shutdown: GOAWAY to every client, in-flight calls get the drain timeout.
    /// Safe from any thread, including a signal-handling thread.
    public func shutdown() {}
}

/// Failures of the proxy's own setup.
public struct ProxyError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
