public import MilvusCatalog

/// What an `allow:` or `deny:` list names: every RPC (`*`), an action class (`read`), or one RPC (`DropCollection`).
public enum ActionSelector: Hashable, Sendable, CustomStringConvertible {
    /// `*`: every RPC.
    case any
    /// `read`, `write`, `ddl`, `destructive` or `admin`: every RPC of the class (see ``ActionClass``).
    case actionClass(ActionClass)
    /// One RPC, by its exact name in the catalog.
    case rpc(RPCDescriptor)

    /// Parses one list element: `*`, an action class, or an RPC name of ``MilvusRPCs``; `nil` if it is none.
    ///
    /// Action classes are lower case and RPC names start with a capital letter, so the two never collide.
    public init?(_ text: String) {
        if text == "*" {
            self = .any
        } else if let actionClass = ActionClass(rawValue: text) {
            self = .actionClass(actionClass)
        } else if let rpc = MilvusRPCs.descriptor(named: text) {
            self = .rpc(rpc)
        } else {
            return nil
        }
    }

    /// Whether the selector names `rpc`.
    public func matches(_ rpc: RPCDescriptor) -> Bool {
        switch self {
        case .any: true
        case .actionClass(let actionClass): rpc.actionClass == actionClass
        case .rpc(let named): named == rpc
        }
    }

    /// The text as written in a policy file.
    public var description: String {
        switch self {
        case .any: "*"
        case .actionClass(let actionClass): actionClass.rawValue
        case .rpc(let rpc): rpc.name
        }
    }
}
