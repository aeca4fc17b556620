import MilvusCatalog
import Testing

@Suite("MilvusRPCs")
struct MilvusRPCsTests {
    /// The destructive RPCs, as the project's classification lists them.
    static let destructive: Set<String> = [
        "Delete", "DropCollection", "DropPartition", "DropDatabase", "TruncateCollection", "DropIndex", "DropAlias",
        "AlterAlias", "RenameCollection", "DeleteCredential", "DropRole", "RestoreRBAC", "DropResourceGroup",
        "DropSnapshot", "DropCollectionFunction", "DropNamespace", "DropPrivilegeGroup", "RemoveFileResource",
        "DropRowPolicy", "UnpinSnapshotData",
    ]

    @Test("The catalog holds pymilvus 3.0.2's 144 RPCs, each name and path once")
    func count() {
        #expect(MilvusRPCs.all.count == 144)
        #expect(Set(MilvusRPCs.all.map(\.name)).count == 144)
        #expect(Set(MilvusRPCs.all.map(\.path)).count == 144)
    }

    @Test("Exactly the listed RPCs are destructive")
    func destructiveSet() {
        let actual = Set(MilvusRPCs.all.filter { $0.actionClass == .destructive }.map(\.name))
        #expect(actual == Self.destructive)
    }

    @Test(
        "Classes of representative RPCs",
        arguments: [
            ("Search", ActionClass.read), ("Insert", .write), ("Upsert", .write), ("Flush", .write),
            ("CreateCollection", .ddl), ("CreateIndex", .ddl), ("LoadCollection", .ddl), ("CreateDatabase", .ddl),
            ("CreateCredential", .admin), ("OperatePrivilegeV2", .admin), ("SelectGrant", .admin),
            ("CreateReplicateStream", .admin), ("DumpMessages", .admin), ("Connect", .read),
        ]
    )
    func classes(name: String, actionClass: ActionClass) throws {
        #expect(try #require(MilvusRPCs.descriptor(named: name)).actionClass == actionClass)
    }

    @Test("Only CreateReplicateStream and DumpMessages stream")
    func streaming() {
        let streams = MilvusRPCs.all.filter { $0.streaming != .unary }
        #expect(streams.map(\.name).sorted() == ["CreateReplicateStream", "DumpMessages"])
        #expect(MilvusRPCs.descriptor(named: "CreateReplicateStream")?.streaming == .bidiStreaming)
        #expect(MilvusRPCs.descriptor(named: "DumpMessages")?.streaming == .serverStreaming)
    }

    @Test("Descriptors carry the gRPC path and the request message")
    func descriptorFields() throws {
        let drop = try #require(MilvusRPCs.descriptor(forPath: "/milvus.proto.milvus.MilvusService/DropCollection"))
        #expect(drop.name == "DropCollection")
        #expect(drop.requestMessage == "milvus.proto.milvus.DropCollectionRequest")
        #expect(drop.description == "DropCollection")
        #expect(
            MilvusRPCs.descriptor(named: "ListIndexedSegment")?.requestMessage
                == "milvus.proto.feder.ListIndexedSegmentRequest"
        )
        #expect(
            MilvusRPCs.descriptor(named: "BackupRBAC")?.requestMessage == "milvus.proto.milvus.BackupRBACMetaRequest"
        )
        #expect(MilvusRPCs.all.allSatisfy { $0.path == "/milvus.proto.milvus.MilvusService/\($0.name)" })
        #expect(MilvusRPCs.all.allSatisfy { MilvusRPCs.descriptor(forPath: $0.path) == $0 })
        #expect(MilvusRPCs.all.allSatisfy { MilvusRPCs.descriptor(forPath: Array($0.path.utf8)) == $0 })
    }

    @Test(
        "Lookup is exact: variants are unknown",
        arguments: [
            "/milvus.proto.milvus.MilvusService/dropCollection",
            "/milvus.proto.milvus.MilvusService/DROPCOLLECTION",
            "/Milvus.proto.milvus.MilvusService/DropCollection",
            "/milvus.proto.milvus.MilvusService/DropCollection/",
            "/milvus.proto.milvus.MilvusService/DropCollection?x=1",
            "/milvus.proto.milvus.MilvusService//DropCollection",
            "//milvus.proto.milvus.MilvusService/DropCollection",
            "milvus.proto.milvus.MilvusService/DropCollection",
            "/milvus.proto.milvus.MilvusService/DropCollection ",
            "/milvus.proto.milvus.MilvusService/Drop%43ollection",
            "/milvus.proto.milvus.MilvusService/DropCollection\u{0}",
            "/milvus.proto.milvus.MilvusService/Chec\u{212A}Health",
            "/milvus.proto.milvus.MilvusService/BackupRBA\u{0043}\u{0301}",
            "/milvus.proto.milvus.MilvusService/",
            "",
        ]
    )
    func exactLookup(path: String) {
        #expect(MilvusRPCs.descriptor(forPath: path) == nil)
        #expect(MilvusRPCs.descriptor(forPath: Array(path.utf8)) == nil)
    }

    @Test("A canonically equivalent name does not match (KELVIN SIGN is not K)")
    func canonicalEquivalence() {
        // "\u{212A}" == "K" for Swift's String; the catalog compares bytes.
        #expect("\u{212A}" == "K")
        let path = "/milvus.proto.milvus.MilvusService/\u{212A}"
        #expect(MilvusRPCs.descriptor(forPath: path) == nil)
        #expect(MilvusRPCs.descriptor(named: "DropCollection\u{0}") == nil)
    }

    @Test("Invalid UTF-8 path bytes are unknown")
    func invalidPathBytes() {
        #expect(MilvusRPCs.descriptor(forPath: Array("/milvus.proto.milvus.MilvusService/".utf8) + [0xFF]) == nil)
    }

    @Test("Only the four database RPCs target their own db_name")
    func ownDatabase() {
        let own = MilvusRPCs.all.filter(\.targetsOwnDatabase).map(\.name).sorted()
        #expect(own == ["AlterDatabase", "CreateDatabase", "DescribeDatabase", "DropDatabase"])
    }
}
