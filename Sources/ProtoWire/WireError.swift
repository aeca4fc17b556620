/// An error while decoding protobuf wire bytes or gRPC frames.
///
/// Equality looks at ``code`` only (like swift-asn1's `ASN1Error`): tests and callers match on what went
/// wrong, while ``offset``, ``declaredLength`` and the source location are for logs.
public struct WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Code: Hashable, Sendable {
        /// The input ended inside a field, a varint or a gRPC frame.
        case truncated
        /// A varint longer than 10 bytes, or a 10th byte above 1 (the value would not fit in 64 bits).
        case malformedVarint
        /// A field number of 0 or above 2^29 − 1 (protobuf encoding spec, "Message Structure").
        case invalidFieldNumber
        /// Wire type 3 or 4 (deprecated groups) or 6 or 7 (undefined). Rejected: fail closed.
        case unsupportedWireType
        /// A known field arrived with a wire type its declared type cannot have (a string as a varint).
        case unexpectedWireType
        /// A string field that is not valid UTF-8 (proto3 `string` must be; Go's protobuf rejects it too).
        case invalidUTF8
        /// Nested messages deeper than ``WireLimits/maxDepth``.
        case nestingTooDeep
        /// A message (or a gRPC frame's declared length) larger than ``WireLimits/maxMessageSize``.
        case messageTooLarge
        /// A repeated field with more values than ``WireLimits/maxRepeatedValues``.
        case tooManyValues
        /// A gRPC frame with the compressed flag set although no compression was negotiated.
        case compressionNotNegotiated
        /// A gRPC frame whose compressed flag is neither 0 nor 1 (gRPC `PROTOCOL-HTTP2.md`).
        case invalidCompressedFlag
    }

    /// What went wrong.
    public let code: Code
    /// Byte offset into the decoded input: the message for protobuf errors, the whole stream for framing errors.
    public private(set) var offset: Int
    /// For ``Code/messageTooLarge``: the length the message or frame declared. `nil` otherwise.
    public let declaredLength: Int?
    private let location: String

    /// Creates an error; `file` and `line` record where it was detected.
    public init(
        _ code: Code,
        at offset: Int,
        declaredLength: Int? = nil,
        file: String = #fileID,
        line: UInt = #line
    ) {
        self.code = code
        self.offset = offset
        self.declaredLength = declaredLength
        self.location = "\(file):\(line)"
    }

    /// A one-line description for logs: code, offset, declared length and source location.
    public var description: String {
        var text = "WireError.\(self.code) at byte \(self.offset)"
        if let declaredLength = self.declaredLength {
            text += " (declared length \(declaredLength))"
        }
        return text + " [\(self.location)]"
    }

    /// The same error with its offset moved by `delta` bytes, for a caller that reports offsets relative to a
    /// different origin (a message inside a larger buffer). Code, declared length and location are kept.
    public func shifted(by delta: Int) -> WireError {
        var copy = self
        copy.offset += delta
        return copy
    }

    /// Compares ``code`` only.
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.code == rhs.code
    }
}
