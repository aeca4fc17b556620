public import GuardPolicy

/// The policy the event loops enforce: the merged files of policies/ and the global `mode` of guard.yaml.
///
/// A reload builds a new one and sends it to every loop (``ProxyServer/reload(_:)``); calls that were already
/// decided keep their decision.
public struct ActivePolicy: Sendable {
    /// The merged policy files.
    public let policy: Policy
    /// `mode` in guard.yaml. In `shadow`, every call the policy denies is forwarded and logged as `would deny`
    /// (authentication is still required); in `enforce`, only files marked `mode: shadow` are.
    public let mode: Policy.Mode
    /// The sequence number of the audit store's `policy` record that put it in force, which every request and refusal
    /// record made under it names (`policy_seq`); nil without a store.
    public let recordSequence: Int64?

    public init(policy: Policy, mode: Policy.Mode = .enforce, recordSequence: Int64? = nil) {
        self.policy = policy
        self.mode = mode
        self.recordSequence = recordSequence
    }
}
