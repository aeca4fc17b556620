/// A target of a call that has no dedicated ``MilvusCall`` property: a keyed value.
public struct CallTarget: Hashable, Sendable {
    /// What the value names.
    public enum Kind: String, Hashable, Sendable {
        /// A namespace (`namespace_name`, or the `namespace` of Insert, Delete, Search, …).
        case namespace
        /// A collection function (`function_name`).
        case function
        /// A row policy (`policy_name`).
        case rowPolicy
        /// A file resource (AddFileResource/RemoveFileResource `name`).
        case fileResource
        /// A replication channel (`channel_name`, `pchannel`).
        case channel
        /// A field of BatchUpdateManifest's `field_names`.
        case field
        /// A privilege name (OperatePrivilege's and OperatePrivilegeV2's grantor, OperatePrivilegeGroup's list).
        case privilege
        /// GrantEntity's object type (`Collection`, `Global`, `User`, …).
        case grantObjectType
        /// GrantEntity's `object_name` (a collection name, a user name, or `*`).
        case grantObjectName
    }

    /// What the value names.
    public let kind: Kind
    /// The value, as the request carries it.
    public let value: String

    /// Creates a target.
    public init(_ kind: Kind, _ value: String) {
        self.kind = kind
        self.value = value
    }
}
