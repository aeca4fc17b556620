/// The newest record of the chain: its sequence number and hash. Recorded somewhere the store's writers can't change
/// (a log shipped off the machine, a ticket), it is an anchor: `milvus-guard audit verify --anchor SEQ:HASH` then
/// fails if the chain was rewritten up to that record or cut short before it.
public struct AuditChainHead: Sendable, Hashable, CustomStringConvertible {
    /// The record's sequence number.
    public let sequence: Int64
    /// Its hash, 64 lowercase hex characters.
    public let hash: String

    /// Creates a head.
    public init(sequence: Int64, hash: String) {
        self.sequence = sequence
        self.hash = hash
    }

    /// `SEQ:HASH`, the form `audit verify --anchor` takes.
    public var description: String { "\(self.sequence):\(self.hash)" }

    /// Parses `SEQ:HASH`; nil unless SEQ is a positive integer and HASH 64 hex characters.
    public init?(parsing text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let sequence = Int64(parts[0]), sequence > 0, parts[1].utf8.count == 64,
            parts[1].utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
        else { return nil }
        self.init(sequence: sequence, hash: String(parts[1]))
    }
}
