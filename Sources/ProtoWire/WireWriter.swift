/// Writes protobuf wire bytes, for the few messages the guard produces itself (its own refusals and tests).
///
/// Requests from clients are forwarded byte for byte and never re-encoded; this writer is not on that path.
/// Field numbers outside 1...2^29 − 1 are programmer errors and trap (`precondition`): they never come from input.
public struct WireWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8]

    /// Creates an empty writer.
    public init() {
        self.bytes = []
    }

    /// Appends a base-128 varint.
    public mutating func writeVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            self.bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        self.bytes.append(UInt8(value))
    }

    /// Appends a field key (number and wire type).
    public mutating func writeKey(_ number: UInt32, _ wireType: WireType) {
        precondition(number >= 1 && number <= WireLimits.maxFieldNumber, "invalid field number \(number)")
        self.writeVarint(UInt64(number) << 3 | UInt64(wireType.rawValue))
    }

    /// Appends a varint field (`uint64`, `uint32`, `bool`, `enum`; `int64` through its bit pattern).
    public mutating func writeVarintField(_ number: UInt32, _ value: UInt64) {
        self.writeKey(number, .varint)
        self.writeVarint(value)
    }

    /// Appends an `int64` (or `int32`: negative values take 10 bytes, as the spec says) field.
    public mutating func writeInt64Field(_ number: UInt32, _ value: Int64) {
        self.writeVarintField(number, UInt64(bitPattern: value))
    }

    /// Appends a `sint64`/`sint32` field, zigzag-encoded.
    public mutating func writeSInt64Field(_ number: UInt32, _ value: Int64) {
        self.writeVarintField(number, ZigZag.encode(value))
    }

    /// Appends a `bool` field.
    public mutating func writeBoolField(_ number: UInt32, _ value: Bool) {
        self.writeVarintField(number, value ? 1 : 0)
    }

    /// Appends a `fixed32`/`float` field.
    public mutating func writeFixed32Field(_ number: UInt32, _ value: UInt32) {
        self.writeKey(number, .fixed32)
        for shift in stride(from: 0, to: 32, by: 8) {
            self.bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift)))
        }
    }

    /// Appends a `fixed64`/`double` field.
    public mutating func writeFixed64Field(_ number: UInt32, _ value: UInt64) {
        self.writeKey(number, .fixed64)
        for shift in stride(from: 0, to: 64, by: 8) {
            self.bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }

    /// Appends a `bytes` field (or an already-encoded embedded message).
    public mutating func writeBytesField(_ number: UInt32, _ value: some Collection<UInt8>) {
        self.writeKey(number, .lengthDelimited)
        self.writeVarint(UInt64(value.count))
        self.bytes.append(contentsOf: value)
    }

    /// Appends a `string` field as UTF-8.
    public mutating func writeStringField(_ number: UInt32, _ value: String) {
        self.writeBytesField(number, value.utf8)
    }

    /// Appends an embedded message field whose body `body` writes into a fresh writer.
    public mutating func writeMessageField(_ number: UInt32, _ body: (inout WireWriter) -> Void) {
        var nested = WireWriter()
        body(&nested)
        self.writeBytesField(number, nested.bytes)
    }

    /// Appends raw bytes unchanged (concatenating messages merges them, per the protobuf spec).
    public mutating func writeRaw(_ value: some Collection<UInt8>) {
        self.bytes.append(contentsOf: value)
    }

    /// The 5-byte gRPC length prefix for a message of `length` bytes (gRPC `PROTOCOL-HTTP2.md`, "Length-Prefixed-Message").
    public static func grpcFramePrefix(length: UInt32, compressed: Bool = false) -> [UInt8] {
        [
            compressed ? 1 : 0, UInt8(truncatingIfNeeded: length >> 24), UInt8(truncatingIfNeeded: length >> 16),
            UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length),
        ]
    }
}
