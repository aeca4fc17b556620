public import ProtoWire

/// Why a request could not be turned into a ``MilvusCall``. Equality compares ``code`` only.
public struct CatalogError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Code: Hashable, Sendable {
        /// The `:path` is not an RPC of the catalog.
        case unknownRPC
        /// The request message does not decode; ``CatalogError/wireError`` says why and where.
        case malformedRequest
    }

    /// What went wrong.
    public let code: Code
    /// The gRPC `:path` of the request.
    public let path: String
    /// For ``Code/malformedRequest``: the decoding error, whose offset is relative to the message start.
    public let wireError: WireError?

    /// Creates an error.
    public init(_ code: Code, path: String, wireError: WireError? = nil) {
        self.code = code
        self.path = path
        self.wireError = wireError
    }

    /// A one-line description for logs.
    public var description: String {
        "CatalogError.\(self.code) for \(self.path)" + (self.wireError.map { ": \($0)" } ?? "")
    }

    /// Compares ``code`` only.
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.code == rhs.code
    }
}
