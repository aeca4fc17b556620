import Glibc
import Synchronization

/// Makes what a sink appended durable, on a thread of its own, while the writer appends the next batch.
protocol AuditSyncer: AnyObject, Sendable {
    /// Makes every batch appended before the call durable.
    /// - Throws: ``AuditStoreError`` (`audit store unavailable: …`) when the system can't: the batches since the
    ///   last successful sync may be lost by a crash.
    func sync() throws(AuditStoreError)
}

/// Durability for a SQLite connection in WAL mode that commits with `synchronous = NORMAL`: `fdatasync` of the WAL
/// file through a descriptor of its own.
///
/// With `synchronous = FULL` SQLite syncs the WAL inside every `COMMIT`, on the writer thread, which then waits for
/// the disk and appends nothing meanwhile. With `NORMAL` a commit only writes its frames (SQLite syncs the WAL and
/// the database at checkpoints, before a checkpointed WAL is reused), and this class's ``sync()``, on another
/// thread, makes them durable: the same guarantee as `FULL` once it returns, while the writer builds and commits the
/// next batch. One `fdatasync` covers every commit written before it.
///
/// `fsync` acts on the file, not the descriptor, so a descriptor of our own syncs the frames SQLite wrote through
/// its own. SQLite deletes the WAL only when the last connection to the database closes, and creates a new file
/// after that: ``track()``, called after each commit, reopens when the path names another file than the descriptor
/// and then makes the directory entry of the new file durable too.
final class WALSync: AuditSyncer {
    /// An open descriptor and the file it was opened on; closed when the last user lets it go, so a ``sync()``
    /// in progress keeps the one it started with when ``track()`` replaces it.
    private final class Descriptor: Sendable {
        let fd: Int32
        let device: UInt64
        let inode: UInt64

        init(fd: Int32, device: UInt64, inode: UInt64) {
            self.fd = fd
            self.device = device
            self.inode = inode
        }

        deinit { close(self.fd) }
    }

    /// The file a descriptor is open on.
    struct FileID: Equatable {
        let device: UInt64
        let inode: UInt64
    }

    /// The WAL file: the database's path and `-wal`.
    let path: String
    private let current = Mutex<Descriptor?>(nil)

    init(databasePath: String) {
        self.path = databasePath + "-wal"
    }

    /// Opens the WAL if it is not open yet or, with `acceptingNewFile`, the path names a new file. Call after each
    /// commit (the WAL exists then), before handing the batch to ``sync()``.
    ///
    /// A new file at the path is SQLite's only when its connection to the database was just opened: while it is
    /// open, no other connection deletes the WAL (SQLite does that on closing the last one). Otherwise the WAL SQLite
    /// writes was deleted or replaced behind its back, and a sync of the file at the path would not cover it.
    /// - Returns: false when the WAL at the path is missing or another file than the one tracked, and
    ///   `acceptingNewFile` is false (nothing changes).
    /// - Throws: ``AuditStoreError`` if the file or its folder can't be opened or synced.
    func track(acceptingNewFile: Bool) throws(AuditStoreError) -> Bool {
        var info = stat()
        let open = self.current.withLock { $0 }
        guard stat(self.path, &info) == 0 else {
            if open != nil, !acceptingNewFile, errno == ENOENT { return false }
            throw Self.failure("cannot stat", self.path)
        }
        if let open, open.device == UInt64(info.st_dev), open.inode == UInt64(info.st_ino) {
            return true
        }
        if open != nil, !acceptingNewFile { return false }
        let fd = Glibc.open(self.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.failure("cannot open", self.path) }
        // The file this descriptor is on (the path may have changed again since the stat).
        guard fstat(fd, &info) == 0 else {
            let error = Self.failure("cannot stat", self.path)
            close(fd)
            throw error
        }
        let descriptor = Descriptor(fd: fd, device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        // A new file's name is durable only once its folder is synced.
        try Self.syncFolder(of: self.path)
        self.current.withLock { $0 = descriptor }
        return true
    }

    /// The file ``sync()`` syncs, nil before the first ``track()``.
    var trackedFile: FileID? {
        self.current.withLock { $0.map { FileID(device: $0.device, inode: $0.inode) } }
    }

    func sync() throws(AuditStoreError) {
        guard let descriptor = self.current.withLock({ $0 }) else { return }
        while fdatasync(descriptor.fd) != 0 {
            guard errno == EINTR else {
                throw Self.failure("fdatasync failed on", self.path)
            }
        }
    }

    private static func syncFolder(of path: String) throws(AuditStoreError) {
        let folder = SQLiteAuditSchema.folder(of: path)
        let fd = Glibc.open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.failure("cannot open the folder", folder) }
        defer { close(fd) }
        while fsync(fd) != 0 {
            guard errno == EINTR else { throw Self.failure("fsync failed on the folder", folder) }
        }
    }

    /// `audit store unavailable: <what> <path>: <errno text>`, read right after the failing call.
    private static func failure(_ what: String, _ path: String) -> AuditStoreError {
        .unavailable("\(what) \(path): \(String(cString: strerror(errno)))")
    }
}
