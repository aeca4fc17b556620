import GuardPolicy

@testable import MilvusCatalog

/// Builds decoded calls directly (the internal initializer), so evaluator tests can name every target.
enum Calls {
    static func rpc(_ name: String) -> RPCDescriptor {
        guard let rpc = MilvusRPCs.descriptor(named: name) else { preconditionFailure("no RPC \(name)") }
        return rpc
    }

    static func make(
        _ name: String,
        database: String = "default",
        collection: String? = nil,
        collections: [String] = [],
        alias: String? = nil,
        newName: String? = nil,
        newDatabase: String? = nil,
        collectionIDs: [Int64] = []
    ) -> MilvusCall {
        var call = MilvusCall(rpc: Self.rpc(name), database: database)
        call.collectionIDs = collectionIDs
        call.collection = collection
        call.collections = collections
        call.alias = alias
        call.newCollectionName = newName
        call.newDatabase = newDatabase
        return call
    }
}

/// A one-file policy text loaded through the real loader, so tests read like policy files.
func loadPolicy(_ text: String, file: String = "policies/test.yaml") throws -> Policy {
    try PolicyFolder.merge([(file, text)])
}

func principal(
    _ name: String,
    _ roles: [String],
    _ authentication: Principal.Authentication = .password
)
    -> Principal
{
    Principal(name: name, roles: roles, authentication: authentication)
}
