/// One HTTP/2 header field. Names are lower case on the wire (RFC 9113 §8.2.1); nghttp2 enforces it
/// on receipt.
public struct HeaderField: Sendable, Hashable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// What a header block is, from the session's point of view (`nghttp2_headers_category`).
public enum HeaderBlockKind: Sendable, Hashable {
    /// A request's opening HEADERS (server side).
    case request
    /// A response's opening HEADERS (client side).
    case response
    /// A second HEADERS on a stream: trailers (gRPC's grpc-status travels here).
    case trailers
}

/// What a session saw while it was fed bytes or while it produced output.
public enum HTTP2Event {
    /// A complete header block. `oversized` means it exceeded the session's header-list limit: the
    /// fields were dropped past the limit and the stream must be refused. `listBytes` is its header list size as
    /// HTTP/2 counts it (RFC 9113 §6.5.2: names, values and 32 bytes per field), as far as it was read.
    case headers(
        streamID: Int32,
        kind: HeaderBlockKind,
        fields: [HeaderField],
        endStream: Bool,
        oversized: Bool,
        listBytes: Int
    )
    /// A chunk of a DATA frame's payload. The bytes count against the receive windows until
    /// ``HTTP2Session/consume(streamID:count:)`` is called for them.
    case data(streamID: Int32, bytes: [UInt8])
    /// The peer ended its side of the stream with a DATA frame (END_STREAM).
    case endStream(streamID: Int32)
    /// The stream is gone: ended both ways, reset by either side (`errorCode` says why), or refused.
    case streamClosed(streamID: Int32, errorCode: UInt32)
    /// The peer's SETTINGS changed (for example its maximum number of concurrent streams).
    case remoteSettingsChanged
    /// The peer sent GOAWAY: no stream above `lastStreamID` will be processed.
    case goaway(lastStreamID: Int32, errorCode: UInt32)
    /// During output, the session took `count` bytes of queued body data for `streamID` into frames:
    /// the side that supplied them may now open its window by that much.
    case outboundConsumed(streamID: Int32, count: Int)
    /// A peer's request header block (or its trailers) on `streamID` had a regular field with bytes HTTP/2 does not
    /// allow (a space in a name, a NUL, CR or LF in a value; upper-case names are a ``requestReset(streamID:fields:reason:)``):
    /// nghttp2 left it out of the block, which follows as ``headers(streamID:kind:fields:endStream:oversized:)``,
    /// and the stream must be refused. `name` is the field's name, printable. Server role only.
    case invalidHeaderField(streamID: Int32, name: String)
    /// nghttp2 reset a peer's stream for its request header block (RST_STREAM PROTOCOL_ERROR): a header field
    /// HTTP/2 does not allow at all (a name with upper-case letters, a bad pseudo-header) or a malformed request
    /// (`reason`, nghttp2's words). `fields` are those received before it. No header block follows. Server role only.
    case requestReset(streamID: Int32, fields: [HeaderField], reason: String)
    /// A header block we submitted on `streamID` was not sent (nghttp2's `on_frame_not_send`): `kind` says which
    /// (``HeaderBlockKind/request`` in the client role; ``HeaderBlockKind/response`` or ``HeaderBlockKind/trailers``
    /// in the server role), `error` why; ``NGHTTP2Error/isTooLarge`` when the block was over
    /// ``HTTP2SessionSettings/maxSendHeaderBlockBytes``. The peer heard nothing of it. A request's stream is then
    /// closed by the session (``streamClosed(streamID:errorCode:)`` with REFUSED_STREAM follows at once). A
    /// response's or its trailers' stream stays open, and nothing more will end it: its owner must answer it (a
    /// response stream may take another response, a trailers-only one; a stream whose trailers failed may take
    /// other trailers, ``HTTP2Session/submitTrailers(streamID:_:)``) or reset it. The body queue of a response whose
    /// headers failed is dropped (its bytes are reported as ``outboundConsumed(streamID:count:)``). nghttp2 reports a
    /// response whose stream is closed or closing as trailers (it relabels the frame before the callback): only a
    /// response over the size limit arrives as ``HeaderBlockKind/response``; the others' streams are closing anyway.
    case headersNotSent(streamID: Int32, kind: HeaderBlockKind, error: NGHTTP2Error)
}

/// HTTP/2 error codes used by the proxy (RFC 9113 §7).
public enum HTTP2ErrorCode {
    public static let noError: UInt32 = 0x0
    public static let protocolError: UInt32 = 0x1
    public static let internalError: UInt32 = 0x2
    public static let flowControlError: UInt32 = 0x3
    public static let refusedStream: UInt32 = 0x7
    public static let cancel: UInt32 = 0x8
    public static let enhanceYourCalm: UInt32 = 0xB
}

/// The settings and limits a session is created with.
public struct HTTP2SessionSettings: Sendable, Equatable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS we advertise (peer-initiated streams we accept at once).
    public var maxConcurrentStreams: UInt32 = 100
    /// SETTINGS_INITIAL_WINDOW_SIZE: the stream receive window.
    public var streamWindowBytes: UInt32 = 1 << 20
    /// The connection receive window.
    public var connectionWindowBytes: UInt32 = 16 << 20
    /// SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce on received header blocks.
    public var maxHeaderListBytes: UInt32 = 65_536
    /// Peer RST_STREAM budget (rapid-reset defence, CVE-2023-44487): burst and tokens per second.
    public var resetBurst: UInt64 = 1000
    public var resetRatePerSecond: UInt64 = 33
    /// CONTINUATION frames allowed after one HEADERS (CVE-2024-28182).
    public var maxContinuations: Int = 8
    /// SETTINGS entries accepted in one frame.
    public var maxSettingsEntries: Int = 32
    /// The largest header block this session sends (`nghttp2_option_set_max_send_header_block_length`; nghttp2's
    /// default is 64 KiB). nghttp2 measures a block before encoding it, with `nghttp2_hd_deflate_bound`: 12 bytes,
    /// plus 12 bytes and the name and value of each field, plus 5 for a priority. That is at most the RFC 9113
    /// §6.5.2 header list size (32 bytes per field) plus 17, so a header list one session accepted fits in another
    /// session whose limit is that list size plus a margin for the fields the proxy adds. A larger block is not
    /// sent: ``HTTP2Event/headersNotSent(streamID:kind:error:)``. The frame buffer only grows to this size when a
    /// block needs it.
    public var maxSendHeaderBlockBytes: Int = 65_536

    public init() {}
}
