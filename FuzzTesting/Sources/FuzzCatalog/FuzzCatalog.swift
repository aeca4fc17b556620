// Feeds arbitrary bytes through GRPCFrameDecoder and MilvusCall decoding, and as a response through MilvusStatus and
// StreamedVarintField (libFuzzer).
//
// Input layout: byte 0 picks the RPC (index into MilvusRPCs.all), byte 1 the chunking pattern, the rest is a
// gRPC body. Invariants checked besides "never traps": chunked and one-shot framing agree, every message
// decodes or throws, and a decoded call always names a database.
import MilvusCatalog
import ProtoWire

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

@_cdecl("FuzzCatalog_main")
func fuzzCatalogMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        guard let data, size >= 2 else { return 0 }
        fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    }
}

func frames(_ body: ArraySlice<UInt8>, chunkPattern: UInt8) -> (messages: [GRPCMessage], error: WireError?) {
    var decoder = GRPCFrameDecoder(maxMessageSize: 1 << 16, compressionAllowed: chunkPattern & 0x80 != 0)
    var messages: [GRPCMessage] = []
    var index = body.startIndex
    var step = 0
    do {
        while index < body.endIndex {
            // Chunk sizes 1...8 cycling from the pattern; pattern 0 feeds everything at once.
            let size = chunkPattern & 0x7F == 0 ? body.count : Int((chunkPattern >> (step % 4)) & 0x7) + 1
            let end = min(index + size, body.endIndex)
            if step % 2 == 0 {
                try decoder.append(body[index..<end])
            } else {
                try decoder.append(Array(body[index..<end]).lazy.map { $0 })
            }
            while let message = decoder.nextMessage() { messages.append(message) }
            index = end
            step += 1
        }
        try decoder.finish()
        return (messages, nil)
    } catch {
        return (messages, error)
    }
}

func fuzzOne(_ input: [UInt8]) {
    let rpc = MilvusRPCs.all[Int(input[0]) % MilvusRPCs.all.count]
    let body = input[2...]

    // Framing: chunked must agree with one-shot.
    let chunked = frames(body, chunkPattern: input[1])
    let whole = frames(body, chunkPattern: input[1] & 0x80)
    precondition(chunked.error?.code == whole.error?.code, "framing errors differ: \(chunked) vs \(whole)")
    if chunked.error == nil {
        precondition(chunked.messages.map(\.payload) == whole.messages.map(\.payload), "framed payloads differ")
    }

    // Decoding: every framed message, and the body itself as one message.
    let limits = WireLimits(maxMessageSize: 1 << 16, maxDepth: 4)
    for message in chunked.messages + [GRPCMessage(compressed: false, payload: body, streamOffset: 0)] {
        for metadata in [nil, "", "meta"] as [String?] {
            do {
                let call = try MilvusCall(
                    decoding: message.payload,
                    rpc: rpc,
                    metadataDatabase: metadata,
                    limits: limits
                )
                precondition(call.rpc == rpc)
                precondition(rpc.targetsOwnDatabase || !call.database.isEmpty, "empty database")
            } catch {
                precondition(error.offset >= 0 && error.offset <= message.payload.count, "offset out of range")
            }
        }
        // The raw reader, descending into every length-delimited field as if it were a message.
        var reader = WireReader(message.payload, limits: limits)
        walk(&reader)
    }

    // The body as a response: Milvus's status from its first bytes (any prefix), and a varint field streamed past
    // in chunks agrees with the same field read in one piece.
    for cut in [body.count, body.count / 2, min(body.count, 5)] {
        if let failure = MilvusStatus.failure(in: body.prefix(cut), shape: rpc.responseStatus) {
            precondition(failure.code != 0, "a failure with code 0")
        }
    }
    let field = UInt32(input[1] & 0x0F)
    var inOnePiece = StreamedVarintField(field: field)
    inOnePiece.consume(Array(body))
    var streamed = StreamedVarintField(field: field)
    var index = body.startIndex
    var step = 0
    while index < body.endIndex {
        let end = min(index + Int((input[1] >> (step % 4)) & 0x7) + 1, body.endIndex)
        streamed.consume(Array(body[index..<end]))
        index = end
        step += 1
    }
    precondition(
        streamed.value == inOnePiece.value,
        "streamed \(streamed.value as Any) vs in one piece \(inOnePiece.value as Any)"
    )
}

func walk(_ reader: inout WireReader) {
    while let field = try? reader.nextField() {
        if case .lengthDelimited = field.value, var nested = try? reader.nestedReader(for: field) {
            walk(&nested)
        }
        _ = try? field.stringValue()
    }
}
