import Foundation

/// A throwaway PKI generated once per test run with the `openssl` CLI, in a temporary directory.
///
/// - `ca.pem` issues `server.pem` (CN=localhost, SAN DNS:localhost, IP:127.0.0.1) and `client.pem`
///   (CN=svc, O=Milvus Guard Test, SAN DNS, URI, email and IP names);
/// - `rogue-ca.pem`, trusted by nobody, issues `rogue-server.pem` and `rogue-client.pem` with the same names;
/// - `encrypted.key` is the server key under a passphrase;
/// - `ca-empty.crl` (nothing revoked), `ca-revoked.crl` (`client.pem` revoked), `ca-expired.crl` (nextUpdate in
///   2025) and `ca-future.crl` (lastUpdate in 2099) are CRLs of `ca.pem`, `rogue-ca.crl` one of the rogue CA,
///   `impostor-ca.crl` one signed by `impostor-ca.pem`, which bears the test CA's name with another key;
/// - `both-cas.pem` holds both CAs.
struct TestPKI: Sendable {
    let directory: URL

    func path(_ name: String) -> String {
        self.directory.appendingPathComponent(name).path
    }

    /// Generated on first use; every test shares it.
    static let shared: Result<TestPKI, any Error> = Result { try TestPKI.generate() }

    static func get() throws -> TestPKI {
        try self.shared.get()
    }

    private struct CommandFailed: Error, CustomStringConvertible {
        let description: String
    }

    private static func openssl(_ arguments: [String], in directory: URL) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        process.currentDirectoryURL = directory
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CommandFailed(
                description: "openssl \(arguments.joined(separator: " ")): \(String(decoding: stderr, as: UTF8.self))"
            )
        }
    }

    private static func generate() throws -> TestPKI {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("openssl-support-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let run = { (arguments: [String]) throws in try Self.openssl(arguments, in: directory) }
        let write = { (name: String, text: String) throws in
            try text.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }

        try write(
            "ca.ext",
            """
            basicConstraints = critical, CA:TRUE
            keyUsage = critical, keyCertSign, cRLSign
            subjectKeyIdentifier = hash

            """
        )
        try write(
            "server.ext",
            """
            basicConstraints = CA:FALSE
            keyUsage = critical, digitalSignature
            extendedKeyUsage = serverAuth
            subjectAltName = DNS:localhost, IP:127.0.0.1

            """
        )
        try write(
            "client.ext",
            """
            basicConstraints = CA:FALSE
            keyUsage = critical, digitalSignature
            extendedKeyUsage = clientAuth
            subjectAltName = DNS:svc.internal, URI:spiffe://milvus-guard/svc, email:svc@example.com, IP:10.0.0.1

            """
        )

        func key(_ name: String) throws {
            try run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name])
        }
        func certificate(_ name: String, subject: String, issuer: String?, ext: String, serial: Int) throws {
            try run(["req", "-new", "-key", "\(name).key", "-subj", subject, "-out", "\(name).csr"])
            var arguments = ["x509", "-req", "-in", "\(name).csr", "-days", "2", "-out", "\(name).pem"]
            arguments += ["-extfile", ext, "-set_serial", String(serial)]
            if let issuer {
                arguments += ["-CA", "\(issuer).pem", "-CAkey", "\(issuer).key"]
            } else {
                arguments += ["-signkey", "\(name).key"]
            }
            try run(arguments)
        }

        for (name, subject, issuer, ext, serial) in [
            ("ca", "/CN=milvus-guard test CA", nil, "ca.ext", 1),
            ("server", "/CN=localhost", "ca", "server.ext", 2),
            ("client", "/O=Milvus Guard Test/CN=svc", "ca", "client.ext", 3),
            ("rogue-ca", "/CN=rogue CA", nil, "ca.ext", 4),
            ("rogue-server", "/CN=localhost", "rogue-ca", "server.ext", 5),
            ("rogue-client", "/CN=svc", "rogue-ca", "client.ext", 6),
            ("impostor-ca", "/CN=milvus-guard test CA", nil, "ca.ext", 7),
        ] as [(String, String, String?, String, Int)] {
            try key("\(name).key")
            try certificate(name, subject: subject, issuer: issuer, ext: ext, serial: serial)
        }
        try run(["pkey", "-in", "server.key", "-aes256", "-passout", "pass:secret", "-out", "encrypted.key"])

        // CRLs of the CA: `ca-empty.crl` revokes nothing, `ca-revoked.crl` revokes `client.pem`; `rogue-ca.crl` is
        // the rogue CA's (right format, wrong issuer for our clients), `impostor-ca.crl` one in the CA's name signed
        // by another key.
        try write(
            "ca.cnf",
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ndefault_md = sha256\ndefault_crl_days = 2\n"
        )
        try write("index.txt", "")
        let ca = ["-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem"]
        try run(["ca", "-gencrl", "-out", "ca-empty.crl"] + ca)
        try run(["ca", "-revoke", "client.pem"] + ca)
        try run(["ca", "-gencrl", "-out", "ca-revoked.crl"] + ca)
        let past = ["-crl_lastupdate", "20250101000000Z", "-crl_nextupdate", "20250102000000Z"]
        try run(["ca", "-gencrl", "-out", "ca-expired.crl"] + past + ca)
        let future = ["-crl_lastupdate", "20990101000000Z", "-crl_nextupdate", "20990102000000Z"]
        try run(["ca", "-gencrl", "-out", "ca-future.crl"] + future + ca)
        try write("index.txt", "")
        for issuer in ["rogue-ca", "impostor-ca"] {
            let own = ["-config", "ca.cnf", "-keyfile", "\(issuer).key", "-cert", "\(issuer).pem"]
            try run(["ca", "-gencrl", "-out", "\(issuer).crl"] + own)
        }
        // Both CAs trusted, for a CRL file that covers one of them only.
        let both =
            try String(contentsOf: directory.appendingPathComponent("ca.pem"), encoding: .utf8)
            + String(contentsOf: directory.appendingPathComponent("rogue-ca.pem"), encoding: .utf8)
        try write("both-cas.pem", both)
        return TestPKI(directory: directory)
    }
}
