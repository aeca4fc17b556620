/// One RPC of `milvus.proto.milvus.MilvusService`: its name, gRPC path, action class, streaming kind and request
/// message, plus (internally) the request fields the guard reads.
///
/// Equality and hashing use ``name`` only: the catalog has one descriptor per name.
public struct RPCDescriptor: Hashable, Sendable, CustomStringConvertible {
    /// The gRPC service every Milvus RPC belongs to.
    public static let serviceName = "milvus.proto.milvus.MilvusService"
    /// The `:path` prefix every Milvus RPC shares.
    public static let pathPrefix = "/milvus.proto.milvus.MilvusService/"

    /// The RPC's name, e.g. `DropCollection`.
    public var name: String { self.storage.name }
    /// The gRPC `:path`, e.g. `/milvus.proto.milvus.MilvusService/DropCollection`.
    public var path: String { self.storage.path }
    /// What the RPC does, for policies.
    public var actionClass: ActionClass { self.storage.actionClass }
    /// Unary or streaming.
    public var streaming: StreamingKind { self.storage.streaming }
    /// The request message's full protobuf name, e.g. `milvus.proto.milvus.DropCollectionRequest`.
    public var requestMessage: String { self.storage.requestMessage }
    /// `true` for CreateDatabase, DropDatabase, AlterDatabase and DescribeDatabase: their body's `db_name` is
    /// the database they act on, never the `dbname` header or `default`.
    public var targetsOwnDatabase: Bool { self.storage.targetsOwnDatabase }
    /// Where the response carries Milvus's `common.Status`.
    public var responseStatus: ResponseStatus { self.storage.responseStatus }
    /// The response field that counts the rows the call changed: MutationResult's `insert_cnt` (6) for Insert,
    /// `delete_cnt` (7) for Delete, `upsert_cnt` (8) for Upsert; nil for every other RPC.
    public var affectedRowsField: UInt32? {
        switch self.name {
        case "Insert": 6
        case "Delete": 7
        case "Upsert": 8
        default: nil
        }
    }
    /// The request fields the guard reads, by number.
    var layout: [RequestField] { self.storage.layout }
    /// The request has Insert's/Upsert's `num_rows`.
    var readsRowCount: Bool { self.storage.readsRowCount }
    /// The request names a collection or database it creates or renames to.
    var createsNamedTarget: Bool { self.storage.createsNamedTarget }

    /// One immutable object per RPC, so that copying a descriptor (into every ``MilvusCall``) is one retain.
    private final class Storage: Sendable {
        let name: String
        let path: String
        let actionClass: ActionClass
        let streaming: StreamingKind
        let requestMessage: String
        let responseStatus: ResponseStatus
        let targetsOwnDatabase: Bool
        let layout: [RequestField]
        let readsRowCount: Bool
        let createsNamedTarget: Bool

        init(
            name: String,
            actionClass: ActionClass,
            streaming: StreamingKind,
            requestMessage: String,
            responseStatus: ResponseStatus,
            layout: [RequestField]
        ) {
            self.name = name
            self.path = RPCDescriptor.pathPrefix + name
            self.actionClass = actionClass
            self.streaming = streaming
            self.requestMessage = requestMessage
            self.responseStatus = responseStatus
            self.targetsOwnDatabase = ["CreateDatabase", "DropDatabase", "AlterDatabase", "DescribeDatabase"]
                .contains(name)
            self.layout = layout
            self.readsRowCount = layout.contains { $0.role == .rowCount }
            self.createsNamedTarget = layout.contains { $0.role == .newCollection || $0.role == .newDatabase }
        }
    }

    private let storage: Storage

    /// The identity of the shared storage: the same for every copy of one catalog descriptor.
    var identity: ObjectIdentifier { ObjectIdentifier(self.storage) }

    init(
        name: String,
        actionClass: ActionClass,
        streaming: StreamingKind,
        requestMessage: String,
        responseStatus: ResponseStatus,
        layout: [RequestField]
    ) {
        self.storage = Storage(
            name: name,
            actionClass: actionClass,
            streaming: streaming,
            requestMessage: requestMessage,
            responseStatus: responseStatus,
            layout: layout
        )
    }

    /// The RPC's name.
    public var description: String {
        self.name
    }

    /// Compares ``name`` only.
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.storage === rhs.storage || lhs.name == rhs.name
    }

    /// Hashes ``name`` only.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.name)
    }

    func role(of number: UInt32) -> FieldRole? {
        for field in self.storage.layout where field.number == number {
            return field.role
        }
        return nil
    }
}
