public import ArgumentParser
import AuditStore
import Foundation

/// `milvus-guard audit`: list, verify and prune the audit log. Listing is the default subcommand, so
/// `milvus-guard audit --user alice` lists.
///
/// Exit codes: 0 success; 1 the store can't be opened or read, or (verify) the chain is broken; 2 a bad flag value,
/// no store to read, or a broken guard.yaml.
public struct AuditCommand: ParsableCommand {
    /// The subcommand's name, help and subcommands.
    public static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "List, verify and prune the audit log.",
        subcommands: [AuditListCommand.self, AuditVerifyCommand.self, AuditPruneCommand.self],
        defaultSubcommand: AuditListCommand.self
    )

    /// Creates the command; ArgumentParser calls this while parsing.
    public init() {}

    /// The store to open: `--store` (relative to `currentDirectory`), else the `store` of `guard.yaml` in
    /// `currentDirectory`, else `guard.db` there (where `serve` without a config file writes it).
    /// - Throws: ``ConfigError`` when none is there, or guard.yaml is broken.
    static func storePath(_ store: String?, currentDirectory: String) throws -> String {
        if let store {
            return ConfigValue.resolve(store, relativeTo: currentDirectory)
        }
        let implicit = ConfigValue.resolve(GuardConfig.defaultFileName, relativeTo: currentDirectory)
        guard FileManager.default.fileExists(atPath: implicit) else {
            let fallback = GuardConfig.defaults(baseDirectory: currentDirectory).storePath
            guard FileManager.default.fileExists(atPath: fallback) else {
                throw ConfigError(
                    key: "--store",
                    problem: "no audit store given, and neither guard.yaml nor guard.db in the current folder"
                )
            }
            return fallback
        }
        return try GuardConfig.load(file: GuardConfig.defaultFileName, currentDirectory: currentDirectory).storePath
    }

    /// The audit options that take no value.
    static let flags: Set<String> = ["-h", "--help", "--follow"]

    /// `audit --store F verify` read as `audit verify --store F`: the synopsis puts `--store` right after `audit`,
    /// but ArgumentParser takes a word after an option as an argument of the default subcommand (`list`), which has
    /// none. Every audit option but ``flags`` takes a value, so the word after the options is a subcommand's name or
    /// a mistake.
    /// Other command lines are returned as they are.
    public static func subcommandFirst(_ arguments: [String]) -> [String] {
        guard arguments.first == Self.configuration.commandName else { return arguments }
        let names = Self.configuration.subcommands.map { $0.configuration.commandName ?? "" }
        var index = 1
        while index < arguments.count, arguments[index].hasPrefix("-"), arguments[index] != "--" {
            let flag = Self.flags.contains(arguments[index]) || arguments[index].contains("=")
            index += flag ? 1 : 2
        }
        guard index > 1, index < arguments.count, names.contains(arguments[index]) else { return arguments }
        var reordered = arguments
        let name = reordered.remove(at: index)
        reordered.insert(name, at: 1)
        return reordered
    }

    /// Prints `output` and exits with `code` unless it is 0.
    static func finish(_ result: (output: [String], exitCode: Int32)) throws {
        for line in result.output {
            if result.exitCode == 0 {
                print(line)
            } else {
                FileHandle.standardError.write(Data("\(line)\n".utf8))
            }
        }
        if result.exitCode != 0 { throw ExitCode(result.exitCode) }
    }
}

/// `milvus-guard audit [list]`: the newest calls matching the filters, oldest first, as a table or JSON lines.
public struct AuditListCommand: ParsableCommand {
    /// The subcommand's name and help.
    public static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Show recorded calls (the default).",
        discussion: """
            Times for --since and --until are a duration back from now (30s, 30m, 1h, 7d, 2w) or an RFC 3339 time \
            or date (2025-05-01T12:00:00Z, 2025-05-01). --since is inclusive, --until exclusive. The newest --limit \
            calls are shown, oldest first; with --after-id, the oldest --limit calls after that id. A pipeline that \
            exports the log pages with --after-id (the last id it read): ids follow the order records were \
            written, which times need not.
            """
    )

    /// `--store path`.
    @Option(name: .long, help: ArgumentHelp("The audit database (default: store of ./guard.yaml).", valueName: "file"))
    public var store: String?
    /// `--since time`.
    @Option(name: .long, help: ArgumentHelp("Calls at or after this time.", valueName: "time"))
    public var since: String?
    /// `--until time`.
    @Option(name: .long, help: ArgumentHelp("Calls before this time.", valueName: "time"))
    public var until: String?
    /// `--user name`.
    @Option(name: .long, help: ArgumentHelp("Only this principal.", valueName: "name"))
    public var user: String?
    /// `--db name`.
    @Option(name: .long, help: ArgumentHelp("Only this database.", valueName: "name"))
    public var db: String?
    /// `--collection name`.
    @Option(name: .long, help: ArgumentHelp("Only this collection.", valueName: "name"))
    public var collection: String?
    /// `--rpc name`.
    @Option(name: .long, help: ArgumentHelp("Only this RPC, e.g. Delete.", valueName: "name"))
    public var rpc: String?
    /// `--decision allowed|denied|would_deny|approval_required|failed|loaded|rejected`.
    @Option(
        name: .long,
        help: ArgumentHelp(
            "allowed, denied, would_deny, approval_required or failed; loaded or rejected for policy records.",
            valueName: "decision"
        )
    )
    public var decision: String?
    /// `--outcome ok|failed|unknown`.
    @Option(
        name: .long,
        help: ArgumentHelp(
            "ok, failed (refused, a non-zero status, or Milvus said no) or unknown (no outcome recorded).",
            valueName: "outcome"
        )
    )
    public var outcome: String?
    /// `--limit n`.
    @Option(
        name: .long,
        help: ArgumentHelp("Show at most this many calls (the newest, or the oldest after --after-id).", valueName: "n")
    )
    public var limit: Int = 100
    /// `--after-id n`.
    @Option(
        name: .customLong("after-id"),
        help: ArgumentHelp("Only calls with a greater id; then the oldest --limit of them.", valueName: "id")
    )
    public var afterID: Int64?
    /// `--format table|json`.
    @Option(name: .long, help: ArgumentHelp("table (for people) or json (one object per line).", valueName: "format"))
    public var format: String?
    /// `--follow`.
    @Flag(
        name: .long,
        help: "Keep printing calls as they are recorded, as JSON lines: after --after-id, or from now on."
    )
    public var follow = false

    /// `--format`, or its default: JSON lines when following, a table otherwise.
    var outputFormat: String { self.format ?? (self.follow ? "json" : "table") }

    /// A call still in progress (a request without an outcome record) younger than this holds `--follow` back, so
    /// that it is printed once, with its outcome; older, it is printed as `unknown` (the guard may have crashed).
    static let followGraceMilliseconds: Int64 = 60_000
    /// Calls read per query while following.
    static let followPage = 1_000
    /// How long `--follow` waits once it has caught up.
    static let followPollSeconds = 1.0

    /// `--follow`: pages forward through every call by id from `query.afterID` (default: the newest call now),
    /// printing those that pass the filters as JSON lines, each once and in id order, until `pause` (between two polls
    /// once caught up) returns false. It reads every call and filters them itself, so that its cursor passes each
    /// call once, whatever the filters and a prune running meanwhile. A call still in progress that passes the other
    /// filters stops the page there until its outcome is recorded or ``followGraceMilliseconds`` have passed: since
    /// the call's time for calls recorded before the follow started (a crash leaves them `unknown` for good), since
    /// the follow first saw it for later ones (a request held over a store outage is recorded late).
    /// - Throws: ``AuditStoreError`` when the store can't be read.
    func follow(
        _ reader: SQLiteAuditReader,
        _ query: AuditQuery,
        now: () -> Int64,
        pause: () -> Bool,
        emit: (String) -> Void
    ) throws(AuditStoreError) {
        var newest = AuditQuery()
        newest.limit = 1
        let startHead = try reader.query(newest).last?.id ?? 0
        var cursor = query.afterID ?? startHead
        var page = AuditQuery()
        page.limit = Self.followPage
        // When the follow first saw each call still in progress, so that several such calls (a crash leaves them all
        // unknown) wait out one grace together.
        var firstSeen: [Int64: Int64] = [:]
        while true {
            page.afterID = cursor
            var read = 0
            var waiting = false
            let time = now()
            try reader.forEach(page) { entry in
                read += 1
                let passes = query.selects(entry, ignoringOutcome: true)
                let inProgress = passes && !entry.outcomeRecorded
                // The grace runs from when the follow first saw the call in progress, or from the call's time if
                // that is earlier and the call was recorded before the follow started. A time in the future (another
                // guard's clock, an altered store) cannot stretch it.
                var since = time
                if inProgress {
                    since = firstSeen[entry.id] ?? time
                    if firstSeen[entry.id] == nil { firstSeen[entry.id] = time }
                    if entry.id <= startHead { since = min(since, entry.record.timeMilliseconds) }
                }
                guard !waiting else { return }
                let (elapsed, overflow) = time.subtractingReportingOverflow(since)
                if inProgress, !overflow, elapsed < Self.followGraceMilliseconds {
                    waiting = true
                    return
                }
                cursor = entry.id
                if passes, query.selectsOutcome(of: entry) { emit(entry.jsonLine()) }
            }
            firstSeen = firstSeen.filter { $0.key > cursor }
            // A full page read to its end: more may follow at once.
            if read == Self.followPage, !waiting { continue }
            guard pause() else { return }
        }
    }

    /// Creates the command; ArgumentParser calls this while parsing.
    public init() {}

    /// The query the flags describe.
    /// - Throws: ``ConfigError`` naming the flag whose value is bad.
    func makeQuery(now: Int64) throws -> AuditQuery {
        func bound(_ text: String?, _ flag: String) throws -> Int64? {
            guard let text else { return nil }
            guard let value = AuditTime.parseBound(text, now: now) else {
                throw ConfigError(
                    key: flag,
                    problem: "expected a duration (30m, 1h, 7d) or an RFC 3339 time or date, got \"\(text)\""
                )
            }
            return value
        }
        if let decision = self.decision, !AuditQuery.decisions.contains(decision) {
            throw ConfigError(
                key: "--decision",
                problem: "must be one of \(AuditQuery.decisions.joined(separator: ", ")), got \"\(decision)\""
            )
        }
        let outcome = try self.outcome.map { text throws -> AuditEntry.Outcome in
            guard let outcome = AuditEntry.Outcome(rawValue: text) else {
                throw ConfigError(key: "--outcome", problem: "must be one of ok, failed, unknown, got \"\(text)\"")
            }
            return outcome
        }
        guard self.limit >= 1 else {
            throw ConfigError(key: "--limit", problem: "must be at least 1, got \(self.limit)")
        }
        if let afterID = self.afterID, afterID < 0 {
            throw ConfigError(key: "--after-id", problem: "must be 0 or more, got \(afterID)")
        }
        if self.follow, self.format == "table" {
            throw ConfigError(key: "--follow", problem: "prints JSON lines: use it with --format json, or alone")
        }
        guard ["table", "json"].contains(self.outputFormat) else {
            throw ConfigError(key: "--format", problem: "must be table or json, got \"\(self.outputFormat)\"")
        }
        return AuditQuery(
            since: try bound(self.since, "--since"),
            until: try bound(self.until, "--until"),
            user: self.user,
            database: self.db,
            collection: self.collection,
            rpc: self.rpc,
            decision: self.decision,
            outcome: outcome,
            limit: self.limit,
            afterID: self.afterID
        )
    }

    /// What `run()` prints and its exit code, for tests; `now` (UTC ms) anchors relative times, default the clock.
    public func execute(
        currentDirectory: String,
        now: Int64? = nil
    ) -> (
        output: [String], exitCode: Int32
    ) {
        var lines: [String] = []
        let (errors, exitCode) = self.execute(currentDirectory: currentDirectory, now: now) { lines.append($0) }
        return (exitCode == 0 ? lines : errors, exitCode)
    }

    /// Runs the listing and hands each line to `emit` as soon as it is ready: JSON lines stream, so exporting millions
    /// of calls takes no more memory than one. A table needs every row for its column widths, so it comes at the end.
    /// - Returns: The exit code, and the error lines when it is not 0 (`emit` may have had some lines by then).
    func execute(
        currentDirectory: String,
        now: Int64?,
        emit: (String) -> Void
    ) -> (errors: [String], exitCode: Int32) {
        let query: AuditQuery
        let path: String
        do {
            query = try self.makeQuery(now: now ?? AuditTime.nowMilliseconds())
            path = try AuditCommand.storePath(self.store, currentDirectory: currentDirectory)
        } catch {
            return (["milvus-guard: \(error)"], 2)
        }
        var entries: [AuditEntry] = []
        do {
            // A listing of a stopped store creates no -wal and -shm beside it; following one needs SQLite's view.
            let reader = try SQLiteAuditReader(path: path, asIsWhenStopped: !self.follow)
            if self.follow {
                guard !reader.readsFileAsIs else {
                    // Read without SQLite's locks, it would never see a guard's new records.
                    return (
                        [
                            "milvus-guard: --follow: \(path) can only be read as it is in its file (this user can't "
                                + "create its -shm file: a read-only file system or folder), so no new record would be "
                                + "seen; follow it as the guard's user"
                        ], 1
                    )
                }
                try self.follow(
                    reader,
                    query,
                    now: { now ?? AuditTime.nowMilliseconds() },
                    pause: {
                        flush()
                        Thread.sleep(forTimeInterval: Self.followPollSeconds)
                        return true
                    },
                    emit: emit
                )
                return ([], 0)
            }
            if self.outputFormat == "json" {
                try reader.forEach(query) { emit($0.jsonLine()) }
                return ([], 0)
            }
            try reader.forEach(query) { entries.append($0) }
        } catch {
            return (["milvus-guard: \(error)"], 1)
        }
        if entries.isEmpty {
            emit("no calls match")
        } else {
            AuditTable.lines(entries).forEach(emit)
        }
        return ([], 0)
    }

    /// Prints the calls.
    public func run() throws {
        let (errors, exitCode) = self.execute(
            currentDirectory: FileManager.default.currentDirectoryPath,
            now: nil
        ) { print($0) }
        try AuditCommand.finish((errors, exitCode))
    }

    /// Hands what was printed to the pipe now: with `--follow`, standard output (a pipe, so fully buffered) is
    /// read by another program while this one goes on.
    private func flush() {
        fflush(nil)
    }
}

/// `milvus-guard audit verify`: checks the hash chain.
public struct AuditVerifyCommand: ParsableCommand {
    /// The subcommand's name and help.
    public static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check the audit log's hash chain.",
        discussion: """
            Prints "ok: N records, head SEQ:HASH" and exits 0, or names the first bad record and exits 1. Keep \
            heads somewhere else (serve logs one every 10 minutes while records are written, as "audit chain \
            head"): with --anchor SEQ:HASH, verify also fails if the chain was rewritten up to that record or cut \
            short before it.
            """
    )

    /// `--store path`.
    @Option(name: .long, help: ArgumentHelp("The audit database (default: store of ./guard.yaml).", valueName: "file"))
    public var store: String?

    /// `--anchor SEQ:HASH`, repeatable.
    @Option(
        name: .long,
        help: ArgumentHelp("A head recorded earlier, SEQ:HASH; repeatable.", valueName: "seq:hash")
    )
    public var anchor: [String] = []

    /// Creates the command; ArgumentParser calls this while parsing.
    public init() {}

    /// What `run()` prints and its exit code, for tests.
    public func execute(currentDirectory: String) -> (output: [String], exitCode: Int32) {
        let path: String
        do {
            path = try AuditCommand.storePath(self.store, currentDirectory: currentDirectory)
        } catch {
            return (["milvus-guard: \(error)"], 2)
        }
        var anchors: [AuditChainHead] = []
        for text in self.anchor {
            guard let anchor = AuditChainHead(parsing: text) else {
                return (["milvus-guard: --anchor: not SEQ:HASH (a record number and 64 hex digits): \"\(text)\""], 2)
            }
            anchors.append(anchor)
        }
        do {
            // Verifying a stopped store (evidence) leaves its folder as it was: no -wal and -shm created.
            let reader = try SQLiteAuditReader(path: path, asIsWhenStopped: true)
            let count: Int
            switch try reader.verify() {
            case .ok(let records, _): count = records
            case .broken(let problem): return (["broken: \(problem)"], 1)
            case .tampered(let problem): return (["broken: the store's schema was altered: \(problem)"], 1)
            }
            let head = try reader.head() ?? AuditChainHead(sequence: 0, hash: String(repeating: "0", count: 64))
            var lines: [String] = []
            var failed = false
            for anchor in anchors {
                switch try reader.check(anchor) {
                case .matches:
                    lines.append("anchor \(anchor.sequence): matches")
                case .rewritten(let stored):
                    failed = true
                    lines.append(
                        "broken: record \(anchor.sequence) rewritten: its hash is \(stored), the anchor says \(anchor.hash)"
                    )
                case .truncated(let last):
                    failed = true
                    lines.append("broken: record \(anchor.sequence) removed: the chain ends at record \(last)")
                case .pruned:
                    lines.append("anchor \(anchor.sequence): pruned, cannot be checked")
                }
            }
            // An empty store has no record to anchor (`--anchor` takes record numbers from 1).
            let summary = head.sequence == 0 ? "ok: 0 records" : "ok: \(count) records, head \(head)"
            return ([summary] + lines, failed ? 1 : 0)
        } catch {
            return (["milvus-guard: \(error)"], 1)
        }
    }

    /// Prints the result.
    public func run() throws {
        try AuditCommand.finish(self.execute(currentDirectory: FileManager.default.currentDirectoryPath))
    }
}

/// `milvus-guard audit prune --before DATE`: deletes old records and appends a checkpoint.
public struct AuditPruneCommand: ParsableCommand {
    /// The subcommand's name and help.
    public static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Delete records older than a date, leaving a checkpoint in the chain.",
        discussion: """
            DATE is an RFC 3339 time or date, or a duration back from now (90d). Deletes the oldest records up to \
            the first one at or after DATE, and appends a checkpoint record so verify still passes.
            """
    )

    /// `--before time`.
    @Option(name: .long, help: ArgumentHelp("Delete records before this time.", valueName: "date"))
    public var before: String

    /// `--store path`.
    @Option(name: .long, help: ArgumentHelp("The audit database (default: store of ./guard.yaml).", valueName: "file"))
    public var store: String?

    /// Creates the command; ArgumentParser calls this while parsing.
    public init() {}

    /// What `run()` prints and its exit code, for tests; `now` (UTC ms) anchors relative times, default the clock.
    public func execute(
        currentDirectory: String,
        now: Int64? = nil
    ) -> (
        output: [String], exitCode: Int32
    ) {
        let path: String
        guard let before = AuditTime.parseBound(self.before, now: now ?? AuditTime.nowMilliseconds()) else {
            return (
                [
                    "milvus-guard: --before: expected an RFC 3339 time or date, or a duration (90d), got \"\(self.before)\""
                ], 2
            )
        }
        do {
            path = try AuditCommand.storePath(self.store, currentDirectory: currentDirectory)
        } catch {
            return (["milvus-guard: \(error)"], 2)
        }
        do {
            let deleted = try SQLiteAuditReader(path: path, writable: true).prune(before: before)
            let when = AuditTime.format(milliseconds: before)
            return (
                [
                    deleted == 0
                        ? "nothing to prune before \(when)"
                        : "pruned \(deleted) records before \(when); checkpoint appended"
                ], 0
            )
        } catch {
            return (["milvus-guard: \(error)"], 1)
        }
    }

    /// Prunes and prints the count.
    public func run() throws {
        try AuditCommand.finish(self.execute(currentDirectory: FileManager.default.currentDirectoryPath))
    }
}
