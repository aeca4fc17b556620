import Foundation
import MilvusCatalog
import ProtoWire
import Testing

/// One case of Fixtures/golden.json (written by Fixtures/generate.py from pymilvus 3.0.2's protobuf classes).
struct GoldenCase: Decodable, Sendable, CustomTestStringConvertible {
    struct Expect: Decodable, Sendable {
        let database: String
        let collection: String?
        let collections: [String]
        let partitions: [String]
        let indexName: String?
        let fieldName: String?
        let alias: String?
        let filter: String?
        let users: [String]
        let roles: [String]
        let rowCount: UInt32?
        let newCollectionName: String?
        let newDatabase: String?
        let resourceGroups: [String]
        let privilegeGroup: String?
        let snapshotName: String?
        let otherTargets: [[String]]
        let filterParameters: String?
    }

    let name: String
    let rpc: String
    let metadataDatabase: String?
    let hex: String
    let expect: Expect

    var testDescription: String { self.name }

    var bytes: [UInt8] {
        var bytes: [UInt8] = []
        var index = self.hex.startIndex
        while index < self.hex.endIndex {
            let next = self.hex.index(index, offsetBy: 2)
            bytes.append(UInt8(self.hex[index..<next], radix: 16) ?? 0)
            index = next
        }
        return bytes
    }

    static let all: [GoldenCase] = {
        struct File: Decodable { let cases: [GoldenCase] }
        guard let url = Bundle.module.url(forResource: "golden", withExtension: "json", subdirectory: "Fixtures"),
            let data = try? Data(contentsOf: url),
            let file = try? JSONDecoder().decode(File.self, from: data)
        else { return [] }
        return file.cases
    }()
}

@Suite("Golden requests from pymilvus")
struct GoldenTests {
    @Test("The fixture covers every RPC of the catalog, plain and with every singular field repeated")
    func coverage() {
        #expect(GoldenCase.all.count > 288)
        let names = Set(GoldenCase.all.map(\.rpc))
        #expect(names == Set(MilvusRPCs.all.map(\.name)))
        for rpc in MilvusRPCs.all {
            #expect(GoldenCase.all.contains { $0.name == "\(rpc.name)/full" })
            #expect(GoldenCase.all.contains { $0.name == "\(rpc.name)/repeated" })
        }
    }

    @Test("Each golden request decodes to exactly the expected targets", arguments: GoldenCase.all)
    func decodes(golden: GoldenCase) throws {
        let rpc = try #require(MilvusRPCs.descriptor(named: golden.rpc))
        let call = try MilvusCall(decoding: golden.bytes[...], rpc: rpc, metadataDatabase: golden.metadataDatabase)
        let expect = golden.expect
        #expect(call.rpc == rpc)
        #expect(call.database == expect.database)
        #expect(call.collection == expect.collection)
        #expect(call.collections == expect.collections)
        #expect(call.partitions == expect.partitions)
        #expect(call.indexName == expect.indexName)
        #expect(call.fieldName == expect.fieldName)
        #expect(call.alias == expect.alias)
        #expect(call.filter == expect.filter)
        #expect(call.users == expect.users)
        #expect(call.roles == expect.roles)
        #expect(call.rowCount == expect.rowCount)
        #expect(call.newCollectionName == expect.newCollectionName)
        #expect(call.newDatabase == expect.newDatabase)
        #expect(call.resourceGroups == expect.resourceGroups)
        #expect(call.privilegeGroup == expect.privilegeGroup)
        #expect(call.snapshotName == expect.snapshotName)
        #expect(call.filterParameters == expect.filterParameters)
        let others = call.otherTargets.map { [$0.kind.rawValue, $0.value] }
        #expect(
            others.sorted { $0.lexicographicallyPrecedes($1) }
                == expect.otherTargets.sorted { $0.lexicographicallyPrecedes($1) }
        )
    }

    @Test(
        "Every prefix of each golden request decodes or is truncated, never traps",
        arguments: GoldenCase.all.filter {
            $0.name.hasSuffix("/full")
        }
    )
    func prefixes(golden: GoldenCase) throws {
        let rpc = try #require(MilvusRPCs.descriptor(named: golden.rpc))
        let bytes = golden.bytes
        for length in 0..<bytes.count {
            do {
                _ = try MilvusCall(decoding: bytes.prefix(length), rpc: rpc, metadataDatabase: nil)
            } catch {
                #expect(error.code == .truncated, "prefix \(length): \(error)")
            }
        }
    }
}
