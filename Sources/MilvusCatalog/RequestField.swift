/// What a request field means to the guard. Internal: the table in `MilvusRPCs+Table.swift` maps field numbers
/// of each request message to these roles, and ``MilvusCall`` decoding applies them.
enum FieldRole: Hashable, Sendable {
    // Singular strings: the last occurrence wins.
    case database, collection, partition, indexName, fieldName, alias, filter, user, role
    case newCollection, newDatabase, resourceGroup, sourceResourceGroup, targetResourceGroup
    case privilegeGroup, snapshot, namespace, function, rowPolicy, fileResource, channel
    // Repeated strings: every occurrence is kept, in order.
    case collections, partitions, roles, resourceGroups, fieldNames
    // `uint32 num_rows` of Insert/Upsert.
    case rowCount
    // `int64 collectionID`: a collection named by its ID (last one wins; 0 is absent).
    case collectionID
    // `repeated int64 collectionID` (BatchDescribeCollection), packed or not.
    case collectionIDs
    // Embedded messages, decoded with a depth limit (singular ones merge, as protobuf specifies).
    /// `milvus.RoleEntity` (1 name).
    case roleEntity
    /// `milvus.UserEntity` (1 name).
    case userEntity
    /// `milvus.GrantEntity` (1 role, 2 object, 3 object_name, 4 grantor, 5 db_name).
    case grantEntity
    /// `milvus.GrantorEntity` (1 user, 2 privilege).
    case grantor
    /// Repeated `milvus.PrivilegeEntity` (1 name).
    case privileges
    /// `map<string, rg.ResourceGroupConfig>`: entries are messages whose key (1) is a resource group name.
    case resourceGroupMap
    /// Delete's `map<string, schema.TemplateValue> expr_template_values`: what the filter's `{name}`s stand for.
    case filterParameters
}

/// One field of a request message that the guard reads: its number in `milvus.proto` and its role.
struct RequestField: Hashable, Sendable {
    let number: UInt32
    let role: FieldRole

    init(_ number: UInt32, _ role: FieldRole) {
        self.number = number
        self.role = role
    }
}
