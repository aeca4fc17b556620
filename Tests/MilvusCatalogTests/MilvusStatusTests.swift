import MilvusCatalog
import PropertyBased
import ProtoWire
import Testing

/// A gRPC message frame (uncompressed unless `compressed`) around `payload`.
private func framed(_ payload: [UInt8], compressed: Bool = false) -> [UInt8] {
    let length = UInt32(payload.count)
    return [
        compressed ? 1 : 0, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF),
        UInt8(length & 0xFF),
    ] + payload
}

/// A common.Status: 1 error_code, 2 reason, 3 code (zero values left out, as protobuf encoders do).
private func status(errorCode: Int64 = 0, reason: String = "", code: Int64 = 0) -> (inout WireWriter) -> Void {
    { writer in
        if errorCode != 0 { writer.writeInt64Field(1, errorCode) }
        if !reason.isEmpty { writer.writeStringField(2, reason) }
        if code != 0 { writer.writeInt64Field(3, code) }
    }
}

@Suite("Milvus status in responses")
struct MilvusStatusTests {
    @Test("A Status response (DropCollection's) that failed gives its code and reason")
    func statusMessage() throws {
        let body = framed(message(status(errorCode: 4, reason: "collection 'nope' does not exist", code: 100)))
        let failure = MilvusStatus.failure(in: body[...], shape: try descriptor("DropCollection").responseStatus)
        #expect(failure == MilvusStatus(code: 100, reason: "collection 'nope' does not exist"))
    }

    @Test("A MutationResult (Delete's) carries the status in field 1, before the rest of the result")
    func statusField() throws {
        let failed = framed(
            message {
                $0.writeMessageField(1, status(reason: "unexpected character '{'", code: 6))
                $0.writeVarintField(7, 0)
            }
        )
        let shape = try descriptor("Delete").responseStatus
        #expect(shape == .field(1))
        #expect(
            MilvusStatus.failure(in: failed[...], shape: shape)
                == MilvusStatus(code: 6, reason: "unexpected character '{'")
        )
        let ok = framed(
            message {
                $0.writeMessageField(1, status())
                $0.writeMessageField(2) { $0.writeMessageField(1) { $0.writeBytesField(1, [2, 4, 6]) } }
                $0.writeVarintField(7, 3)
            }
        )
        #expect(MilvusStatus.failure(in: ok[...], shape: shape) == nil)
    }

    @Test("Success reads as nil: an empty Status, code 0, or no status field at all")
    func success() throws {
        #expect(MilvusStatus.failure(in: framed([])[...], shape: .message) == nil)
        #expect(MilvusStatus.failure(in: framed(message(status(reason: "fine")))[...], shape: .message) == nil)
        #expect(MilvusStatus.failure(in: framed(message { $0.writeVarintField(2, 1) })[...], shape: .field(1)) == nil)
        #expect(MilvusStatus.failure(in: framed(message(status(code: 100)))[...], shape: .none) == nil)
    }

    @Test("An older server's deprecated error_code is used when code is 0; a negative code is kept")
    func errorCode() {
        let old = framed(message(status(errorCode: 1, reason: "unexpected error")))
        #expect(
            MilvusStatus.failure(in: old[...], shape: .message) == MilvusStatus(code: 1, reason: "unexpected error")
        )
        let negative = framed(message(status(code: -3)))
        #expect(MilvusStatus.failure(in: negative[...], shape: .message)?.code == -3)
    }

    @Test("A status cut off by the kept prefix is read as far as it goes")
    func truncated() {
        let reason = String(repeating: "x", count: 300)
        let whole = framed(message { $0.writeMessageField(1, status(errorCode: 4, reason: reason, code: 100)) })
        let cut = whole.prefix(100)
        let failure = MilvusStatus.failure(in: cut, shape: .field(1))
        #expect(failure?.code == 4)  // code, after the reason, was cut off; error_code came first
        #expect(failure?.reason == String(repeating: "x", count: 100 - 5 - 2 - 2 - 2 - 2))
        #expect(MilvusStatus.failure(in: whole.prefix(5), shape: .field(1)) == nil)
        #expect(MilvusStatus.failure(in: whole.prefix(3), shape: .field(1)) == nil)
    }

    @Test("Compressed, empty and garbage bodies read as nil")
    func unreadable() {
        let failed = message(status(code: 100))
        #expect(MilvusStatus.failure(in: framed(failed, compressed: true)[...], shape: .message) == nil)
        #expect(MilvusStatus.failure(in: [][...], shape: .message) == nil)
        #expect(MilvusStatus.failure(in: framed([0xFF, 0xFF, 0xFF])[...], shape: .message) == nil)
        #expect(MilvusStatus.failure(in: framed([0x0A, 0x80])[...], shape: .field(1)) == nil)
    }

    @Test("Any bytes, in any shape, read without a crash")
    func anyBytes() async {
        let bytes = Gen.uint8(in: 0 ... .max).array(of: 0...64)
        await propertyCheck(count: 2000, input: bytes) { body in
            for shape in [ResponseStatus.message, .field(1), .field(3), .none] {
                _ = MilvusStatus.failure(in: ([0, 0, 0, 0, UInt8(body.count)] + body)[...], shape: shape)
                _ = MilvusStatus.failure(in: body[...], shape: shape)
            }
        }
    }

    @Test("Every RPC's response shape follows the protos: Status itself, its field 1, or none for a few")
    func shapes() throws {
        var counts: [ResponseStatus: Int] = [:]
        for rpc in MilvusRPCs.all { counts[rpc.responseStatus, default: 0] += 1 }
        #expect(counts[.message] == 55)
        #expect(try descriptor("Insert").responseStatus == .field(1))
        #expect(try descriptor("GetComponentStates").responseStatus == .field(3))
        #expect(try descriptor("CreateReplicateStream").responseStatus == .none)
    }
}
