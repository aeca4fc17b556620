import NGHTTP2Support
import Testing

/// An ``HTTP2Event`` in a comparable form (the event enum itself is not `Equatable`).
enum Seen: Equatable, CustomStringConvertible {
    case headers(Int32, HeaderBlockKind, [HeaderField], endStream: Bool, oversized: Bool)
    case data(Int32, [UInt8])
    case endStream(Int32)
    case closed(Int32, errorCode: UInt32)
    case settings
    case goaway(lastStreamID: Int32, errorCode: UInt32)
    case consumed(Int32, Int)
    case invalid(Int32, String)
    case reset(Int32, String)
    case notSent(Int32, HeaderBlockKind, tooLarge: Bool)

    init(_ event: HTTP2Event) {
        switch event {
        case .headers(let streamID, let kind, let fields, let endStream, let oversized, _):
            self = .headers(streamID, kind, fields, endStream: endStream, oversized: oversized)
        case .data(let streamID, let bytes): self = .data(streamID, bytes)
        case .endStream(let streamID): self = .endStream(streamID)
        case .streamClosed(let streamID, let errorCode): self = .closed(streamID, errorCode: errorCode)
        case .remoteSettingsChanged: self = .settings
        case .goaway(let lastStreamID, let errorCode): self = .goaway(lastStreamID: lastStreamID, errorCode: errorCode)
        case .outboundConsumed(let streamID, let count): self = .consumed(streamID, count)
        case .invalidHeaderField(let streamID, let name): self = .invalid(streamID, name)
        case .requestReset(let streamID, _, let reason): self = .reset(streamID, reason)
        case .headersNotSent(let streamID, let kind, let error):
            self = .notSent(streamID, kind, tooLarge: error.isTooLarge)
        }
    }

    var description: String {
        switch self {
        case .headers(let id, let kind, let fields, let endStream, let oversized):
            let list = fields.map { "\($0.name)=\($0.value.prefix(40))" }.joined(separator: ",")
            return "headers(\(id),\(kind),[\(list)],end:\(endStream),oversized:\(oversized))"
        case .data(let id, let bytes): return "data(\(id),\(bytes.count) bytes)"
        case .endStream(let id): return "endStream(\(id))"
        case .closed(let id, let code): return "closed(\(id),\(code))"
        case .settings: return "settings"
        case .goaway(let last, let code): return "goaway(\(last),\(code))"
        case .consumed(let id, let count): return "consumed(\(id),\(count))"
        case .invalid(let id, let name): return "invalid(\(id),\(name))"
        case .reset(let id, let reason): return "reset(\(id),\(reason))"
        case .notSent(let id, let kind, let tooLarge): return "notSent(\(id),\(kind),tooLarge:\(tooLarge))"
        }
    }

    /// Merges adjacent DATA chunks of one stream: how nghttp2 slices a payload into
    /// `on_data_chunk_recv` calls depends on how the input was split, and carries no meaning.
    static func coalesced(_ events: [Seen]) -> [Seen] {
        var out: [Seen] = []
        for event in events {
            if case .data(let id, let bytes) = event, case .data(let lastID, let lastBytes)? = out.last, lastID == id {
                out[out.count - 1] = .data(id, lastBytes + bytes)
            } else {
                out.append(event)
            }
        }
        return out
    }
}

extension Array where Element == Seen {
    /// All DATA bytes of a stream, in order.
    func body(of streamID: Int32) -> [UInt8] {
        self.flatMap { event -> [UInt8] in
            if case .data(let id, let bytes) = event, id == streamID { bytes } else { [] }
        }
    }

    /// Everything but SETTINGS notifications and outbound accounting: what the peer told us.
    var received: [Seen] {
        self.filter {
            switch $0 {
            case .settings, .consumed: false
            default: true
            }
        }
    }

    /// The sum of `outboundConsumed` counts for a stream.
    func consumedBytes(of streamID: Int32) -> Int {
        self.reduce(0) { sum, event in
            if case .consumed(let id, let count) = event, id == streamID { sum + count } else { sum }
        }
    }
}

/// A client and a server session wired back to back in memory.
struct SessionPair {
    let client: HTTP2Session
    let server: HTTP2Session
    /// Events, in order, of each side (feed and send events interleaved as they happened).
    var clientSeen: [Seen] = []
    var serverSeen: [Seen] = []
    /// Every byte each side sent, for replaying.
    var clientBytes: [UInt8] = []
    var serverBytes: [UInt8] = []

    init(
        client: HTTP2SessionSettings = HTTP2SessionSettings(),
        server: HTTP2SessionSettings = HTTP2SessionSettings()
    ) throws {
        self.client = try HTTP2Session(role: .client, settings: client)
        self.server = try HTTP2Session(role: .server, settings: server)
    }

    /// The standard gRPC request headers for `path`.
    static func requestHeaders(path: String = "/milvus.proto.milvus.MilvusService/Search") -> [HeaderField] {
        [
            HeaderField(":method", "POST"),
            HeaderField(":scheme", "http"),
            HeaderField(":authority", "localhost:19530"),
            HeaderField(":path", path),
            HeaderField("content-type", "application/grpc"),
            HeaderField("te", "trailers"),
        ]
    }

    static let responseHeaders = [HeaderField(":status", "200"), HeaderField("content-type", "application/grpc")]

    /// Moves bytes both ways until neither session has anything to send.
    mutating func pump() throws {
        for _ in 0..<1000 {
            let toServer = try self.clientFlush()
            if !toServer.isEmpty { try self.serverFeed(toServer) }
            let toClient = try self.serverFlush()
            if !toClient.isEmpty { try self.clientFeed(toClient) }
            if toServer.isEmpty && toClient.isEmpty { return }
        }
        Issue.record("the sessions did not settle")
    }

    mutating func clientFlush() throws -> [UInt8] {
        var output: [UInt8] = []
        var events: [HTTP2Event] = []
        try self.client.send(into: &output, limit: .max, events: &events)
        self.clientSeen += events.map(Seen.init)
        self.clientBytes += output
        return output
    }

    mutating func serverFlush() throws -> [UInt8] {
        var output: [UInt8] = []
        var events: [HTTP2Event] = []
        try self.server.send(into: &output, limit: .max, events: &events)
        self.serverSeen += events.map(Seen.init)
        self.serverBytes += output
        return output
    }

    mutating func serverFeed(_ bytes: [UInt8]) throws {
        var events: [HTTP2Event] = []
        defer { self.serverSeen += events.map(Seen.init) }
        try self.server.feed(bytes, into: &events)
    }

    mutating func clientFeed(_ bytes: [UInt8]) throws {
        var events: [HTTP2Event] = []
        defer { self.clientSeen += events.map(Seen.init) }
        try self.client.feed(bytes, into: &events)
    }
}

/// Feeds `bytes` to `session` in pieces cut at `cuts` (sorted offsets) and returns the events.
func feed(_ session: HTTP2Session, _ bytes: [UInt8], cuts: [Int]) throws -> [Seen] {
    var events: [HTTP2Event] = []
    var start = 0
    for cut in cuts + [bytes.count] where cut > start {
        try session.feed(Array(bytes[start..<cut]), into: &events)
        start = cut
    }
    return events.map(Seen.init)
}
