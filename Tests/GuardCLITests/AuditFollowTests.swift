import ArgumentParser
import AuditStore
import Foundation
import Testing

@testable import GuardCLI

/// `milvus-guard audit --follow`: every call once, in id order, with what became of it.
@Suite("milvus-guard audit --follow")
struct AuditFollowTests {
    private static let noon: Int64 = 1_746_100_800_000

    private static func request(_ n: Int, at time: Int64) -> AuditRecord {
        var record = AuditRecord(kind: .request, callID: String(repeating: "\(n)", count: 32), timeMilliseconds: time)
        record.principal = "alice"
        record.rpc = "Insert"
        record.decision = "allowed"
        return record
    }

    private static func outcome(_ n: Int, at time: Int64) -> AuditRecord {
        var record = AuditRecord(kind: .outcome, callID: String(repeating: "\(n)", count: 32), timeMilliseconds: time)
        record.status = 0
        return record
    }

    private static func refusal(_ n: Int, at time: Int64) -> AuditRecord {
        var record = AuditRecord(kind: .refusal, callID: String(repeating: "\(n)", count: 32), timeMilliseconds: time)
        record.principal = "bob"
        record.rpc = "DropCollection"
        record.decision = "denied"
        record.status = 7
        return record
    }

    /// Writes `records` and waits until they are committed.
    private static func write(_ records: [AuditRecord], to store: SQLiteAuditStore) {
        let before = store.committed.records
        for (offset, record) in records.enumerated() {
            #expect(store.submit(record, token: UInt64(offset), listener: nil))
        }
        for _ in 0..<5_000 where store.committed.records < before + records.count { usleep(1_000) }
    }

    private static func command(_ arguments: [String]) throws -> AuditListCommand {
        try #require(try GuardCommand.parseAsRoot(["audit"] + arguments) as? AuditListCommand)
    }

    /// The ids and outcomes of the JSON lines.
    private static func calls(_ lines: [String]) throws -> [String] {
        try lines.map { line in
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return "\(object["id"] ?? "?"):\(object["outcome"] ?? "?")"
        }
    }

    /// Follows a store holding `records` with `query`, the clock at `now`: `between(round, store)` runs at each
    /// pause, and the follow ends at the pause of round `rounds`. Returns `id:outcome` of each line printed.
    private static func followed(
        _ records: [AuditRecord],
        _ query: AuditQuery,
        now: Int64,
        rounds: Int,
        between: (Int, SQLiteAuditStore) -> Void = { _, _ in }
    ) throws -> [String] {
        let folder = try TemporaryFolder()
        let store = try SQLiteAuditStore(path: folder.file("audit.db"))
        defer { store.close() }
        Self.write(records, to: store)
        let reader = try SQLiteAuditReader(path: folder.file("audit.db"))
        var lines: [String] = []
        var round = 0
        try Self.command([]).follow(
            reader,
            query,
            now: { now },
            pause: {
                round += 1
                between(round, store)
                return round < rounds
            },
            emit: { lines.append($0) }
        )
        return try Self.calls(lines)
    }

    @Test("A call in progress holds the feed back until its outcome is recorded; then both come, in id order")
    func waitsForOutcomes() throws {
        let records = [
            Self.request(1, at: Self.noon), Self.outcome(1, at: Self.noon + 5), Self.refusal(2, at: Self.noon + 10),
            Self.request(3, at: Self.noon + 20), Self.refusal(4, at: Self.noon + 30),
        ]
        let calls = try Self.followed(records, AuditQuery(afterID: 0), now: Self.noon + 1_000, rounds: 2) {
            if $0 == 1 { Self.write([Self.outcome(3, at: Self.noon + 900)], to: $1) }
        }
        // Round 1: calls 1 and 2; call 3 (id 4) is in progress, so the refusal after it (id 5) waits too.
        // Round 2: call 3 with its outcome, then the refusal.
        #expect(calls == ["1:ok", "3:failed", "4:ok", "5:failed"])
    }

    @Test("A call without an outcome for longer than the grace period is printed as unknown, once")
    func gracePeriod() throws {
        let calls = try Self.followed(
            [Self.request(1, at: Self.noon), Self.refusal(2, at: Self.noon + 10)],
            AuditQuery(afterID: 0),
            now: Self.noon + AuditListCommand.followGraceMilliseconds + 1,
            rounds: 3
        )
        #expect(calls == ["1:unknown", "2:failed"])
    }

    @Test("Without --after-id it starts after the newest call; filters apply")
    func fromNow() throws {
        let calls = try Self.followed(
            [Self.refusal(1, at: Self.noon), Self.refusal(2, at: Self.noon + 10)],
            AuditQuery(user: "bob"),
            now: Self.noon + 1_000,
            rounds: 2
        ) {
            if $0 == 1 {
                Self.write([Self.request(3, at: Self.noon + 20), Self.refusal(4, at: Self.noon + 30)], to: $1)
            }
        }
        #expect(calls == ["4:failed"])  // alice's request (3) is filtered out, bob's old calls skipped
    }

    @Test("Calls a filter leaves out are passed; a matching call after many of them is still printed")
    func passesUnmatched() throws {
        var alice = Self.refusal(0, at: Self.noon)
        alice.principal = "alice"
        let calls = try Self.followed([], AuditQuery(user: "bob", afterID: 0), now: Self.noon + 1_000, rounds: 4) {
            switch $0 {
            case 1, 2: Self.write(Array(repeating: alice, count: 3), to: $1)  // nothing to print
            case 3: Self.write([Self.refusal(7, at: Self.noon + 50)], to: $1)
            default: break
            }
        }
        #expect(calls == ["7:failed"])
    }

    @Test("With --outcome, a call in progress still holds the feed back: once done, it is printed if it matches")
    func outcomeFilter() throws {
        let records = [
            Self.request(1, at: Self.noon), Self.request(2, at: Self.noon + 5), Self.outcome(2, at: Self.noon + 9),
        ]
        let calls = try Self.followed(records, AuditQuery(outcome: .ok, afterID: 0), now: Self.noon + 1_000, rounds: 2)
        {
            if $0 == 1 { Self.write([Self.outcome(1, at: Self.noon + 500)], to: $1) }
        }
        #expect(calls == ["1:ok", "2:ok"])
    }

    @Test("A request recorded late (held over an outage, with its old time) gets the grace from when it is seen")
    func lateRequest() throws {
        // Ten minutes after the request's own time.
        let calls = try Self.followed(
            [Self.refusal(9, at: Self.noon)],
            AuditQuery(),
            now: Self.noon + 600_000,
            rounds: 3
        ) {
            switch $0 {
            case 1: Self.write([Self.request(1, at: Self.noon)], to: $1)
            case 2: Self.write([Self.outcome(1, at: Self.noon + 5)], to: $1)
            default: break
            }
        }
        #expect(calls == ["2:ok"])
    }

    @Test("Calls left in progress by a crash during the follow wait out one grace together, not one after another")
    func stuckCallsShareTheGrace() throws {
        let folder = try TemporaryFolder()
        let store = try SQLiteAuditStore(path: folder.file("audit.db"))
        defer { store.close() }
        Self.write([Self.refusal(9, at: Self.noon)], to: store)
        let reader = try SQLiteAuditReader(path: folder.file("audit.db"))
        var lines: [String] = []
        var round = 0
        var clock = Self.noon
        try Self.command([]).follow(
            reader,
            AuditQuery(),
            now: { clock },
            pause: {
                round += 1
                switch round {
                case 1: Self.write((1...3).map { Self.request($0, at: clock) }, to: store)  // ids 2, 3, 4
                case 2: clock += AuditListCommand.followGraceMilliseconds + 1
                default: break
                }
                return round < 3
            },
            emit: { lines.append($0) }
        )
        #expect(try Self.calls(lines) == ["2:unknown", "3:unknown", "4:unknown"])
    }

    @Test("--follow prints JSON lines: --format table is refused")
    func tableRefused() throws {
        let folder = try TemporaryFolder()
        let result = try Self.command(["--follow", "--format", "table", "--store", "x.db"]).execute(
            currentDirectory: folder.path
        )
        #expect(result.exitCode == 2)
        #expect(result.output == ["milvus-guard: --follow: prints JSON lines: use it with --format json, or alone"])
        #expect(try Self.command(["--follow"]).outputFormat == "json")
        #expect(try Self.command([]).outputFormat == "table")
        #expect(AuditCommand.subcommandFirst(["audit", "--follow", "list"]) == ["audit", "list", "--follow"])
    }
}
