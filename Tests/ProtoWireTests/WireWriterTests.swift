import PropertyBased
import ProtoWire
import Testing

/// A field to write: number, kind (0 varint, 1 fixed64, 2 bytes, 3 fixed32, 4 sint64), value and payload.
struct FieldSpec: Sendable, CustomStringConvertible {
    let number: UInt32
    let kind: Int
    let value: UInt64
    let payload: [UInt8]

    var description: String { "#\(self.number) kind \(self.kind) value \(self.value) payload \(self.payload.count)B" }

    func write(into writer: inout WireWriter) {
        switch self.kind {
        case 0: writer.writeVarintField(self.number, self.value)
        case 1: writer.writeFixed64Field(self.number, self.value)
        case 2: writer.writeBytesField(self.number, self.payload)
        case 3: writer.writeFixed32Field(self.number, UInt32(truncatingIfNeeded: self.value))
        default: writer.writeSInt64Field(self.number, Int64(bitPattern: self.value))
        }
    }

    func matches(_ field: WireField) throws -> Bool {
        guard field.number == self.number else { return false }
        switch self.kind {
        case 0: return try field.uint64Value() == self.value
        case 1: return try field.fixed64Value() == self.value
        case 2: return Array(try field.bytesValue()) == self.payload
        case 3: return try field.fixed32Value() == UInt32(truncatingIfNeeded: self.value)
        default: return try field.sint64Value() == Int64(bitPattern: self.value)
        }
    }
}

let fieldSpec = zip(
    Gen.uint32(in: 1...WireLimits.maxFieldNumber),
    Gen.int(in: 0...4),
    Gen.uint64(in: 0 ... .max),
    Gen.uint8(in: 0 ... .max).array(of: 0...40)
).map { spec in FieldSpec(number: spec.0, kind: spec.1, value: spec.2, payload: spec.3) }

@Suite("WireWriter")
struct WireWriterTests {
    @Test(
        "Varints use the fewest bytes",
        arguments: [(0, 1), (127, 1), (128, 2), (16_383, 2), (16_384, 3), (.max, 10)]
    )
    func varintSizes(value: UInt64, size: Int) {
        var writer = WireWriter()
        writer.writeVarint(value)
        #expect(writer.bytes.count == size)
    }

    @Test("Known encodings: the spec's 150, a string, an embedded message, an int64 of -1")
    func knownEncodings() {
        var writer = WireWriter()
        writer.writeVarintField(1, 150)
        writer.writeStringField(2, "testing")
        writer.writeMessageField(3) { $0.writeVarintField(1, 150) }
        writer.writeInt64Field(4, -1)
        writer.writeBoolField(5, true)
        let expected: [UInt8] =
            [0x08, 0x96, 0x01, 0x12, 0x07] + Array("testing".utf8) + [0x1A, 0x03, 0x08, 0x96, 0x01]
            + [0x20] + Array(repeating: 0xFF, count: 9) + [0x01] + [0x28, 0x01]
        #expect(writer.bytes == expected)
    }

    @Test("The gRPC prefix is the flag and a big-endian length")
    func grpcPrefix() {
        #expect(WireWriter.grpcFramePrefix(length: 0x0102_0304) == [0, 1, 2, 3, 4])
        #expect(WireWriter.grpcFramePrefix(length: 5, compressed: true) == [1, 0, 0, 0, 5])
    }

    @Test("Any varint round-trips")
    func varintRoundTrip() async {
        await propertyCheck(input: Gen.uint64(in: 0 ... .max)) { value in
            var writer = WireWriter()
            writer.writeVarint(value)
            var reader = WireReader(writer.bytes[...])
            #expect((try? reader.readVarint()) == value)
            #expect(reader.isAtEnd)
        }
    }

    @Test("Any sequence of fields round-trips through writer and reader")
    func fieldsRoundTrip() async {
        await propertyCheck(input: fieldSpec.array(of: 0...12)) { specs in
            var writer = WireWriter()
            for spec in specs { spec.write(into: &writer) }
            let fields = try readAll(writer.bytes[...])
            #expect(fields.count == specs.count)
            for (spec, field) in zip(specs, fields) { #expect(try spec.matches(field)) }
        }
    }

    @Test("Every prefix of a valid message reads or fails with .truncated, never traps")
    func everyPrefixOfRandomMessages() async {
        await propertyCheck(count: 60, input: fieldSpec.array(of: 1...6)) { specs in
            var writer = WireWriter()
            var boundaries: Set<Int> = [0]
            for spec in specs {
                spec.write(into: &writer)
                boundaries.insert(writer.bytes.count)
            }
            for length in 0...writer.bytes.count {
                do {
                    _ = try readAll(writer.bytes.prefix(length))
                    #expect(boundaries.contains(length))
                } catch let error as WireError {
                    #expect(error.code == .truncated)
                    #expect(!boundaries.contains(length))
                } catch {
                    Issue.record(error)
                }
            }
        }
    }

    @Test("Arbitrary bytes never trap the reader")
    func arbitraryBytes() async {
        await propertyCheck(count: 300, input: Gen.uint8(in: 0 ... .max).array(of: 0...64)) { bytes in
            var reader = WireReader(bytes[...])
            while (try? reader.nextField()) != nil {}
        }
    }
}
