import Foundation

extension PasswordHash {
    /// Why a stored password string is refused; ``description`` is the message after the key.
    public enum EncodingProblem: Error, Hashable, Sendable, CustomStringConvertible {
        /// Not `pbkdf2-sha256$<iterations>$<salt>$<hash>`.
        case format
        /// The iteration count is not a number of at least ``PasswordHash/minimumIterations`` (the text given).
        case iterations(String)
        /// The salt is not valid, non-empty base64.
        case salt
        /// The hash is not valid base64 of at least 16 bytes.
        case hash

        public var description: String {
            switch self {
            case .format:
                "must be \"pbkdf2-sha256$<iterations>$<salt, base64>$<hash, base64>\" (see milvus-guard hash-password)"
            case .iterations(let text):
                "the iteration count must be a number of at least \(PasswordHash.minimumIterations), got \"\(text)\""
            case .salt: "the salt is not valid, non-empty base64"
            case .hash: "the hash is not valid base64 of at least 16 bytes"
            }
        }
    }

    /// Parses `pbkdf2-sha256$<iterations>$<salt, base64>$<hash, base64>` (standard base64 with padding).
    /// - Throws: ``EncodingProblem``.
    public init(encoded text: String) throws(EncodingProblem) {
        let parts = text.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == Self.scheme else { throw .format }
        guard let iterations = Int(parts[1]), iterations >= Self.minimumIterations else {
            throw .iterations(String(parts[1]))
        }
        guard let salt = Data(base64Encoded: String(parts[2])), !salt.isEmpty else { throw .salt }
        guard let hash = Data(base64Encoded: String(parts[3])), hash.count >= 16 else { throw .hash }
        self.init(iterations: iterations, salt: Array(salt), hash: Array(hash))
    }

    /// The string to put in a policy file: `pbkdf2-sha256$<iterations>$<salt, base64>$<hash, base64>`.
    public var encoded: String {
        let salt = Data(self.salt).base64EncodedString()
        let hash = Data(self.hash).base64EncodedString()
        return "\(Self.scheme)$\(self.iterations)$\(salt)$\(hash)"
    }
}
