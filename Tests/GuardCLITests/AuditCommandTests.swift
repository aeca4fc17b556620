import ArgumentParser
import AuditStore
import Foundation
import GuardCLI
import Synchronization
import Testing

/// Counts results from the audit writer thread.
private final class Counter: AuditListener {
    let count = Mutex(0)
    func auditCompleted(_ results: [AuditResult]) { self.count.withLock { $0 += results.count } }
}

/// 2025-05-01T12:00:00.000Z
private let noon: Int64 = 1_746_100_800_000

/// Writes a small audit log at `path`: an allowed Delete with its outcome, a denied DropCollection, and an Insert
/// whose outcome never came.
private func makeStore(_ path: String) throws {
    let store = try SQLiteAuditStore(path: path)
    var delete = AuditRecord(kind: .request, callID: String(repeating: "1", count: 32), timeMilliseconds: noon)
    delete.principal = "alice"
    delete.client = "10.0.0.7:5000"
    delete.rpc = "Delete"
    delete.database = "default"
    delete.collection = "books"
    delete.filter = "id in [1]"
    delete.decision = "allowed"
    var done = AuditRecord(kind: .outcome, callID: delete.callID, timeMilliseconds: noon + 20)
    done.status = 0
    done.durationMilliseconds = 20
    var drop = AuditRecord(kind: .refusal, callID: String(repeating: "2", count: 32), timeMilliseconds: noon + 60_000)
    drop.principal = "bob"
    drop.rpc = "DropCollection"
    drop.database = "default"
    drop.collection = "films"
    drop.decision = "denied"
    drop.status = 7
    drop.durationMilliseconds = 0.25
    var insert = AuditRecord(
        kind: .request,
        callID: String(repeating: "3", count: 32),
        timeMilliseconds: noon + 120_000
    )
    insert.principal = "alice"
    insert.rpc = "Insert"
    insert.database = "default"
    insert.collection = "books"
    insert.rows = 1000
    insert.decision = "allowed"
    let counter = Counter()
    for (token, record) in [delete, done, drop, insert].enumerated() {
        #expect(store.submit(record, token: UInt64(token), listener: counter))
    }
    store.close()
    #expect(counter.count.withLock { $0 } == 4)
}

@Suite("milvus-guard audit")
struct AuditCommandTests {
    private func list(_ arguments: [String], in folder: TemporaryFolder) throws -> (output: [String], exitCode: Int32) {
        let command = try #require(try GuardCommand.parseAsRoot(["audit"] + arguments) as? AuditListCommand)
        return command.execute(currentDirectory: folder.path, now: noon + 180_000)
    }

    @Test("audit is registered with list (the default), verify and prune")
    func registered() throws {
        #expect(GuardCommand.configuration.subcommands.contains { $0 == AuditCommand.self })
        #expect(
            AuditCommand.configuration.subcommands.map { $0.configuration.commandName } == ["list", "verify", "prune"]
        )
        #expect(try GuardCommand.parseAsRoot(["audit", "--user", "x"]) is AuditListCommand)
    }

    @Test("--store before the subcommand's name, as the synopsis writes it: audit --store F verify")
    func storeBeforeSubcommand() throws {
        func parse(_ arguments: [String]) throws -> any ParsableCommand {
            try GuardCommand.parseAsRoot(AuditCommand.subcommandFirst(arguments))
        }
        let verify = try #require(try parse(["audit", "--store", "a.db", "verify"]) as? AuditVerifyCommand)
        #expect(verify.store == "a.db")
        let prune = try #require(
            try parse(["audit", "--store=a.db", "prune", "--before", "30d"]) as? AuditPruneCommand
        )
        #expect(prune.store == "a.db")
        #expect(prune.before == "30d")
        let list = try #require(try parse(["audit", "--user", "verify", "--store", "a.db"]) as? AuditListCommand)
        #expect(list.user == "verify")  // a value, not a subcommand
        #expect(try parse(["audit", "--store", "a.db"]) is AuditListCommand)
        // Only the audit command's arguments move.
        #expect(AuditCommand.subcommandFirst(["serve", "--config", "verify"]) == ["serve", "--config", "verify"])
        #expect(
            AuditCommand.subcommandFirst(["audit", "verify", "--store", "a.db"]) == [
                "audit", "verify", "--store", "a.db",
            ]
        )
        // An option the subcommand does not take is still an error, now named by that subcommand.
        #expect(throws: (any Error).self) { try parse(["audit", "--user", "x", "verify"]) }
    }

    @Test("The table shows one aligned line per call with its outcome")
    func table() throws {
        let folder = try TemporaryFolder()
        try makeStore(folder.file("audit.db"))
        let result = try self.list(["--store", "audit.db"], in: folder)
        #expect(result.exitCode == 0)
        #expect(
            result.output == [
                "TIME                      PRINCIPAL  CLIENT         RPC             TARGET         ROWS  DECISION  OUTCOME     DURATION",
                "2025-05-01T12:00:00.000Z  alice      10.0.0.7:5000  Delete          default.books  -     allowed   ok          20.000 ms",
                "2025-05-01T12:01:00.000Z  bob        -              DropCollection  default.films  -     denied    failed (7)  0.250 ms",
                "2025-05-01T12:02:00.000Z  alice      -              Insert          default.books  1000  allowed   unknown     -",
            ]
        )
    }

    @Test("A call naming several collections, or a collection by its ID, shows them in the table's target")
    func tableTargets() throws {
        let folder = try TemporaryFolder()
        do {
            let store = try SQLiteAuditStore(path: folder.file("audit.db"))
            var flush = AuditRecord(kind: .refusal, callID: String(repeating: "6", count: 32), timeMilliseconds: noon)
            flush.principal = "alice"
            flush.rpc = "Flush"
            flush.database = "default"
            flush.targets = ["collections": "books,secret"]
            flush.decision = "denied"
            flush.status = 7
            var describe = flush
            describe.callID = String(repeating: "7", count: 32)
            describe.rpc = "DescribeCollection"
            describe.targets = ["collection_ids": "449812345678"]
            let counter = Counter()
            #expect(store.submit(flush, token: 1, listener: counter))
            #expect(store.submit(describe, token: 2, listener: counter))
            store.close()
        }
        let table = try self.list(["--store", "audit.db"], in: folder)
        #expect(table.output.count == 3)
        #expect(table.output[1].contains("Flush               default.books,secret "))
        #expect(table.output[2].contains("DescribeCollection  <collection ID 449812345678> "))
    }

    @Test("A call Milvus failed in its response status (gRPC OK) shows as failed, with Milvus's code and reason")
    func milvusFailure() throws {
        let folder = try TemporaryFolder()
        do {
            let store = try SQLiteAuditStore(path: folder.file("audit.db"))
            var delete = AuditRecord(kind: .request, callID: String(repeating: "5", count: 32), timeMilliseconds: noon)
            delete.principal = "alice"
            delete.rpc = "Delete"
            delete.database = "default"
            delete.collection = "nope"
            delete.decision = "allowed"
            var result = AuditRecord(kind: .outcome, callID: delete.callID, timeMilliseconds: noon + 2)
            result.status = 0
            result.milvusCode = 100
            result.message = "collection 'nope' does not exist"
            result.durationMilliseconds = 2
            let counter = Counter()
            #expect(store.submit(delete, token: 1, listener: counter))
            #expect(store.submit(result, token: 2, listener: counter))
            store.close()
        }
        let table = try self.list(["--store", "audit.db"], in: folder)
        #expect(table.output.count == 2)
        #expect(table.output[1].contains("allowed   failed (milvus 100)  2.000 ms"))
        let json = try self.list(["--store", "audit.db", "--format", "json"], in: folder)
        #expect(
            json.output.first?.contains(
                #""outcome":"failed","status":0,"milvus_code":100,"message":"collection 'nope' does not exist""#
            ) == true
        )
    }

    @Test("Names a client sent print escaped in the table, on one line, and as sent in JSON")
    func hostileNames() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("audit.db")
        let collection = "books\n2025-05-01T12:09:00.000Z  root  -  Insert  default.x\u{1B}[1A\u{1B}[2K\u{202E}fdp"
        do {
            let store = try SQLiteAuditStore(path: path)
            var drop = AuditRecord(kind: .refusal, callID: String(repeating: "4", count: 32), timeMilliseconds: noon)
            drop.principal = "mallory\u{9B}2J"
            drop.rpc = "DropCollection"
            drop.database = "default"
            drop.collection = collection
            drop.decision = "denied"
            drop.status = 7
            let counter = Counter()
            #expect(store.submit(drop, token: 1, listener: counter))
            store.close()
        }
        let table = try self.list(["--store", "audit.db"], in: folder)
        #expect(table.exitCode == 0)
        #expect(table.output.count == 2)
        #expect(table.output[1].contains("mallory\\u{9B}2J"))
        #expect(
            table.output[1].contains(
                "default.books\\n2025-05-01T12:09:00.000Z  root  -  Insert  default.x\\u{1B}[1A\\u{1B}[2K\\u{202E}fdp"
            )
        )
        #expect(!table.output[1].unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) })
        let json = try self.list(["--store", "audit.db", "--format", "json"], in: folder)
        let line = try #require(json.output.first)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["collection"] as? String == collection)
    }

    @Test("JSON lines carry the stable field names; filters narrow the selection")
    func json() throws {
        let folder = try TemporaryFolder()
        try makeStore(folder.file("audit.db"))
        let result = try self.list(["--store", "audit.db", "--format", "json", "--user", "alice"], in: folder)
        #expect(result.exitCode == 0)
        #expect(result.output.count == 2)
        #expect(result.output[0].hasPrefix(#"{"id":1,"time":"2025-05-01T12:00:00.000Z","principal":"alice","#))
        #expect(result.output[0].contains(#""filter":"id in [1]""#))
        #expect(result.output[1].contains(#""outcome":"unknown""#))
        #expect(
            try self.list(["--store", "audit.db", "--decision", "denied", "--format", "json"], in: folder).output.count
                == 1
        )
        // Outcomes: the Delete ok, the refused drop failed, the Insert unknown.
        for (outcome, count) in [("ok", 1), ("failed", 1), ("unknown", 1)] {
            let selected = try self.list(["--store", "audit.db", "--outcome", outcome, "--format", "json"], in: folder)
            #expect(selected.output.count == count)
            #expect(selected.output.allSatisfy { $0.contains(#""outcome":"\#(outcome)""#) })
        }
        // The header and the Insert, the only call in the last 90 seconds.
        #expect(try self.list(["--store", "audit.db", "--since", "90s"], in: folder).output.count == 2)
        #expect(
            try self.list(["--store", "audit.db", "--until", "2025-05-01T12:01:00Z"], in: folder).output.count == 2
        )
        #expect(
            try self.list(["--store", "audit.db", "--limit", "1", "--format", "json"], in: folder).output.count == 1
        )
        #expect(try self.list(["--store", "audit.db", "--rpc", "Search"], in: folder).output == ["no calls match"])
        // Paging forward: the oldest call after the cursor, then the next.
        let first = try self.list(
            ["--store", "audit.db", "--after-id", "0", "--limit", "1", "--format", "json"],
            in: folder
        )
        #expect(first.output.count == 1)
        #expect(first.output[0].hasPrefix(#"{"id":1,"#))
        let next = try self.list(
            ["--store", "audit.db", "--after-id", "1", "--limit", "1", "--format", "json"],
            in: folder
        )
        #expect(next.output.count == 1)
        #expect(!next.output[0].hasPrefix(#"{"id":1,"#))
    }

    @Test(
        "Bad filter values are refused with exit 2",
        arguments: [
            (
                ["--since", "yesterday"],
                "milvus-guard: --since: expected a duration (30m, 1h, 7d) or an RFC 3339 time or date, got \"yesterday\""
            ),
            (
                ["--until", "2025-02-30"],
                "milvus-guard: --until: expected a duration (30m, 1h, 7d) or an RFC 3339 time or date, got \"2025-02-30\""
            ),
            (
                ["--decision", "maybe"],
                "milvus-guard: --decision: must be one of allowed, denied, would_deny, approval_required, failed, loaded, rejected, got \"maybe\""
            ),
            (["--limit", "0"], "milvus-guard: --limit: must be at least 1, got 0"),
            (["--after-id=-1"], "milvus-guard: --after-id: must be 0 or more, got -1"),
            (["--format", "xml"], "milvus-guard: --format: must be table or json, got \"xml\""),
            (["--outcome", "done"], "milvus-guard: --outcome: must be one of ok, failed, unknown, got \"done\""),
        ]
    )
    func badValues(arguments: [String], message: String) throws {
        let folder = try TemporaryFolder()
        try makeStore(folder.file("audit.db"))
        #expect(try self.list(["--store", "audit.db"] + arguments, in: folder) == ([message], 2))
    }

    @Test("Without --store, guard.yaml's store is read; with neither, exit 2")
    func storeLookup() throws {
        let folder = try TemporaryFolder()
        #expect(
            try self.list([], in: folder)
                == (
                    [
                        "milvus-guard: --store: no audit store given, and neither guard.yaml nor guard.db in the current folder"
                    ], 2
                )
        )
        try folder.write("guard.yaml", "store: data/guard.db\n")
        try FileManager.default.createDirectory(atPath: folder.file("data"), withIntermediateDirectories: true)
        try makeStore(folder.file("data/guard.db"))
        #expect(try self.list(["--format", "json"], in: folder).output.count == 3)
        try folder.write("guard.yaml", "stor: x\n")
        #expect(try self.list([], in: folder).exitCode == 2)
    }

    @Test("A missing store is an error, and is not created")
    func missingStore() throws {
        let folder = try TemporaryFolder()
        let result = try self.list(["--store", "nope.db"], in: folder)
        #expect(result == (["milvus-guard: cannot open \(folder.file("nope.db")): no such file, or no permission"], 1))
        #expect(!FileManager.default.fileExists(atPath: folder.file("nope.db")))
    }

    @Test("verify prints the count and head hash; a tampered store exits 1 naming the record")
    func verify() throws {
        let folder = try TemporaryFolder()
        try makeStore(folder.file("audit.db"))
        let command = try #require(
            try GuardCommand.parseAsRoot(["audit", "verify", "--store", "audit.db"]) as? AuditVerifyCommand
        )
        let ok = command.execute(currentDirectory: folder.path)
        #expect(ok.exitCode == 0)
        #expect(ok.output.count == 1)
        #expect(ok.output[0].hasPrefix("ok: 4 records, head 4:"))
        #expect(ok.output[0].count == "ok: 4 records, head 4:".count + 64)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["sqlite3", folder.file("audit.db"), "UPDATE audit_records SET rows = 1 WHERE seq = 4"]
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "the sqlite3 shell is needed (apt-get install -y sqlite3)")
        #expect(
            command.execute(currentDirectory: folder.path) == (
                ["broken: record 4 altered: its content does not match its hash"], 1
            )
        )
        try self.sqlite(folder.file("audit.db"), "UPDATE audit_records SET rows = 2 WHERE seq = 4")
        try self.sqlite(folder.file("audit.db"), "DROP INDEX audit_records_decision")
        #expect(
            command.execute(currentDirectory: folder.path) == (
                [
                    "broken: the store's schema was altered: index audit_records_decision is missing (listings that "
                        + "need it fail)"
                ], 1
            )
        )

        // An empty store has no head to anchor.
        try self.sqlite(folder.file("empty.db"), "")
        _ = try SQLiteAuditStore(path: folder.file("empty.db"))
        #expect(
            try #require(
                try GuardCommand.parseAsRoot(["audit", "verify", "--store", "empty.db"]) as? AuditVerifyCommand
            )
            .execute(currentDirectory: folder.path) == (["ok: 0 records"], 0)
        )
    }

    /// Runs `sql` on the store with the sqlite3 shell.
    private func sqlite(_ path: String, _ sql: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["sqlite3", path, sql]
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "the sqlite3 shell is needed (apt-get install -y sqlite3)")
    }

    private func verify(_ arguments: [String], in folder: TemporaryFolder) throws -> (output: [String], exitCode: Int32)
    {
        let command = try #require(
            try GuardCommand.parseAsRoot(["audit", "verify", "--store", "audit.db"] + arguments) as? AuditVerifyCommand
        )
        return command.execute(currentDirectory: folder.path)
    }

    @Test("verify --anchor: a head recorded earlier matches; removing the newest records or rewriting the chain fails")
    func anchors() throws {
        let folder = try TemporaryFolder()
        try makeStore(folder.file("audit.db"))
        let head = try #require(
            try self.verify([], in: folder).output.first?.split(separator: " ").last.map(String.init)
        )
        #expect(head.hasPrefix("4:"))
        #expect(
            try self.verify(["--anchor", head], in: folder) == (
                ["ok: 4 records, head \(head)", "anchor 4: matches"], 0
            )
        )

        // The newest record deleted: the chain is still valid on its own, but shorter than the anchor.
        try self.sqlite(folder.file("audit.db"), "DELETE FROM audit_records WHERE seq = 4")
        let truncated = try self.verify(["--anchor", head], in: folder)
        #expect(truncated.exitCode == 1)
        #expect(truncated.output.last == "broken: record 4 removed: the chain ends at record 3")

        // An anchor whose hash the store does not hold: the chain was rewritten up to it.
        let forged = "1:" + String(repeating: "ab", count: 32)
        let rewritten = try self.verify(["--anchor", forged], in: folder)
        #expect(rewritten.exitCode == 1)
        #expect(rewritten.output.last?.hasPrefix("broken: record 1 rewritten: its hash is ") == true)

        #expect(try self.verify(["--anchor", "4:xyz"], in: folder).exitCode == 2)
        #expect(try self.verify(["--anchor", "0:" + String(repeating: "0", count: 64)], in: folder).exitCode == 2)
    }

    @Test("prune deletes old records, and verify still passes")
    func prune() throws {
        let folder = try TemporaryFolder()
        try makeStore(folder.file("audit.db"))
        let prune = try #require(
            try GuardCommand.parseAsRoot(["audit", "prune", "--before", "2025-05-01T12:01:00Z", "--store", "audit.db"])
                as? AuditPruneCommand
        )
        #expect(
            prune.execute(currentDirectory: folder.path)
                == (["pruned 2 records before 2025-05-01T12:01:00.000Z; checkpoint appended"], 0)
        )
        let verify = try #require(
            try GuardCommand.parseAsRoot(["audit", "verify", "--store", "audit.db"]) as? AuditVerifyCommand
        )
        #expect(verify.execute(currentDirectory: folder.path).output.first?.hasPrefix("ok: 3 records, head ") == true)
        let bad = try #require(
            try GuardCommand.parseAsRoot(["audit", "prune", "--before", "soon"]) as? AuditPruneCommand
        )
        #expect(bad.execute(currentDirectory: folder.path).exitCode == 2)
    }
}
