import Foundation
import Glibc
import Testing

@testable import OpenSSLSupport

private func serverContext(
    mutualTLS: Bool = false,
    certificate: String = "server",
    crl: String? = nil
) throws -> TLSContext {
    let pki = try TestPKI.get()
    return try TLSContext.server(
        certificatePath: pki.path("\(certificate).pem"),
        keyPath: pki.path("\(certificate).key"),
        clientCAPath: mutualTLS ? pki.path("ca.pem") : nil,
        clientCRLPath: crl.map { pki.path($0) }
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

    @Test("With a CRL, a revoked client certificate fails the handshake; one the CRL does not list passes")
    func revokedClient() throws {
        let revoking = try serverContext(mutualTLS: true, crl: "ca-revoked.crl")
        #expect(revoking.revocationLists == 1)
        // The test PKI's CRLs are good for 2 days from when the tests start.
        let nextUpdate = try #require(revoking.revocationListsNextUpdate)
        #expect(abs(nextUpdate - (Int64(time(nil)) + 2 * 86_400)) < 600)
        #expect(try serverContext(mutualTLS: true).revocationListsNextUpdate == nil)
        let refused = try TLSConnection(context: revoking)
        let client = try TLSConnection(context: clientContext(identity: "client"), serverName: "localhost")
        let (_, refusedSide) = try handshake(client, refused)
        let error = try #require(refusedSide.error)
        #expect(error.code == .certificateVerificationFailed, "\(error)")
        #expect(error.message.contains("certificate revoked"), "\(error)")

        let accepting = try TLSConnection(context: serverContext(mutualTLS: true, crl: "ca-empty.crl"))
        let (clientSide, serverSide) = try handshake(
            try TLSConnection(context: clientContext(identity: "client"), serverName: "localhost"),
            accepting
        )
        #expect(clientSide.error == nil && serverSide.error == nil)
        #expect(accepting.isHandshakeComplete)
    }

    @Test(
        "CRLs that would refuse every client of a CA fail to load: forged, expired, not in force yet, missing",
        arguments: [
            ("ca.pem", "impostor-ca.crl", "the CRL of /CN=milvus-guard test CA is not signed by the CA of that name"),
            ("ca.pem", "rogue-ca.crl", "no CRL of /CN=milvus-guard test CA (a CA of client_ca)"),
            ("ca.pem", "ca-expired.crl", "the CRL of /CN=milvus-guard test CA has expired"),
            ("ca.pem", "ca-future.crl", "the CRL of /CN=milvus-guard test CA is not in force yet"),
            ("both-cas.pem", "ca-empty.crl", "no CRL of /CN=rogue CA (a CA of client_ca)"),
        ]
    )
    func unusableCRLs(trust: String, crl: String, says: String) throws {
        let pki = try TestPKI.get()
        let error = #expect(throws: OpenSSLError.self) {
            try TLSContext.server(
                certificatePath: pki.path("server.pem"),
                keyPath: pki.path("server.key"),
                clientCAPath: pki.path(trust),
                clientCRLPath: pki.path(crl)
            )
        }
        #expect(error?.code == .trustStoreLoad)
        #expect(error?.message.hasPrefix(says) == true, "\(String(describing: error))")
        #expect(error?.file == pki.path(crl))
    }

    @Test("A live connection verified again against a reloaded context: a revocation since the handshake is found")
    func verifyAgain() throws {
        let server = try TLSConnection(context: serverContext(mutualTLS: true, crl: "ca-empty.crl"))
        let client = try TLSConnection(context: clientContext(identity: "client"), serverName: "localhost")
        let (clientSide, serverSide) = try handshake(client, server)
        #expect(clientSide.error == nil && serverSide.error == nil)
        #expect(server.verifyPeerAgain(with: server.context) == nil)
        #expect(server.verifyPeerAgain(with: try serverContext(mutualTLS: true)) == nil)  // no CRL: none to check
        #expect(
            server.verifyPeerAgain(with: try serverContext(mutualTLS: true, crl: "ca-revoked.crl"))
                == "certificate revoked"
        )
        // The CA no longer trusted: only the rogue CA's clients would be.
        let pki = try TestPKI.get()
        let rogueTrust = try TLSContext.server(
            certificatePath: pki.path("server.pem"),
            keyPath: pki.path("server.key"),
            clientCAPath: pki.path("rogue-ca.pem")
        )
        // (The test client sends its CA along, as OpenSSL builds a client's chain from its trust store.)
        #expect(server.verifyPeerAgain(with: rogueTrust) == "self-signed certificate in certificate chain")
        // A connection without a client certificate has nothing to verify.
        let plain = try TLSConnection(context: serverContext())
        _ = try handshake(try TLSConnection(context: clientContext(), serverName: "localhost"), plain)
        #expect(plain.verifyPeerAgain(with: plain.context) != nil)
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

    @Test("A CRL file that is missing, holds none or needs client CAs fails to load, naming the file")
    func crlFiles() throws {
        let pki = try TestPKI.get()
        let folder = pki.directory.path
        try "not a CRL\n".write(toFile: folder + "/none.crl", atomically: true, encoding: .utf8)
        try "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n".write(
            toFile: folder + "/broken.crl",
            atomically: true,
            encoding: .utf8
        )
        for (file, says) in [
            ("missing.crl", "cannot load CRL file"), ("none.crl", "no CRL in the file"),
            ("broken.crl", "cannot load CRL file"),
        ] {
            let error = #expect(throws: OpenSSLError.self) { try serverContext(mutualTLS: true, crl: file) }
            #expect(error?.code == .trustStoreLoad)
            #expect(error?.message.hasPrefix(says) == true, "\(String(describing: error))")
            #expect(error?.file == pki.path(file))
        }
        let error = #expect(throws: OpenSSLError.self) { try serverContext(mutualTLS: false, crl: "ca-empty.crl") }
        #expect(error?.code == .invalidArgument)
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
