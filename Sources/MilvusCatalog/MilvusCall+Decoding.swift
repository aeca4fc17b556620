public import ProtoWire

extension MilvusCall {
    /// Decodes the request message of `rpc` into what it acts on.
    ///
    /// Reads only the fields the catalog lists for `rpc` and skips every other field without copying it: an
    /// Insert's `fields_data` (hundreds of MiB of vectors) is stepped over as a sub-slice, never copied or
    /// descended into. Embedded messages that matter (RoleEntity, UserEntity, GrantEntity, GrantorEntity,
    /// PrivilegeEntity, map entries) are decoded with `limits.maxDepth`. Fails closed: any malformed byte is an
    /// error, even in a field the guard would have skipped.
    ///
    /// - Parameters:
    ///   - message: the protobuf bytes of one request, without the gRPC prefix.
    ///   - rpc: the RPC the request's `:path` named.
    ///   - metadataDatabase: the request's `dbname` metadata (header), if any.
    ///   - limits: message size and nesting depth bounds.
    /// - Throws: ``WireError`` whose offset is relative to the start of `message`: `.messageTooLarge`,
    ///   `.truncated`, `.malformedVarint`, `.invalidFieldNumber`, `.unsupportedWireType`, `.unexpectedWireType`
    ///   (a known field with the wrong wire type), `.invalidUTF8`, `.nestingTooDeep`.
    public init(
        decoding message: ArraySlice<UInt8>,
        rpc: RPCDescriptor,
        metadataDatabase: String?,
        limits: WireLimits = .default
    ) throws(WireError) {
        guard message.count <= limits.maxMessageSize else {
            throw WireError(.messageTooLarge, at: 0, declaredLength: message.count)
        }
        var fields = DecodedFields()
        do {
            var reader = WireReader(message, limits: limits)
            try fields.readRequest(&reader, rpc: rpc)
        } catch {
            throw error.shifted(by: -message.startIndex)
        }
        self = fields.call(for: rpc, metadataDatabase: metadataDatabase)
    }
}

/// The values read so far. Singular fields are overwritten by each occurrence on the wire (last one wins, and
/// an embedded message's later occurrence merges into the earlier one); repeated fields accumulate.
private struct DecodedFields {
    var database: String?
    var collection: String?
    var partition: String?
    var indexName: String?
    var fieldName: String?
    var alias: String?
    var filter: String?
    var user: String?
    var role: String?
    var newCollection: String?
    var newDatabase: String?
    var resourceGroup: String?
    var sourceResourceGroup: String?
    var targetResourceGroup: String?
    var privilegeGroup: String?
    var snapshot: String?
    var namespace: String?
    var function: String?
    var rowPolicy: String?
    var fileResource: String?
    var channel: String?
    var grantObjectType: String?
    var grantObjectName: String?
    var grantPrivilege: String?
    var collections: [String] = []
    var partitions: [String] = []
    var roles: [String] = []
    var resourceGroups: [String] = []
    var fieldNames: [String] = []
    var privileges: [String] = []
    var resourceGroupKeys: [String] = []
    var rowCount: UInt32?
    var collectionID: Int64 = 0
    var collectionIDs: [Int64] = []
    var filterParameters = FilterParameters()

    mutating func readRequest(_ reader: inout WireReader, rpc: RPCDescriptor) throws(WireError) {
        while let field = try reader.nextField() {
            guard let role = rpc.role(of: field.number) else { continue }
            switch role {
            case .database: self.database = try field.stringValue()
            case .collection: self.collection = try field.stringValue()
            case .partition: self.partition = try field.stringValue()
            case .indexName: self.indexName = try field.stringValue()
            case .fieldName: self.fieldName = try field.stringValue()
            case .alias: self.alias = try field.stringValue()
            case .filter: self.filter = try field.stringValue()
            case .user: self.user = try field.stringValue()
            case .role: self.role = try field.stringValue()
            case .newCollection: self.newCollection = try field.stringValue()
            case .newDatabase: self.newDatabase = try field.stringValue()
            case .resourceGroup: self.resourceGroup = try field.stringValue()
            case .sourceResourceGroup: self.sourceResourceGroup = try field.stringValue()
            case .targetResourceGroup: self.targetResourceGroup = try field.stringValue()
            case .privilegeGroup: self.privilegeGroup = try field.stringValue()
            case .snapshot: self.snapshot = try field.stringValue()
            case .namespace: self.namespace = try field.stringValue()
            case .function: self.function = try field.stringValue()
            case .rowPolicy: self.rowPolicy = try field.stringValue()
            case .fileResource: self.fileResource = try field.stringValue()
            case .channel: self.channel = try field.stringValue()
            case .collections: try Self.append(try field.stringValue(), to: &self.collections, field, reader.limits)
            case .partitions: try Self.append(try field.stringValue(), to: &self.partitions, field, reader.limits)
            case .roles: try Self.append(try field.stringValue(), to: &self.roles, field, reader.limits)
            case .resourceGroups:
                try Self.append(try field.stringValue(), to: &self.resourceGroups, field, reader.limits)
            case .fieldNames: try Self.append(try field.stringValue(), to: &self.fieldNames, field, reader.limits)
            case .rowCount: self.rowCount = try field.uint32Value()
            case .collectionID: self.collectionID = try field.int64Value()
            case .collectionIDs: try self.appendCollectionIDs(field, reader.limits)
            case .roleEntity:
                var nested = try reader.nestedReader(for: field)
                try Self.readName(&nested, into: &self.role)
            case .userEntity:
                var nested = try reader.nestedReader(for: field)
                try Self.readName(&nested, into: &self.user)
            case .grantEntity:
                var nested = try reader.nestedReader(for: field)
                try self.readGrantEntity(&nested)
            case .grantor:
                var nested = try reader.nestedReader(for: field)
                try self.readGrantor(&nested)
            case .privileges:
                var nested = try reader.nestedReader(for: field)
                var name: String?
                try Self.readName(&nested, into: &name)
                try Self.append(name ?? "", to: &self.privileges, field, reader.limits)
            case .resourceGroupMap:
                var nested = try reader.nestedReader(for: field)
                var key: String?
                try Self.readName(&nested, into: &key)
                try Self.append(key ?? "", to: &self.resourceGroupKeys, field, reader.limits)
            case .filterParameters:
                var nested = try reader.nestedReader(for: field)
                try self.filterParameters.readEntry(&nested)
                guard self.filterParameters.count <= reader.limits.maxRepeatedValues else {
                    throw WireError(.tooManyValues, at: field.offset)
                }
            }
        }
    }

    /// Keeps one more value of a repeated field, up to ``WireLimits/maxRepeatedValues``.
    private static func append(
        _ value: String,
        to values: inout [String],
        _ field: WireField,
        _ limits: WireLimits
    ) throws(WireError) {
        guard values.count < limits.maxRepeatedValues else { throw WireError(.tooManyValues, at: field.offset) }
        values.append(value)
    }

    /// Keeps the IDs of a `repeated int64` field: one varint, or a packed run of them; up to
    /// ``WireLimits/maxRepeatedValues`` in all.
    private mutating func appendCollectionIDs(_ field: WireField, _ limits: WireLimits) throws(WireError) {
        switch field.value {
        case .varint:
            guard self.collectionIDs.count < limits.maxRepeatedValues else {
                throw WireError(.tooManyValues, at: field.offset)
            }
            self.collectionIDs.append(try field.int64Value())
        case .lengthDelimited:
            var packed = WireReader(try field.bytesValue())
            while !packed.isAtEnd {
                let value = try packed.readVarint()
                guard self.collectionIDs.count < limits.maxRepeatedValues else {
                    throw WireError(.tooManyValues, at: field.offset)
                }
                self.collectionIDs.append(Int64(bitPattern: value))
            }
        default:
            throw WireError(.unexpectedWireType, at: field.offset)
        }
    }

    /// Reads a message whose field 1 is a string (`RoleEntity`, `UserEntity`, `ObjectEntity`, `PrivilegeEntity`,
    /// a `map<string, …>` entry's key); other fields are checked for structure and skipped.
    private static func readName(_ reader: inout WireReader, into name: inout String?) throws(WireError) {
        while let field = try reader.nextField() {
            if field.number == 1 { name = try field.stringValue() }
        }
    }

    /// `milvus.GrantEntity`: 1 role (RoleEntity), 2 object (ObjectEntity), 3 object_name, 4 grantor, 5 db_name.
    private mutating func readGrantEntity(_ reader: inout WireReader) throws(WireError) {
        while let field = try reader.nextField() {
            switch field.number {
            case 1:
                var nested = try reader.nestedReader(for: field)
                try Self.readName(&nested, into: &self.role)
            case 2:
                var nested = try reader.nestedReader(for: field)
                try Self.readName(&nested, into: &self.grantObjectType)
            case 3: self.grantObjectName = try field.stringValue()
            case 4:
                var nested = try reader.nestedReader(for: field)
                try self.readGrantor(&nested)
            case 5: self.database = try field.stringValue()
            default: continue
            }
        }
    }

    /// `milvus.GrantorEntity`: 1 user (UserEntity, the grantor: not a target, skipped), 2 privilege.
    private mutating func readGrantor(_ reader: inout WireReader) throws(WireError) {
        while let field = try reader.nextField() {
            guard field.number == 2 else { continue }
            var nested = try reader.nestedReader(for: field)
            try Self.readName(&nested, into: &self.grantPrivilege)
        }
    }

    func call(for rpc: RPCDescriptor, metadataDatabase: String?) -> MilvusCall {
        let body = self.database ?? ""
        let database: String
        if rpc.targetsOwnDatabase || !body.isEmpty {
            database = body
        } else if let metadataDatabase, !metadataDatabase.isEmpty {
            database = metadataDatabase
        } else {
            database = "default"
        }
        var call = MilvusCall(rpc: rpc, database: database)
        call.collection = nonEmpty(self.collection)
        call.collections = self.collections
        call.partitions = (nonEmpty(self.partition).map { [$0] } ?? []) + self.partitions
        call.indexName = nonEmpty(self.indexName)
        call.fieldName = nonEmpty(self.fieldName)
        call.alias = nonEmpty(self.alias)
        call.filter = nonEmpty(self.filter)
        call.filterParameters = self.filterParameters.isEmpty ? nil : self.filterParameters.json
        call.users = nonEmpty(self.user).map { [$0] } ?? []
        call.roles = (nonEmpty(self.role).map { [$0] } ?? []) + self.roles
        call.newCollectionName = nonEmpty(self.newCollection)
        var resourceGroups: [String] = []
        if let name = nonEmpty(self.resourceGroup) { resourceGroups.append(name) }
        if let name = nonEmpty(self.sourceResourceGroup) { resourceGroups.append(name) }
        if let name = nonEmpty(self.targetResourceGroup) { resourceGroups.append(name) }
        resourceGroups.append(contentsOf: self.resourceGroups)
        for key in self.resourceGroupKeys where !resourceGroups.contains(key) {
            resourceGroups.append(key)
        }
        call.resourceGroups = resourceGroups
        call.privilegeGroup = nonEmpty(self.privilegeGroup)
        call.snapshotName = nonEmpty(self.snapshot)

        if rpc.readsRowCount { call.rowCount = self.rowCount ?? 0 }
        // A name, when there is one, is what Milvus looks up; an ID of 0 is proto3's absent value.
        if call.collection == nil, self.collectionID != 0 { call.collectionIDs.append(self.collectionID) }
        call.collectionIDs.append(contentsOf: self.collectionIDs)
        if rpc.createsNamedTarget { call.newDatabase = nonEmpty(self.newDatabase) ?? database }

        var others: [CallTarget] = []
        func add(_ kind: CallTarget.Kind, _ value: String?) {
            if let value = nonEmpty(value) { others.append(CallTarget(kind, value)) }
        }
        add(.namespace, self.namespace)
        add(.function, self.function)
        add(.rowPolicy, self.rowPolicy)
        add(.fileResource, self.fileResource)
        add(.channel, self.channel)
        add(.grantObjectType, self.grantObjectType)
        add(.grantObjectName, self.grantObjectName)
        add(.privilege, self.grantPrivilege)
        for name in self.privileges { others.append(CallTarget(.privilege, name)) }
        for name in self.fieldNames { others.append(CallTarget(.field, name)) }
        call.otherTargets = others
        return call
    }
}

/// proto3 strings have no presence: empty is absent.
private func nonEmpty(_ value: String?) -> String? {
    guard let value, !value.isEmpty else { return nil }
    return value
}
