import NGHTTP2Support
import Testing

/// The sessions must not care how the byte stream is cut: each exchange is recorded once, then replayed
/// into fresh sessions one byte at a time and cut in two at every index.
@Suite("HTTP2Session: input split at every byte boundary")
struct HTTP2SessionSplitFeedTests {
    /// One exchange: what the client submits, and how the server answers what it received.
    struct Scenario: CustomTestStringConvertible, Sendable {
        let name: String
        let client: @Sendable (HTTP2Session) throws -> Void
        let server: @Sendable (HTTP2Session) throws -> Void
        var testDescription: String { self.name }
    }

    static let body = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 13) }

    static let scenarios: [Scenario] = [
        Scenario(
            name: "request with body, response with body and trailers",
            client: { client in
                let id = try client.submitRequest(SessionPair.requestHeaders(), endStream: false)
                client.enqueueData(streamID: id, body)
                client.finishBody(streamID: id)
            },
            server: { server in
                try server.submitResponse(streamID: 1, SessionPair.responseHeaders, endStream: false)
                server.enqueueData(streamID: 1, body)
                server.finishBody(streamID: 1, trailers: [HeaderField("grpc-status", "0")])
            }
        ),
        Scenario(
            name: "trailers-only response",
            client: { client in _ = try client.submitRequest(SessionPair.requestHeaders(), endStream: true) },
            server: { server in
                try server.submitResponse(
                    streamID: 1,
                    SessionPair.responseHeaders + [HeaderField("grpc-status", "14")],
                    endStream: true
                )
            }
        ),
        Scenario(
            name: "server resets the stream, then sends GOAWAY",
            client: { client in
                let id = try client.submitRequest(SessionPair.requestHeaders(), endStream: false)
                client.enqueueData(streamID: id, [0, 0, 0, 0, 2, 8, 1])
            },
            server: { server in
                server.resetStream(1, errorCode: HTTP2ErrorCode.refusedStream)
                server.submitGoaway(errorCode: HTTP2ErrorCode.noError)
            }
        ),
    ]

    /// The recorded exchange: the client's bytes, the server's events for them, the server's answer and
    /// the client's events for that.
    struct Recording {
        var toServer: [UInt8]
        var serverSeen: [Seen]
        var toClient: [UInt8]
        var clientSeen: [Seen]
    }

    static func record(_ scenario: Scenario) throws -> Recording {
        let (client, toServer) = try self.clientAfterRequest(scenario)
        let server = try HTTP2Session(role: .server)
        let serverSeen = try feed(server, toServer, cuts: [])
        try scenario.server(server)
        var toClient: [UInt8] = []
        var events: [HTTP2Event] = []
        try server.send(into: &toClient, limit: .max, events: &events)
        let clientSeen = try feed(client, toClient, cuts: [])
        return Recording(toServer: toServer, serverSeen: serverSeen, toClient: toClient, clientSeen: clientSeen)
    }

    /// A fresh client that has sent the scenario's request, and the bytes it sent.
    static func clientAfterRequest(_ scenario: Scenario) throws -> (HTTP2Session, [UInt8]) {
        let client = try HTTP2Session(role: .client)
        try scenario.client(client)
        var bytes: [UInt8] = []
        var events: [HTTP2Event] = []
        try client.send(into: &bytes, limit: .max, events: &events)
        return (client, bytes)
    }

    @Test("Feeding one byte at a time gives the same events", arguments: scenarios)
    func oneByteAtATime(_ scenario: Scenario) throws {
        let recording = try Self.record(scenario)
        #expect(!recording.serverSeen.isEmpty && !recording.clientSeen.isEmpty)

        let server = try HTTP2Session(role: .server)
        let serverSeen = try feed(server, recording.toServer, cuts: Array(1..<recording.toServer.count))
        #expect(Seen.coalesced(serverSeen) == Seen.coalesced(recording.serverSeen))

        let (client, _) = try Self.clientAfterRequest(scenario)
        let clientSeen = try feed(client, recording.toClient, cuts: Array(1..<recording.toClient.count))
        #expect(Seen.coalesced(clientSeen) == Seen.coalesced(recording.clientSeen))
    }

    @Test("Cutting the input in two at any index gives the same events", arguments: scenarios)
    func cutInTwo(_ scenario: Scenario) throws {
        let recording = try Self.record(scenario)
        let expectedServer = Seen.coalesced(recording.serverSeen)
        let expectedClient = Seen.coalesced(recording.clientSeen)
        for cut in 1..<recording.toServer.count {
            let server = try HTTP2Session(role: .server)
            let seen = Seen.coalesced(try feed(server, recording.toServer, cuts: [cut]))
            #expect(seen == expectedServer, "server input cut at \(cut)")
            if seen != expectedServer { return }
        }
        for cut in 1..<recording.toClient.count {
            let (client, _) = try Self.clientAfterRequest(scenario)
            let seen = Seen.coalesced(try feed(client, recording.toClient, cuts: [cut]))
            #expect(seen == expectedClient, "client input cut at \(cut)")
            if seen != expectedClient { return }
        }
    }

    @Test("The recorded request exchange has the expected shape")
    func recordedShape() throws {
        let recording = try Self.record(Self.scenarios[0])
        #expect(
            Seen.coalesced(recording.serverSeen) == [
                .settings,
                .headers(1, .request, SessionPair.requestHeaders(), endStream: false, oversized: false),
                .data(1, Self.body),
                .endStream(1),
            ]
        )
        #expect(
            Seen.coalesced(recording.clientSeen) == [
                .settings,
                .headers(1, .response, SessionPair.responseHeaders, endStream: false, oversized: false),
                .data(1, Self.body),
                .headers(1, .trailers, [HeaderField("grpc-status", "0")], endStream: true, oversized: false),
                .closed(1, errorCode: 0),
            ]
        )
    }
}
