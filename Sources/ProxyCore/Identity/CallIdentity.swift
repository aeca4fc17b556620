import GuardPolicy

/// Who a call is from, as far as the proxy knows.
enum CallIdentity {
    /// A password is being verified off the loop; the call waits in its gate.
    case pending
    /// The caller, authenticated (or `anonymous` when it presented no credential).
    case known(Principal)
    /// Refused before the policy is asked: UNAUTHENTICATED for a wrong or malformed credential,
    /// RESOURCE_EXHAUSTED for an address over its failure limit. `claimed` is the user name the client
    /// presented, if any (for logs and the audit record; it is not an identity).
    case refused(GRPCStatus, claimed: String?)
}
