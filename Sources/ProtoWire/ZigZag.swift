/// ZigZag encoding of signed integers, as `sint32`/`sint64` use it (protobuf encoding spec, "Signed Integers").
public enum ZigZag {
    /// Maps 0, −1, 1, −2, … to 0, 1, 2, 3, ….
    public static func encode(_ value: Int64) -> UInt64 {
        UInt64(bitPattern: (value << 1) ^ (value >> 63))
    }

    /// The inverse of ``encode(_:)``.
    public static func decode(_ value: UInt64) -> Int64 {
        Int64(bitPattern: (value >> 1) ^ (0 &- (value & 1)))
    }
}
