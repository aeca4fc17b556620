import Glibc
import Testing

@testable import OpenSSLSupport

private func serverContext(mutualTLS: Bool = false, certificate: String = "server") throws -> TLSContext {
    let pki = try TestPKI.get()
    return try TLSContext.server(
        certificatePath: pki.path("\(certificate).pem"),
        keyPath: pki.path("\(certificate).key"),
        clientCAPath: mutualTLS ? pki.path("ca.pem") : nil
    )
}

private func clientContext(
    alpn: [String] = ["h2"],
    identity: String? = nil,
    trust: String? = "ca.pem"
) throws -> TLSContext {
    let pki = try TestPKI.get()
    return try TLSContext.client(
        caPath: trust.map { pki.path($0) },
        alpn: alpn,
        certificatePath: identity.map { pki.path("\($0).pem") },
        keyPath: identity.map { pki.path("\($0).key") }
    )
}

@Suite("TLSConnection in memory")
struct TLSConnectionTests {
    @Test("Handshake negotiates TLS 1.3 and ALPN h2; data flows both ways")
    func handshakeAndData() throws {
        let server = try TLSConnection(context: serverContext())
        let client = try TLSConnection(context: clientContext(), serverName: "localhost")
        #expect(try client.writePlaintext(Array("early".utf8)) == 0)  // before the handshake: nothing accepted
        var (clientSide, serverSide) = try handshake(client, server)
        #expect(clientSide.error == nil && serverSide.error == nil)
        #expect(client.isHandshakeComplete && server.isHandshakeComplete)
        #expect(client.negotiatedALPN == "h2" && server.negotiatedALPN == "h2")
        #expect(client.protocolVersion == "TLSv1.3")
        #expect(client.peerCertificateSubject == "CN=localhost")
        #expect(client.peerCertificateSANs.map(\.description) == ["DNS:localhost"])  // the IP name is left out
        #expect(server.peerCertificateSubject == nil)  // no mutual TLS
        #expect(server.serverNameIndication == "localhost")
        #expect(server.peerCertificateSANs == [])

        #expect(try client.writePlaintext(Array("PRI * HTTP/2.0".utf8)) == 14)
        #expect(try server.writePlaintext(Array("settings".utf8)[...]) == 8)
        pump(client, server, clientSide: &clientSide, serverSide: &serverSide)
        #expect(serverSide.received == Array("PRI * HTTP/2.0".utf8))
        #expect(clientSide.received == Array("settings".utf8))
    }

    @Test("TLS 1.2 negotiates an ECDHE AEAD suite and ALPN h2, with mutual TLS")
    func tls12() throws {
        let server = try TLSConnection(context: serverContext(mutualTLS: true))
        let context = try clientContext(identity: "client")
        context.limitToTLS12()
        let client = try TLSConnection(context: context, serverName: "localhost")
        var (clientSide, serverSide) = try handshake(client, server)
        #expect(clientSide.error == nil && serverSide.error == nil)
        #expect(client.protocolVersion == "TLSv1.2" && server.protocolVersion == "TLSv1.2")
        #expect(server.negotiatedALPN == "h2")
        #expect(server.serverNameIndication == "localhost")
        #expect(server.peerCertificateSubject == "CN=svc,O=Milvus Guard Test")
        _ = try server.writePlaintext(Array("over 1.2".utf8))
        pump(client, server, clientSide: &clientSide, serverSide: &serverSide)
        #expect(clientSide.received == Array("over 1.2".utf8))
    }

    @Test("A handshake fed one byte at a time completes")
    func oneByteAtATime() throws {
        let server = try TLSConnection(context: serverContext(mutualTLS: true))
        let client = try TLSConnection(context: clientContext(identity: "client"), serverName: "localhost")
        let (clientSide, serverSide) = try handshake(client, server, chunkSize: 1)
        #expect(clientSide.error == nil && serverSide.error == nil)
        #expect(client.isHandshakeComplete && server.isHandshakeComplete)
        #expect(server.peerCertificateSubject == "CN=svc,O=Milvus Guard Test")  // RFC 2253: most specific first
    }

    @Test(
        "A wrong host name fails verification on the client",
        arguments: ["example.com", "127.0.0.2", "local", "LOCALHOST"]
    )
    func hostnameMismatch(name: String) throws {
        let server = try TLSConnection(context: serverContext())
        let client = try TLSConnection(context: clientContext(), serverName: name)
        let (clientSide, serverSide) = try handshake(client, server)
        if name == "LOCALHOST" {
            // Host names compare case-insensitively (RFC 6125 §6.4.1): this one matches.
            #expect(clientSide.error == nil)
            return
        }
        let error = try #require(clientSide.error)
        #expect(error.code == .certificateVerificationFailed)
        #expect(error.message.lowercased().contains("mismatch"), "\(error)")
        #expect(serverSide.error != nil)  // the client's bad_certificate alert reaches the server
        #expect(!client.isHandshakeComplete)
    }

    @Test("The server's IP address name verifies")
    func ipAddressName() throws {
        let server = try TLSConnection(context: serverContext())
        let client = try TLSConnection(context: clientContext(), serverName: "127.0.0.1")
        let (clientSide, _) = try handshake(client, server)
        #expect(clientSide.error == nil)
        #expect(client.isHandshakeComplete)
        #expect(server.serverNameIndication == nil)  // no SNI for an IP address (RFC 6066 §3)
    }

    @Test("A server certificate from an untrusted CA is rejected")
    func untrustedServer() throws {
        let server = try TLSConnection(context: serverContext(certificate: "rogue-server"))
        let client = try TLSConnection(context: clientContext(), serverName: "localhost")
        let (clientSide, _) = try handshake(client, server)
        let error = try #require(clientSide.error)
        #expect(error.code == .certificateVerificationFailed)
        #expect(error.message.contains("unable to get local issuer certificate"), "\(error)")
    }

    @Test("The system trust store does not trust the test CA")
    func systemTrustStore() throws {
        let server = try TLSConnection(context: serverContext())
        let client = try TLSConnection(context: clientContext(trust: nil), serverName: "localhost")
        let (clientSide, _) = try handshake(client, server)
        #expect(clientSide.error?.code == .certificateVerificationFailed)
    }

    @Test("Mutual TLS exposes the client's subject and SANs")
    func mutualTLS() throws {
        let server = try TLSConnection(context: serverContext(mutualTLS: true))
        let client = try TLSConnection(context: clientContext(identity: "client"), serverName: "localhost")
        let (clientSide, serverSide) = try handshake(client, server)
        #expect(clientSide.error == nil && serverSide.error == nil)
        #expect(server.peerCertificateSubject == "CN=svc,O=Milvus Guard Test")
        #expect(
            server.peerCertificateSANs.map(\.description) == [
                "DNS:svc.internal", "URI:spiffe://milvus-guard/svc", "email:svc@example.com",
            ]
        )
        #expect(server.context.requiresClientCertificate)
        // The test PKI's certificates are made for 2 days when the tests start.
        let notAfter = try #require(server.peerCertificateNotAfter)
        let now = Int64(time(nil))
        #expect(notAfter > now + 86_400 && notAfter <= now + 2 * 86_400 + 60)
    }

    @Test(
        "Mutual TLS rejects a client without a certificate or with an untrusted one",
        arguments: [nil, "rogue-client"]
    )
    func mutualTLSRejects(identity: String?) throws {
        let server = try TLSConnection(context: serverContext(mutualTLS: true))
        let client = try TLSConnection(context: clientContext(identity: identity), serverName: "localhost")
        var (clientSide, serverSide) = try handshake(client, server)
        let error = try #require(serverSide.error)
        #expect(error.code == .certificateVerificationFailed, "\(error)")
        #expect(!server.isHandshakeComplete)
        #expect(server.peerCertificateSubject == nil || identity != nil)
        // TLS 1.3: the client finished its side before the server judged it; it learns from the alert.
        if clientSide.error == nil {
            #expect(throws: OpenSSLError.self) { try client.writePlaintext([1]) }
            clientSide.drain(client)
            pump(client, server, clientSide: &clientSide, serverSide: &serverSide)
        }
        #expect(clientSide.error != nil)
        #expect(clientSide.received.isEmpty)
    }

    @Test("A client offering no h2 fails ALPN on both sides", arguments: [["http/1.1"], []])
    func alpnMismatch(alpn: [String]) throws {
        let server = try TLSConnection(context: serverContext())
        let client = try TLSConnection(context: clientContext(alpn: alpn), serverName: "localhost")
        let (clientSide, serverSide) = try handshake(client, server)
        #expect(serverSide.error?.code == .alpnMismatch, "\(String(describing: serverSide.error))")
        #expect(clientSide.error?.code == .alpnMismatch, "\(String(describing: clientSide.error))")
        #expect(!server.isHandshakeComplete)
    }

    @Test("A client offering h2 among others gets h2")
    func alpnPreference() throws {
        let server = try TLSConnection(context: serverContext())
        let client = try TLSConnection(context: clientContext(alpn: ["http/1.1", "h2"]), serverName: "localhost")
        try handshake(client, server)
        #expect(server.negotiatedALPN == "h2")
    }

    @Test("1 MiB round-trips in both directions")
    func largePayload() throws {
        let server = try TLSConnection(context: serverContext())
        let client = try TLSConnection(context: clientContext(), serverName: "localhost")
        var (clientSide, serverSide) = try handshake(client, server)
        var generator = SystemRandomNumberGenerator()
        let payload = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        #expect(try client.writePlaintext(payload) == payload.count)
        pump(client, server, clientSide: &clientSide, serverSide: &serverSide)
        #expect(serverSide.received == payload)
        // Echo it back through the reusable-buffer API.
        let echoed = payload.withUnsafeBytes { try? server.writePlaintext($0) }
        #expect(echoed == payload.count)
        var wire: [UInt8] = []
        #expect(server.takeCiphertext(appendingTo: &wire) > payload.count)
        #expect(server.pendingCiphertextCount == 0)
        wire.withUnsafeBytes { client.feed($0) }
        clientSide.drain(client)
        #expect(clientSide.received == payload)
        #expect(clientSide.error == nil && serverSide.error == nil)
    }

    @Test("close_notify is reported as .closed, and writes after close fail")
    func closeNotify() throws {
        let server = try TLSConnection(context: serverContext())
        let client = try TLSConnection(context: clientContext(), serverName: "localhost")
        var (clientSide, serverSide) = try handshake(client, server)
        _ = try client.writePlaintext(Array("last words".utf8))
        client.close()
        let error = #expect(throws: OpenSSLError.self) { try client.writePlaintext([1]) }
        #expect(error?.code == .connectionClosed)
        pump(client, server, clientSide: &clientSide, serverSide: &serverSide)
        #expect(serverSide.received == Array("last words".utf8))
        #expect(serverSide.closed && server.receivedCloseNotify)
        var scratch: [UInt8] = []
        #expect(try server.readPlaintext(into: &scratch, max: 10) == .closed)  // stays closed
        server.close()
        pump(client, server, clientSide: &clientSide, serverSide: &serverSide)
        #expect(clientSide.closed)
        #expect(clientSide.error == nil && serverSide.error == nil)
    }

    @Test("Garbage instead of a ClientHello fails the handshake, then the connection stays failed")
    func garbageHandshake() throws {
        for garbage in [Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), [UInt8](repeating: 0x16, count: 4096)] {
            let server = try TLSConnection(context: serverContext())
            server.feed(garbage)
            var buffer: [UInt8] = []
            let error = #expect(throws: OpenSSLError.self) { try server.readPlaintext(into: &buffer, max: 100) }
            #expect(error?.code == .handshakeFailed)
            #expect(buffer.isEmpty)
            let again = #expect(throws: OpenSSLError.self) { try server.readPlaintext(into: &buffer, max: 100) }
            #expect(again?.code == .connectionClosed)
            _ = server.takeCiphertext()  // an alert, or nothing: either way no crash
        }
    }

    @Test("Random bytes never crash either side", arguments: 0..<20)
    func randomGarbage(seed: Int) throws {
        var generator = SystemRandomNumberGenerator()
        let garbage = (0..<Int.random(in: 1...2000, using: &generator)).map { _ in UInt8.random(in: 0...255) }
        let server = try TLSConnection(context: serverContext())
        server.feed(garbage)
        var side = Side()
        side.drain(server)
        let client = try TLSConnection(context: clientContext(), serverName: "localhost")
        try client.startHandshake()
        client.feed(garbage[...])
        var clientSide = Side()
        clientSide.drain(client)
        #expect(side.received.isEmpty && clientSide.received.isEmpty)
    }

    @Test("Corrupted records after the handshake are a protocol error")
    func corruptedRecord() throws {
        let server = try TLSConnection(context: serverContext())
        let client = try TLSConnection(context: clientContext(), serverName: "localhost")
        var (clientSide, serverSide) = try handshake(client, server)
        _ = try client.writePlaintext(Array("tamper with me".utf8))
        var record = client.takeCiphertext()
        record[record.count - 3] ^= 0x01  // inside the AEAD tag
        server.feed(record)
        serverSide.drain(server)
        #expect(serverSide.error?.code == .protocolError)
        #expect(serverSide.received.isEmpty)
        pump(client, server, clientSide: &clientSide, serverSide: &serverSide)  // the bad_record_mac alert
        #expect(clientSide.error != nil)
    }
}

@Suite("TLSContext configuration errors")
struct TLSContextTests {
    @Test("A missing certificate file names the file")
    func missingCertificate() throws {
        let pki = try TestPKI.get()
        let error = #expect(throws: OpenSSLError.self) {
            try TLSContext.server(
                certificatePath: pki.path("nope.pem"),
                keyPath: pki.path("server.key"),
                clientCAPath: nil
            )
        }
        #expect(error?.code == .certificateLoad)
        #expect(error?.file == pki.path("nope.pem"))
        #expect(error?.message.contains("No such file") == true, "\(String(describing: error))")
    }

    @Test(
        "A key that does not match, or is encrypted, fails without prompting",
        arguments: ["client.key", "encrypted.key"]
    )
    func badKey(key: String) throws {
        let pki = try TestPKI.get()
        let error = #expect(throws: OpenSSLError.self) {
            try TLSContext.server(certificatePath: pki.path("server.pem"), keyPath: pki.path(key), clientCAPath: nil)
        }
        #expect(error?.code == .privateKeyLoad)
        #expect(error?.file == pki.path(key))
    }

    @Test("A missing CA file fails as a trust store error")
    func missingCA() throws {
        let pki = try TestPKI.get()
        let server = #expect(throws: OpenSSLError.self) {
            try TLSContext.server(
                certificatePath: pki.path("server.pem"),
                keyPath: pki.path("server.key"),
                clientCAPath: pki.path("missing-ca.pem")
            )
        }
        #expect(server?.code == .trustStoreLoad)
        let client = #expect(throws: OpenSSLError.self) { try TLSContext.client(caPath: pki.path("missing-ca.pem")) }
        #expect(client?.code == .trustStoreLoad)
        #expect(client?.file == pki.path("missing-ca.pem"))
    }

    @Test("Misused arguments are invalidArgument")
    func invalidArguments() throws {
        let pki = try TestPKI.get()
        let client = try TLSContext.client(caPath: pki.path("ca.pem"))
        #expect(client.role == .client)
        let noName = #expect(throws: OpenSSLError.self) { try TLSConnection(context: client) }
        #expect(noName?.code == .invalidArgument)
        let server = try serverContext()
        let named = #expect(throws: OpenSSLError.self) { try TLSConnection(context: server, serverName: "x") }
        #expect(named?.code == .invalidArgument)
        let nul = #expect(throws: OpenSSLError.self) { try TLSConnection(context: client, serverName: "evil\0.com") }
        #expect(nul?.code == .invalidArgument)
        let alpn = #expect(throws: OpenSSLError.self) { try TLSContext.client(caPath: nil, alpn: [""]) }
        #expect(alpn?.code == .invalidArgument)
        let halfIdentity = #expect(throws: OpenSSLError.self) {
            try TLSContext.client(caPath: nil, certificatePath: pki.path("client.pem"))
        }
        #expect(halfIdentity?.code == .invalidArgument)
    }
}
