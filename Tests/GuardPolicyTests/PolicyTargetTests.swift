import GuardPolicy
import Testing

@testable import MilvusCatalog

@Suite("Policy targets")
struct PolicyTargetTests {
    @Test("noDatabaseRPCs is exactly the non-admin RPCs whose request has no db_name")
    func noDatabaseTable() {
        let expected = Set(
            MilvusRPCs.all
                .filter { $0.actionClass != .admin && !$0.layout.contains { $0.role == .database } }
                .map(\.name)
        )
        #expect(PolicyTarget.noDatabaseRPCs == expected)
    }

    @Test(
        "Targets of decoded calls",
        arguments: [
            (Calls.make("Search", collection: "books"), ["default.books"]),
            (Calls.make("RenameCollection", collection: "a", newName: "b"), ["default.a", "default.b"]),
            (
                Calls.make("RenameCollection", collection: "a", newName: "b", newDatabase: "archive"),
                ["default.a", "archive.b", "default.b"]
            ),
            (Calls.make("Flush", database: "prod", collections: ["x", "y"]), ["prod.x", "prod.y"]),
            (Calls.make("CreateAlias", collection: "books", alias: "b"), ["default.books", "default.b"]),
            (Calls.make("DropAlias", alias: "b"), ["default.b"]),
            (Calls.make("ShowCollections", database: "prod"), ["prod"]),
            (Calls.make("DropDatabase", database: "prod"), ["prod"]),
            (Calls.make("FlushAll"), ["default"]),
            (Calls.make("ListDatabases"), ["*"]),
            (Calls.make("DeleteCredential"), ["*"]),
            (Calls.make("Connect"), ["*"]),
            (Calls.make("CreateRowPolicy", collection: "books"), ["*"]),
            (Calls.make("TransferReplica", collection: "books"), ["*"]),
            (Calls.make("DescribeCollection", database: "prod", collectionIDs: [7]), ["<collection ID 7>"]),
            (
                Calls.make("BatchDescribeCollection", collections: ["a"], collectionIDs: [7, 8, 7]),
                ["default.a", "<collection ID 7>"]
            ),
            (Calls.make("GetReplicas", collectionIDs: [7]), ["<collection ID 7>"]),
        ]
    )
    func targets(call: MilvusCall, expected: [String]) {
        #expect(PolicyTarget.targets(of: call).map(\.description) == expected)
    }
}

@Suite("Resource patterns")
struct ResourcePatternTests {
    @Test(
        "Matching",
        arguments: [
            ("*", PolicyTarget.cluster, true),
            ("*", .database("x"), true),
            ("*", .collection(database: "x", name: "y"), true),
            ("*.*", .cluster, false),
            ("*.*", .database("x"), true),
            ("prod", .database("prod"), true),
            ("prod", .collection(database: "prod", name: "a"), false),
            ("prod.*", .database("prod"), true),
            ("prod.*", .database("production"), false),
            ("prod*.*", .database("production"), true),
            ("prod.*", .collection(database: "prod", name: "a"), true),
            ("prod.*", .collection(database: "dev", name: "a"), false),
            ("prod.a*", .database("prod"), false),
            ("*.tmp_*", .collection(database: "x", name: "tmp_"), true),
            ("*.tmp_*", .collection(database: "x", name: "tmp"), false),
            ("*.tmp_*", .collection(database: "x", name: "my_tmp_1"), false),
            ("*.*_tmp", .collection(database: "x", name: "a_tmp_tmp"), true),
            ("a*b*c.x", .collection(database: "aXbYbZc", name: "x"), true),
            ("a*b*c.x", .collection(database: "aXbYbZ", name: "x"), false),
            ("default.Books", .collection(database: "default", name: "books"), false),
            ("default.books", .collection(database: "default", name: "books"), true),
            ("default.books", .collection(database: "default", name: "books2"), false),
            ("de*.bo*", .collection(database: "default.bo", name: "x"), false),
            ("*.é*", .collection(database: "d", name: "été"), true),
            // A collection named only by its ID could be any collection of any database (Milvus ignores db_name).
            ("*", .collectionID(7), true),
            ("*.*", .collectionID(7), true),
            ("**.*", .collectionID(7), true),
            ("prod.*", .collectionID(7), false),
            ("*.b*", .collectionID(7), false),
            ("prod", .collectionID(7), false),
            ("prod.books", .collectionID(7), false),
        ]
    )
    func matching(pattern: String, target: PolicyTarget, expected: Bool) throws {
        #expect(try ResourcePattern(pattern).matches(target) == expected)
    }

    @Test(
        "A deny may match a collection named by its ID whenever it names collections, in any database",
        arguments: [
            ("prod.books", PolicyTarget.collectionID(7), true),
            ("p*.b*", .collectionID(7), true),
            ("dev.books", .collectionID(7), true),
            ("*", .collectionID(7), true),
            ("prod", .collectionID(7), false),
            ("prod.books", .collection(database: "prod", name: "movies"), false),
            ("prod", .database("prod"), true),
        ]
    )
    func mayMatch(pattern: String, target: PolicyTarget, expected: Bool) throws {
        #expect(try ResourcePattern(pattern).mayMatch(target) == expected)
    }

    @Test(
        "Malformed patterns are refused",
        arguments: [
            ("", ResourcePattern.Problem.empty), (".x", .emptyPart), ("x.", .emptyPart), ("a.b.c", .tooManyDots),
            ("a b", .whitespace), ("a\tb", .whitespace),
        ]
    )
    func malformed(text: String, problem: ResourcePattern.Problem) {
        #expect(throws: problem) { try ResourcePattern(text) }
    }
}
