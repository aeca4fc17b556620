/// Reads protobuf fields from a message without copying it.
///
/// Works on an `ArraySlice<UInt8>` like swift-asn1's DER parser: every length-delimited value is a sub-slice of
/// the input, sharing its storage, and slice indices are byte offsets into the original buffer (so errors can
/// name the offset). Every read is bounds-checked; malformed input throws, it never traps.
///
/// Rules enforced (protobuf encoding spec, "Message Structure"):
/// - varints are at most 10 bytes, and a 10th byte above 1 overflows 64 bits (rejected, as Go's `protowire`);
/// - field numbers are 1...2^29 − 1;
/// - wire types 3 and 4 (deprecated groups) and 6 and 7 are rejected, not skipped: fail closed;
/// - nested readers (``nestedReader(for:)``) count depth against ``WireLimits/maxDepth``.
///
/// Protobuf has no outer length, so a cut between two fields is not detectable here; the gRPC frame carries it.
public struct WireReader: Sendable {
    private var bytes: ArraySlice<UInt8>
    /// How many messages this reader is nested in; the top-level message is 0.
    public let depth: Int
    /// The limits this reader and its nested readers enforce.
    public let limits: WireLimits

    /// Creates a reader for a top-level message.
    public init(_ bytes: ArraySlice<UInt8>, limits: WireLimits = .default) {
        self.bytes = bytes
        self.depth = 0
        self.limits = limits
    }

    private init(nested bytes: ArraySlice<UInt8>, depth: Int, limits: WireLimits) {
        self.bytes = bytes
        self.depth = depth
        self.limits = limits
    }

    /// `true` once every byte has been read.
    public var isAtEnd: Bool {
        self.bytes.isEmpty
    }

    /// The offset of the next byte to read.
    public var offset: Int {
        self.bytes.startIndex
    }

    /// The bytes not read yet.
    public var remaining: ArraySlice<UInt8> {
        self.bytes
    }

    /// Reads the next field, or returns `nil` at the end of the input.
    ///
    /// - Throws: ``WireError`` with code `.truncated`, `.malformedVarint`, `.invalidFieldNumber` or
    ///   `.unsupportedWireType`, and the offset of the offending field's key.
    public mutating func nextField() throws(WireError) -> WireField? {
        guard !self.bytes.isEmpty else { return nil }
        let start = self.bytes.startIndex
        let key = try self.readVarint()
        guard key >> 3 <= UInt64(WireLimits.maxFieldNumber), key >> 3 >= 1 else {
            throw WireError(.invalidFieldNumber, at: start)
        }
        let number = UInt32(truncatingIfNeeded: key >> 3)
        let value: WireValue
        do throws(WireError) {
            switch key & 0x7 {
            case 0: value = .varint(try self.readVarint())
            case 1: value = .fixed64(try self.readFixed64())
            case 2: value = .lengthDelimited(try self.readLengthDelimited())
            case 5: value = .fixed32(try self.readFixed32())
            default: throw WireError(.unsupportedWireType, at: start)
            }
        } catch {
            // Report the field, not the value inside it.
            throw error.shifted(by: start - error.offset)
        }
        return WireField(number: number, value: value, offset: start)
    }

    /// Reads a base-128 varint.
    ///
    /// - Throws: `.truncated` if the input ends first, `.malformedVarint` past 10 bytes or on a 10th byte above 1.
    public mutating func readVarint() throws(WireError) -> UInt64 {
        let start = self.bytes.startIndex
        var index = start
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard index < self.bytes.endIndex else { throw WireError(.truncated, at: start) }
            let byte = self.bytes[index]
            index += 1
            if shift == 63 && byte > 1 {
                throw WireError(.malformedVarint, at: start)
            }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 {
                self.bytes = self.bytes[index...]
                return result
            }
            shift += 7
            if shift > 63 {
                throw WireError(.malformedVarint, at: start)
            }
        }
    }

    /// Reads four little-endian bytes.
    ///
    /// - Throws: `.truncated` if fewer than four bytes remain.
    public mutating func readFixed32() throws(WireError) -> UInt32 {
        UInt32(truncatingIfNeeded: try self.readLittleEndian(byteCount: 4))
    }

    /// Reads eight little-endian bytes.
    ///
    /// - Throws: `.truncated` if fewer than eight bytes remain.
    public mutating func readFixed64() throws(WireError) -> UInt64 {
        try self.readLittleEndian(byteCount: 8)
    }

    /// Reads a varint length and returns that many bytes as a sub-slice (no copy).
    ///
    /// - Throws: `.truncated` if the length runs past the end of the input.
    public mutating func readLengthDelimited() throws(WireError) -> ArraySlice<UInt8> {
        let start = self.bytes.startIndex
        let length = try self.readVarint()
        guard length <= UInt64(self.bytes.count) else { throw WireError(.truncated, at: start) }
        let end = self.bytes.startIndex + Int(length)
        defer { self.bytes = self.bytes[end...] }
        return self.bytes[..<end]
    }

    /// A reader for the embedded message in `field`, one level deeper than this one.
    ///
    /// - Throws: `.unexpectedWireType` unless `field` is length-delimited, `.nestingTooDeep` past
    ///   ``WireLimits/maxDepth``.
    public func nestedReader(for field: WireField) throws(WireError) -> WireReader {
        let bytes = try field.bytesValue()
        guard self.depth < self.limits.maxDepth else { throw WireError(.nestingTooDeep, at: field.offset) }
        return WireReader(nested: bytes, depth: self.depth + 1, limits: self.limits)
    }

    /// Reads every remaining field, checking their structure only (nested messages are not descended into).
    ///
    /// - Throws: the first ``WireError`` met.
    public mutating func skipAll() throws(WireError) {
        while try self.nextField() != nil {}
    }

    private mutating func readLittleEndian(byteCount: Int) throws(WireError) -> UInt64 {
        let start = self.bytes.startIndex
        guard self.bytes.count >= byteCount else { throw WireError(.truncated, at: start) }
        var result: UInt64 = 0
        for index in 0..<byteCount {
            result |= UInt64(self.bytes[start + index]) << (8 * UInt64(index))
        }
        self.bytes = self.bytes[(start + byteCount)...]
        return result
    }
}
