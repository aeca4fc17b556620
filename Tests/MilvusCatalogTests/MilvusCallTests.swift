import MilvusCatalog
import PropertyBased
import ProtoWire
import Testing

func descriptor(_ name: String) throws -> RPCDescriptor {
    try #require(MilvusRPCs.descriptor(named: name))
}

func message(_ build: (inout WireWriter) -> Void) -> [UInt8] {
    var writer = WireWriter()
    build(&writer)
    return writer.bytes
}

@Suite("MilvusCall decoding")
struct MilvusCallTests {
    @Test("The last collection_name wins: first \"a\", last \"b\" is \"b\"")
    func lastOccurrenceWins() throws {
        let bytes = message {
            $0.writeStringField(3, "a")
            $0.writeStringField(2, "db1")
            $0.writeStringField(3, "b")
        }
        let call = try MilvusCall(decoding: bytes[...], rpc: try descriptor("DropCollection"), metadataDatabase: nil)
        #expect(call.collection == "b")
        #expect(call.database == "db1")
    }

    @Test("Unknown fields of every wire type are skipped")
    func unknownFieldsSkipped() throws {
        let bytes = message {
            $0.writeVarintField(99, 1)
            $0.writeFixed64Field(100, 2)
            $0.writeFixed32Field(101, 3)
            $0.writeBytesField(102, [0xFF, 0xFE])
            $0.writeMessageField(1) { $0.writeVarintField(1, 5) }  // base
            $0.writeStringField(3, "docs")
            $0.writeVarintField(536_870_911, 7)
        }
        let call = try MilvusCall(decoding: bytes[...], rpc: try descriptor("DropCollection"), metadataDatabase: "m")
        #expect(call.collection == "docs")
        #expect(call.database == "m")
    }

    @Test(
        "Database: body, else non-empty metadata, else default",
        arguments: [
            ("body", "meta", "body"), ("", "meta", "meta"), ("", "", "default"), ("", nil, "default"),
            ("body", nil, "body"),
        ] as [(String, String?, String)]
    )
    func databaseRule(body: String, metadata: String?, expected: String) throws {
        let bytes = message { $0.writeStringField(2, body) }
        let call = try MilvusCall(
            decoding: bytes[...],
            rpc: try descriptor("HasCollection"),
            metadataDatabase: metadata
        )
        #expect(call.database == expected)
    }

    @Test("A known field with the wrong wire type fails closed")
    func wrongWireType() throws {
        let bytes = message {
            $0.writeStringField(3, "ok")
            $0.writeVarintField(3, 1)
        }
        let error = #expect(throws: WireError.self) {
            try MilvusCall(decoding: bytes[...], rpc: try descriptor("DropCollection"), metadataDatabase: nil)
        }
        #expect(error?.code == .unexpectedWireType)
        #expect(error?.offset == 4)
    }

    @Test("Invalid UTF-8 in a target name is rejected, with the field's offset")
    func invalidUTF8() throws {
        let bytes = message {
            $0.writeStringField(2, "db")
            $0.writeBytesField(3, [0x64, 0xFF])
        }
        let error = #expect(throws: WireError.self) {
            try MilvusCall(decoding: bytes[...], rpc: try descriptor("DropCollection"), metadataDatabase: nil)
        }
        #expect(error?.code == .invalidUTF8)
        #expect(error?.offset == 4)
    }

    @Test("Error offsets are relative to the message, even inside a larger buffer")
    func relativeOffsets() throws {
        let bytes = [0xAA, 0xBB, 0xCC] + message { $0.writeStringField(2, "db") } + [0x1A, 0x05, 0x61]
        let error = #expect(throws: WireError.self) {
            try MilvusCall(decoding: bytes[3...], rpc: try descriptor("DropCollection"), metadataDatabase: nil)
        }
        #expect(error?.code == .truncated)
        #expect(error?.offset == 4)
    }

    @Test("Groups are rejected even in fields the guard skips")
    func groupsRejected() throws {
        let bytes = message { $0.writeStringField(3, "docs") } + [0x5B, 0x5C]  // field 11, wire types 3 and 4
        #expect(throws: WireError(.unsupportedWireType, at: 0)) {
            try MilvusCall(decoding: bytes[...], rpc: try descriptor("DropCollection"), metadataDatabase: nil)
        }
    }

    @Test("An embedded role deeper than the limit is refused")
    func nestedDepth() throws {
        let bytes = message {
            $0.writeMessageField(2) { entity in
                entity.writeMessageField(1) { $0.writeStringField(1, "admin") }
            }
        }
        let rpc = try descriptor("OperatePrivilege")
        let call = try MilvusCall(decoding: bytes[...], rpc: rpc, metadataDatabase: nil)
        #expect(call.roles == ["admin"])
        #expect(throws: WireError(.nestingTooDeep, at: 0)) {
            try MilvusCall(decoding: bytes[...], rpc: rpc, metadataDatabase: nil, limits: WireLimits(maxDepth: 1))
        }
    }

    @Test("A repeated name field with more values than the limit is refused: each value kept costs memory")
    func repeatedValues() throws {
        let rpc = try descriptor("Search")
        func search(partitions: Int) -> [UInt8] {
            message { writer in
                writer.writeStringField(3, "books")
                for _ in 0..<partitions { writer.writeStringField(4, "") }
            }
        }
        let limits = WireLimits(maxRepeatedValues: 3)
        let call = try MilvusCall(decoding: search(partitions: 3)[...], rpc: rpc, metadataDatabase: nil, limits: limits)
        #expect(call.partitions.count == 3)
        let error = #expect(throws: WireError.self) {
            try MilvusCall(decoding: search(partitions: 4)[...], rpc: rpc, metadataDatabase: nil, limits: limits)
        }
        #expect(error?.code == .tooManyValues)
        // Template values of a filter are map entries: distinct keys count the same way.
        let delete = message { writer in
            writer.writeStringField(3, "books")
            for key in ["a", "b", "c", "d"] {
                writer.writeMessageField(8) { entry in
                    entry.writeStringField(1, key)
                    entry.writeMessageField(2) { $0.writeInt64Field(2, 1) }
                }
            }
        }
        #expect(throws: WireError(.tooManyValues, at: 0)) {
            try MilvusCall(decoding: delete[...], rpc: try descriptor("Delete"), metadataDatabase: nil, limits: limits)
        }
        #expect(WireLimits.default.maxRepeatedValues == 65_536)
    }

    @Test("A collection named only by its ID is kept; with a collection_name the ID goes unused, as in Milvus")
    func collectionIDs() throws {
        let describe = try descriptor("DescribeCollection")
        let byID = message {
            $0.writeInt64Field(4, 7)
            $0.writeStringField(2, "prod")
            $0.writeInt64Field(4, 449_812_345_678_901_234)  // the last one wins
        }
        let call = try MilvusCall(decoding: byID[...], rpc: describe, metadataDatabase: nil)
        #expect(call.collection == nil)
        #expect(call.collectionIDs == [449_812_345_678_901_234])
        #expect(call.database == "prod")
        let named = message {
            $0.writeStringField(3, "books")
            $0.writeInt64Field(4, 7)
        }
        #expect(try MilvusCall(decoding: named[...], rpc: describe, metadataDatabase: nil).collectionIDs == [])
        let zero = message { $0.writeInt64Field(4, 0) }  // proto3's absent value
        #expect(try MilvusCall(decoding: zero[...], rpc: describe, metadataDatabase: nil).collectionIDs == [])
        // GetReplicas, which pymilvus sends with the ID only, and ManualCompaction, whose ID is field 1.
        let replicas = message { $0.writeInt64Field(2, 12) }
        #expect(
            try MilvusCall(decoding: replicas[...], rpc: try descriptor("GetReplicas"), metadataDatabase: nil)
                .collectionIDs == [12]
        )
        let compaction = message { $0.writeInt64Field(1, -3) }
        #expect(
            try MilvusCall(decoding: compaction[...], rpc: try descriptor("ManualCompaction"), metadataDatabase: nil)
                .collectionIDs == [-3]
        )
        // The wrong wire type fails closed.
        let text = message { $0.writeStringField(4, "7") }
        #expect(throws: WireError.self) { try MilvusCall(decoding: text[...], rpc: describe, metadataDatabase: nil) }
    }

    @Test("BatchDescribeCollection's repeated IDs are kept, packed or not, names or not, up to the limit")
    func batchCollectionIDs() throws {
        let rpc = try descriptor("BatchDescribeCollection")
        let bytes = message { writer in
            writer.writeStringField(2, "books")
            writer.writeInt64Field(3, 5)
            var packed = WireWriter()
            for id: UInt64 in [6, 1 << 40] { packed.writeVarint(id) }
            writer.writeBytesField(3, packed.bytes)
        }
        let call = try MilvusCall(decoding: bytes[...], rpc: rpc, metadataDatabase: nil)
        #expect(call.collections == ["books"])
        #expect(call.collectionIDs == [5, 6, 1 << 40])
        let limits = WireLimits(maxRepeatedValues: 2)
        let error = #expect(throws: WireError.self) {
            try MilvusCall(decoding: bytes[...], rpc: rpc, metadataDatabase: nil, limits: limits)
        }
        #expect(error?.code == .tooManyValues)
        let truncated = message { $0.writeBytesField(3, [0x80]) }  // a packed varint cut short
        #expect(throws: WireError.self) { try MilvusCall(decoding: truncated[...], rpc: rpc, metadataDatabase: nil) }
    }

    @Test("A message larger than the limit is refused before decoding")
    func messageSize() throws {
        let bytes = message { $0.writeStringField(3, "docs") }
        let error = #expect(throws: WireError.self) {
            try MilvusCall(
                decoding: bytes[...],
                rpc: try descriptor("DropCollection"),
                metadataDatabase: nil,
                limits: WireLimits(maxMessageSize: 5)
            )
        }
        #expect(error?.code == .messageTooLarge)
        #expect(error?.declaredLength == 6)
    }

    @Test("A 64 MiB Insert decodes: fields_data is stepped over")
    func largeInsert() throws {
        let vectors = [UInt8](repeating: 0x3F, count: 64 << 20)
        var writer = WireWriter()
        writer.writeStringField(2, "prod")
        writer.writeStringField(3, "docs")
        writer.writeStringField(4, "p1")
        writer.writeMessageField(5) { field in
            field.writeVarintField(1, 101)
            field.writeStringField(2, "vector")
            field.writeBytesField(4, vectors)
        }
        writer.writeVarintField(7, 1_000_000)
        let call = try MilvusCall(decoding: writer.bytes[...], rpc: try descriptor("Insert"), metadataDatabase: nil)
        #expect(call.database == "prod" && call.collection == "docs" && call.partitions == ["p1"])
        #expect(call.rowCount == 1_000_000)
    }

    @Test("decodeCall(path:) refuses unknown paths and wraps malformed messages")
    func decodeByPath() throws {
        let path = "/milvus.proto.milvus.MilvusService/DropCollection"
        let call = try MilvusRPCs.decodeCall(path: path, message: drop[...], metadataDatabase: nil)
        #expect(call.collection == "docs" && call.database == "default")

        let unknown = #expect(throws: CatalogError.self) {
            try MilvusRPCs.decodeCall(path: path + "/", message: drop[...], metadataDatabase: nil)
        }
        #expect(unknown?.code == .unknownRPC)
        let malformed = #expect(throws: CatalogError.self) {
            try MilvusRPCs.decodeCall(path: path, message: drop.dropLast(), metadataDatabase: nil)
        }
        #expect(malformed?.code == .malformedRequest)
        #expect(malformed?.wireError?.code == .truncated)
        #expect(malformed?.wireError?.offset == 9)
        #expect(malformed?.description.contains("DropCollection") == true)
    }

    @Test("Targets of grants, renames and resource groups")
    func targets() throws {
        let grant = message {
            $0.writeMessageField(2) { $0.writeStringField(1, "reader") }
            $0.writeMessageField(3) { grantor in
                grantor.writeMessageField(1) { $0.writeStringField(1, "root") }
                grantor.writeMessageField(2) { $0.writeStringField(1, "Search") }
            }
            $0.writeStringField(5, "prod")
            $0.writeStringField(6, "docs")
        }
        let v2 = try MilvusCall(decoding: grant[...], rpc: try descriptor("OperatePrivilegeV2"), metadataDatabase: nil)
        #expect(v2.roles == ["reader"] && v2.database == "prod" && v2.collection == "docs")
        #expect(v2.otherTargets(.privilege) == ["Search"])
        #expect(v2.users.isEmpty)

        let transfer = message {
            $0.writeStringField(2, "rg1")
            $0.writeStringField(3, "rg2")
            $0.writeStringField(4, "docs")
        }
        let call = try MilvusCall(
            decoding: transfer[...],
            rpc: try descriptor("TransferReplica"),
            metadataDatabase: nil
        )
        #expect(call.resourceGroups == ["rg1", "rg2"] && call.collection == "docs")
        #expect(call.allCollections == ["docs"])
    }

    @Test("Any strings in DropCollection decode to the last values; every prefix decodes or is truncated")
    func dropProperty() async {
        let names = Gen.letterOrNumber.string(of: 0...12).array(of: 1...3)
        await propertyCheck(count: 100, input: names, names) { databases, collections in
            var writer = WireWriter()
            for (database, collection) in zip(databases, collections) {
                writer.writeStringField(2, database)
                writer.writeStringField(3, collection)
            }
            let rpc = try descriptor("DropCollection")
            let call = try MilvusCall(decoding: writer.bytes[...], rpc: rpc, metadataDatabase: "m")
            let lastDatabase = databases.prefix(collections.count).last ?? ""
            #expect(call.database == (lastDatabase.isEmpty ? "m" : lastDatabase))
            let lastCollection = collections.prefix(databases.count).last ?? ""
            #expect(call.collection == (lastCollection.isEmpty ? nil : lastCollection))
            for length in 0..<writer.bytes.count {
                do {
                    _ = try MilvusCall(decoding: writer.bytes.prefix(length), rpc: rpc, metadataDatabase: nil)
                } catch let error as WireError {
                    #expect(error.code == .truncated)
                } catch {
                    Issue.record(error)
                }
            }
        }
    }
}

/// DropCollectionRequest{db_name (2): "default", collection_name (3): "docs"}, field numbers from milvus.proto.
let drop: [UInt8] = [0x12, 0x07] + Array("default".utf8) + [0x1A, 0x04] + Array("docs".utf8)

@Suite("Delete's filter template values")
struct FilterParametersTests {
    /// A DeleteRequest with `expr` and `expr_template_values` entries built by `entries`.
    func delete(_ entries: (inout WireWriter) -> Void) -> [UInt8] {
        message {
            $0.writeStringField(3, "books")
            $0.writeStringField(5, "id in {ids}")
            entries(&$0)
        }
    }

    @Test("A template array keeps its first maxRepeatedValues elements and says how many more there were")
    func templateArrayCap() throws {
        var packed = WireWriter()
        for value in 1...5 { packed.writeVarint(UInt64(value)) }
        let delete = self.delete { writer in
            writer.writeMessageField(8) { entry in
                entry.writeStringField(1, "ids")
                // TemplateValue 5 array_val: TemplateArrayValue 2 long_data: LongArray 1 data (packed).
                entry.writeMessageField(2) { value in
                    value.writeMessageField(5) { array in
                        array.writeMessageField(2) { $0.writeBytesField(1, packed.bytes) }
                    }
                }
            }
        }
        let call = try MilvusCall(
            decoding: delete[...],
            rpc: try descriptor("Delete"),
            metadataDatabase: nil,
            limits: WireLimits(maxRepeatedValues: 3)
        )
        #expect(call.filterParameters == #"{"ids":[1,2,3,"… 2 more values"]}"#)
    }

    @Test("Template values past 64 KiB rendered in all are shown by their size; an array merged 10,000 times keeps all")
    func templateRenderBudget() throws {
        let delete = self.delete { writer in
            writer.writeMessageField(8) { entry in
                entry.writeStringField(1, "big")
                entry.writeMessageField(2) { $0.writeStringField(4, String(repeating: "x", count: 100_000)) }
            }
            writer.writeMessageField(8) { entry in
                entry.writeStringField(1, "flags")
                // array_val sent 10,000 times with one bool each: merged, [true, true, …].
                entry.writeMessageField(2) { value in
                    for _ in 0..<10_000 {
                        value.writeMessageField(5) { array in
                            array.writeMessageField(1) { $0.writeBoolField(1, true) }
                        }
                    }
                }
            }
        }
        let call = try MilvusCall(decoding: delete[...], rpc: try descriptor("Delete"), metadataDatabase: nil)
        let rendered = try #require(call.filterParameters)
        #expect(rendered.hasPrefix(#"{"big":"… 100000 bytes","flags":[true,true,"#))
        #expect(rendered.hasSuffix(#"true]}"#))
        #expect(rendered.utf8.count == #"{"big":"… 100000 bytes","flags":[]}"#.utf8.count + 10_000 * 5 - 1)
    }

    @Test("A template key larger than what is left to render is shown by its size")
    func templateKeyBudget() throws {
        let delete = self.delete { writer in
            writer.writeMessageField(8) { entry in
                entry.writeStringField(1, String(repeating: "\u{1}", count: 100_000))
                entry.writeMessageField(2) { $0.writeInt64Field(2, 7) }
            }
        }
        let call = try MilvusCall(decoding: delete[...], rpc: try descriptor("Delete"), metadataDatabase: nil)
        #expect(call.filterParameters == #"{"… 100000 bytes":7}"#)
    }

    @Test("Non-finite doubles are strings, unpacked repeated values count, unknown value kinds are null")
    func edges() throws {
        let bytes = delete {
            $0.writeMessageField(8) { entry in
                entry.writeStringField(1, "inf")
                entry.writeMessageField(2) { $0.writeFixed64Field(3, Double.infinity.bitPattern) }
            }
            $0.writeMessageField(8) { entry in
                entry.writeStringField(1, "ids")
                entry.writeMessageField(2) { value in
                    value.writeMessageField(5) { array in
                        array.writeMessageField(2) { long in
                            long.writeVarintField(1, 4)
                            long.writeVarintField(1, UInt64(bitPattern: -5))
                        }
                    }
                }
            }
            $0.writeMessageField(8) { entry in
                entry.writeStringField(1, "future")
                entry.writeMessageField(2) { $0.writeVarintField(9, 1) }
            }
        }
        let call = try MilvusCall(decoding: bytes[...], rpc: try descriptor("Delete"), metadataDatabase: nil)
        #expect(call.filter == "id in {ids}")
        #expect(call.filterParameters == #"{"future":null,"ids":[4,-5],"inf":"inf"}"#)
        let plain = try MilvusCall(decoding: delete { _ in }[...], rpc: try descriptor("Delete"), metadataDatabase: nil)
        #expect(plain.filterParameters == nil)
    }

    @Test("Read as Go protobuf reads them: keys byte for byte, repeated messages merged, another oneof member replaces")
    func protobufMerging() throws {
        let bytes = delete {
            // Two keys that are one to Swift's String equality (NFC é, and e + U+0301), two to protobuf.
            for (key, number) in [("\u{E9}", 1), ("e\u{301}", 2)] as [(String, UInt64)] {
                $0.writeMessageField(8) { entry in
                    entry.writeStringField(1, key)
                    entry.writeMessageField(2) { $0.writeVarintField(2, number) }
                }
            }
            // ids: the array member twice in one value, then the value field again: [1, 2] + [3] + [7].
            $0.writeMessageField(8) { entry in
                entry.writeStringField(1, "ids")
                entry.writeMessageField(2) { value in
                    value.writeMessageField(5) { array in
                        array.writeMessageField(2) { long in
                            long.writeVarintField(1, 1)
                            long.writeVarintField(1, 2)
                        }
                        array.writeMessageField(2) { $0.writeVarintField(1, 3) }
                    }
                }
                entry.writeMessageField(2) { value in
                    value.writeMessageField(5) { array in array.writeMessageField(2) { $0.writeVarintField(1, 7) } }
                }
            }
            // names: a string array replaced by a long array (another member of the oneof), then a scalar.
            $0.writeMessageField(8) { entry in
                entry.writeStringField(1, "names")
                entry.writeMessageField(2) { value in
                    value.writeMessageField(5) { array in
                        array.writeMessageField(4) { $0.writeStringField(1, "a") }
                        array.writeMessageField(2) { $0.writeVarintField(1, 9) }
                    }
                }
            }
            $0.writeMessageField(8) { entry in
                entry.writeStringField(1, "flag")
                entry.writeMessageField(2) { value in
                    value.writeMessageField(5) { array in array.writeMessageField(2) { $0.writeVarintField(1, 1) } }
                    value.writeVarintField(1, 1)
                }
            }
        }
        let call = try MilvusCall(decoding: bytes[...], rpc: try descriptor("Delete"), metadataDatabase: nil)
        // Compared as bytes: String's == would take the two keys for one.
        #expect(
            call.filterParameters.map { Array($0.utf8) }
                == Array("{\"e\u{301}\":2,\"flag\":true,\"ids\":[1,2,3,7],\"names\":[9],\"\u{E9}\":1}".utf8)
        )
    }

    @Test("Malformed template values make the request malformed (it is refused, not forwarded)")
    func malformed() throws {
        let cutVarint = delete {
            $0.writeMessageField(8) { entry in
                entry.writeStringField(1, "ids")
                entry.writeMessageField(2) { value in
                    value.writeMessageField(5) { array in array.writeMessageField(2) { $0.writeBytesField(1, [0x80]) } }
                }
            }
        }
        #expect(throws: WireError.self) {
            _ = try MilvusCall(decoding: cutVarint[...], rpc: try descriptor("Delete"), metadataDatabase: nil)
        }
        // Arrays nested deeper than the decoder's depth limit.
        var nested = WireWriter()
        nested.writeMessageField(2) { $0.writeVarintField(1, 1) }
        for _ in 0..<40 {
            var outer = WireWriter()
            let inner = nested.bytes
            outer.writeMessageField(5) { $0.writeMessageField(1) { $0.writeRaw(inner) } }
            nested = outer
        }
        let deep = delete {
            $0.writeMessageField(8) { entry in
                entry.writeStringField(1, "deep")
                entry.writeMessageField(2) { $0.writeMessageField(5) { $0.writeRaw(nested.bytes) } }
            }
        }
        #expect(throws: WireError.self) {
            _ = try MilvusCall(decoding: deep[...], rpc: try descriptor("Delete"), metadataDatabase: nil)
        }
    }
}
