/// The value of one field as it appears on the wire.
public enum WireValue: Hashable, Sendable {
    /// A varint, not yet interpreted (signed, zigzag, bool and enum all come from it).
    case varint(UInt64)
    /// Eight little-endian bytes.
    case fixed64(UInt64)
    /// A length-delimited payload: a sub-slice of the input, never a copy.
    case lengthDelimited(ArraySlice<UInt8>)
    /// Four little-endian bytes.
    case fixed32(UInt32)
}
