/// The protobuf wire types (protobuf encoding spec, "Message Structure").
public enum WireType: UInt8, Hashable, Sendable {
    /// int32, int64, uint32, uint64, sint32, sint64, bool, enum.
    case varint = 0
    /// fixed64, sfixed64, double.
    case fixed64 = 1
    /// string, bytes, embedded messages, packed repeated fields.
    case lengthDelimited = 2
    /// Deprecated group start; ``WireReader`` rejects it.
    case startGroup = 3
    /// Deprecated group end; ``WireReader`` rejects it.
    case endGroup = 4
    /// fixed32, sfixed32, float.
    case fixed32 = 5
}
