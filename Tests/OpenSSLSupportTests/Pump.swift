import OpenSSLSupport
import Testing

/// What one side of an in-memory TLS conversation saw.
struct Side {
    var received: [UInt8] = []
    var error: OpenSSLError?
    var closed = false

    /// Reads everything available from `connection`, recording data, close_notify or the first error.
    mutating func drain(_ connection: TLSConnection) {
        guard self.error == nil else { return }
        while true {
            do {
                switch try connection.readPlaintext(into: &self.received, max: 16_384) {
                case .data: continue
                case .wantMore: return
                case .closed:
                    self.closed = true
                    return
                }
            } catch {
                self.error = error
                return
            }
        }
    }
}

/// Moves ciphertext between a client and a server, purely in memory, until neither has anything to send.
///
/// Errors are recorded per side rather than thrown, and the failing side's pending alert is still delivered, as an
/// event loop would.
func pump(
    _ client: TLSConnection,
    _ server: TLSConnection,
    clientSide: inout Side,
    serverSide: inout Side,
    chunkSize: Int = .max
) {
    for _ in 0..<10_000 {
        let toServer = client.takeCiphertext()
        for chunk in toServer.chunked(by: chunkSize) {
            server.feed(chunk)
            serverSide.drain(server)
        }
        let toClient = server.takeCiphertext()
        for chunk in toClient.chunked(by: chunkSize) {
            client.feed(chunk)
            clientSide.drain(client)
        }
        if toServer.isEmpty && toClient.isEmpty && client.pendingCiphertextCount == 0
            && server.pendingCiphertextCount == 0
        {
            return
        }
    }
    Issue.record("pump did not settle")
}

/// Handshakes two connections and returns what each side saw.
@discardableResult
func handshake(_ client: TLSConnection, _ server: TLSConnection, chunkSize: Int = .max) throws -> (Side, Side) {
    var clientSide = Side()
    var serverSide = Side()
    try client.startHandshake()
    pump(client, server, clientSide: &clientSide, serverSide: &serverSide, chunkSize: chunkSize)
    return (clientSide, serverSide)
}

extension Array where Element == UInt8 {
    /// Consecutive slices of at most `size` bytes (one slice when `size` is `.max`).
    func chunked(by size: Int) -> [ArraySlice<UInt8>] {
        stride(from: 0, to: self.count, by: size).map { self[$0..<Swift.min($0 + size, self.count)] }
    }
}
