/// What one Milvus request acts on, decoded from its protobuf message: the input to the guard's policy.
///
/// Built by ``init(decoding:rpc:metadataDatabase:limits:)``, which follows what Milvus itself will see:
/// - **Last occurrence wins** for singular fields (Go protobuf semantics); embedded singular messages that occur
///   several times merge, field by field. A second `collection_name` cannot hide from the policy.
/// - **Empty means absent** for singular strings (proto3 has no presence): `collection_name: ""` is `nil`.
/// - **Database**: the body's `db_name` if non-empty, else the `dbname` metadata if non-empty, else `default`.
///   CreateDatabase, DropDatabase, AlterDatabase and DescribeDatabase name their own `db_name` (even empty).
///   OperatePrivilege and SelectGrant carry it in `entity.db_name`.
///
/// Field numbers come from pymilvus 3.0.2's descriptors of `milvus.proto` (see `MilvusRPCs+Table.swift`).
public struct MilvusCall: Hashable, Sendable {
    /// The RPC.
    public let rpc: RPCDescriptor
    /// The database the call acts on (see the type's documentation for the rule).
    public internal(set) var database: String
    /// The collection (`collection_name`, `collectionName`, RenameCollection's `oldName`), or `nil`.
    public internal(set) var collection: String?
    /// Collections of a repeated field: Flush's `collection_names`, ShowCollections', BatchDescribeCollection's.
    public internal(set) var collections: [String] = []
    /// Collections named by their ID, which the guard can't turn into names: the `collectionID` of a request that
    /// names no collection (DescribeCollection, ShowPartitions, GetReplicas, ManualCompaction, AlterCollection, …;
    /// with a `collection_name`, Milvus looks the name up and the ID goes unused), and every ID of
    /// BatchDescribeCollection. The policy judges each as any collection of ``database`` could be (`PolicyTarget`).
    public internal(set) var collectionIDs: [Int64] = []
    /// Partitions: a singular `partition_name` (one element) and/or repeated `partition_names`.
    public internal(set) var partitions: [String] = []
    /// The index (`index_name`), or `nil`.
    public internal(set) var indexName: String?
    /// The field (`field_name`), or `nil`.
    public internal(set) var fieldName: String?
    /// The alias (`alias`), or `nil`.
    public internal(set) var alias: String?
    /// The boolean expression of Delete and Query (`expr`), or `nil`.
    public internal(set) var filter: String?
    /// Delete's filter template values (`expr_template_values`) as a JSON object, keys sorted, or `nil` (see
    /// `FilterParameters`): `{"ids":[1,2,3]}` for `filter="id in {ids}"`.
    public internal(set) var filterParameters: String?
    /// Users the call targets: `username`, `user_name`, SelectUser's `user.name`.
    public internal(set) var users: [String] = []
    /// Roles the call targets: `role_name`, CreateRole's `entity.name`, SelectRole's and OperatePrivilegeV2's
    /// `role.name`, OperatePrivilege's and SelectGrant's `entity.role.name`, CreateRowPolicy's `roles`.
    public internal(set) var roles: [String] = []
    /// Insert's and Upsert's `num_rows` (0 if absent); `nil` for every other RPC.
    public internal(set) var rowCount: UInt32?
    /// The collection the call creates or renames to: RenameCollection's `newName`, RestoreSnapshot's and
    /// RestoreExternalSnapshot's `target_collection_name`.
    public internal(set) var newCollectionName: String?
    /// The database of ``newCollectionName``: RenameCollection's `newDBName`, RestoreSnapshot's
    /// `target_db_name`, each defaulting to ``database`` when empty; `nil` for other RPCs.
    public internal(set) var newDatabase: String?
    /// Resource groups: `resource_group`, `source_resource_group`, `target_resource_group` (in that order),
    /// then repeated `resource_groups`, then UpdateResourceGroups' map keys.
    public internal(set) var resourceGroups: [String] = []
    /// The privilege group (`group_name`), or `nil`.
    public internal(set) var privilegeGroup: String?
    /// The snapshot (`name` of the snapshot RPCs), or `nil`.
    public internal(set) var snapshotName: String?
    /// Every other target, keyed (namespace, function, row policy, grant object, privileges, …).
    public internal(set) var otherTargets: [CallTarget] = []

    /// Every collection name the call touches: ``collection``, ``collections`` and ``newCollectionName``.
    public var allCollections: [String] {
        var names: [String] = []
        if let collection = self.collection { names.append(collection) }
        names.append(contentsOf: self.collections)
        if let newCollectionName = self.newCollectionName { names.append(newCollectionName) }
        return names
    }

    /// The longest database, collection, alias or partition name accepted: Milvus's own limit
    /// (`proxy.maxNameLength`) is 255 by default. A request may carry a name of hundreds of MiB, which would go into
    /// the refusal's message, its record and the log.
    public static let maxNameBytes = 1_024

    /// The first database, collection, alias or partition name that no Milvus creates, with what it names
    /// (`"collection"`); nil when there is none.
    ///
    /// Milvus makes these names only of ASCII letters, digits and `_` (older releases also `$`, partitions also
    /// `-`); privilege calls name every database or collection `*`. A call naming anything else acts on nothing
    /// Milvus can hold, so refusing it loses nothing; forwarded, it reaches a server that may read the name its own
    /// way: milvus-lite makes file paths of names (a Delete in `sandbox` on `../../../collections/books` removed
    /// rows of `default.books`), and Milvus releases that trim spaces before a lookup would take ` books` for
    /// `books`, while the policy checked the name as sent. Nor longer than ``maxNameBytes``.
    public var unacceptableName: (kind: String, name: String)? {
        func acceptable(_ name: String) -> Bool {
            name == "*"
                || name.utf8.count <= Self.maxNameBytes
                    && name.utf8.allSatisfy { byte in
                        switch byte {
                        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "$"),
                            UInt8(ascii: "-"):
                            true
                        default: false
                        }
                    }
        }
        let named: [(String, [String])] = [
            ("database", [self.database] + (self.newDatabase.map { [$0] } ?? [])),
            ("collection", self.allCollections),
            ("alias", self.alias.map { [$0] } ?? []),
            ("partition", self.partitions),
        ]
        for (kind, names) in named {
            if let name = names.first(where: { !acceptable($0) }) { return (kind, name) }
        }
        return nil
    }

    /// The values of ``otherTargets`` of one kind, in order.
    public func otherTargets(_ kind: CallTarget.Kind) -> [String] {
        self.otherTargets.compactMap { $0.kind == kind ? $0.value : nil }
    }

    init(rpc: RPCDescriptor, database: String) {
        self.rpc = rpc
        self.database = database
    }
}
