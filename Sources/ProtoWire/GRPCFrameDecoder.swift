/// Splits a gRPC request or response body into its length-prefixed messages, however the bytes are chunked.
///
/// gRPC (`PROTOCOL-HTTP2.md`, "Length-Prefixed-Message") sends each message as a 1-byte compressed flag, a
/// 4-byte big-endian length and the payload. HTTP/2 DATA frames cut that stream anywhere: inside the prefix,
/// inside the payload, or several messages per frame. This is a sans-I/O state machine: feed it every chunk
/// with `append`, then drain complete messages with ``nextMessage()``.
///
/// ```swift
/// var decoder = GRPCFrameDecoder(maxMessageSize: 64 << 20)
/// try decoder.append(chunk)                 // throws WireError: oversize, bad flag
/// while let message = decoder.nextMessage() { … message.payload … }
/// try decoder.finish()                      // at END_STREAM: throws .truncated if a message is incomplete
/// ```
///
/// Design:
/// - **Checked before buffered.** The declared length is compared with ``maxMessageSize`` as soon as the
///   5-byte prefix is complete, before any payload byte is kept, so a 5-byte prefix cannot make the guard
///   buffer 4 GiB. The error is ``WireError/Code/messageTooLarge`` with ``WireError/declaredLength``.
///   The payload buffer starts at no more than 64 KiB and grows geometrically with what actually arrives,
///   capped at the declared length: a large declared length alone reserves nothing.
/// - **No copy for whole messages.** When a message arrives entirely inside one `ArraySlice<UInt8>` or
///   `[UInt8]` chunk, ``GRPCMessage/payload`` is a slice of that chunk (shared storage). Other collections
///   (`UnsafeRawBufferPointer` included, whose memory the decoder cannot keep) are copied once per message.
///   A message split across chunks is copied once, into the decoder's buffer.
/// - **Compressed flag.** 0 is plain; 1 is accepted only if `compressionAllowed` (the stream negotiated a
///   `grpc-encoding`), else ``WireError/Code/compressionNotNegotiated``; anything else is
///   ``WireError/Code/invalidCompressedFlag``.
/// - **Fail closed.** After the first error the decoder is poisoned: every later `append`/``finish()`
///   rethrows it and ``nextMessage()`` returns `nil`, even for messages completed before the error.
///
/// A plain value (it is `Sendable`), meant to be owned by one stream on one event loop.
public struct GRPCFrameDecoder: Sendable {
    /// The largest declared length accepted.
    public let maxMessageSize: Int
    /// Whether a compressed flag of 1 is allowed.
    public let compressionAllowed: Bool

    /// Prefix bytes seen so far for the message being read (0...4 while reading it), packed big-endian.
    private var prefixBits: UInt64 = 0
    private var prefixCount = 0
    /// Set once the prefix is complete: the payload length and flag of the message being buffered.
    private var payloadLength: Int?
    private var payloadCompressed = false
    private var payloadStreamOffset = 0
    private var buffer: [UInt8] = []
    /// The one completed message not yet taken, when there is exactly one: the usual case (a unary request is
    /// one message) needs no array. Set only while ``ready`` has nothing left to hand out.
    private var readyOne: GRPCMessage?
    /// Completed messages not yet taken, when there are several; `readyHead` is the next one to hand out.
    private var ready: [GRPCMessage] = []
    private var readyHead = 0
    /// Bytes given to the decoder so far.
    private var consumed = 0
    private var failure: WireError?

    /// Creates a decoder.
    ///
    /// - Parameters:
    ///   - maxMessageSize: the largest declared length accepted, in bytes.
    ///   - compressionAllowed: `true` only if the stream negotiated a `grpc-encoding` other than identity.
    public init(maxMessageSize: Int, compressionAllowed: Bool = false) {
        precondition(maxMessageSize >= 0, "maxMessageSize must not be negative")
        self.maxMessageSize = maxMessageSize
        self.compressionAllowed = compressionAllowed
    }

    /// `true` if bytes of an incomplete message (prefix or payload) are held.
    public var hasPartialMessage: Bool {
        self.prefixCount > 0 || self.payloadLength != nil
    }

    /// How many payload bytes of the current incomplete message are buffered.
    public var bufferedByteCount: Int {
        self.buffer.count
    }

    /// Feeds one chunk; complete messages become available from ``nextMessage()``.
    /// Whole messages inside `bytes` are sliced, not copied.
    ///
    /// - Throws: ``WireError`` with `.messageTooLarge`, `.compressionNotNegotiated` or `.invalidCompressedFlag`,
    ///   whose offset is that of the message's prefix in the stream; or the earlier error, if already failed.
    public mutating func append(_ bytes: ArraySlice<UInt8>) throws(WireError) {
        try self.process(bytes) { $0 }
    }

    /// Feeds one chunk; whole messages inside it are sliced, not copied. See ``append(_:)-(ArraySlice<UInt8>)``.
    ///
    /// - Throws: see ``append(_:)-(ArraySlice<UInt8>)``.
    public mutating func append(_ bytes: [UInt8]) throws(WireError) {
        try self.process(bytes[...]) { $0 }
    }

    /// Feeds one chunk that the caller owns only for the duration of the call, such as the `UnsafeRawBufferPointer`
    /// nghttp2's data callback hands over. The decoder copies what it keeps (with `memcpy`), and never holds on
    /// to the pointer. This concrete overload exists because the generic one is not specialized across modules.
    ///
    /// - Throws: see ``append(_:)-(ArraySlice<UInt8>)``.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) throws(WireError) {
        try self.process(bytes) { ArraySlice($0) }
    }

    /// Feeds one chunk of any collection of bytes.
    /// The decoder copies what it keeps, because it cannot hold on to the caller's memory.
    ///
    /// - Throws: see ``append(_:)-(ArraySlice<UInt8>)``.
    public mutating func append(_ bytes: some Collection<UInt8>) throws(WireError) {
        try self.process(bytes) { ArraySlice($0) }
    }

    /// The next complete message, oldest first, or `nil` if none is complete (or the decoder has failed).
    public mutating func nextMessage() -> GRPCMessage? {
        guard self.failure == nil else { return nil }
        if let one = self.readyOne {
            self.readyOne = nil
            return one
        }
        guard self.readyHead < self.ready.count else { return nil }
        let message = self.ready[self.readyHead]
        self.readyHead += 1
        if self.readyHead == self.ready.count {
            self.ready.removeAll(keepingCapacity: true)
            self.readyHead = 0
        }
        return message
    }

    /// Call at the end of the stream (END_STREAM).
    ///
    /// - Throws: `.truncated` (offset: the incomplete message's prefix) if a message is incomplete; the
    ///   earlier error if the decoder has failed.
    public mutating func finish() throws(WireError) {
        if let failure = self.failure { throw failure }
        if self.payloadLength != nil {
            throw self.fail(WireError(.truncated, at: self.payloadStreamOffset))
        }
        if self.prefixCount > 0 {
            throw self.fail(WireError(.truncated, at: self.consumed - self.prefixCount))
        }
    }

    private mutating func fail(_ error: WireError) -> WireError {
        self.failure = error
        self.readyOne = nil
        self.ready.removeAll()
        self.readyHead = 0
        self.buffer = []
        return error
    }

    /// The state machine. `slice` turns a sub-sequence holding one whole message into its payload, without a
    /// copy when the input already is an `ArraySlice<UInt8>`.
    private mutating func process<Bytes: Collection<UInt8>>(
        _ input: Bytes,
        slice: (Bytes.SubSequence) -> ArraySlice<UInt8>
    ) throws(WireError) {
        if let failure = self.failure { throw failure }
        var index = input.startIndex
        while index != input.endIndex {
            if let length = self.payloadLength {
                // Buffering a payload that started in an earlier chunk.
                let wanted = length - self.buffer.count
                let end = input.index(index, offsetBy: wanted, limitedBy: input.endIndex) ?? input.endIndex
                let before = self.buffer.count
                self.appendToBuffer(input[index..<end], messageLength: length)
                self.consumed += self.buffer.count - before
                index = end
                if self.buffer.count == length {
                    self.emit(payload: self.buffer[...], compressed: self.payloadCompressed)
                    self.buffer = []
                    self.payloadLength = nil
                }
                continue
            }
            // Reading the 5-byte prefix, one byte at a time (it may span chunks).
            self.prefixBits = self.prefixBits << 8 | UInt64(input[index])
            self.prefixCount += 1
            self.consumed += 1
            index = input.index(after: index)
            guard self.prefixCount == 5 else { continue }

            let prefixOffset = self.consumed - 5
            let flag = UInt8(truncatingIfNeeded: self.prefixBits >> 32)
            let length = Int(UInt32(truncatingIfNeeded: self.prefixBits))
            self.prefixBits = 0
            self.prefixCount = 0
            switch flag {
            case 0: break
            case 1:
                guard self.compressionAllowed else {
                    throw self.fail(WireError(.compressionNotNegotiated, at: prefixOffset))
                }
            default:
                throw self.fail(WireError(.invalidCompressedFlag, at: prefixOffset))
            }
            guard length <= self.maxMessageSize else {
                throw self.fail(WireError(.messageTooLarge, at: prefixOffset, declaredLength: length))
            }
            self.payloadStreamOffset = prefixOffset
            self.payloadCompressed = flag == 1
            if let end = input.index(index, offsetBy: length, limitedBy: input.endIndex) {
                // The whole payload is in this chunk: slice it.
                self.emit(payload: slice(input[index..<end]), compressed: flag == 1)
                self.consumed += length
                index = end
            } else {
                self.payloadLength = length
                self.buffer.reserveCapacity(Swift.min(length, 64 * 1024))
            }
        }
    }

    /// Appends part of a payload: a `memcpy` when the chunk is contiguous, and capacity that grows geometrically
    /// but never past the message's declared length.
    private mutating func appendToBuffer(_ bytes: some Collection<UInt8>, messageLength: Int) {
        let needed = self.buffer.count + bytes.count
        if needed > self.buffer.capacity {
            self.buffer.reserveCapacity(Swift.min(messageLength, Swift.max(needed, self.buffer.capacity * 2)))
        }
        let copied: Void? = bytes.withContiguousStorageIfAvailable { self.buffer.append(contentsOf: $0) }
        if copied == nil {
            self.buffer.append(contentsOf: bytes)
        }
    }

    private mutating func emit(payload: ArraySlice<UInt8>, compressed: Bool) {
        let message = GRPCMessage(compressed: compressed, payload: payload, streamOffset: self.payloadStreamOffset)
        if self.readyOne == nil && self.readyHead == self.ready.count {
            self.readyOne = message
            return
        }
        // Several are pending: the array keeps their order, oldest first.
        if let one = self.readyOne {
            self.readyOne = nil
            self.ready.append(one)
        }
        self.ready.append(message)
    }
}
