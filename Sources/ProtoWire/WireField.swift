/// One field read by ``WireReader``: its number, its value, and where its key started.
///
/// The typed accessors (``stringValue()``, ``uint64Value()``, …) check the wire type against what the field's
/// declared type needs and throw ``WireError/Code/unexpectedWireType`` otherwise: the guard fails closed on
/// such a field rather than skipping it.
public struct WireField: Hashable, Sendable {
    /// The field number, 1...2^29 − 1.
    public let number: UInt32
    /// The value, uninterpreted.
    public let value: WireValue
    /// Byte offset of the field's key in the input.
    public let offset: Int

    /// Creates a field.
    public init(number: UInt32, value: WireValue, offset: Int) {
        self.number = number
        self.value = value
        self.offset = offset
    }

    /// The wire type the value arrived with.
    public var wireType: WireType {
        switch self.value {
        case .varint: .varint
        case .fixed64: .fixed64
        case .lengthDelimited: .lengthDelimited
        case .fixed32: .fixed32
        }
    }

    /// The payload of a `bytes`, `string` or embedded-message field, without copying.
    ///
    /// - Throws: ``WireError/Code/unexpectedWireType`` unless the wire type is 2.
    public func bytesValue() throws(WireError) -> ArraySlice<UInt8> {
        guard case .lengthDelimited(let bytes) = self.value else {
            throw WireError(.unexpectedWireType, at: self.offset)
        }
        return bytes
    }

    /// The value of a `string` field.
    ///
    /// - Throws: ``WireError/Code/unexpectedWireType`` unless the wire type is 2, ``WireError/Code/invalidUTF8``
    ///   if the bytes are not valid UTF-8 (the offset is then that of the field).
    public func stringValue() throws(WireError) -> String {
        let bytes = try self.bytesValue()
        // `String(decoding:as:)` is specialized here and repairs invalid UTF-8 (overlong forms, surrogates, bad
        // continuations) with U+FFFD, so only valid input comes back byte for byte. `String(validating:as:)`
        // would say the same, but it is not specialized for ArraySlice and looks up generic metadata per call.
        let string = String(decoding: bytes, as: UTF8.self)
        guard string.utf8.count == bytes.count, string.utf8.elementsEqual(bytes) else {
            throw WireError(.invalidUTF8, at: self.offset)
        }
        return string
    }

    /// The raw varint of a `uint64`, `int64`, `uint32`, `int32`, `bool` or `enum` field.
    ///
    /// - Throws: ``WireError/Code/unexpectedWireType`` unless the wire type is 0.
    public func uint64Value() throws(WireError) -> UInt64 {
        guard case .varint(let value) = self.value else {
            throw WireError(.unexpectedWireType, at: self.offset)
        }
        return value
    }

    /// A `uint32` field: the varint truncated to 32 bits, as Go's and C++'s protobuf do.
    ///
    /// - Throws: ``WireError/Code/unexpectedWireType`` unless the wire type is 0.
    public func uint32Value() throws(WireError) -> UInt32 {
        UInt32(truncatingIfNeeded: try self.uint64Value())
    }

    /// An `int64` field (two's complement in the varint).
    ///
    /// - Throws: ``WireError/Code/unexpectedWireType`` unless the wire type is 0.
    public func int64Value() throws(WireError) -> Int64 {
        Int64(bitPattern: try self.uint64Value())
    }

    /// A `sint64` field (zigzag-encoded).
    ///
    /// - Throws: ``WireError/Code/unexpectedWireType`` unless the wire type is 0.
    public func sint64Value() throws(WireError) -> Int64 {
        ZigZag.decode(try self.uint64Value())
    }

    /// A `bool` field: any non-zero varint is `true`.
    ///
    /// - Throws: ``WireError/Code/unexpectedWireType`` unless the wire type is 0.
    public func boolValue() throws(WireError) -> Bool {
        try self.uint64Value() != 0
    }

    /// A `fixed32`/`float` field's bits.
    ///
    /// - Throws: ``WireError/Code/unexpectedWireType`` unless the wire type is 5.
    public func fixed32Value() throws(WireError) -> UInt32 {
        guard case .fixed32(let value) = self.value else {
            throw WireError(.unexpectedWireType, at: self.offset)
        }
        return value
    }

    /// A `fixed64`/`double` field's bits.
    ///
    /// - Throws: ``WireError/Code/unexpectedWireType`` unless the wire type is 1.
    public func fixed64Value() throws(WireError) -> UInt64 {
        guard case .fixed64(let value) = self.value else {
            throw WireError(.unexpectedWireType, at: self.offset)
        }
        return value
    }
}
