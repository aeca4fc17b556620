import AuditStore
import Glibc
import GuardPolicy
import OpenSSLSupport

/// The audit record (kind `policy`, docs/audit.md) of a policy a guard put in force, at start or by a reload, or of a
/// reload it rejected: each file's SHA-256 and one over all of them, the mode, which guard, and what asked for it. A
/// security team reading "allowed by policies/app.yaml:12" can then tell which version of that file allowed it, and
/// a policy changed for an hour and changed back leaves two records.
enum PolicyRecord {
    /// What made the guard load its policy.
    enum Trigger: Sendable, Hashable {
        /// The guard started.
        case start
        /// A SIGHUP (`milvus-guard reload`), with its sender when a process sent it.
        case reload(SignalSender?)
    }

    /// The decision of a reload that changed nothing: the new policy or config did not load.
    static let rejected = "rejected"

    /// The record of `policy`, read from `files`, put in force in `mode`, with `trust`: the SHA-256 of the client CAs
    /// and CRLs in force (``ProxyServer/clientTrustDigests``: `tls.client_ca`, `tls.client_crl`), since which
    /// certificates were accepted is part of who could call.
    static func loaded(
        _ policy: Policy,
        files: [PolicyFolder.File],
        folder: String,
        mode: Policy.Mode,
        trigger: Trigger,
        trust: [String: String] = [:]
    ) -> AuditRecord {
        var record = Self.record(files: files, folder: folder, mode: mode, trigger: trigger)
        record.targets.merge(trust) { $1 }
        record.decision = AuditEntry.policyLoaded
        record.message =
            "\(counted(policy.users.count, "user")), \(counted(policy.apiKeys.count, "API key")), "
            + "\(policy.ruleSet.ruleCount) rules from \(counted(files.count, "file")), mode \(mode)"
        return record
    }

    /// The record of a reload rejected for `reason`; `files` are those read, if the folder could be read.
    static func rejected(
        reason: String,
        files: [PolicyFolder.File]?,
        folder: String?,
        trigger: Trigger
    ) -> AuditRecord {
        var record = Self.record(files: files ?? [], folder: folder, mode: nil, trigger: trigger)
        record.decision = Self.rejected
        record.message = Self.capped("the old policy stays in force: \(reason)")
        return record
    }

    /// The SHA-256 over all files: of the lines `<hex>  <name>` that `sha256sum` prints for them, in their order.
    static func digest(of files: [PolicyFolder.File]) -> String {
        let lines = files.map { "\(Hex.encode(Crypto.sha256($0.bytes)))  \($0.name)\n" }.joined()
        return Hex.encode(Crypto.sha256(Array(lines.utf8)))
    }

    /// Longest message kept: a rejected policy's problems are listed whole up to here (the records of calls keep
    /// 16 KiB of each field too).
    static let messageLimit = 16 * 1024

    private static func record(
        files: [PolicyFolder.File],
        folder: String?,
        mode: Policy.Mode?,
        trigger: Trigger
    ) -> AuditRecord {
        var record = AuditRecord(kind: .policy, callID: Self.newID(), timeMilliseconds: AuditTime.nowMilliseconds())
        record.action = "policy"
        var targets: [String: String] = ["guard": Self.guardName]
        for file in files { targets[file.name] = Hex.encode(Crypto.sha256(file.bytes)) }
        if !files.isEmpty { targets["policy_sha256"] = Self.digest(of: files) }
        if let folder { targets["policies_folder"] = folder }
        if let mode { targets["mode"] = mode.rawValue }
        switch trigger {
        case .start:
            targets["trigger"] = "start"
        case .reload(let sender):
            targets["trigger"] = "SIGHUP"
            if let sender { targets["requested_by"] = Self.describe(sender) }
        }
        record.targets = targets
        return record
    }

    /// `pid 4242, uid 1000 (alice)`; without the name when the system has none for the uid.
    static func describe(_ sender: SignalSender) -> String {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        let found = getpwuid_r(sender.uid, &entry, &buffer, buffer.count, &result) == 0 && result != nil
        let name = found ? entry.pw_name.map { String(cString: $0) } : nil
        return "pid \(sender.pid), uid \(sender.uid)" + (name.map { " (\($0))" } ?? "")
    }

    /// `<host name> pid <pid>`: which of several guards sharing a store wrote the record.
    static let guardName: String = {
        var host = [CChar](repeating: 0, count: 256)
        let name =
            gethostname(&host, host.count - 1) == 0
            ? String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "unknown host"
        return "\(name) pid \(getpid())"
    }()

    /// A fresh record id: 32 random hex digits (a policy record belongs to no call).
    private static func newID() -> String {
        var generator = SystemRandomNumberGenerator()
        return Hex.encode((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    /// `text`, cut at ``messageLimit`` bytes on a character boundary with a note of how long it was.
    private static func capped(_ text: String) -> String {
        guard text.utf8.count > Self.messageLimit else { return text }
        var kept = ""
        for character in text {
            guard kept.utf8.count + character.utf8.count <= Self.messageLimit else { break }
            kept.append(character)
        }
        return kept + "… [\(text.utf8.count) bytes in all]"
    }
}
