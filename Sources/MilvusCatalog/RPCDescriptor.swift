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
    public let name: String
    /// The gRPC `:path`, e.g. `/milvus.proto.milvus.MilvusService/DropCollection`.
    public let path: String
    /// What the RPC does, for policies.
    public let actionClass: ActionClass
    /// Unary or streaming.
    public let streaming: StreamingKind
    /// The request message's full protobuf name, e.g. `milvus.proto.milvus.DropCollectionRequest`.
    public let requestMessage: String
    /// The request fields the guard reads, by number.
    let layout: [RequestField]
    /// The request has Insert's/Upsert's `num_rows`.
    let readsRowCount: Bool
    /// The request names a collection or database it creates or renames to.
    let createsNamedTarget: Bool

    init(
        name: String,
        actionClass: ActionClass,
        streaming: StreamingKind,
        requestMessage: String,
        layout: [RequestField]
    ) {
        self.name = name
        self.path = Self.pathPrefix + name
        self.actionClass = actionClass
        self.streaming = streaming
        self.requestMessage = requestMessage
        self.layout = layout
        self.readsRowCount = layout.contains { $0.role == .rowCount }
        self.createsNamedTarget = layout.contains { $0.role == .newCollection || $0.role == .newDatabase }
    }

    /// `true` for CreateDatabase, DropDatabase, AlterDatabase and DescribeDatabase: their body's `db_name` is
    /// the database they act on, never the `dbname` header or `default`.
    public var targetsOwnDatabase: Bool {
        switch self.name {
        case "CreateDatabase", "DropDatabase", "AlterDatabase", "DescribeDatabase": true
        default: false
        }
    }

    /// The RPC's name.
    public var description: String {
        self.name
    }

    /// Compares ``name`` only.
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.name == rhs.name
    }

    /// Hashes ``name`` only.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.name)
    }

    func role(of number: UInt32) -> FieldRole? {
        for field in self.layout where field.number == number {
            return field.role
        }
        return nil
    }
}
