/// What a client presented in its `authorization` metadata. Milvus clients send base64(`user:password`)
/// (pymilvus `token="user:password"` or `user=`/`password=`); a decoded token without a colon is an API key,
/// Milvus's own rule.
enum Credential: Hashable, Sendable {
    case password(user: String, password: String)
    case apiKey(String)

    /// Decodes an `authorization` value; nil when it is not base64 of valid UTF-8 or decodes to nothing.
    init?(authorization value: String) {
        guard let bytes = Base64.decode(value), !bytes.isEmpty,
            let text = String(validating: bytes, as: UTF8.self)
        else { return nil }
        if let colon = text.firstIndex(of: ":") {
            let user = String(text[..<colon])
            guard !user.isEmpty else { return nil }
            self = .password(user: user, password: String(text[text.index(after: colon)...]))
        } else {
            self = .apiKey(text)
        }
    }
}

/// Standard base64 (RFC 4648 §4), padding optional; ProxyCore does not import Foundation.
enum Base64 {
    private static let values: [Int8] = {
        var table = [Int8](repeating: -1, count: 256)
        for (index, byte) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            table[Int(byte)] = Int8(index)
        }
        return table
    }()

    /// The decoded bytes, or nil unless `text` is canonical padded base64 (RFC 4648 §4, what every Milvus SDK sends):
    /// characters outside the alphabet, missing, extra or misplaced padding, a bad length, or bits set after the
    /// last byte. Lax decoding took `cm9vdDpNaWx2dXM`, `cm9vdDpNaWx2dXM==` and `…dXN=`/`…dXP=` for one credential
    /// (a red-team finding; Milvus's Go decoder refuses the first two).
    static func decode(_ text: String) -> [UInt8]? {
        var input = Array(text.utf8)
        guard input.count % 4 == 0 else { return nil }
        while input.last == UInt8(ascii: "=") { input.removeLast() }
        guard text.utf8.count - input.count <= 2, input.count % 4 != 1 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(input.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in input {
            let value = Self.values[Int(byte)]
            guard value >= 0 else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        // The 2 or 4 bits left over must be zero.
        guard accumulator & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
        return output
    }
}
