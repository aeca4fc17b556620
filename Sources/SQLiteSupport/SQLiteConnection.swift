import CSQLite
import Glibc

/// Owns one `sqlite3*` database connection.
///
/// Hardened against a file someone else prepared: triggers and views do not run, the schema's SQL functions are not
/// trusted, and defensive mode is on (`csqlite_harden`).
///
/// Opened in multi-thread mode (`SQLITE_OPEN_NOMUTEX`) with extended result codes on: a connection and its
/// statements belong to one thread at a time (the audit writer thread), so SQLite's own mutex would only cost time.
/// Not `Sendable`. `deinit` closes the connection with `sqlite3_close_v2`, which defers the close until every
/// ``Statement`` is finalized; statements also keep their connection alive.
public final class SQLiteConnection {
    /// How to open the database file.
    public enum OpenMode: Hashable, Sendable {
        /// `SQLITE_OPEN_READONLY`: every write fails with ``SQLiteError/Code/readOnly``.
        case readOnly
        /// `SQLITE_OPEN_READWRITE`: the file must already exist.
        case readWrite
        /// `SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE`: create the file if it is missing.
        case readWriteCreate
        /// Read-only, and the file is taken as it is (`immutable=1`): no locks, no `-shm` file, and a `-wal` file
        /// beside it is not read. For a file nothing can change, such as one on a read-only file system, where a
        /// WAL-mode database can't otherwise be opened unless its `-shm` file exists.
        case immutable

        var flags: Int32 {
            switch self {
            case .readOnly: SQLITE_OPEN_READONLY
            case .readWrite: SQLITE_OPEN_READWRITE
            case .readWriteCreate: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
            case .immutable: SQLITE_OPEN_READONLY | SQLITE_OPEN_URI
            }
        }

        /// What `sqlite3_open_v2` is given for `path`: the path itself, or a `file:` URI.
        func name(for path: String) -> String {
            guard self == .immutable else { return path }
            // RFC 3986 as SQLite reads it: `%`, `?` and `#` would end or change the path; a path that starts with
            // `//` would be read as an authority.
            var escaped = ""
            for character in path.unicodeScalars {
                switch character {
                case "%": escaped += "%25"
                case "?": escaped += "%3f"
                case "#": escaped += "%23"
                default: escaped.unicodeScalars.append(character)
                }
            }
            if escaped.hasPrefix("//") { escaped = "/" + escaped.drop(while: { $0 == "/" }) }
            return "file:\(escaped)?immutable=1"
        }
    }

    /// How a transaction takes its locks (`BEGIN DEFERRED | IMMEDIATE | EXCLUSIVE`).
    public enum TransactionKind: String, Hashable, Sendable {
        /// Locks are taken on first use; a read that later writes may fail with `SQLITE_BUSY` without waiting.
        case deferred = "DEFERRED"
        /// Takes the write lock at once, waiting up to the busy timeout: the right choice for a writer.
        case immediate = "IMMEDIATE"
        /// Like ``immediate``; in WAL mode the same, otherwise also blocks readers.
        case exclusive = "EXCLUSIVE"
    }

    /// The owned handle; never nil after `init` returns.
    let handle: OpaquePointer

    /// The path this connection was opened with (`:memory:` for an in-memory database).
    public let path: String

    /// Opens (or creates) a database.
    ///
    /// - Parameters:
    ///   - path: A file path, or `:memory:` for a private in-memory database.
    ///   - mode: Read-only, read-write, or read-write-create (the default).
    ///   - busyTimeoutMilliseconds: How long a statement waits for another connection's lock before failing with
    ///     ``SQLiteError/Code/busy``; 0 fails at once.
    /// - Throws: ``SQLiteError`` with SQLite's message, e.g. ``SQLiteError/Code/cantOpen`` for a missing file in
    ///   ``OpenMode/readWrite`` mode. Nothing is leaked on failure.
    public init(
        path: String,
        mode: OpenMode = .readWriteCreate,
        busyTimeoutMilliseconds: Int = 5000
    ) throws(SQLiteError) {
        var db: OpaquePointer?
        let flags = mode.flags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        let rc = sqlite3_open_v2(mode.name(for: path), &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            // sqlite3_open_v2 usually allocates a handle even when it fails; it carries the message and must be closed.
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_close_v2(db)
            throw SQLiteError(extendedCode: rc, message: "cannot open \(path): \(message)")
        }
        let hardened = csqlite_harden(db)
        guard hardened == SQLITE_OK else {
            let message = String(cString: sqlite3_errstr(hardened))
            sqlite3_close_v2(db)
            throw SQLiteError(extendedCode: hardened, message: "cannot configure \(path): \(message)")
        }
        self.handle = db
        self.path = path
        sqlite3_extended_result_codes(db, 1)
        self.setBusyTimeout(milliseconds: busyTimeoutMilliseconds)
    }

    deinit {
        sqlite3_close_v2(self.handle)
    }

    /// The error for the connection's most recent failure, read now.
    func lastError(
        _ rc: Int32,
        context: String? = nil,
        file: String = #fileID,
        line: UInt = #line
    ) -> SQLiteError {
        let message = String(cString: sqlite3_errmsg(self.handle))
        let extended = sqlite3_extended_errcode(self.handle)
        // The connection's code can be stale if the failure happened without touching it; trust `rc` then.
        let code = (extended & 0xFF) == (rc & 0xFF) ? extended : rc
        return SQLiteError(
            extendedCode: code,
            message: context.map { "\($0): \(message)" } ?? message,
            file: file,
            line: line
        )
    }

    /// Runs one or more SQL statements that return no rows needed by the caller (DDL, PRAGMAs, `BEGIN`…).
    ///
    /// Never pass untrusted input here: there are no parameters. Use ``prepare(_:)`` and bind values instead.
    ///
    /// - Throws: ``SQLiteError`` from the first statement that fails; earlier statements stay applied.
    public func exec(_ sql: String) throws(SQLiteError) {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(self.handle, sql, nil, nil, &errorMessage)
        defer { sqlite3_free(errorMessage) }
        guard rc == SQLITE_OK else {
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(rc))
            throw SQLiteError(extendedCode: sqlite3_extended_errcode(self.handle), message: message)
        }
    }

    /// Compiles exactly one SQL statement.
    ///
    /// - Parameter sql: One statement; `?`, `?NNN`, `:name` parameters are bound by 1-based index.
    /// - Returns: A ``Statement`` that finalizes itself when it goes out of scope.
    /// - Throws: ``SQLiteError`` for a syntax error or an unknown table; ``SQLiteError/Code/misuse`` when `sql` holds
    ///   no statement or more than one (only the first would run, silently).
    public func prepare(_ sql: String) throws(SQLiteError) -> Statement {
        var statement: OpaquePointer?
        var trailing = false
        let rc = sql.withCString { start in
            var tail: UnsafePointer<CChar>?
            let rc = sqlite3_prepare_v3(self.handle, start, -1, 0, &statement, &tail)
            if rc == SQLITE_OK, let tail {
                trailing = self.hasStatement(after: tail)
            }
            return rc
        }
        guard rc == SQLITE_OK else {
            throw self.lastError(rc)
        }
        guard let statement else {
            throw SQLiteError(extendedCode: SQLITE_MISUSE, message: "no SQL statement in \"\(sql)\"")
        }
        guard !trailing else {
            sqlite3_finalize(statement)
            throw SQLiteError(extendedCode: SQLITE_MISUSE, message: "prepare takes one statement: \"\(sql)\"")
        }
        return Statement(handle: statement, connection: self)
    }

    /// Whether the SQL text after the first statement holds another statement. SQLite itself decides: compiling
    /// text that is only whitespace, `;` and comments yields no statement.
    private func hasStatement(after tail: UnsafePointer<CChar>) -> Bool {
        guard tail.pointee != 0 else { return false }
        var next: OpaquePointer?
        let rc = sqlite3_prepare_v3(self.handle, tail, -1, 0, &next, nil)
        defer { sqlite3_finalize(next) }
        return rc != SQLITE_OK || next != nil
    }

    /// Runs `body` inside `BEGIN … COMMIT`, rolling back if it throws.
    ///
    /// Not reentrant: SQLite has no nested `BEGIN` (use `SAVEPOINT` through ``exec(_:)`` for that).
    ///
    /// - Parameters:
    ///   - kind: How locks are taken; ``TransactionKind/immediate`` (the default) suits a single writer.
    ///   - body: The work; its ``SQLiteError`` rolls the transaction back and is rethrown.
    /// - Returns: What `body` returns, once the commit succeeded.
    /// - Throws: ``SQLiteError`` from `BEGIN`, from `body`, or from `COMMIT` (after which the transaction is rolled
    ///   back, so the database is never left inside a transaction).
    public func transaction<Value>(
        _ kind: TransactionKind = .immediate,
        _ body: () throws(SQLiteError) -> Value
    ) throws(SQLiteError) -> Value {
        try self.exec("BEGIN \(kind.rawValue)")
        let result: Value
        do {
            result = try body()
            try self.exec("COMMIT")
        } catch {
            // Rolling back a transaction SQLite already rolled back (e.g. after SQLITE_FULL) fails harmlessly.
            if sqlite3_get_autocommit(self.handle) == 0 {
                try? self.exec("ROLLBACK")
            }
            throw error
        }
        return result
    }

    /// The rowid of the most recent successful `INSERT` on this connection (0 if none).
    public var lastInsertRowID: Int64 {
        sqlite3_last_insert_rowid(self.handle)
    }

    /// Rows changed by the most recent `INSERT`, `UPDATE` or `DELETE` on this connection.
    public var changes: Int {
        Int(sqlite3_changes64(self.handle))
    }

    /// Whether the connection is outside any transaction (autocommit mode).
    public var isAutocommit: Bool {
        sqlite3_get_autocommit(self.handle) != 0
    }

    /// Whether the main database was opened (or has become) read-only.
    public var isReadOnly: Bool {
        sqlite3_db_readonly(self.handle, "main") == 1
    }

    /// Sets how long statements wait for a lock held by another connection.
    ///
    /// While waiting, the lock is tried again every millisecond. SQLite's own handler (`sqlite3_busy_timeout`)
    /// sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 and then 100 ms between tries: behind a lock held a few
    /// milliseconds at a time (another guard's commits to a shared store, the chunks of `audit prune`) a writer
    /// then often slept tens of milliseconds after the lock came free.
    ///
    /// - Parameter milliseconds: 0 or less fails with ``SQLiteError/Code/busy`` at once.
    public func setBusyTimeout(milliseconds: Int) {
        self.busyTimeoutNanoseconds = Int64(Swift.max(0, milliseconds)) * 1_000_000
        if self.busyTimeoutNanoseconds == 0 {
            sqlite3_busy_handler(self.handle, nil, nil)
        } else {
            sqlite3_busy_handler(self.handle, Self.busyHandler, Unmanaged.passUnretained(self).toOpaque())
        }
    }

    /// How long statements wait for another connection's lock (``setBusyTimeout(milliseconds:)``).
    public var busyTimeoutMilliseconds: Int {
        Int(self.busyTimeoutNanoseconds / 1_000_000)
    }

    /// The busy timeout, and when the current wait for a lock began (monotonic nanoseconds).
    private var busyTimeoutNanoseconds: Int64 = 0
    private var busyWaitStart: Int64 = 0

    /// Called by SQLite, on the thread running the statement, each time a lock it needs is taken; `tries` counts
    /// the calls for this wait. The context is the connection, which outlives its handle.
    private static let busyHandler: @convention(c) (UnsafeMutableRawPointer?, Int32) -> Int32 = { context, tries in
        guard let context else { return 0 }
        return Unmanaged<SQLiteConnection>.fromOpaque(context).takeUnretainedValue().waitForLock(tries: tries) ? 1 : 0
    }

    /// Sleeps up to a millisecond and returns true to try again, or returns false once the timeout has passed.
    private func waitForLock(tries: Int32) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let nanoseconds = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
        if tries == 0 { self.busyWaitStart = nanoseconds }
        let remaining = self.busyTimeoutNanoseconds - (nanoseconds - self.busyWaitStart)
        guard remaining > 0 else { return false }
        var slice = timespec(tv_sec: 0, tv_nsec: Int(Swift.min(remaining, 1_000_000)))
        nanosleep(&slice, nil)  // a signal only makes the next try come sooner
        return true
    }

    /// The SQLite library version, e.g. `3.40.1`.
    public static var libraryVersion: String {
        String(cString: sqlite3_libversion())
    }
}

@available(*, unavailable)
extension SQLiteConnection: Sendable {}
