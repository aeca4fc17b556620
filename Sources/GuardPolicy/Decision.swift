/// What the policy decided about one call: a value, not an error (policy outcomes are ordinary results).
///
/// `ProxyCore` maps a denial to `PERMISSION_DENIED` with the message `milvus-guard: <reason>`. Room is left for
/// `.requireApproval(by:approvers:)`, which a later part adds on top of an allow.
public enum Decision: Hashable, Sendable {
    /// The call may go ahead; `by` is the allow rule that covered it (the first one, for a call on several
    /// targets), or ``RuleID/session``.
    case allow(by: RuleID)
    /// The call is refused. `by` is the deny rule that matched, or `nil` when no rule allows the call.
    /// `reason` is the whole sentence: `app may not DropCollection on default.books (no rule allows it)`.
    case deny(by: RuleID?, reason: String)

    /// Whether the call may go ahead.
    public var isAllowed: Bool {
        if case .allow = self { return true }
        return false
    }

    /// The rule that decided, or `nil` for "no rule allows it".
    public var rule: RuleID? {
        switch self {
        case .allow(let rule): rule
        case .deny(let rule, _): rule
        }
    }
}
