import GuardPolicy
import MilvusCatalog
import Testing

/// A length-delimited protobuf field (wire type 2) with a one-byte key and length.
private func field(_ number: UInt8, _ value: String) -> [UInt8] {
    [number << 3 | 2, UInt8(value.utf8.count)] + Array(value.utf8)
}

/// The policy judges calls exactly as MilvusCatalog decodes them from the wire (field numbers from milvus.proto).
@Suite("Decisions on decoded requests")
struct DecodedCallTests {
    static let policyText = """
        roles:
          app:
            - allow: ["*"]
              on: ["default.a", "default.b", "prod"]
        """

    @Test(
        "Decoded calls are checked on every target",
        arguments: [
            // RenameCollectionRequest: 3 oldName, 4 newName, 5 newDBName.
            ("RenameCollection", field(3, "a") + field(4, "b"), "allow policies/test.yaml:3"),
            (
                "RenameCollection", field(3, "a") + field(4, "c"),
                "deny app may not RenameCollection on default.c (no rule allows it)"
            ),
            (
                "RenameCollection", field(3, "a") + field(4, "b") + field(5, "prod"),
                "deny app may not RenameCollection on prod.b (no rule allows it)"
            ),
            // A second collection_name wins, as in Milvus: it cannot hide behind an allowed first one.
            (
                "DropCollection", field(3, "a") + field(3, "z"),
                "deny app may not DropCollection on default.z (no rule allows it)"
            ),
            // FlushRequest: 2 db_name, 3 collection_names.
            ("Flush", field(3, "a") + field(3, "b"), "allow policies/test.yaml:3"),
            ("Flush", field(3, "a") + field(3, "x"), "deny app may not Flush on default.x (no rule allows it)"),
            // Database-level: CreateDatabaseRequest 2 db_name; ShowCollectionsRequest 2 db_name.
            ("CreateDatabase", field(2, "prod"), "allow policies/test.yaml:3"),
            ("ShowCollections", field(2, "prod"), "allow policies/test.yaml:3"),
            ("ShowCollections", [], "deny app may not ShowCollections on default (no rule allows it)"),
            // DropAliasRequest: 2 db_name, 3 alias: the alias is checked as a collection name.
            ("DropAlias", field(3, "b"), "allow policies/test.yaml:3"),
            ("DropAlias", field(3, "books"), "deny app may not DropAlias on default.books (no rule allows it)"),
        ]
    )
    func decoded(rpc: String, message: [UInt8], expected: String) throws {
        let policy = try loadPolicy(Self.policyText)
        let call = try MilvusRPCs.decodeCall(
            path: "/milvus.proto.milvus.MilvusService/\(rpc)",
            message: message[...],
            metadataDatabase: nil
        )
        let decision = policy.ruleSet.evaluate(principal: principal("app", ["app"]), call: call)
        switch decision {
        case .allow(let rule): #expect("allow \(rule)" == expected)
        case .deny(_, let reason): #expect("deny \(reason)" == expected)
        }
    }
}
