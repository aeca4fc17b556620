import CNGHTTP2

/// An error reported by nghttp2. Equality looks at ``code`` only; the message is for logs.
public struct NGHTTP2Error: Error, Equatable, CustomStringConvertible {
    /// The library's negative error code (`nghttp2_error`).
    public let code: Int32
    /// `nghttp2_strerror` of the code, captured when the error was made.
    public let message: String
    private let location: String

    public init(code: Int32, file: String = #fileID, line: UInt = #line) {
        self.code = code
        self.message = String(cString: nghttp2_strerror(code))
        self.location = "\(file):\(line)"
    }

    public var description: String { "nghttp2 error \(self.code): \(self.message) (\(self.location))" }

    /// Whether the whole session is unusable (`nghttp2_is_fatal`): the connection must be closed.
    public var isFatal: Bool { nghttp2_is_fatal(self.code) != 0 }

    /// Whether a header block was not sent for being over the session's send limit
    /// (``HTTP2SessionSettings/maxSendHeaderBlockBytes``; `NGHTTP2_ERR_FRAME_SIZE_ERROR`).
    public var isTooLarge: Bool { self.code == NGHTTP2_ERR_FRAME_SIZE_ERROR.rawValue }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
}

/// Throws when an nghttp2 call returned a negative code.
@inline(__always)
func check(_ code: Int32, file: String = #fileID, line: UInt = #line) throws(NGHTTP2Error) {
    if code < 0 { throw NGHTTP2Error(code: code, file: file, line: line) }
}
