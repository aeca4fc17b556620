import CMallocCounter
import MilvusCatalog
import ProtoWire

/// Decodes a DropCollection and a 64 MiB Insert, and frames the Insert, printing time per operation and heap
/// allocations (count and bytes, from the CMallocCounter interposer; mallinfo2's in-use delta as a cross-check).
@main
struct DecodeBenchmark {
    struct Measurement {
        let name: String
        let iterations: Int
        let nanosecondsPerOp: Double
        let allocationsPerOp: Double
        let bytesPerOp: Double
    }

    /// Runs `body` `iterations` times in each of 5 rounds and keeps the fastest round (the machine is shared, so
    /// the minimum is the least disturbed); allocations are counted over all rounds.
    static func measure(_ name: String, iterations: Int, _ body: () throws -> Void) rethrows -> Measurement {
        for _ in 0..<min(iterations, 100) { try body() }  // warm up
        let clock = ContinuousClock()
        var best = Duration.seconds(1_000_000)
        mc_reset()
        for _ in 0..<5 {
            let start = clock.now
            for _ in 0..<iterations { try body() }
            best = min(best, clock.now - start)
        }
        let allocations = Double(mc_allocations()) / Double(5 * iterations)
        let bytes = Double(mc_bytes()) / Double(5 * iterations)
        let nanoseconds = Double(best.components.seconds) * 1e9 + Double(best.components.attoseconds) / 1e9
        return Measurement(
            name: name,
            iterations: iterations,
            nanosecondsPerOp: nanoseconds / Double(iterations),
            allocationsPerOp: allocations,
            bytesPerOp: bytes
        )
    }

    static func insertRequest(vectorBytes: Int) -> [UInt8] {
        let dim = 128
        let rows = vectorBytes / (dim * 4)
        var vectors = WireWriter()
        vectors.writeVarintField(1, UInt64(dim))
        vectors.writeMessageField(2) { floats in  // FloatArray{repeated float data = 1 [packed]}
            floats.writeBytesField(1, [UInt8](repeating: 0x3F, count: rows * dim * 4))
        }
        var insert = WireWriter()
        insert.writeMessageField(1) { $0.writeVarintField(1, 400) }  // base: MsgBase{msg_type: Insert}
        insert.writeStringField(2, "prod")
        insert.writeStringField(3, "documents")
        insert.writeStringField(4, "2026_11")
        insert.writeMessageField(5) { field in  // FieldData{type FloatVector, field_name, vectors}
            field.writeVarintField(1, 101)
            field.writeStringField(2, "embedding")
            field.writeBytesField(4, vectors.bytes)
        }
        insert.writeMessageField(5) { field in  // FieldData{type Int64, field_name, scalars{long_data}}
            field.writeVarintField(1, 5)
            field.writeStringField(2, "id")
            field.writeMessageField(3) { scalars in
                scalars.writeMessageField(3) { longs in
                    var packed = WireWriter()
                    for row in 0..<rows { packed.writeVarint(UInt64(row)) }
                    longs.writeBytesField(1, packed.bytes)
                }
            }
        }
        insert.writeVarintField(7, UInt64(rows))
        return insert.bytes
    }

    static func main() throws {
        guard let dropRPC = MilvusRPCs.descriptor(forPath: "/milvus.proto.milvus.MilvusService/DropCollection"),
            let insertRPC = MilvusRPCs.descriptor(forPath: "/milvus.proto.milvus.MilvusService/Insert")
        else { throw WireError(.truncated, at: 0) }

        var dropWriter = WireWriter()
        dropWriter.writeMessageField(1) { $0.writeVarintField(1, 101) }
        dropWriter.writeStringField(2, "prod")
        dropWriter.writeStringField(3, "documents")
        let drop = dropWriter.bytes
        let insert = Self.insertRequest(vectorBytes: 64 << 20)
        let framedInsert = WireWriter.grpcFramePrefix(length: UInt32(insert.count)) + insert
        print("DropCollection request: \(drop.count) B; Insert request: \(insert.count) B")

        var sink = 0
        let before = mc_heap_in_use()
        var results: [Measurement] = []
        results.append(
            Self.measure("catalog lookup by :path", iterations: 200_000) {
                sink &+=
                    MilvusRPCs.descriptor(forPath: "/milvus.proto.milvus.MilvusService/DropCollection")?.name.utf8
                    .count ?? 0
            }
        )
        results.append(
            try Self.measure("decode DropCollection", iterations: 200_000) {
                let call = try MilvusCall(decoding: drop[...], rpc: dropRPC, metadataDatabase: "default")
                sink &+= call.collection?.utf8.count ?? 0
            }
        )
        results.append(
            try Self.measure("decode Insert (64 MiB)", iterations: 20_000) {
                let call = try MilvusCall(decoding: insert[...], rpc: insertRPC, metadataDatabase: nil)
                sink &+= Int(call.rowCount ?? 0)
            }
        )
        results.append(
            try Self.measure("frame Insert, one [UInt8] chunk", iterations: 20_000) {
                var decoder = GRPCFrameDecoder(maxMessageSize: 512 << 20)
                try decoder.append(framedInsert)
                sink &+= decoder.nextMessage()?.payload.count ?? 0
            }
        )
        results.append(
            try Self.measure("frame Insert, 16 KiB raw-buffer chunks", iterations: 2) {
                var decoder = GRPCFrameDecoder(maxMessageSize: 512 << 20)
                try framedInsert.withUnsafeBytes { raw in
                    var offset = 0
                    while offset < raw.count {
                        let end = min(offset + 16_384, raw.count)
                        try decoder.append(UnsafeRawBufferPointer(rebasing: raw[offset..<end]))
                        offset = end
                    }
                }
                sink &+= decoder.nextMessage()?.payload.count ?? 0
            }
        )
        let after = mc_heap_in_use()
        for result in results {
            let time =
                result.nanosecondsPerOp >= 1e6
                ? "\(Double(Int(result.nanosecondsPerOp / 1e4)) / 100) ms" : "\(Int(result.nanosecondsPerOp)) ns"
            print(
                "\(result.name): \(time)/op, \(result.allocationsPerOp) allocations/op, "
                    + "\(Int(result.bytesPerOp)) B allocated/op (best of 5 × \(result.iterations))"
            )
        }
        print("mallinfo2 in-use delta over the whole run: \(Int(after) - Int(before)) B")
        print("(checksum \(sink))")
    }
}
