/// Collects the fields of the header block being received, for ``HTTP2Session``'s callbacks.
///
/// One value the session mutates once per callback: nghttp2 calls back once per header field, and every access to
/// a stored property of a class that mutates it is a dynamic exclusivity check (`swift_beginAccess`), so the
/// block, its byte count, the string cache and the size hints live together here rather than as several
/// properties of the session.
struct HeaderBlockReceiver {
    /// A header block in progress, or just completed.
    struct Block {
        var streamID: Int32 = 0
        var kind: HeaderBlockKind = .request
        var fields: [HeaderField] = []
        var bytes = 0
        var oversized = false
    }

    /// The header list size (RFC 9113 §6.5.2: names, values and 32 bytes per field) past which a block is
    /// marked oversized and its further fields are dropped.
    let maxHeaderListBytes: Int
    /// HTTP/2 forbids interleaving header blocks (RFC 9113 §6.10), so one is enough.
    private var block = Block()
    /// How many fields the last header block of each kind had: the next block of that kind reserves room for
    /// as many, so its array is allocated once instead of growing field by field.
    private var expectedFields = (request: 8, response: 4, trailers: 2)
    /// Strings of header names and values this peer sent recently (beyond ``KnownHeaders``).
    private var strings = HeaderStringCache()
    /// The most fields a header block reserves room for before its first field arrives.
    static let maxExpectedFields = 32

    init(maxHeaderListBytes: Int) {
        self.maxHeaderListBytes = maxHeaderListBytes
    }

    /// A block starts on `streamID`.
    mutating func begin(streamID: Int32, kind: HeaderBlockKind) {
        self.block = Block(streamID: streamID, kind: kind)
        let expected =
            switch kind {
            case .request: self.expectedFields.request
            case .response: self.expectedFields.response
            case .trailers: self.expectedFields.trailers
            }
        self.block.fields.reserveCapacity(expected)
    }

    /// One field of the current block.
    /// - Returns: false once the block is over ``maxHeaderListBytes`` (the field is dropped).
    mutating func field(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) -> Bool {
        self.block.bytes += name.count + value.count + 32
        if self.block.bytes > self.maxHeaderListBytes {
            self.block.oversized = true
            return false
        }
        let name = self.strings.string(name)
        let value = self.strings.string(value)
        self.block.fields.append(HeaderField(name, value))
        return true
    }

    /// The stream of the block in progress.
    var currentStreamID: Int32 { self.block.streamID }

    /// The block of `streamID` ended: returns it (nil if no block of that stream was in progress).
    mutating func end(streamID: Int32) -> Block? {
        guard streamID == self.block.streamID else { return nil }
        let block = self.block
        self.block = Block()
        // Bounded, so that one peer's huge block does not make every later one reserve as much.
        let count = min(block.fields.count, Self.maxExpectedFields)
        switch block.kind {
        case .request: self.expectedFields.request = count
        case .response: self.expectedFields.response = count
        case .trailers: self.expectedFields.trailers = count
        }
        return block
    }
}
