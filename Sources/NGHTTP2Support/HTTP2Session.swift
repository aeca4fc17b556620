import CNGHTTP2

/// Owns one `nghttp2_session*`, server or client side. Sans-I/O: bytes in, events out; bytes to send
/// are pulled with ``send(into:limit:events:)``. It never touches a socket.
///
/// Both roles are one type because they are one C object: the role only changes how the session is
/// created and which submit calls make sense (requests on a client, responses on a server).
///
/// ### Flow control
/// Sessions are created with automatic WINDOW_UPDATE off (`nghttp2_option_set_no_auto_window_update`).
/// Received DATA stays charged to the receive windows until the owner calls ``consume(streamID:count:)``,
/// which a proxy does only once the bytes have been taken into frames by the *other* session (reported
/// by ``HTTP2Event/outboundConsumed(streamID:count:)``). A slow reader on either side thus stalls the
/// writer on the other, and the bytes held per stream never exceed one window.
///
/// ### Outbound bodies
/// Requests and responses are submitted with a data provider over a per-stream queue. Body bytes are
/// queued with ``enqueueData(streamID:_:)``; the provider returns `NGHTTP2_ERR_DEFERRED` while the queue
/// is empty and is resumed when bytes arrive. ``finishBody(streamID:trailers:)`` ends the body, with
/// trailers (`NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM` plus `nghttp2_submit_trailer`) or
/// without (END_STREAM on the last DATA frame).
public final class HTTP2Session {
    /// Which end of the connection this session is.
    public enum Role: Sendable { case server, client }

    public let role: Role
    /// The largest header block this session sends (``HTTP2SessionSettings/maxSendHeaderBlockBytes``).
    public let maxSendHeaderBlockBytes: Int
    /// The largest header list it takes (``HTTP2SessionSettings/maxHeaderListBytes``): a block over it is delivered
    /// marked oversized, its fields past the limit left out.
    public var maxHeaderListBytes: Int { self.headers.maxHeaderListBytes }
    private var session: OpaquePointer?

    /// Events gathered by the C callbacks during one `feed` or `send`.
    private var events: [HTTP2Event] = []
    /// The caller's output buffer during one `send`, where DATA frames are written, and that call's limit.
    private var output: [UInt8] = []
    private var outputLimit = 0
    /// Streams to reset with NO_ERROR once the END_STREAM of our side has gone out (``resetAfterResponse(streamID:)``).
    private var resetsAfterResponse: [Int32] = []
    /// The header block being received.
    private var headers: HeaderBlockReceiver
    /// Body bytes waiting to be framed, per stream we submitted with a data provider.
    private var outbound: [Int32: OutboundBody] = [:]
    /// Queues of closed streams, emptied, for the next streams: their (small) chunk arrays keep their capacity.
    private var spareBodies: [OutboundBody] = []
    /// At most this many spare queues are kept. With ``OutboundBody/maxKeptChunks``, this bounds what a session
    /// keeps for reuse (about 40 KiB) whatever its peers did with earlier streams.
    private static let maxSpareBodies = 64

    /// Creates a session and queues our SETTINGS and the connection window update.
    /// - Throws: ``NGHTTP2Error`` when nghttp2 can't allocate the session.
    public init(role: Role, settings: HTTP2SessionSettings = HTTP2SessionSettings()) throws(NGHTTP2Error) {
        self.role = role
        self.maxSendHeaderBlockBytes = settings.maxSendHeaderBlockBytes
        self.headers = HeaderBlockReceiver(maxHeaderListBytes: Int(settings.maxHeaderListBytes))

        var callbacks: OpaquePointer?
        try check(nghttp2_session_callbacks_new(&callbacks))
        defer { nghttp2_session_callbacks_del(callbacks) }
        Self.install(callbacks)

        var option: OpaquePointer?
        try check(nghttp2_option_new(&option))
        defer { nghttp2_option_del(option) }
        nghttp2_option_set_no_auto_window_update(option, 1)
        // Closed streams are not kept around for RFC 7540 priorities (deprecated by RFC 9113): less
        // memory, and `nghttp2_session_find_stream` then tells a closed stream from an open one.
        nghttp2_option_set_no_closed_streams(option, 1)
        nghttp2_option_set_max_settings(option, settings.maxSettingsEntries)
        nghttp2_option_set_stream_reset_rate_limit(option, settings.resetBurst, settings.resetRatePerSecond)
        nghttp2_option_set_max_continuations(option, settings.maxContinuations)
        nghttp2_option_set_max_send_header_block_length(option, max(settings.maxSendHeaderBlockBytes, 0))
        if role == .client {
            // Until the server's SETTINGS arrive, assume a conservative stream limit instead of "unlimited".
            nghttp2_option_set_peer_max_concurrent_streams(option, 100)
        }

        // nghttp2 keeps an unretained pointer to self; self owns the session, so self outlives it.
        let userData = Unmanaged.passUnretained(self).toOpaque()
        switch role {
        case .server: try check(nghttp2_session_server_new2(&self.session, callbacks, userData, option))
        case .client: try check(nghttp2_session_client_new2(&self.session, callbacks, userData, option))
        }

        var entries: [nghttp2_settings_entry] = [
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
                value: settings.streamWindowBytes
            ),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                value: settings.maxHeaderListBytes
            ),
        ]
        switch role {
        case .server:
            entries.append(
                nghttp2_settings_entry(
                    settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
                    value: settings.maxConcurrentStreams
                )
            )
        case .client:
            entries.append(nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0))
        }
        try check(nghttp2_submit_settings(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), entries, entries.count))
        try check(
            nghttp2_session_set_local_window_size(
                self.session,
                UInt8(NGHTTP2_FLAG_NONE.rawValue),
                0,
                Int32(clamping: settings.connectionWindowBytes)
            )
        )
    }

    deinit { nghttp2_session_del(self.session) }

    // MARK: Input

    /// Feeds bytes received from the peer and appends what happened to `events`.
    /// - Throws: ``NGHTTP2Error`` when the peer broke the protocol badly enough that the session is dead
    ///   (nghttp2 has queued a GOAWAY: send it, then close).
    public func feed(_ bytes: UnsafeRawBufferPointer, into events: inout [HTTP2Event]) throws(NGHTTP2Error) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        swap(&self.events, &events)
        defer { swap(&self.events, &events) }
        let consumed = nghttp2_session_mem_recv(
            self.session,
            base.assumingMemoryBound(to: UInt8.self),
            bytes.count
        )
        if consumed < 0 { throw NGHTTP2Error(code: Int32(consumed)) }
    }

    /// Convenience for tests and small inputs.
    public func feed(_ bytes: [UInt8], into events: inout [HTTP2Event]) throws(NGHTTP2Error) {
        var failure: NGHTTP2Error?
        bytes.withUnsafeBytes { raw in
            do throws(NGHTTP2Error) { try self.feed(raw, into: &events) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    // MARK: Output

    /// Appends frames ready to go out to `output`, until nothing is left or `output` holds `limit`
    /// bytes. Events raised while framing (body bytes taken, streams closed) go to `events`.
    /// - Throws: ``NGHTTP2Error`` when the session failed; close the connection.
    ///
    /// DATA frames are written by the session itself (`NGHTTP2_DATA_FLAG_NO_COPY`): nghttp2 frames the header and
    /// the payload goes from the stream's queue straight into `output`, instead of through nghttp2's frame buffer.
    public func send(into output: inout [UInt8], limit: Int, events: inout [HTTP2Event]) throws(NGHTTP2Error) {
        swap(&self.events, &events)
        swap(&self.output, &output)
        self.outputLimit = limit
        defer {
            swap(&self.events, &events)
            swap(&self.output, &output)
        }
        while self.output.count < limit {
            var chunk: UnsafePointer<UInt8>?
            // DATA frames are appended to `self.output` during this call (``writeData(_:header:count:)``), which
            // returns 0 once they reach the limit; what it returns comes after them.
            let count = nghttp2_session_mem_send(self.session, &chunk)
            if count < 0 { throw NGHTTP2Error(code: Int32(count)) }
            guard count > 0, let chunk else {
                if self.submitResetsAfterResponse() { continue }
                return
            }
            self.output.append(contentsOf: UnsafeBufferPointer(start: chunk, count: count))
        }
    }

    /// Whether the session still wants to read or write; when both are false the connection can close.
    public var isActive: Bool {
        nghttp2_session_want_read(self.session) != 0 || nghttp2_session_want_write(self.session) != 0
    }

    /// Whether frames are waiting to be produced by ``send(into:limit:events:)``.
    public var wantsWrite: Bool { nghttp2_session_want_write(self.session) != 0 }

    // MARK: Submitting

    /// Opens a stream with a request (client role). With `endStream` the request has no body;
    /// otherwise the body comes through ``enqueueData(streamID:_:)``.
    /// - Returns: the new stream's ID.
    /// - Throws: ``NGHTTP2Error``, e.g. when stream IDs are exhausted or the session is going away.
    public func submitRequest(_ headers: [HeaderField], endStream: Bool) throws(NGHTTP2Error) -> Int32 {
        let streamID = withNameValues(headers) { nva, count in
            if endStream {
                return nghttp2_submit_request(self.session, nil, nva, count, nil, nil)
            }
            var provider = Self.makeProvider()
            return nghttp2_submit_request(self.session, nil, nva, count, &provider, nil)
        }
        try check(streamID)
        if !endStream { self.outbound[streamID] = self.makeBody() }
        return streamID
    }

    /// Sends response headers on a peer's stream (server role). With `endStream` this is the whole
    /// response (a gRPC trailers-only response); otherwise the body follows.
    /// - Throws: ``NGHTTP2Error`` when the stream is gone.
    public func submitResponse(streamID: Int32, _ headers: [HeaderField], endStream: Bool) throws(NGHTTP2Error) {
        // nghttp2 accepts a response for a stream that is already gone and drops it at send time; refuse
        // here so no body queue is left behind for a stream that will never close again.
        guard nghttp2_session_find_stream(self.session, streamID) != nil else {
            throw NGHTTP2Error(code: NGHTTP2_ERR_STREAM_CLOSED.rawValue)
        }
        let code = withNameValues(headers) { nva, count in
            if endStream {
                return nghttp2_submit_response(self.session, streamID, nva, count, nil)
            }
            var provider = Self.makeProvider()
            return nghttp2_submit_response(self.session, streamID, nva, count, &provider)
        }
        try check(code)
        if !endStream { self.outbound[streamID] = self.makeBody() }
    }

    /// Sends trailers (HEADERS with END_STREAM) on a stream whose body has ended but whose trailers did not go out
    /// (``HTTP2Event/headersNotSent(streamID:kind:error:)`` with ``HeaderBlockKind/trailers``): the stream's end is
    /// still ours to send. Trailers that follow a body normally go with ``finishBody(streamID:trailers:)``.
    /// - Throws: ``NGHTTP2Error`` when the stream is gone.
    public func submitTrailers(streamID: Int32, _ trailers: [HeaderField]) throws(NGHTTP2Error) {
        guard nghttp2_session_find_stream(self.session, streamID) != nil else {
            throw NGHTTP2Error(code: NGHTTP2_ERR_STREAM_CLOSED.rawValue)
        }
        try check(withNameValues(trailers) { nva, count in nghttp2_submit_trailer(self.session, streamID, nva, count) })
    }

    /// Queues body bytes for a stream submitted with a body.
    /// - Returns: false when the stream no longer takes a body (closed or ended): the caller owns the
    ///   bytes and must account for them itself.
    @discardableResult
    public func enqueueData(streamID: Int32, _ bytes: ArraySlice<UInt8>) -> Bool {
        guard let body = self.outbound[streamID] else { return false }
        guard !bytes.isEmpty else { return true }
        guard body.append(bytes) else { return false }
        self.resume(streamID, body)
        return true
    }

    /// Queues body bytes; see ``enqueueData(streamID:_:)-(_,ArraySlice<UInt8>)``.
    @discardableResult
    public func enqueueData(streamID: Int32, _ bytes: [UInt8]) -> Bool {
        self.enqueueData(streamID: streamID, bytes[...])
    }

    /// Ends a stream's body once the queued bytes are out; with `trailers`, they close the stream.
    public func finishBody(streamID: Int32, trailers: [HeaderField]? = nil) {
        guard let body = self.outbound[streamID], body.finish(trailers: trailers) else { return }
        self.resume(streamID, body)
    }

    /// Bytes queued for a stream and not yet framed.
    public func queuedBytes(streamID: Int32) -> Int { self.outbound[streamID]?.count ?? 0 }

    /// Resets a stream with an HTTP/2 error code. Queued body bytes are dropped (and reported as
    /// consumed once the stream closes).
    public func resetStream(_ streamID: Int32, errorCode: UInt32) {
        _ = nghttp2_submit_rst_stream(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, errorCode)
    }

    /// Resets a stream with NO_ERROR once our side has ended it (the response sent whole), for a server that
    /// answered before the request was complete and wants no more of it (RFC 9113 §8.1): the stream then closes at
    /// once instead of whenever the client ends its side. Submitted at once, the reset would go out first and the
    /// response never.
    public func resetAfterResponse(streamID: Int32) {
        self.resetsAfterResponse.append(streamID)
    }

    /// Submits the resets of ``resetsAfterResponse(streamID:)`` whose stream's end went out; whether it submitted any.
    private func submitResetsAfterResponse() -> Bool {
        guard !self.resetsAfterResponse.isEmpty else { return false }
        var submitted = false
        self.resetsAfterResponse.removeAll { streamID in
            switch nghttp2_session_get_stream_local_close(self.session, streamID) {
            case 1:
                self.resetStream(streamID, errorCode: HTTP2ErrorCode.noError)
                submitted = true
                return true
            case 0: return false
            default: return true  // the stream is gone
            }
        }
        return submitted
    }

    /// Tells the session that `count` received body bytes of a stream were passed on: both the stream
    /// and the connection window reopen by that much. Works for closed streams too (connection only).
    public func consume(streamID: Int32, count: Int) {
        guard count > 0 else { return }
        if nghttp2_session_consume(self.session, streamID, count) != 0 {
            _ = nghttp2_session_consume_connection(self.session, count)
        }
    }

    /// Reopens the connection window alone by `count` received bytes; their stream's window stays shut until
    /// ``consumeStream(streamID:count:)``. With both, a proxy can keep a connection shared by many streams open
    /// while one stream's reader is slow.
    public func consumeConnection(count: Int) {
        guard count > 0 else { return }
        _ = nghttp2_session_consume_connection(self.session, count)
    }

    /// Reopens one stream's window alone by `count` received bytes; nothing for a closed stream.
    public func consumeStream(streamID: Int32, count: Int) {
        guard count > 0 else { return }
        _ = nghttp2_session_consume_stream(self.session, streamID, count)
    }

    /// First step of a graceful shutdown (server role): a GOAWAY with the highest stream ID, telling
    /// the client to open no new streams while the ones it may have in flight still count.
    public func submitShutdownNotice() {
        _ = nghttp2_submit_shutdown_notice(self.session)
    }

    /// Queues a PING (with zero opaque data). nghttp2 answers the peer's PINGs by itself; the answer to ours is
    /// read like any frame, so it shows as activity on the connection.
    public func submitPing() {
        _ = nghttp2_submit_ping(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nil)
    }

    /// A GOAWAY naming the last stream we processed. Streams above it were never seen by us.
    public func submitGoaway(errorCode: UInt32) {
        let last = nghttp2_session_get_last_proc_stream_id(self.session)
        _ = nghttp2_submit_goaway(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), last, errorCode, nil, 0)
    }

    /// How many DATA bytes the peer's connection-level window lets us send now.
    public var remoteConnectionWindow: Int {
        Int(nghttp2_session_get_remote_window_size(self.session))
    }

    /// The peer's SETTINGS_MAX_CONCURRENT_STREAMS (100 until its SETTINGS arrive, on a client).
    public var remoteMaxConcurrentStreams: Int {
        Int(nghttp2_session_get_remote_settings(self.session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS))
    }

    private func resume(_ streamID: Int32, _ body: OutboundBody) {
        guard body.deferred else { return }
        body.deferred = false
        _ = nghttp2_session_resume_data(self.session, streamID)
    }

    /// An empty body queue: a spare one when there is one.
    private func makeBody() -> OutboundBody {
        self.spareBodies.popLast() ?? OutboundBody()
    }
}

@available(*, unavailable)
extension HTTP2Session: Sendable {}

// MARK: - Buffers

extension HTTP2Session {
    /// A queue of body chunks for one stream, read front to back by the data provider.
    ///
    /// A class, mutated through the reference the dictionary holds: as a struct stored in the dictionary, every
    /// change went through `Dictionary`'s `_modify` accessor, whose coroutine frame was allocated on the heap on
    /// each call, and the provider's copy made the chunk array copy itself when it was emptied. Queues of closed
    /// streams are emptied and reused (see ``HTTP2Session/spareBodies``), so a stream usually allocates nothing.
    final class OutboundBody {
        private var chunks: [ArraySlice<UInt8>] = []
        private var head = 0
        private var offset = 0
        private(set) var count = 0
        private(set) var ended = false
        private(set) var trailers: [HeaderField]?
        /// The provider returned NGHTTP2_ERR_DEFERRED and waits for `nghttp2_session_resume_data`.
        var deferred = false

        /// A chunk array with room for more entries than this is not kept for reuse: a peer that sent a body in
        /// many tiny DATA frames must not leave large arrays behind in the spare queues.
        static let maxKeptChunks = 16

        /// Drops what is queued (the chunks' buffers are released) but keeps the chunk array's capacity, unless
        /// it is larger than ``maxKeptChunks``.
        func reset() {
            if self.chunks.capacity > Self.maxKeptChunks {
                self.chunks = []
            } else {
                self.chunks.removeAll(keepingCapacity: true)
            }
            self.head = 0
            self.offset = 0
            self.count = 0
            self.ended = false
            self.trailers = nil
            self.deferred = false
        }

        func append(_ bytes: ArraySlice<UInt8>) -> Bool {
            guard !self.ended else { return false }
            self.chunks.append(bytes)
            self.count += bytes.count
            return true
        }

        func finish(trailers: [HeaderField]?) -> Bool {
            guard !self.ended else { return false }
            self.ended = true
            self.trailers = trailers
            return true
        }

        /// Moves up to `count` queued bytes, oldest first, to the end of `output`; returns how many.
        func take(_ count: Int, appendingTo output: inout [UInt8]) -> Int {
            var written = 0
            while written < count, self.head < self.chunks.count {
                let chunk = self.chunks[self.head]
                let n = min(chunk.count - self.offset, count - written)
                let start = chunk.startIndex + self.offset
                output.append(contentsOf: chunk[start..<(start + n)])
                written += n
                self.offset += n
                if self.offset == chunk.count {
                    self.chunks[self.head] = []
                    self.head += 1
                    self.offset = 0
                }
            }
            if self.head == self.chunks.count {
                self.chunks.removeAll(keepingCapacity: true)
                self.head = 0
            } else if self.head > 32 {
                self.chunks.removeFirst(self.head)
                self.head = 0
            }
            self.count -= written
            return written
        }
    }
}

// MARK: - C callbacks

extension HTTP2Session {
    fileprivate static func from(_ userData: UnsafeMutableRawPointer?) -> HTTP2Session? {
        guard let userData else { return nil }
        return Unmanaged<HTTP2Session>.fromOpaque(userData).takeUnretainedValue()
    }

    private static func makeProvider() -> nghttp2_data_provider {
        var provider = nghttp2_data_provider()
        provider.read_callback = { _, streamID, _, length, flags, _, userData in
            guard let session = HTTP2Session.from(userData), let flags else {
                return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)
            }
            return session.readBody(streamID: streamID, limit: length, flags: flags)
        }
        return provider
    }

    /// Writes a DATA frame the provider announced with `NGHTTP2_DATA_FLAG_NO_COPY`: nghttp2's 9-byte header, then
    /// `count` bytes taken from the stream's queue (the provider never asks for padding).
    private func writeData(_ frame: nghttp2_frame, header: UnsafePointer<UInt8>, count: Int) -> Int32 {
        let streamID = frame.hd.stream_id
        guard let body = self.outbound[streamID], body.count >= count, frame.data.padlen == 0 else {
            return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
        }
        self.output.append(contentsOf: UnsafeBufferPointer(start: header, count: 9))
        let written = body.take(count, appendingTo: &self.output)
        if written > 0 {
            self.events.append(.outboundConsumed(streamID: streamID, count: written))
        }
        // Without a pause nghttp2 would go on framing DATA within this call, as far as the windows allow.
        return self.output.count < self.outputLimit ? 0 : NGHTTP2_ERR_PAUSE.rawValue
    }

    /// The data provider: tells nghttp2 how many queued bytes the next DATA frame carries (at most `limit`; the
    /// bytes are written by ``writeData(_:header:count:)`` when the frame goes out), defers while the queue is
    /// empty, and ends the body (with trailers when there are any) with the frame that drains it once it is
    /// finished.
    private func readBody(streamID: Int32, limit: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard let body = self.outbound[streamID] else {
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        let length = min(body.count, limit)
        if length > 0 {
            flags.pointee |= NGHTTP2_DATA_FLAG_NO_COPY.rawValue
        }
        if body.count == length {
            if body.ended {
                flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
                if let trailers = body.trailers {
                    flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                    _ = withNameValues(trailers) { nva, count in
                        nghttp2_submit_trailer(self.session, streamID, nva, count)
                    }
                }
            } else if length == 0 {
                body.deferred = true
                return Int(NGHTTP2_ERR_DEFERRED.rawValue)
            }
        }
        return length
    }

    private static func install(_ callbacks: OpaquePointer?) {
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, userData in
            guard let session = HTTP2Session.from(userData), let frame else { return 0 }
            session.beginHeaders(frame.pointee)
            return 0
        }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) {
            _,
            _,
            name,
            nameLength,
            value,
            valueLength,
            _,
            userData in
            guard let session = HTTP2Session.from(userData), let name, let value else { return 0 }
            return session.header(
                name: UnsafeBufferPointer(start: name, count: nameLength),
                value: UnsafeBufferPointer(start: value, count: valueLength)
            )
        }
        nghttp2_session_callbacks_set_on_invalid_header_callback(callbacks) {
            _,
            frame,
            name,
            nameLength,
            _,
            _,
            _,
            userData in
            guard let session = HTTP2Session.from(userData), let frame, let name else {
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
            }
            return session.invalidHeader(
                streamID: frame.pointee.hd.stream_id,
                name: UnsafeBufferPointer(start: name, count: nameLength)
            )
        }
        nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks) { _, frame, errorCode, userData in
            guard let session = HTTP2Session.from(userData), let frame else { return 0 }
            session.invalidFrame(frame.pointee, errorCode: errorCode)
            return 0
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            guard let session = HTTP2Session.from(userData), let frame else { return 0 }
            session.frameReceived(frame.pointee)
            return 0
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, streamID, data, length, userData in
            guard let session = HTTP2Session.from(userData), let data, length > 0 else { return 0 }
            session.events.append(
                .data(streamID: streamID, bytes: Array(UnsafeBufferPointer(start: data, count: length)))
            )
            return 0
        }
        nghttp2_session_callbacks_set_send_data_callback(callbacks) { _, frame, header, length, _, userData in
            guard let session = HTTP2Session.from(userData), let frame, let header else {
                return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
            }
            return session.writeData(frame.pointee, header: header, count: length)
        }
        nghttp2_session_callbacks_set_on_frame_not_send_callback(callbacks) { _, frame, errorCode, userData in
            guard let session = HTTP2Session.from(userData), let frame else { return 0 }
            session.frameNotSent(frame.pointee, errorCode: errorCode)
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, userData in
            guard let session = HTTP2Session.from(userData) else { return 0 }
            session.streamClosed(streamID, errorCode: errorCode)
            return 0
        }
    }

    private func beginHeaders(_ frame: nghttp2_frame) {
        let kind: HeaderBlockKind
        switch frame.headers.cat {
        case NGHTTP2_HCAT_REQUEST: kind = .request
        case NGHTTP2_HCAT_RESPONSE: kind = .response
        default: kind = .trailers
        }
        self.headers.begin(streamID: frame.hd.stream_id, kind: kind)
    }

    /// One field of a header block. A peer's request header block over the limit ends there: its fields so far
    /// arrive at once as an oversized block, and nghttp2 is told to reset the stream
    /// (`NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE`), after which it decodes the rest of the block without checking or
    /// passing on its fields. Going on field by field (dropping them) let 147 KB of one-byte references to a 4 KB
    /// header in the HPACK table cost 75 ms of the loop's time, as nghttp2 validated 590 MB of values (a red-team
    /// run). A peer's request trailers over the limit reset the stream the same way, and arrive as an oversized
    /// block too (a red-team run sent thousands that were neither recorded nor counted). In the client role
    /// (responses from Milvus) blocks keep their fields up to the limit and drop the rest.
    private func header(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) -> Int32 {
        guard !self.headers.field(name: name, value: value), self.role == .server else { return 0 }
        let streamID = self.headers.currentStreamID
        // Before nghttp2's own reset (INTERNAL_ERROR, which gRPC clients read as INTERNAL and pymilvus retries):
        // ENHANCE_YOUR_CALM reads as RESOURCE_EXHAUSTED, which it does not.
        self.resetStream(streamID, errorCode: HTTP2ErrorCode.enhanceYourCalm)
        if let block = self.headers.end(streamID: streamID) {
            self.events.append(
                .headers(
                    streamID: block.streamID,
                    kind: block.kind,
                    fields: block.fields,
                    endStream: false,
                    oversized: true,
                    listBytes: block.bytes
                )
            )
        }
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
    }

    /// A regular header field nghttp2 found invalid but may leave out (a space in a name, a NUL, CR or LF in a value;
    /// nghttp2 1.52 resets upper-case names itself, see ``invalidFrame(_:errorCode:)``). Without this callback
    /// nghttp2 resets the stream (PROTOCOL_ERROR, which a gRPC client reads as INTERNAL and pymilvus retries) and
    /// nobody hears of it. In the server role the field is left out (returning 0) and an ``HTTP2Event/invalidHeaderField(streamID:name:)``
    /// event says so, for the proxy to refuse the call with a status and record it; in the client role (Milvus's
    /// responses) the stream is reset as before.
    private func invalidHeader(streamID: Int32, name: UnsafeBufferPointer<UInt8>) -> Int32 {
        guard self.role == .server else { return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue }
        var printable = ""
        for byte in name.prefix(64) {
            printable +=
                byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\\")
                ? String(UnicodeScalar(byte)) : "\\x" + String(byte, radix: 16)
        }
        if name.count > 64 { printable += "…" }
        self.events.append(.invalidHeaderField(streamID: streamID, name: printable))
        return 0
    }

    /// A frame nghttp2 refused. For a peer's request header block that HTTP/2 forbids outright (an upper-case
    /// name, a bad pseudo-header: nghttp2 has queued RST_STREAM PROTOCOL_ERROR), a
    /// ``HTTP2Event/requestReset(streamID:fields:reason:)`` event, so that the proxy records and counts what it
    /// would otherwise never hear of. Other refused frames are nghttp2's business (it answers them itself).
    private func invalidFrame(_ frame: nghttp2_frame, errorCode: Int32) {
        guard self.role == .server, UInt32(frame.hd.type) == NGHTTP2_HEADERS.rawValue, frame.hd.stream_id > 0,
            errorCode == NGHTTP2_ERR_HTTP_HEADER.rawValue || errorCode == NGHTTP2_ERR_HTTP_MESSAGING.rawValue
        else { return }
        let fields = self.headers.end(streamID: frame.hd.stream_id)?.fields ?? []
        let reason = String(cString: nghttp2_strerror(errorCode))
        self.events.append(.requestReset(streamID: frame.hd.stream_id, fields: fields, reason: reason))
    }

    private func frameReceived(_ frame: nghttp2_frame) {
        let endStream = frame.hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch UInt32(frame.hd.type) {
        case NGHTTP2_HEADERS.rawValue:
            guard let block = self.headers.end(streamID: frame.hd.stream_id) else { return }
            self.events.append(
                .headers(
                    streamID: block.streamID,
                    kind: block.kind,
                    fields: block.fields,
                    endStream: endStream,
                    oversized: block.oversized,
                    listBytes: block.bytes
                )
            )
        case NGHTTP2_DATA.rawValue:
            if endStream { self.events.append(.endStream(streamID: frame.hd.stream_id)) }
        case NGHTTP2_SETTINGS.rawValue:
            if frame.hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) == 0 { self.events.append(.remoteSettingsChanged) }
        case NGHTTP2_GOAWAY.rawValue:
            self.events.append(.goaway(lastStreamID: frame.goaway.last_stream_id, errorCode: frame.goaway.error_code))
        default:
            break
        }
    }

    /// A frame we submitted that nghttp2 did not send (it calls back only for errors that leave the session usable).
    /// For a HEADERS frame on a stream, a ``HTTP2Event/headersNotSent(streamID:kind:error:)`` event: without it, a
    /// response or trailers block over the send limit left the client's stream open with nothing more to come, and
    /// the client waited until its deadline, forever without one (a red-team run). A response's body queue is
    /// dropped: its provider was to be attached once the HEADERS went out, so it never will be, and the stream may
    /// take a trailers-only response instead.
    private func frameNotSent(_ frame: nghttp2_frame, errorCode: Int32) {
        let streamID = frame.hd.stream_id
        guard UInt32(frame.hd.type) == NGHTTP2_HEADERS.rawValue, streamID > 0 else { return }
        let kind: HeaderBlockKind
        switch frame.headers.cat {
        case NGHTTP2_HCAT_REQUEST: kind = .request
        case NGHTTP2_HCAT_RESPONSE: kind = .response
        default: kind = .trailers
        }
        if kind == .response { self.dropBody(of: streamID) }
        self.events.append(.headersNotSent(streamID: streamID, kind: kind, error: NGHTTP2Error(code: errorCode)))
    }

    private func streamClosed(_ streamID: Int32, errorCode: UInt32) {
        self.dropBody(of: streamID)
        self.events.append(.streamClosed(streamID: streamID, errorCode: errorCode))
    }

    /// Drops the body queue of `streamID`, if it has one, keeping the buffer for another stream.
    private func dropBody(of streamID: Int32) {
        guard let body = self.outbound.removeValue(forKey: streamID) else { return }
        if body.count > 0 {
            // Dropped bytes count as consumed: the side that sent them must get its window back.
            self.events.append(.outboundConsumed(streamID: streamID, count: body.count))
        }
        body.reset()
        if self.spareBodies.count < Self.maxSpareBodies { self.spareBodies.append(body) }
    }
}

/// Calls `body` with an `nghttp2_nv` array over the fields. nghttp2 copies name/value pairs in every
/// submit call, so the pointers only need to live for the call: names and values are copied into one
/// temporary buffer (on the stack when small), and so is the array.
private func withNameValues<R>(
    _ fields: [HeaderField],
    _ body: (UnsafePointer<nghttp2_nv>, Int) -> R
) -> R {
    // Fields are visited by index through the array's buffer: iterating copies each field, a retain and a
    // release of its name and value.
    fields.withUnsafeBufferPointer { fields in
        var total = 0
        for index in fields.indices { total += fields[index].name.utf8.count + fields[index].value.utf8.count }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(total, 1)) { storage in
            withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: max(fields.count, 1)) { nva in
                var offset = 0
                for index in fields.indices {
                    let name = copyUTF8(fields[index].name, into: storage, at: offset)
                    let value = copyUTF8(fields[index].value, into: storage, at: offset + name)
                    nva.initializeElement(
                        at: index,
                        to: nghttp2_nv(
                            name: storage.baseAddress! + offset,
                            value: storage.baseAddress! + offset + name,
                            namelen: name,
                            valuelen: value,
                            flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
                        )
                    )
                    offset += name + value
                }
                defer { _ = nva.prefix(fields.count).deinitialize() }
                return body(UnsafePointer(nva.baseAddress!), fields.count)
            }
        }
    }
}

/// Copies a string's UTF-8 bytes into `buffer` at `offset`; returns how many. The buffer holds at least
/// `text.utf8.count` bytes from `offset`.
private func copyUTF8(_ text: String, into buffer: UnsafeMutableBufferPointer<UInt8>, at offset: Int) -> Int {
    // Native strings are contiguous: read in place, without the copy a mutating `withUTF8` needs.
    let copied = text.utf8.withContiguousStorageIfAvailable { bytes -> Int in
        guard let source = bytes.baseAddress, bytes.count > 0 else { return 0 }
        (buffer.baseAddress! + offset).update(from: source, count: bytes.count)
        return bytes.count
    }
    if let copied { return copied }
    var count = 0
    for byte in text.utf8 {
        buffer[offset + count] = byte
        count += 1
    }
    return count
}
