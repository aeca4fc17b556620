import Glibc
import SQLiteSupport
import Synchronization

/// The audit log in a SQLite file (WAL mode), written by one writer thread with group commit.
///
/// `init` creates the file if needed and migrates its schema. The writer thread opens its own connection; before
/// each batch it checks the file still has a write permission bit, then appends the whole batch in one
/// `BEGIN IMMEDIATE` transaction that reads the chain's head and inserts after it, so several processes sharing the
/// file keep one chain. A failed batch reports its error to every listener; the next batch (or the idle probe)
/// tries again, reopening the connection.
///
/// Also an ``AuditReader`` through its own connection, for an admin endpoint.
///
/// ``close()`` closes both connections. The last connection to the file that closes copies the WAL into the
/// database file and deletes it, so a guard that stopped leaves one self-contained file (unless another process
/// still has the store open).
public final class SQLiteAuditStore: AuditLog, AuditReader {
    private let writer: AuditWriter
    /// `nil` once closed.
    private let reader: Mutex<SQLiteAuditReader?>
    /// The database file.
    public let path: String

    /// Opens or creates the store and starts its writer thread.
    ///
    /// - Throws: ``AuditStoreError`` if the file can't be created, opened or migrated (`audit store unavailable: …`),
    ///   or its schema is newer than this code.
    ///
    /// `onHead` is told the chain's newest record (sequence and hash) from the writer thread, at most every
    /// `options.headAnnouncementMilliseconds` while records are written and once more at close: log it where the
    /// store's writers can't change it, and check the store against it later with `audit verify --anchor`.
    public init(
        path: String,
        options: AuditStoreOptions = .init(),
        onHead: (@Sendable (AuditChainHead) -> Void)? = nil
    ) throws(AuditStoreError) {
        self.path = path
        try Self.createPrivately(path)
        let connection: SQLiteConnection
        do {
            connection = try SQLiteConnection(
                path: path,
                mode: .readWriteCreate,
                busyTimeoutMilliseconds: options.busyTimeoutMilliseconds
            )
        } catch {
            throw SQLiteAuditSchema.error(error, path: path)
        }
        try SQLiteAuditSchema.migrate(connection)
        self.reader = Mutex(SQLiteAuditReader(connection: connection))
        self.writer = try AuditWriter(
            name: "guard-audit",
            capacity: options.queueCapacity,
            lazyMilliseconds: options.lazyCommitMilliseconds,
            commitDelayMilliseconds: options.commitDelayMilliseconds,
            commitSiblings: options.commitSiblings,
            headMilliseconds: options.headAnnouncementMilliseconds,
            onHead: onHead
        ) {
            SQLiteBatchSink(path: path, options: options)
        }
    }

    deinit {
        self.close()
    }

    /// Creates a missing store file readable and writable by its owner alone (0600). SQLite would create it 0644
    /// (less the umask), and the records name users, clients and the filters of their deletes; its `-wal` and
    /// `-shm` files get the same permissions as the store. An existing file keeps its own.
    private static func createPrivately(_ path: String) throws(AuditStoreError) {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd >= 0 {
            Glibc.close(fd)
        } else if errno != EEXIST {
            let reason = String(cString: strerror(errno))
            throw .unavailable("cannot create \(path): \(reason)")
        }
    }

    public func submit(_ record: consuming AuditRecord, token: UInt64, listener: (any AuditListener)?) -> Bool {
        self.writer.submit(consume record, token: token, listener: listener)
    }

    public func submitDeferred(_ record: consuming AuditRecord, token: UInt64, listener: (any AuditListener)?) -> Bool {
        self.writer.submit(consume record, token: token, listener: listener, wake: false)
    }

    public func wake() { self.writer.wakeWriter() }

    public var queueDepth: Int { self.writer.queueDepth }

    public var isWritable: Bool { self.writer.isWritable }

    public var failure: AuditStoreError? { self.writer.failure }

    public var committed: (batches: Int, records: Int) { self.writer.committed }

    public var lost: Int { self.writer.lost }

    /// Writes what is queued, stops the writer thread and closes both connections. The store's reads throw after it.
    public func close() {
        self.writer.close()
        // The writer thread's connection is closed by now; closing this one last lets SQLite checkpoint the WAL.
        self.reader.withLock { $0 = nil }
    }

    public func query(_ query: AuditQuery) throws(AuditStoreError) -> [AuditEntry] {
        try self.reader.withLock { reader throws(AuditStoreError) in try Self.open(reader, self.path).query(query) }
    }

    public func verify() throws(AuditStoreError) -> AuditVerification {
        try self.reader.withLock { reader throws(AuditStoreError) in try Self.open(reader, self.path).verify() }
    }

    public func prune(before: Int64) throws(AuditStoreError) -> Int {
        try self.reader.withLock { reader throws(AuditStoreError) in
            try Self.open(reader, self.path).prune(before: before)
        }
    }

    private static func open(_ reader: SQLiteAuditReader?, _ path: String) throws(AuditStoreError) -> SQLiteAuditReader
    {
        guard let reader else { throw AuditStoreError("\(path): the audit store is closed") }
        return reader
    }
}

/// The writer thread's side of ``SQLiteAuditStore``: its own connection, opened lazily and dropped after a failure
/// so the next batch starts from a fresh open.
///
/// With `audit.sync: full` (the default) the connection commits with `synchronous = NORMAL` and ``WALSync`` makes
/// each commit durable on the writer's sync thread (see there): the same guarantee as SQLite's `FULL`, without the
/// writer waiting for the disk. With `audit.sync: normal` nothing syncs a commit; ``WALSync`` still tracks the WAL
/// file, so that a WAL deleted or replaced under the guard is noticed either way.
final class SQLiteBatchSink: AuditBatchSink {
    private let path: String
    private let options: AuditStoreOptions
    private var connection: SQLiteConnection?
    /// The file ``connection`` opened, as `stat` saw it then.
    private var connectedFile: SQLiteAuditSchema.FileIdentity?
    /// Prepared with ``connection``, dropped with it.
    private var appender: SQLiteAuditSchema.Appender?
    /// Whether the connection was opened since the WAL was last tracked: SQLite may then have made a new WAL file.
    private var walMayBeNew = true
    /// Set once the WAL SQLite writes was found deleted or replaced under its name: no more records until restart.
    private var walLost: AuditStoreError?
    /// Whether everything written to that lost WAL is in the store file now.
    private var lostWALCheckpointed = false

    var takesNoMore: AuditStoreError? { self.walLost }
    private let walSync: WALSync

    init(path: String, options: AuditStoreOptions) {
        self.path = path
        self.options = options
        self.walSync = WALSync(databasePath: path)
    }

    var syncer: (any AuditSyncer)? { self.options.synchronous == .full ? self.walSync : nil }

    /// Bytes the WAL file is cut back to when it restarts (`PRAGMA journal_size_limit`): 64 MiB, several seconds of
    /// records at full speed, so a busy guard does not shrink and regrow it all the time.
    static let walSizeLimit = 64 << 20

    private func connect() throws(SQLiteError) -> SQLiteConnection {
        if let connection = self.connection { return connection }
        let connection = try SQLiteConnection(
            path: self.path,
            mode: .readWrite,
            busyTimeoutMilliseconds: self.options.busyTimeoutMilliseconds
        )
        // Checkpoints sync the WAL and the database either way; commits are synced by `walSync`, if at all.
        try connection.exec("PRAGMA synchronous = NORMAL")
        // A long read (`audit verify` of a large store) keeps checkpoints from restarting the WAL, which then grows
        // by everything written meanwhile; SQLite reuses the file from its start afterwards but never shrinks it
        // unless told to: back to this size once the WAL restarts.
        try connection.exec("PRAGMA journal_size_limit = \(Self.walSizeLimit)")
        self.connection = connection
        self.connectedFile = SQLiteAuditSchema.FileIdentity(path: self.path)
        self.walMayBeNew = true
        return connection
    }

    /// Checks the file before a batch: writable, and still the one the connection has open. Records must not go on
    /// into a store that was replaced (`mv other.db guard.db`): the file the connection holds is then unlinked, and
    /// what it receives is gone when the guard stops. Nor may the writer open the new file, because the old file's
    /// `-wal` and `-shm` are still there under the same names, and SQLite would read the old file's pages into the
    /// new one. So batches fail, and mutations are refused, until the old file is back under its name; a store is
    /// moved or replaced with the guard stopped, together with its `-wal` and `-shm` files.
    private func checkFile() throws(AuditStoreError) {
        let file = try SQLiteAuditSchema.checkWritable(self.path)
        guard self.connection != nil, let connected = self.connectedFile, connected != file else { return }
        throw .unavailable(
            "\(self.path) is no longer the file milvus-guard opened (moved or replaced while in use): put it back, "
                + "or stop milvus-guard (docs/audit.md, \"Moving or replacing a store\")"
        )
    }

    func append(_ records: [AuditRecord]) throws(AuditStoreError) -> [Int64] {
        if let walLost = self.walLost { throw walLost }
        try self.checkFile()
        let sequences: [Int64]
        do throws(SQLiteError) {
            let db = try self.connect()
            let appender: SQLiteAuditSchema.Appender
            if let prepared = self.appender {
                appender = prepared
            } else {
                appender = try SQLiteAuditSchema.Appender(db)
                self.appender = appender
            }
            sequences = try db.transaction(.immediate) { () throws(SQLiteError) in
                try appender.append(records)
            }
        } catch {
            self.appender = nil
            self.connection = nil
            throw SQLiteAuditSchema.error(error, path: self.path)
        }
        // Committed, not durable yet. If the WAL can't be tracked the batch fails: its calls are refused, and its
        // requests show outcome `unknown`; its records are in the store and must not be written again.
        let tracked: Bool
        do throws(AuditStoreError) {
            tracked = try self.walSync.track(acceptingNewFile: self.walMayBeNew)
        } catch {
            throw error.afterCommit(sequences)
        }
        guard tracked else { return try self.walDeletedOrReplaced(sequences) }
        self.walMayBeNew = false
        return sequences
    }

    /// The WAL SQLite writes is no longer the file at its name (`rm guard.db-wal`, maybe with another file put
    /// there): the batch just committed is in a file a crash would lose, and syncing the file at the path would not
    /// make it durable. A checkpoint copies the whole WAL into the database file and syncs that: the batch is then
    /// durable, and goes through. The store then takes no more records until milvus-guard restarts (a connection
    /// reopened now would meet another WAL, or other guards still writing to the deleted one, which SQLite documents
    /// as a way to corrupt a database). Before, records went on into the deleted file while the syncer synced the
    /// new one, and a SIGKILL lost acknowledged mutations that verify did not miss (a review with the sqlite3 shell).
    private func walDeletedOrReplaced(_ sequences: [Int64]) throws(AuditStoreError) -> [Int64] {
        let failure = AuditStoreError(
            "audit store unavailable: \(self.path)-wal was deleted or replaced while milvus-guard wrote to it; what "
                + "was written is in \(self.path) now, and the store takes no more records until milvus-guard restarts"
        )
        self.walLost = failure
        guard self.checkpointLostWAL() else { throw failure.afterCommit(sequences) }
        return sequences
    }

    /// Copies the whole WAL the connection writes into the store file; whether every frame was (then the store file
    /// was synced after them), even if another connection kept the WAL from being truncated. Tried again by each
    /// probe until it succeeds: the records of batches reported durable before the WAL was found deleted are in it.
    private func checkpointLostWAL() -> Bool {
        guard !self.lostWALCheckpointed, let db = self.connection else { return self.lostWALCheckpointed }
        do throws(SQLiteError) {
            // (busy, frames in the WAL, frames checkpointed)
            let checkpoint = try db.prepare("PRAGMA wal_checkpoint(TRUNCATE)")
            self.lostWALCheckpointed =
                try checkpoint.step() == .row && checkpoint.int64(at: 1) >= 0
                && checkpoint.int64(at: 1) == checkpoint.int64(at: 2)
        } catch {
            return false
        }
        return self.lostWALCheckpointed
    }

    func head() -> AuditChainHead? {
        guard let db = try? self.connect() else { return nil }
        return (try? SQLiteAuditSchema.chainHead(db)) ?? nil
    }

    /// Free space below which the probe says the store is not writable: an empty transaction writes nothing, so it
    /// succeeded on a full disk, and `/readyz` said ready while every mutation was refused (a review found it).
    static let probeFreeBytes: UInt64 = 64 << 10

    func probe() throws(AuditStoreError) {
        if let walLost = self.walLost {
            _ = self.checkpointLostWAL()
            throw walLost
        }
        try self.checkFile()
        var space = statvfs()
        if statvfs(self.path, &space) == 0 {
            let (free, overflow) = UInt64(space.f_bavail).multipliedReportingOverflow(by: UInt64(space.f_frsize))
            if !overflow, free < Self.probeFreeBytes {
                throw .unavailable("disk full (\(self.path): \(free) bytes free)")
            }
        }
        do {
            let db = try self.connect()
            try db.transaction(.immediate) { () throws(SQLiteError) in }
        } catch {
            self.appender = nil
            self.connection = nil
            throw SQLiteAuditSchema.error(error, path: self.path)
        }
    }
}
