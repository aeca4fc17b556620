import Foundation
import MilvusCatalog
import ProtoWire
import Testing

/// Replays FuzzTesting/Seeds/FuzzCatalog (the committed seeds, and every crasher scripts/fuzz ever found, which
/// are copied there as `crash-*`) through the same checks as the libFuzzer harness.
///
/// Input layout, as in FuzzTesting/Sources/FuzzCatalog: byte 0 picks the RPC, byte 1 the chunking, the rest is a
/// gRPC body.
@Suite("Fuzz corpus replay")
struct FuzzRegressionTests {
    static let seeds: [URL] = {
        let directory = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("FuzzTesting/Seeds/FuzzCatalog")
        let files = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? []
        return files.sorted { $0.lastPathComponent < $1.lastPathComponent }
    }()

    static func frames(_ body: ArraySlice<UInt8>, chunk: Int) -> (payloads: [[UInt8]], error: WireError.Code?) {
        var decoder = GRPCFrameDecoder(maxMessageSize: 1 << 16)
        var payloads: [[UInt8]] = []
        var index = body.startIndex
        do throws(WireError) {
            while index < body.endIndex {
                let end = min(index + chunk, body.endIndex)
                try decoder.append(body[index..<end])
                while let message = decoder.nextMessage() { payloads.append(Array(message.payload)) }
                index = end
            }
            try decoder.finish()
            return (payloads, nil)
        } catch {
            return (payloads, error.code)
        }
    }

    @Test("The seed corpus is present")
    func corpusPresent() {
        #expect(Self.seeds.count >= 10)
    }

    @Test("Each seed frames the same in any chunking and decodes or fails cleanly", arguments: Self.seeds)
    func replay(file: URL) throws {
        let input = [UInt8](try Data(contentsOf: file))
        guard input.count >= 2 else { return }
        let rpc = MilvusRPCs.all[Int(input[0]) % MilvusRPCs.all.count]
        let body = input[2...]
        let whole = Self.frames(body, chunk: max(body.count, 1))
        for chunk in [1, 2, 3, 7] {
            let chunked = Self.frames(body, chunk: chunk)
            #expect(chunked.error == whole.error)
            #expect(chunked.payloads == whole.payloads)
        }
        for payload in whole.payloads + [Array(body)] {
            do {
                let call = try MilvusCall(decoding: payload[...], rpc: rpc, metadataDatabase: nil)
                #expect(rpc.targetsOwnDatabase || !call.database.isEmpty)
            } catch {
                #expect(error.offset >= 0 && error.offset <= payload.count)
            }
        }
    }
}
