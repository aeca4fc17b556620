import PropertyBased
import ProtoWire
import Testing

/// Frames `payload` with the 5-byte gRPC prefix.
func framed(_ payload: [UInt8], flag: UInt8 = 0) -> [UInt8] {
    var prefix = WireWriter.grpcFramePrefix(length: UInt32(payload.count))
    prefix[0] = flag
    return prefix + payload
}

/// Feeds `chunks` and drains every message.
func decodeAll(
    _ chunks: [[UInt8]],
    max: Int = 1 << 20,
    compression: Bool = false
) throws(WireError) -> [GRPCMessage] {
    var decoder = GRPCFrameDecoder(maxMessageSize: max, compressionAllowed: compression)
    var messages: [GRPCMessage] = []
    for chunk in chunks {
        try decoder.append(chunk)
        while let message = decoder.nextMessage() { messages.append(message) }
    }
    try decoder.finish()
    return messages
}

@Suite("GRPCFrameDecoder")
struct GRPCFrameDecoderTests {
    let stream = framed(drop) + framed([]) + framed(Array(repeating: 0xAB, count: 300))

    @Test("Yields each message with its flag, payload and stream offset")
    func wholeStream() throws {
        let messages = try decodeAll([self.stream])
        #expect(messages.map { Array($0.payload) } == [drop, [], Array(repeating: 0xAB, count: 300)])
        #expect(messages.map(\.streamOffset) == [0, 5 + drop.count, 10 + drop.count])
        #expect(messages.allSatisfy { !$0.compressed })
    }

    @Test("Feeding one byte at a time yields the same messages")
    func oneByteAtATime() throws {
        let messages = try decodeAll(self.stream.map { [$0] })
        #expect(messages.map { Array($0.payload) } == [drop, [], Array(repeating: 0xAB, count: 300)])
        #expect(messages.map(\.streamOffset) == [0, 5 + drop.count, 10 + drop.count])
    }

    @Test("Split at every position, the stream yields the same messages", arguments: 0...40)
    func everySplit(position: Int) throws {
        let cut = min(position, self.stream.count)
        let messages = try decodeAll([Array(self.stream[..<cut]), Array(self.stream[cut...])])
        #expect(messages.map { Array($0.payload) } == [drop, [], Array(repeating: 0xAB, count: 300)])
    }

    @Test("Messages not taken yet keep their order when more arrive, however many are pending")
    func pendingMessagesKeepOrder() throws {
        var decoder = GRPCFrameDecoder(maxMessageSize: 1 << 20)
        var taken: [[UInt8]?] = []
        try decoder.append(framed([1]))
        try decoder.append(framed([2]))  // one pending, then two
        taken.append(decoder.nextMessage().map { Array($0.payload) })
        try decoder.append(framed([3]) + framed([4]))  // more while one is still pending
        taken.append(decoder.nextMessage().map { Array($0.payload) })
        try decoder.append(framed([5]))
        while let message = decoder.nextMessage() { taken.append(Array(message.payload)) }
        try decoder.append(framed([6]))  // alone again after everything was taken
        taken.append(decoder.nextMessage().map { Array($0.payload) })
        #expect(decoder.nextMessage() == nil)
        #expect(taken == [[1], [2], [3], [4], [5], [6]])
    }

    @Test("A message that arrives whole in an ArraySlice is not copied")
    func zeroCopy() throws {
        let chunk = self.stream
        var decoder = GRPCFrameDecoder(maxMessageSize: 1 << 20)
        try decoder.append(chunk[...])
        let next = decoder.nextMessage()
        let message = try #require(next)
        #expect(message.payload.startIndex == 5)
        let shared = chunk.withUnsafeBufferPointer { whole in
            message.payload.withUnsafeBufferPointer { $0.baseAddress == whole.baseAddress.map { $0 + 5 } }
        }
        #expect(shared)
    }

    @Test("An UnsafeRawBufferPointer chunk is copied and decoded")
    func rawBufferChunk() throws {
        var decoder = GRPCFrameDecoder(maxMessageSize: 1 << 20)
        // (A `throws(WireError)` closure here crashes Swift 6.3.1's IRGen; catch inside instead.)
        let failure = self.stream.withUnsafeBytes { raw -> WireError? in
            do throws(WireError) {
                try decoder.append(raw)
                return nil
            } catch {
                return error
            }
        }
        #expect(failure == nil)
        let next = decoder.nextMessage()
        #expect(next.map { Array($0.payload) } == drop)
    }

    @Test("Raw-buffer chunks of every size yield the same messages", arguments: [1, 2, 3, 7, 64, 1000])
    func rawBufferChunks(size: Int) throws {
        var decoder = GRPCFrameDecoder(maxMessageSize: 1 << 20)
        var messages: [[UInt8]] = []
        var index = 0
        while index < self.stream.count {
            let end = min(index + size, self.stream.count)
            let failure = self.stream[index..<end].withUnsafeBytes { raw -> WireError? in
                do throws(WireError) {
                    try decoder.append(raw)
                    return nil
                } catch {
                    return error
                }
            }
            #expect(failure == nil)
            while let message = decoder.nextMessage() { messages.append(Array(message.payload)) }
            index = end
        }
        #expect(messages == [drop, [], Array(repeating: 0xAB, count: 300)])
    }

    @Test("An oversize declared length is refused at the prefix, before any payload is buffered")
    func oversizeBeforeBuffering() throws {
        var decoder = GRPCFrameDecoder(maxMessageSize: 1024)
        try decoder.append([0, 0x40, 0, 0])  // 4 of 5 prefix bytes: nothing to decide yet
        let error = #expect(throws: WireError.self) { try decoder.append([0x00, 0xEE]) }
        #expect(error?.code == .messageTooLarge)
        #expect(error?.declaredLength == 1 << 30)
        #expect(error?.offset == 0)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test("The exact maximum is accepted, one more is not")
    func boundary() throws {
        #expect(try decodeAll([framed(Array(repeating: 1, count: 16))], max: 16).count == 1)
        #expect(throws: WireError(.messageTooLarge, at: 0)) {
            try decodeAll([framed(Array(repeating: 1, count: 17))], max: 16)
        }
    }

    @Test("A large message split across chunks is buffered once and not reserved from its declared length")
    func largeSplit() throws {
        let payload = (0..<100_000).map { UInt8(truncatingIfNeeded: $0) }
        let bytes = framed(payload)
        var decoder = GRPCFrameDecoder(maxMessageSize: 1 << 20)
        try decoder.append(bytes[..<1000])
        #expect(decoder.hasPartialMessage && decoder.bufferedByteCount == 995)
        try decoder.append(bytes[1000...])
        let next = decoder.nextMessage()
        #expect(next.map { Array($0.payload) } == payload)
        #expect(!decoder.hasPartialMessage)
    }

    @Test("The compressed flag needs negotiated compression; other flags are invalid")
    func compressedFlag() throws {
        #expect(throws: WireError(.compressionNotNegotiated, at: 0)) { try decodeAll([framed(drop, flag: 1)]) }
        let messages = try decodeAll([framed(drop, flag: 1)], compression: true)
        #expect(messages.first?.compressed == true)
        for flag: UInt8 in [2, 0x80, 0xFF] {
            #expect(throws: WireError(.invalidCompressedFlag, at: 0)) {
                try decodeAll([framed(drop, flag: flag)], compression: true)
            }
        }
    }

    @Test("A stream ending inside a prefix or a payload is truncated", arguments: [1, 4, 5, 6, 19])
    func endsEarly(length: Int) {
        let error = #expect(throws: WireError.self) { try decodeAll([Array(framed(drop).prefix(length))]) }
        #expect(error?.code == .truncated)
        #expect(error?.offset == 0)
    }

    @Test("After an error the decoder stays failed and yields nothing")
    func poisoned() throws {
        var decoder = GRPCFrameDecoder(maxMessageSize: 8)
        let bad = framed(drop)
        #expect(throws: WireError(.messageTooLarge, at: 0)) { try decoder.append(framed([1]) + bad) }
        #expect(decoder.nextMessage() == nil)
        #expect(throws: WireError(.messageTooLarge, at: 0)) { try decoder.append(framed([1])) }
        #expect(throws: WireError(.messageTooLarge, at: 0)) { try decoder.finish() }
    }

    @Test("Any messages, split anywhere, come out unchanged")
    func splitProperty() async {
        let payloads = Gen.uint8(in: 0 ... .max).array(of: 0...50).array(of: 0...5)
        let cuts = Gen.int(in: 1...9).array(of: 1...20)
        await propertyCheck(count: 200, input: payloads, cuts) { payloads, cuts in
            let bytes = payloads.flatMap { framed($0) }
            var chunks: [[UInt8]] = []
            var index = 0
            var turn = 0
            while index < bytes.count {
                let end = min(index + cuts[turn % cuts.count], bytes.count)
                chunks.append(Array(bytes[index..<end]))
                index = end
                turn += 1
            }
            let messages = try decodeAll(chunks)
            #expect(messages.map { Array($0.payload) } == payloads)
        }
    }

    @Test("Arbitrary bytes never trap the decoder")
    func arbitraryBytes() async {
        await propertyCheck(count: 300, input: Gen.uint8(in: 0 ... .max).array(of: 0...64)) { bytes in
            _ = try? decodeAll(bytes.map { [$0] }, max: 32, compression: true)
        }
    }
}
