public import MilvusCatalog

/// One thing a call acts on, as rules see it: a collection of a database, a whole database, or the cluster.
///
/// A call has one or more targets (``targets(of:)``), and needs an allow on every one of them.
public enum PolicyTarget: Hashable, Sendable, CustomStringConvertible {
    /// A collection (or an alias, checked as the name the client sent) of a database: matched by `db.collection`
    /// patterns.
    case collection(database: String, name: String)
    /// A collection named only by its ID (DescribeCollection, ShowPartitions, GetReplicas, ManualCompaction… may send
    /// one instead of a name). The guard can't tell which collection it is, and Milvus looks an ID up across all
    /// databases (the request's `db_name` is not consulted), so it could be any collection of any database: an allow
    /// must cover them all (`*`, `*.*`), and a deny that names any collection applies (``ResourcePattern/mayMatch(_:)``).
    case collectionID(Int64)
    /// A database as a whole (ShowCollections, CreateDatabase, FlushAll, …): matched by `db` and `db.<glob>`
    /// patterns whose collection part is `*`.
    case database(String)
    /// Something outside any database (users, roles, privileges, resource groups, cluster state): matched only by
    /// the pattern `*`.
    case cluster

    /// `db.collection`, `db`, or `*`: how denials name the target.
    public var description: String {
        switch self {
        case .collection(let database, let name): "\(database).\(name)"
        case .collectionID(let id): "<collection ID \(id)>"
        case .database(let database): database
        case .cluster: "*"
        }
    }

    /// The targets of a decoded call; never empty.
    ///
    /// 1. An RPC of class ``ActionClass/admin`` acts on the cluster, whatever database or collection it mentions:
    ///    users, roles, privileges and resource groups are cluster-wide, so granting `admin` on `prod.*` must not
    ///    let anyone grant privileges.
    /// 2. Otherwise every collection the call names is a target: `collection_name`, Flush's and ShowCollections'
    ///    `collection_names`, BatchDescribeCollection's list, the alias of an alias RPC (CreateAlias, AlterAlias,
    ///    DropAlias, DescribeAlias), a collection named only by its ID (``MilvusCall/collectionIDs``: one target for
    ///    all of them), and
    ///    RenameCollection's or RestoreSnapshot's new name in its new database, and in the old database too when
    ///    they differ.
    /// 3. A call that names no collection acts on its database, unless its RPC has no database field at all
    ///    (``noDatabaseRPCs``): then it acts on the cluster.
    public static func targets(of call: MilvusCall) -> [PolicyTarget] {
        if call.rpc.actionClass == .admin { return [.cluster] }
        var targets: [PolicyTarget] = []
        if let collection = call.collection {
            targets.append(.collection(database: call.database, name: collection))
        }
        for collection in call.collections {
            targets.append(.collection(database: call.database, name: collection))
        }
        if let alias = call.alias {
            targets.append(.collection(database: call.database, name: alias))
        }
        // Every ID is judged alike (any collection anywhere): one target stands for them all, named by the first.
        if let id = call.collectionIDs.first { targets.append(.collectionID(id)) }
        if let newName = call.newCollectionName {
            let newDatabase = call.newDatabase ?? call.database
            targets.append(.collection(database: newDatabase, name: newName))
            // A server that ignores the new database (milvus-lite does) creates the name in the old one: the caller
            // must be allowed both.
            if newDatabase != call.database { targets.append(.collection(database: call.database, name: newName)) }
        }
        if !targets.isEmpty { return targets }
        return Self.noDatabaseRPCs.contains(call.rpc.name) ? [.cluster] : [.database(call.database)]
    }

    /// The targets of an RPC named on the command line (`policy explain`): the same rules as
    /// ``targets(of:)``, applied to the given database and collections.
    public static func targets(rpc: RPCDescriptor, database: String, collections: [String]) -> [PolicyTarget] {
        if rpc.actionClass == .admin { return [.cluster] }
        if !collections.isEmpty { return collections.map { .collection(database: database, name: $0) } }
        return Self.noDatabaseRPCs.contains(rpc.name) ? [.cluster] : [.database(database)]
    }

    /// The RPCs not of class admin whose request has no `db_name` (checked against the catalog's field table by
    /// `PolicyTargetTests`). With no collection either, they act on the cluster: credentials, roles, resource groups,
    /// privilege groups, file resources, RBAC restore, metrics, task states looked up by id, ListDatabases, and
    /// the session RPCs.
    public static let noDatabaseRPCs: Set<String> = [
        "DescribePrewarmTask", "CalcDistance", "Dummy", "RegisterLink", "GetMetrics", "GetComponentStates",
        "GetCompactionState", "GetImportState", "DeleteCredential", "DropRole", "ListCredUsers", "GetVersion",
        "CheckHealth",
        "DropResourceGroup", "ListIndexedSegment", "DescribeSegmentIndexData", "Connect", "AllocTimestamp",
        "ListDatabases", "RestoreRBAC", "DropPrivilegeGroup", "RemoveFileResource", "ListUsersWithTag",
        "ComputePhraseMatchSlop", "GetExportSnapshotState", "GetRestoreSnapshotState", "UnpinSnapshotData",
        "GetRefreshExternalCollectionProgress",
    ]
}
