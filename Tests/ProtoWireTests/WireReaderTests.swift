import ProtoWire
import Testing

/// DropCollectionRequest{db_name (2): "default", collection_name (3): "docs"}, field numbers from milvus.proto.
let drop: [UInt8] = [0x12, 0x07] + Array("default".utf8) + [0x1A, 0x04] + Array("docs".utf8)

/// Reads every field of `bytes`, or throws.
func readAll(_ bytes: ArraySlice<UInt8>, limits: WireLimits = .default) throws(WireError) -> [WireField] {
    var reader = WireReader(bytes, limits: limits)
    var fields: [WireField] = []
    while let field = try reader.nextField() { fields.append(field) }
    return fields
}

@Suite("WireReader")
struct WireReaderTests {
    @Test("Reads each wire type with its number, value and offset")
    func readsEachWireType() throws {
        var writer = WireWriter()
        writer.writeVarintField(1, 150)
        writer.writeFixed64Field(2, 0x0102_0304_0506_0708)
        writer.writeStringField(3, "héllo")
        writer.writeFixed32Field(536_870_911, 0xDEAD_BEEF)
        let fields = try readAll(writer.bytes[...])
        #expect(fields.map(\.number) == [1, 2, 3, 536_870_911])
        #expect(fields.map(\.wireType) == [.varint, .fixed64, .lengthDelimited, .fixed32])
        #expect(fields.map(\.offset) == [0, 3, 12, 20])
        #expect(try fields[0].uint64Value() == 150)
        #expect(try fields[1].fixed64Value() == 0x0102_0304_0506_0708)
        #expect(try fields[2].stringValue() == "héllo")
        #expect(try fields[3].fixed32Value() == 0xDEAD_BEEF)
    }

    @Test("The protobuf spec's example 150 is 08 96 01")
    func specExample() throws {
        let fields = try readAll([0x08, 0x96, 0x01][...])
        #expect(fields == [WireField(number: 1, value: .varint(150), offset: 0)])
    }

    @Test("Length-delimited values are sub-slices of the input, with the input's indices")
    func zeroCopySlices() throws {
        let buffer: [UInt8] = [0xFF, 0xFF] + drop
        var reader = WireReader(buffer[2...])
        let field = try #require(try reader.nextField())
        let bytes = try field.bytesValue()
        #expect(field.offset == 2)
        #expect(bytes.startIndex == 4 && bytes.endIndex == 11)
        let sameStorage = buffer.withUnsafeBufferPointer { whole in
            bytes.withUnsafeBufferPointer { part in part.baseAddress == whole.baseAddress.map { $0 + 4 } }
        }
        #expect(sameStorage)
    }

    @Test("A 10-byte varint holds UInt64.max; an 11th byte is malformed")
    func varintLength() throws {
        let max: [UInt8] = Array(repeating: 0xFF, count: 9) + [0x01]
        var reader = WireReader(max[...])
        #expect(try reader.readVarint() == .max)
        #expect(reader.isAtEnd)

        let eleven: [UInt8] = Array(repeating: 0x80, count: 10) + [0x00]
        var elevenReader = WireReader(eleven[...])
        let error = #expect(throws: WireError.self) { try elevenReader.readVarint() }
        #expect(error?.code == .malformedVarint)
        #expect(error?.offset == 0)
    }

    @Test("A 10th varint byte above 1 overflows 64 bits", arguments: [0x02, 0x7F] as [UInt8])
    func varintOverflow(last: UInt8) {
        let bytes: [UInt8] = Array(repeating: 0xFF, count: 9) + [last]
        var reader = WireReader(bytes[...])
        let error = #expect(throws: WireError.self) { try reader.readVarint() }
        #expect(error?.code == .malformedVarint)
    }

    @Test("Non-minimal varints are accepted, as protobuf parsers do")
    func nonMinimalVarint() throws {
        var reader = WireReader([0x81, 0x80, 0x80, 0x00][...])
        #expect(try reader.readVarint() == 1)
    }

    @Test("Field numbers 0 and 2^29 are invalid", arguments: [UInt64(0), UInt64(1) << 29, UInt64(1) << 32])
    func invalidFieldNumbers(number: UInt64) {
        var writer = WireWriter()
        writer.writeVarint(number << 3)
        writer.writeVarint(1)
        let error = #expect(throws: WireError.self) { try readAll(writer.bytes[...]) }
        #expect(error?.code == .invalidFieldNumber)
    }

    @Test("Groups (3, 4) and undefined wire types (6, 7) are rejected", arguments: [3, 4, 6, 7] as [UInt8])
    func rejectsGroups(wireType: UInt8) {
        let bytes: [UInt8] = drop + [0x08 | wireType, 0x00]
        let error = #expect(throws: WireError.self) { try readAll(bytes[...]) }
        #expect(error?.code == .unsupportedWireType)
        #expect(error?.offset == drop.count)
    }

    /// Protobuf has no outer length (the gRPC frame carries it), so only a cut inside a field is detectable.
    @Test("Every prefix either ends on a field boundary or is truncated", arguments: 0...drop.count)
    func everyPrefix(length: Int) {
        let boundaries: Set<Int> = [0, 9, drop.count]
        do {
            let fields = try readAll(drop.prefix(length))
            #expect(boundaries.contains(length))
            #expect(fields.count == (length == 0 ? 0 : length == 9 ? 1 : 2))
        } catch {
            #expect(!boundaries.contains(length))
            #expect(error.code == .truncated)
        }
    }

    @Test("Truncated fixed32, fixed64 and length are reported at the field's start")
    func truncatedFixed() {
        for bytes: [UInt8] in [[0x0D, 1, 2, 3], [0x09, 1, 2, 3, 4, 5, 6, 7], [0x0A, 0x05, 1, 2]] {
            let input = [0x08, 0x01] + bytes
            let error = #expect(throws: WireError.self) { try readAll(input[...]) }
            #expect(error?.code == .truncated)
            #expect(error?.offset == 2)
        }
    }

    @Test("A length above Int.max is truncated, not a trap")
    func hugeLength() {
        let bytes: [UInt8] = [0x0A] + Array(repeating: 0xFF, count: 9) + [0x01]
        let error = #expect(throws: WireError.self) { try readAll(bytes[...]) }
        #expect(error?.code == .truncated)
    }

    @Test("Typed accessors reject the wrong wire type")
    func wrongWireType() throws {
        let varint = WireField(number: 3, value: .varint(1), offset: 7)
        let error = #expect(throws: WireError.self) { try varint.stringValue() }
        #expect(error?.code == .unexpectedWireType)
        #expect(error?.offset == 7)
        let bytes = WireField(number: 3, value: .lengthDelimited([1][...]), offset: 0)
        #expect(throws: WireError(.unexpectedWireType, at: 0)) { try bytes.uint64Value() }
        #expect(throws: WireError(.unexpectedWireType, at: 0)) { try bytes.fixed32Value() }
        #expect(throws: WireError(.unexpectedWireType, at: 0)) { try bytes.fixed64Value() }
    }

    @Test("Invalid UTF-8 in a string is rejected", arguments: [[0xFF], [0xC3], [0xED, 0xA0, 0x80], [0xC0, 0xAF]])
    func invalidUTF8(bytes: [UInt8]) {
        let field = WireField(number: 1, value: .lengthDelimited(bytes[...]), offset: 4)
        let error = #expect(throws: WireError.self) { try field.stringValue() }
        #expect(error?.code == .invalidUTF8)
        #expect(error?.offset == 4)
    }

    @Test("Integer interpretations: uint32 truncates, int64 and sint64 sign, bool is non-zero")
    func integerViews() throws {
        let field = WireField(number: 1, value: .varint(0x1_0000_0005), offset: 0)
        #expect(try field.uint32Value() == 5)
        #expect(try WireField(number: 1, value: .varint(.max), offset: 0).int64Value() == -1)
        #expect(try WireField(number: 1, value: .varint(3), offset: 0).sint64Value() == -2)
        #expect(try WireField(number: 1, value: .varint(2), offset: 0).boolValue())
    }

    @Test("ZigZag maps 0, -1, 1, -2 to 0, 1, 2, 3 and back, including the extremes")
    func zigZag() {
        #expect([0, -1, 1, -2, .max, .min].map(ZigZag.encode) == [0, 1, 2, 3, .max - 1, .max])
        for value: Int64 in [0, -1, 1, -2, .max, .min] { #expect(ZigZag.decode(ZigZag.encode(value)) == value) }
    }

    @Test("Nesting is limited: depth 32 is read, depth 33 is refused")
    func depthLimit() throws {
        func nested(_ depth: Int) -> [UInt8] {
            var message: [UInt8] = [0x08, 0x01]
            for _ in 0..<depth {
                var writer = WireWriter()
                writer.writeBytesField(1, message)
                message = writer.bytes
            }
            return message
        }
        func descend(_ reader: inout WireReader) throws(WireError) -> Int {
            var deepest = reader.depth
            while let field = try reader.nextField() {
                if case .lengthDelimited = field.value {
                    var inner = try reader.nestedReader(for: field)
                    deepest = max(deepest, try descend(&inner))
                }
            }
            return deepest
        }
        var ok = WireReader(nested(32)[...])
        #expect(try descend(&ok) == 32)
        var tooDeep = WireReader(nested(33)[...])
        let error = #expect(throws: WireError.self) { try descend(&tooDeep) }
        #expect(error?.code == .nestingTooDeep)
        var custom = WireReader(nested(3)[...], limits: WireLimits(maxDepth: 2))
        #expect(throws: WireError(.nestingTooDeep, at: 0)) { try descend(&custom) }
    }

    @Test("WireError equality compares the code only; shifting keeps the code")
    func errorEquality() {
        #expect(WireError(.truncated, at: 1) == WireError(.truncated, at: 99))
        #expect(WireError(.truncated, at: 1) != WireError(.malformedVarint, at: 1))
        let shifted = WireError(.messageTooLarge, at: 10, declaredLength: 7).shifted(by: -4)
        #expect(shifted.offset == 6 && shifted.declaredLength == 7 && shifted.code == .messageTooLarge)
        #expect(shifted.description.contains("messageTooLarge"))
    }
}
