/// What an RPC does, coarsely: the unit policies are written in.
///
/// The classification is the guard's, taken from the "Every RPC" table of MILVUS.md. Where an RPC's effect is
/// between two classes, it gets the more dangerous one.
public enum ActionClass: String, Hashable, Sendable, CaseIterable {
    /// Changes nothing (search, query, describe, list, …).
    case read
    /// Adds or changes data rows (insert, upsert, flush, import, …).
    case write
    /// Changes schema, indexes, load state or databases, without losing data.
    case ddl
    /// Loses data or access, or silently redirects readers: drops, delete, truncate, alias changes, rename,
    /// RBAC restore, credential deletion, ….
    case destructive
    /// Users, roles, privileges, resource groups, replication and cluster administration.
    case admin
}
