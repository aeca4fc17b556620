import AuditStore
import Foundation
import Glibc
import GuardPolicy
import Synchronization
import Testing

@testable import GuardCLI

private let hash600k = "pbkdf2-sha256$600000$c2FsdHNhbHRzYWx0c2FsdA==$MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

@Suite("Policy records and reloads")
struct PolicyRecordTests {
    /// Two policy files whose SHA-256s (and the digest over both) were computed with Python's hashlib.
    private func files() throws -> (TemporaryFolder, [PolicyFolder.File]) {
        let folder = try TemporaryFolder()
        try folder.write("conf/policies/a.yaml", "users:\n  app: { password: \"\(hash600k)\", roles: [writer] }\n")
        try folder.write("conf/policies/b.yaml", "roles:\n  writer:\n    - allow: [read]\n      on: [\"*\"]\n")
        return (folder, try PolicyFolder.read(path: folder.file("conf/policies"), displayPath: "policies"))
    }

    @Test(
        "A policy put in force is recorded with each file's SHA-256, one over all of them as sha256sum lists them, the mode and the guard"
    )
    func loaded() throws {
        let (_, files) = try self.files()
        let policy = try PolicyFolder.merge(files)
        let record = PolicyRecord.loaded(
            policy,
            files: files,
            folder: "/etc/guard/policies",
            mode: .shadow,
            trigger: .start
        )
        #expect(record.kind == .policy && record.action == "policy" && record.decision == "loaded")
        #expect(record.callID.count == 32 && record.callID.allSatisfy(\.isHexDigit))
        #expect(record.principal == nil && record.rpc == nil && record.client == nil)
        #expect(
            record.targets == [
                "policies/a.yaml": "54b5bf21a5fa2bd6b50021d14bf7d165c339f4c73c7bdbbec41a9b3b850ee257",
                "policies/b.yaml": "f4d27b72053f9b1e8a83e225a85932d78859fc898057bb6c30b3be74de099787",
                "policy_sha256": "469261350d1a5b314ef3b71fc0cb456257f0766043c6eede7266e17b0db885ca",
                "mode": "shadow",
                "trigger": "start",
                "policies_folder": "/etc/guard/policies",
                "guard": PolicyRecord.guardName,
            ]
        )
        #expect(PolicyRecord.guardName.hasSuffix(" pid \(getpid())"))
        #expect(record.message == "1 user, 0 API keys, 1 rules from 2 files, mode shadow")
        #expect(abs(record.timeMilliseconds - AuditTime.nowMilliseconds()) < 60_000)
    }

    @Test("A rejected reload names its sender and why, cut at 16 KiB")
    func rejected() throws {
        let (_, files) = try self.files()
        let reason = "the new policy does not load: " + String(repeating: "é", count: 10_000)
        let record = PolicyRecord.rejected(
            reason: reason,
            files: files,
            folder: nil,
            trigger: .reload(SignalSender(pid: 42, uid: 0))
        )
        #expect(record.decision == "rejected")
        #expect(record.targets["trigger"] == "SIGHUP")
        #expect(record.targets["requested_by"] == "pid 42, uid 0 (root)")
        #expect(record.targets["mode"] == nil)
        #expect(record.targets["policies/a.yaml"] != nil && record.targets["policy_sha256"] != nil)
        let message = try #require(record.message)
        #expect(message.hasPrefix("the old policy stays in force: the new policy does not load: éé"))
        #expect(message.hasSuffix("é… [\(31 + reason.utf8.count) bytes in all]"))
        #expect(message.utf8.count <= PolicyRecord.messageLimit + 40)

        let unread = PolicyRecord.rejected(reason: "no", files: nil, folder: nil, trigger: .reload(nil))
        #expect(unread.targets == ["guard": PolicyRecord.guardName, "trigger": "SIGHUP"])
        #expect(PolicyRecord.describe(SignalSender(pid: 7, uid: 4_000_000_000)) == "pid 7, uid 4000000000")
    }

    @Test("SIGHUPs during a reload fold into one more reload, with the last sender, and reloads never overlap")
    func reloaderFolds() throws {
        let started = Atomic<Int>(0)
        let running = Atomic<Int>(0)
        let overlapped = Atomic<Bool>(false)
        let release = Atomic<Bool>(false)
        let triggers = Mutex<[PolicyRecord.Trigger]>([])
        let reloader = PolicyReloader { trigger in
            if running.add(1, ordering: .sequentiallyConsistent).newValue > 1 {
                overlapped.store(true, ordering: .sequentiallyConsistent)
            }
            triggers.withLock { $0.append(trigger) }
            started.add(1, ordering: .sequentiallyConsistent)
            for _ in 0..<10_000 where !release.load(ordering: .sequentiallyConsistent) { usleep(1_000) }
            running.subtract(1, ordering: .sequentiallyConsistent)
            return .done
        }
        reloader.request(.reload(SignalSender(pid: 1, uid: 0)))
        for _ in 0..<10_000 where started.load(ordering: .sequentiallyConsistent) == 0 { usleep(1_000) }
        for pid: Int32 in 2...4 { reloader.request(.reload(SignalSender(pid: pid, uid: 0))) }
        release.store(true, ordering: .sequentiallyConsistent)
        for _ in 0..<10_000 where started.load(ordering: .sequentiallyConsistent) < 2 { usleep(1_000) }
        for _ in 0..<10_000 where running.load(ordering: .sequentiallyConsistent) > 0 { usleep(1_000) }
        usleep(50_000)  // a third reload, which must not come, would have started by now
        #expect(
            triggers.withLock { $0 } == [
                .reload(SignalSender(pid: 1, uid: 0)), .reload(SignalSender(pid: 4, uid: 0)),
            ]
        )
        let overlap = overlapped.load(ordering: .sequentiallyConsistent)
        #expect(!overlap)

        // Idle again: the next request starts a reload of its own.
        reloader.request(.start)
        for _ in 0..<10_000 where started.load(ordering: .sequentiallyConsistent) < 3 { usleep(1_000) }
        #expect(triggers.withLock { $0.last } == .start)
    }

    @Test("A reload the audit store could not record is tried again, with the files read anew, until it is applied")
    func reloaderRetries() throws {
        let attempts = Mutex<[PolicyRecord.Trigger]>([])
        let reloader = PolicyReloader(retryMilliseconds: (first: 10, last: 40)) { trigger in
            let count = attempts.withLock { attempts in
                attempts.append(trigger)
                return attempts.count
            }
            return count < 4 ? .retry : .done
        }
        reloader.request(.reload(SignalSender(pid: 9, uid: 0)))
        for _ in 0..<10_000 where attempts.withLock({ $0.count }) < 4 { usleep(1_000) }
        usleep(100_000)  // a fifth try, which must not come, would have started by now
        #expect(attempts.withLock { $0 } == Array(repeating: .reload(SignalSender(pid: 9, uid: 0)), count: 4))
    }

    @Test("A SIGHUP during the pause before a retry is tried at once, not after the pause")
    func retryPauseEndsOnRequest() throws {
        let attempts = Mutex<[PolicyRecord.Trigger]>([])
        let reloader = PolicyReloader(retryMilliseconds: (first: 20_000, last: 20_000)) { trigger in
            let count = attempts.withLock { attempts in
                attempts.append(trigger)
                return attempts.count
            }
            return count == 1 ? .retry : .done
        }
        reloader.request(.reload(SignalSender(pid: 1, uid: 0)))
        for _ in 0..<10_000 where attempts.withLock({ $0.isEmpty }) { usleep(1_000) }
        reloader.request(.reload(SignalSender(pid: 2, uid: 0)))
        // Well before the 20 s pause is over.
        for _ in 0..<5_000 where attempts.withLock({ $0.count }) < 2 { usleep(1_000) }
        #expect(
            attempts.withLock { $0 } == [.reload(SignalSender(pid: 1, uid: 0)), .reload(SignalSender(pid: 2, uid: 0))]
        )
    }

    @Test("Policy files are read in the order of their names' bytes, and two names of one text are refused")
    func fileOrder() throws {
        let folder = try TemporaryFolder()
        let roles = "roles:\n  writer:\n    - allow: [read]\n      on: [\"*\"]\n"
        try folder.write("p/b.yaml", roles.replacingOccurrences(of: "writer", with: "b"))
        try folder.write("p/B.yaml", roles.replacingOccurrences(of: "writer", with: "c"))
        try folder.write("p/a_b.yml", roles.replacingOccurrences(of: "writer", with: "d"))
        try folder.write("p/a.yaml", roles)
        let names = try PolicyFolder.read(path: folder.file("p"), displayPath: "p").map(\.name)
        #expect(names == ["p/B.yaml", "p/a.yaml", "p/a_b.yml", "p/b.yaml"])
        // café.yaml composed and decomposed: two files on disk, one name for Swift (and for rule ids).
        try folder.write("q/caf\u{E9}.yaml", roles)
        try folder.write("q/cafe\u{301}.yaml", roles.replacingOccurrences(of: "writer", with: "other"))
        #expect(throws: GuardPolicyError.self) { try PolicyFolder.read(path: folder.file("q"), displayPath: "q") }
        // sha256sum escapes such names, and they make rule ids and messages ambiguous.
        for name in ["a\nb.yaml", "a\\b.yaml"] {
            try folder.write("r-\(name.utf8.count)/x.yaml", roles)
            try folder.write("r-\(name.utf8.count)/\(name)", roles.replacingOccurrences(of: "writer", with: "y"))
            #expect(throws: GuardPolicyError.self) {
                try PolicyFolder.read(path: folder.file("r-\(name.utf8.count)"), displayPath: "r")
            }
        }
    }
}
