public import ArgumentParser
import Foundation
import GuardPolicy
import OpenSSLSupport

/// `milvus-guard hash-password`: reads a password on standard input and prints the string to paste into a
/// policy file (`pbkdf2-sha256$<iterations>$<salt>$<hash>`). The password never appears on the command line,
/// where other users could read it in the process list.
public struct HashPasswordCommand: ParsableCommand {
    /// The subcommand's name and help.
    public static let configuration = CommandConfiguration(
        commandName: "hash-password",
        abstract: "Read a password on stdin and print its PBKDF2-HMAC-SHA256 hash for a policy file."
    )

    /// PBKDF2 iterations: 600000 by default (OWASP's advice); the policy loader accepts 1000 and up and warns
    /// below 100000.
    @Option(help: "PBKDF2 iterations (at least 1000).")
    var iterations: Int = 600_000

    /// Creates the command; ArgumentParser calls this while parsing.
    public init() {}

    /// Checks the iteration count before anything is read.
    public func validate() throws {
        guard self.iterations >= PasswordHash.minimumIterations else {
            throw ValidationError("--iterations must be at least \(PasswordHash.minimumIterations)")
        }
    }

    /// Reads one line (without its line break) from stdin, hashes it and prints the result.
    public func run() throws {
        guard var password = readLine(strippingNewline: true) else {
            throw ValidationError("no password on standard input")
        }
        if password.hasSuffix("\r") { password.removeLast() }
        guard !password.isEmpty else { throw ValidationError("the password is empty") }
        print(try Self.hash(password: password, iterations: self.iterations).encoded)
    }

    /// Derives a hash with a fresh 16-byte random salt and a 32-byte key.
    /// - Throws: ``OpenSSLError`` if OpenSSL cannot produce random bytes or the key.
    static func hash(password: String, iterations: Int, salt: [UInt8]? = nil) throws -> PasswordHash {
        let salt = try salt ?? Crypto.randomBytes(count: 16)
        let key = try Crypto.pbkdf2SHA256(
            password: Array(password.utf8),
            salt: salt,
            iterations: iterations,
            length: 32
        )
        return PasswordHash(iterations: iterations, salt: salt, hash: key)
    }
}
