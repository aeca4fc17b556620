/// An error from inflating or deflating a buffer with zlib.
///
/// Equality looks at ``code`` only (like `ASN1Error`); ``message`` and the source location are for logs.
public struct ZlibError: Error, Equatable, CustomStringConvertible {
    /// What went wrong, as a closed set the proxy can map to a gRPC status.
    public enum Code: Hashable, Sendable {
        /// The output would exceed the caller's bound (a zip bomb or just a large message). Nothing past the bound
        /// was allocated.
        case outputTooLarge
        /// The input is not a valid stream of the requested format (bad header, bad checksum, trailing bytes, or a
        /// preset dictionary, which gRPC never uses).
        case corrupt
        /// The input ended before the end of the compressed stream.
        case truncated
        /// A caller-supplied argument is out of range (a negative bound, an input larger than 4 GiB).
        case invalidArgument
        /// zlib could not allocate its state.
        case outOfMemory
        /// zlib returned a result this wrapper does not expect (a version mismatch, a stream error).
        case internalError
        /// The caller's `shouldContinue` said stop (the work was no longer wanted).
        case cancelled
    }

    /// The kind of failure.
    public let code: Code
    /// zlib's own message (`z_stream.msg`) when it gave one, else a description written by this wrapper.
    public let message: String
    /// `#fileID:#line` of the throw site.
    private let location: String

    /// Creates an error. Internal callers pass zlib's `msg` when there is one.
    public init(_ code: Code, message: String, file: String = #fileID, line: UInt = #line) {
        self.code = code
        self.message = message
        self.location = "\(file):\(line)"
    }

    /// `ZlibError(code): message (at file:line)`.
    public var description: String {
        "ZlibError(\(self.code)): \(self.message) (at \(self.location))"
    }

    /// Compares only ``code``.
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.code == rhs.code
    }
}
