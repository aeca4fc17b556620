import OpenSSLSupport

/// Builds OpenSSL contexts from the configuration, with errors that name the setting.
enum TLSContexts {
    /// The context for serving clients (ALPN h2; mTLS when a client CA is configured).
    static func server(_ configuration: ServerTLSConfiguration) throws -> TLSContext {
        do {
            return try TLSContext.server(
                certificatePath: configuration.certificatePath,
                keyPath: configuration.keyPath,
                clientCAPath: configuration.clientCAPath,
                clientCRLPath: configuration.clientCRLPath
            )
        } catch {
            throw ProxyError("tls: \(error)")
        }
    }

    /// The context for TLS to the upstream (certificate verified against the CA, ALPN h2).
    static func client(_ configuration: ClientTLSConfiguration) throws -> TLSContext {
        do {
            return try TLSContext.client(caPath: configuration.caPath)
        } catch {
            throw ProxyError("upstream.tls: \(error)")
        }
    }
}
