import MilvusCatalog
import ProtoWire
import Synchronization
import ZlibSupport

/// Holds a request until it is complete, then decodes it into the ``MilvusCall`` the decision is made on.
///
/// Because the last occurrence of a protobuf field wins, nothing may reach Milvus before the whole message
/// has been seen: a second `collection_name` at the very end would otherwise retarget a call that was
/// already judged. Unary and server-streaming requests are held until the client ends its side
/// (END_STREAM), so that exactly one message is checked; a bidi stream is decided on its first message.
///
/// The message is kept once: whole messages are slices of the DATA chunks they arrived in, others sit in
/// the frame decoder's buffer. What is forwarded is the original gRPC frame, byte for byte: the 5-byte
/// prefix the client sent and its payload, never a re-encoding.
struct RequestGate {
    /// Why a request is refused before it is forwarded.
    enum Refusal: Error {
        case status(GRPCStatus)
    }

    /// `grpc-encoding` of the request.
    enum Encoding {
        case identity, gzip, deflate
    }

    let rpc: RPCDescriptor
    let encoding: Encoding
    let metadataDatabase: String?
    private let limits: WireLimits
    private var decoder: GRPCFrameDecoder
    /// The first complete message: the only one a unary or server-streaming request may have, and the one a
    /// bidi stream is decided on (its later messages are forwarded from ``rawChunks`` unread).
    private var message: GRPCMessage?
    /// Complete messages seen (a second one refuses a request that is not a bidi stream).
    private var messageCount = 0
    /// The request's first chunk while it is the only one: when it holds exactly the one message, prefix
    /// and payload, it is forwarded as it is, without rebuilding the prefix.
    private var onlyChunk: ArraySlice<UInt8>?
    private var chunkCount = 0
    /// A bidi stream is decided on its first message while more bytes may already be held: those go on
    /// as they arrived, so the raw chunks are kept (bidi only).
    private var rawChunks: [ArraySlice<UInt8>] = []
    /// Request bytes received so far (the held amount).
    private(set) var heldBytes = 0

    init(rpc: RPCDescriptor, encoding: Encoding, metadataDatabase: String?, maxMessageBytes: Int) {
        self.rpc = rpc
        self.encoding = encoding
        self.metadataDatabase = metadataDatabase
        self.limits = WireLimits(maxMessageSize: maxMessageBytes)
        self.decoder = GRPCFrameDecoder(maxMessageSize: maxMessageBytes, compressionAllowed: encoding != .identity)
    }

    /// Whether the decision can be taken before END_STREAM (bidi streams: on the first message).
    var decidesOnFirstMessage: Bool { self.rpc.streaming == .bidiStreaming }

    /// Whether a complete message is held.
    var hasMessage: Bool { self.message != nil }

    /// Whether the (first) message held is compressed.
    var holdsCompressedMessage: Bool { self.message?.compressed == true }

    /// The (first) message held, for ``forward(_:)`` once it is decoded.
    var heldMessage: GRPCMessage? { self.message }

    /// Takes a chunk of the request body.
    mutating func append(_ bytes: [UInt8]) throws(Refusal) {
        self.heldBytes += bytes.count
        if self.decidesOnFirstMessage { self.rawChunks.append(bytes[...]) }
        self.chunkCount += 1
        self.onlyChunk = self.chunkCount == 1 ? bytes[...] : nil
        do {
            try self.decoder.append(bytes)
        } catch {
            throw .status(Self.status(for: error, rpc: self.rpc))
        }
        while let message = self.decoder.nextMessage() {
            if self.message == nil { self.message = message }
            self.messageCount += 1
            if self.messageCount > 1 && self.rpc.streaming != .bidiStreaming {
                throw .status(
                    GRPCStatus(.invalidArgument, "\(self.rpc.name) takes one request message; got a second one")
                )
            }
        }
    }

    /// Decodes the held message (at END_STREAM, or on the first message of a bidi stream).
    /// - Returns: the decoded call and the bytes to forward (prefix and payload of each held message).
    mutating func decide(atEnd: Bool) throws(Refusal) -> (MilvusCall, [ArraySlice<UInt8>]) {
        let decoding = try self.takeMessage(atEnd: atEnd)
        let call = try decoding.decode()
        return (call, self.forward(decoding.message))
    }

    /// The held message, once the request has ended well (at END_STREAM) or a bidi stream's first message is here,
    /// with what decoding it needs: ``Decoding/decode()`` may run on another thread (a compressed message is inflated
    /// off the event loop), then ``forward(_:)`` gives the bytes to send.
    mutating func takeMessage(atEnd: Bool) throws(Refusal) -> Decoding {
        if atEnd {
            do {
                try self.decoder.finish()
            } catch {
                throw .status(Self.status(for: error, rpc: self.rpc))
            }
        }
        guard let first = self.message else {
            throw .status(GRPCStatus(.invalidArgument, "\(self.rpc.name) request has no message"))
        }
        return Decoding(
            rpc: self.rpc,
            encoding: self.encoding,
            metadataDatabase: self.metadataDatabase,
            limits: self.limits,
            message: first
        )
    }

    /// The bytes to forward once `message` (from ``takeMessage(atEnd:)``) is decoded and allowed: the original
    /// frames, never a re-encoding.
    mutating func forward(_ first: GRPCMessage) -> [ArraySlice<UInt8>] {
        if self.decidesOnFirstMessage {
            defer { self.rawChunks = [] }
            return self.rawChunks
        }
        // Not a bidi stream: `first` is the one message (a second was refused in `append`).
        self.message = nil
        if let chunk = self.onlyChunk, chunk.count == 5 + first.payload.count {
            // The usual request: one DATA chunk holding the whole frame, which the decoder checked.
            return [chunk]
        }
        let length = UInt32(first.payload.count)
        let prefix: [UInt8] = [
            first.compressed ? 1 : 0, UInt8(length >> 24), UInt8((length >> 16) & 0xFF),
            UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF),
        ]
        return [prefix[...], first.payload]
    }

    /// A held message and what decoding it needs; a value, so that a compressed one can be inflated and decoded on
    /// another thread.
    struct Decoding: Sendable {
        let rpc: RPCDescriptor
        let encoding: Encoding
        let metadataDatabase: String?
        let limits: WireLimits
        let message: GRPCMessage

        /// Whether decoding it may take long enough to run off the event loop: a compressed message of over
        /// ``RequestGate/offLoopCompressedBytes`` (inflating within the ratio limit can take seconds).
        var isCostly: Bool {
            self.message.compressed && self.message.payload.count > RequestGate.offLoopCompressedBytes
        }

        /// Inflates the message if it is compressed, and decodes it. `shouldContinue` is asked every 4 MiB of
        /// inflating: a call that ended meanwhile stops it there.
        func decode(shouldContinue: () -> Bool = { true }) throws(Refusal) -> MilvusCall {
            do {
                if self.message.compressed {
                    let inflated = try self.inflate(self.message.payload, shouldContinue: shouldContinue)
                    return try MilvusCall(
                        decoding: inflated[...],
                        rpc: self.rpc,
                        metadataDatabase: self.metadataDatabase,
                        limits: self.limits
                    )
                }
                return try MilvusCall(
                    decoding: self.message.payload,
                    rpc: self.rpc,
                    metadataDatabase: self.metadataDatabase,
                    limits: self.limits
                )
            } catch let refusal as Refusal {
                throw refusal
            } catch let error as WireError where error.code == .tooManyValues {
                throw .status(RequestGate.status(for: error, rpc: self.rpc))
            } catch {
                let detail = (error as? WireError).map { "\($0.code) at byte \($0.offset)" } ?? "\(error)"
                throw .status(GRPCStatus(.invalidArgument, "malformed \(self.rpc.name) request: \(detail)"))
            }
        }

        /// Inflates a compressed message for inspection, bounded by the message limit and by ``inflateRatioLimit`` (a
        /// zip bomb stops there).
        private func inflate(_ payload: ArraySlice<UInt8>, shouldContinue: () -> Bool) throws(Refusal) -> [UInt8] {
            let format: CompressionFormat
            switch self.encoding {
            case .gzip: format = .gzip
            case .deflate: format = .deflate
            case .identity:
                throw .status(GRPCStatus(.invalidArgument, "compressed message without grpc-encoding"))
            }
            let (ratioBound, overflow) = payload.count.multipliedReportingOverflow(by: RequestGate.inflateRatioLimit)
            let byRatio = overflow ? Int.max : max(ratioBound, RequestGate.inflateFreeBytes)
            do {
                return try GzipInflater.inflate(
                    payload,
                    format: format,
                    maxOutputBytes: min(self.limits.maxMessageSize, byRatio),
                    shouldContinue: shouldContinue
                )
            } catch {
                if error.code == .outputTooLarge {
                    if byRatio < self.limits.maxMessageSize {
                        throw .status(
                            GRPCStatus(
                                .invalidArgument,
                                "\(self.rpc.name) request inflates to more than \(RequestGate.inflateRatioLimit) times its "
                                    + "compressed size; send it uncompressed"
                            )
                        )
                    }
                    throw .status(
                        GRPCStatus(
                            .invalidArgument,
                            "\(self.rpc.name) request inflates beyond the \(self.limits.maxMessageSize)-byte message limit"
                        )
                    )
                }
                throw .status(GRPCStatus(.invalidArgument, "cannot inflate \(self.rpc.name) request: \(error.message)"))
            }
        }
    }

    /// How many times its compressed size a message may inflate to, past its first MiB (Apache's
    /// `DeflateInflateRatioLimit` is 200 too). Vectors and protobuf compress a few times, text some tens of times; a
    /// bomb of zeros a thousand times: 500 KB inflating to 500 MiB held the event loop for 1.9 s (a red-team run).
    static let inflateRatioLimit = 200
    /// What any compressed message may inflate to, whatever its ratio.
    static let inflateFreeBytes = 1 << 20
    /// A compressed message larger than this is inflated and decoded off the event loop (it may inflate to 200
    /// times as much; 2.5 MB to 512 MiB took the loop 2 s); a smaller one inflates to at most 1 MiB, in a few ms.
    static let offLoopCompressedBytes = 4 * 1024

    fileprivate static func status(for error: WireError, rpc: RPCDescriptor) -> GRPCStatus {
        switch error.code {
        case .messageTooLarge:
            GRPCStatus(
                .invalidArgument,
                "\(rpc.name) request message of \(error.declaredLength.map(String.init) ?? "?") bytes exceeds the limit"
            )
        case .compressionNotNegotiated, .invalidCompressedFlag:
            GRPCStatus(.invalidArgument, "\(rpc.name) request has a compressed flag without a grpc-encoding")
        case .truncated:
            GRPCStatus(.invalidArgument, "\(rpc.name) request ends inside a message")
        case .tooManyValues:
            GRPCStatus(
                .invalidArgument,
                "\(rpc.name) request repeats a field more than \(WireLimits.default.maxRepeatedValues) times"
            )
        default:
            GRPCStatus(.invalidArgument, "malformed \(rpc.name) request: \(error.code) at byte \(error.offset)")
        }
    }
}

/// A message handed to the decoder thread, which the call can take back: a call that ends before its turn takes the
/// message out at once, so that its bytes (given back to the budgets then) are not kept alive by the queued job (a
/// review: calls reset while behind slow inflations kept up to 64 messages of up to 512 MiB in memory).
final class DecodeJob: Sendable {
    private let decoding: Mutex<RequestGate.Decoding?>
    private let cancellation = Cancellation()

    init(_ decoding: RequestGate.Decoding) {
        self.decoding = Mutex(decoding)
    }

    /// The message to decode; nil once taken or cancelled.
    func take() -> RequestGate.Decoding? {
        self.decoding.withLock { $0.take() }
    }

    /// Whether the call ended: an inflation under way stops at its next 4 MiB.
    var isCancelled: Bool { self.cancellation.isCancelled }

    /// Drops the message, if the decoder has not taken it yet, and stops an inflation under way.
    func cancel() {
        self.cancellation.cancel()
        _ = self.take()
    }
}
