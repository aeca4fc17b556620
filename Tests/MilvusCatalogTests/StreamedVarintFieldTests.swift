import MilvusCatalog
import PropertyBased
import ProtoWire
import Testing

/// A gRPC frame around `payload`, uncompressed.
private func frame(_ payload: [UInt8]) -> [UInt8] {
    let length = UInt32(payload.count)
    return [0, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
        + payload
}

/// A MutationResult: a failed or empty status, `ids` int ids, then delete_cnt (left out when nil).
private func mutationResult(ids: Int, deleted: UInt64?) -> [UInt8] {
    message {
        $0.writeMessageField(1) { _ in }
        var packed = WireWriter()
        for id in 0..<UInt64(ids) { packed.writeVarint(id * 1_000_003) }
        $0.writeMessageField(2) { $0.writeMessageField(1) { $0.writeBytesField(1, packed.bytes) } }
        if let deleted { $0.writeVarintField(7, deleted) }
    }
}

/// Reads field 7 from `body` fed in chunks of `size`.
private func read(_ body: [UInt8], chunk size: Int) -> UInt64? {
    var field = StreamedVarintField(field: 7)
    var start = 0
    while start < body.count {
        field.consume(Array(body[start..<min(start + size, body.count)]))
        start += size
    }
    return field.value
}

@Suite("StreamedVarintField")
struct StreamedVarintFieldTests {
    @Test(
        "Reads delete_cnt after megabytes of ids, however the body is chunked",
        arguments: [1, 2, 5, 7, 4096, 1 << 20]
    )
    func afterLargeIDs(chunk: Int) {
        let body = frame(mutationResult(ids: 300_000, deleted: 300_000)) + frame([0x38, 0x01])
        #expect(body.count > 1_000_000)
        #expect(read(body, chunk: chunk) == 300_000)
    }

    @Test("Absent is 0 (proto3 leaves zeros out); repeated is the last; other wire types are skipped")
    func protobufRules() {
        #expect(read(frame(mutationResult(ids: 3, deleted: nil)), chunk: 3) == 0)
        #expect(read(frame([]), chunk: 1) == 0)
        let repeated = frame(
            message {
                $0.writeVarintField(7, 5)
                $0.writeFixed64Field(3, 99)
                $0.writeFixed32Field(4, 98)
                $0.writeStringField(5, "x")
                $0.writeVarintField(7, 9)
            }
        )
        #expect(read(repeated, chunk: 2) == 9)
        #expect(read(frame(message { $0.writeVarintField(7, .max) }), chunk: 1) == .max)
        #expect(MilvusRPCs.descriptor(named: "Delete")?.affectedRowsField == 7)
        #expect(MilvusRPCs.descriptor(named: "Insert")?.affectedRowsField == 6)
        #expect(MilvusRPCs.descriptor(named: "Upsert")?.affectedRowsField == 8)
        #expect(MilvusRPCs.descriptor(named: "DropCollection")?.affectedRowsField == nil)
    }

    @Test("Compressed, cut short, overlong or malformed bodies read as nil")
    func unreadable() {
        let whole = frame(mutationResult(ids: 10, deleted: 10))
        var compressed = whole
        compressed[0] = 1
        #expect(read(compressed, chunk: 4) == nil)
        #expect(read(Array(whole.dropLast()), chunk: 4) == nil)
        #expect(read(Array(whole.prefix(3)), chunk: 4) == nil)
        #expect(read(frame([0x38, 0x80]), chunk: 1) == nil)  // a varint cut by the message's end
        #expect(read(frame([0x12, 0x05, 0x01]), chunk: 1) == nil)  // a length past the message's end
        #expect(read(frame([0x3B, 0x3C]), chunk: 1) == nil)  // a group
        #expect(read(frame(Array(repeating: 0xFF, count: 12) + [0x01]), chunk: 5) == nil)  // an 11-byte varint
        #expect(read(frame([0x38]), chunk: 1) == nil)  // a key with nothing after it
    }

    @Test("Any bytes in any chunking: no crash, and the same answer as read in one piece")
    func anyBytes() async {
        let bytes = Gen.uint8(in: 0 ... .max).array(of: 0...48)
        await propertyCheck(count: 3000, input: bytes, Gen.int(in: 1...9)) { bytes, chunk in
            let body = [0, 0, 0, 0, UInt8(bytes.count)] + bytes
            #expect(read(body, chunk: chunk) == read(body, chunk: body.count))
        }
    }
}
