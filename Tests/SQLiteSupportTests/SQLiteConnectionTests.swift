import Foundation
import SQLiteSupport
import Synchronization
import Testing

/// A fresh directory under the system temporary directory, removed by `cleanup()`.
private struct TemporaryDirectory {
    let url: URL

    init() throws {
        self.url = FileManager.default.temporaryDirectory.appendingPathComponent("sqlite-support-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String {
        self.url.appendingPathComponent(name).path
    }

    func cleanup() {
        try? FileManager.default.removeItem(at: self.url)
    }
}

private func makeEvents(_ db: SQLiteConnection) throws {
    try db.exec(
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL UNIQUE,
            score REAL,
            payload BLOB,
            note TEXT
        );
        """
    )
}

@Suite("SQLiteConnection and Statement")
struct SQLiteConnectionTests {
    @Test("Binds and reads back every storage class")
    func roundTrip() throws {
        let db = try SQLiteConnection(path: ":memory:")
        try makeEvents(db)
        let insert = try db.prepare("INSERT INTO events (kind, score, payload, note) VALUES (?, ?, ?, ?)")
        #expect(insert.parameterCount == 4)
        try insert.bind("löschen ✓", at: 1)
        try insert.bind(2.5, at: 2)
        try insert.bind([0, 1, 2, 255], at: 3)
        try insert.bindNull(at: 4)
        #expect(try insert.step() == .done)
        #expect(db.lastInsertRowID == 1)
        #expect(db.changes == 1)

        insert.reset()
        insert.clearBindings()
        try insert.bind([.text(""), .integer(7), .blob([]), .text("x")])
        try insert.run()
        #expect(db.lastInsertRowID == 2)

        let select = try db.prepare("SELECT id, kind, score, payload, note FROM events ORDER BY id")
        #expect(select.columnCount == 5)
        #expect(select.columnName(at: 1) == "kind")
        #expect(try select.step() == .row)
        #expect(select.int64(at: 0) == 1)
        #expect(select.string(at: 1) == "löschen ✓")
        #expect(select.double(at: 2) == 2.5)
        #expect(select.blob(at: 3) == [0, 1, 2, 255])
        #expect(select.isNull(at: 4) == true)
        #expect(select.string(at: 4) == nil)
        #expect(try select.step() == .row)
        #expect(select.string(at: 1) == "")  // empty text is not NULL
        #expect(select.value(at: 2) == .real(7))  // REAL column affinity converts the integer
        #expect(select.blob(at: 3) == [])  // empty blob is not NULL
        #expect(select.value(at: 4) == .text("x"))
        #expect(try select.step() == .done)
    }

    @Test("Reset re-runs a statement with new bindings")
    func reuse() throws {
        let db = try SQLiteConnection(path: ":memory:")
        try makeEvents(db)
        let insert = try db.prepare("INSERT INTO events (kind) VALUES (:kind)")
        #expect(insert.parameterIndex(named: ":kind") == 1)
        #expect(insert.parameterIndex(named: ":missing") == nil)
        for kind in ["a", "b", "c"] {
            try insert.bind(kind, at: 1)
            try insert.run()
            insert.reset()
        }
        let count = try db.prepare("SELECT count(*) FROM events")
        #expect(try count.step() == .row)
        #expect(count.int64(at: 0) == 3)
    }

    @Test("run(_:text:) binds slices of one buffer, empty text as '' and not NULL, and can run again at once")
    func runWithTextBuffer() throws {
        let db = try SQLiteConnection(path: ":memory:")
        try makeEvents(db)
        let insert = try db.prepare("INSERT INTO events (kind, score, note) VALUES (?, ?, ?)")
        var text = Array("löschenxyz".utf8)
        let umlaut = 0..<8  // "löschen" is 8 bytes of UTF-8
        try insert.run([.text(umlaut), .integer(3), .text(8..<8)], text: text)
        text = Array("second".utf8)
        try insert.run([.text(0..<6), .null, .null], text: text)

        let select = try db.prepare("SELECT kind, score, note FROM events ORDER BY id")
        #expect(try select.step() == .row)
        #expect(select.string(at: 0) == "löschen")
        #expect(select.value(at: 1) == .real(3))
        #expect(select.value(at: 2) == .text(""))
        #expect(try select.step() == .row)
        #expect(select.string(at: 0) == "second")
        #expect(select.isNull(at: 1) && select.isNull(at: 2))
        #expect(try select.step() == .done)

        // A failed row leaves the statement rewound and usable.
        let duplicate = #expect(throws: SQLiteError.self) { try insert.run([.text(0..<6), .null, .null], text: text) }
        #expect(duplicate?.code == .constraint)
        try insert.run([.text(0..<3), .null, .null], text: text)
        #expect(db.lastInsertRowID == 3)
    }

    @Test("run(_:text:) refuses a wrong parameter count and a range outside the buffer")
    func runWithTextBufferErrors() throws {
        let db = try SQLiteConnection(path: ":memory:")
        let statement = try db.prepare("SELECT ?, ?")
        let count = #expect(throws: SQLiteError.self) { try statement.run([.null], text: []) }
        #expect(count?.code == .range)
        let outside = #expect(throws: SQLiteError.self) { try statement.run([.null, .text(2..<5)], text: [1, 2, 3]) }
        #expect(outside?.code == .range)
        #expect(outside?.message.contains("outside a buffer of 3 bytes") == true)
    }

    @Test("A constraint violation carries the extended code and SQLite's message")
    func constraint() throws {
        let db = try SQLiteConnection(path: ":memory:")
        try makeEvents(db)
        try db.exec("INSERT INTO events (kind) VALUES ('dup')")
        let insert = try db.prepare("INSERT INTO events (kind) VALUES ('dup')")
        let error = #expect(throws: SQLiteError.self) { try insert.run() }
        #expect(error?.code == .constraint)
        #expect(error?.extendedCode == 2067)  // SQLITE_CONSTRAINT_UNIQUE
        #expect(error?.message.contains("UNIQUE constraint failed: events.kind") == true)
    }

    @Test("Preparation errors: syntax, unknown table, empty, more than one statement")
    func prepareErrors() throws {
        let db = try SQLiteConnection(path: ":memory:")
        let syntax = #expect(throws: SQLiteError.self) { _ = try db.prepare("SELEC 1") }
        #expect(syntax?.code == .error)
        #expect(syntax?.message.contains("syntax error") == true)
        let table = #expect(throws: SQLiteError.self) { _ = try db.prepare("SELECT * FROM missing") }
        #expect(table?.message.contains("no such table: missing") == true)
        let empty = #expect(throws: SQLiteError.self) { _ = try db.prepare("  -- nothing\n") }
        #expect(empty?.code == .misuse)
        let two = #expect(throws: SQLiteError.self) { _ = try db.prepare("SELECT 1; DELETE FROM x") }
        #expect(two?.code == .misuse)
        // Trailing semicolons and comments are not a second statement.
        let one = try db.prepare("SELECT 1; -- done\n /* really */ ;")
        #expect(try one.step() == .row)
    }

    @Test("Binding out of range fails with SQLITE_RANGE")
    func bindRange() throws {
        let db = try SQLiteConnection(path: ":memory:")
        let statement = try db.prepare("SELECT ?")
        let error = #expect(throws: SQLiteError.self) { try statement.bind(Int64(1), at: 2) }
        #expect(error?.code == .range)
        let count = #expect(throws: SQLiteError.self) { try statement.bind([.null, .null]) }
        #expect(count?.code == .range)
    }

    @Test("A transaction commits on success and rolls back on error")
    func transactions() throws {
        let db = try SQLiteConnection(path: ":memory:")
        try makeEvents(db)
        let id = try db.transaction { () throws(SQLiteError) -> Int64 in
            try db.exec("INSERT INTO events (kind) VALUES ('kept')")
            return db.lastInsertRowID
        }
        #expect(id == 1)
        #expect(db.isAutocommit)
        let error = #expect(throws: SQLiteError.self) {
            try db.transaction { () throws(SQLiteError) in
                try db.exec("INSERT INTO events (kind) VALUES ('lost')")
                try db.exec("INSERT INTO events (kind) VALUES ('kept')")  // UNIQUE violation
            }
        }
        #expect(error?.code == .constraint)
        #expect(db.isAutocommit)
        let count = try db.prepare("SELECT group_concat(kind) FROM events")
        #expect(try count.step() == .row)
        #expect(count.string(at: 0) == "kept")
    }

    @Test("A file database in WAL mode persists across connections")
    func walFile() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.path("audit.db")
        do {
            let db = try SQLiteConnection(path: path)
            let mode = try db.prepare("PRAGMA journal_mode=WAL")
            #expect(try mode.step() == .row)
            #expect(mode.string(at: 0) == "wal")
            try makeEvents(db)
            try db.exec("INSERT INTO events (kind) VALUES ('persisted')")
        }
        let reader = try SQLiteConnection(path: path, mode: .readOnly)
        #expect(reader.isReadOnly)
        let select = try reader.prepare("SELECT kind FROM events")
        #expect(try select.step() == .row)
        #expect(select.string(at: 0) == "persisted")
    }

    @Test(
        "An immutable connection reads a WAL-mode file as it is, without creating -shm, whatever its name holds",
        arguments: ["plain.db", "what?immutable=0#x%41.db", "//twice.db"]
    )
    func immutable(name: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.path(name.hasPrefix("//") ? "twice.db" : name)
        do {
            let db = try SQLiteConnection(path: path)
            _ = try db.prepare("PRAGMA journal_mode=WAL").step()
            try makeEvents(db)
            try db.exec("INSERT INTO events (kind) VALUES ('closed cleanly')")
        }
        #expect(!FileManager.default.fileExists(atPath: path + "-shm"))
        // A file of the name cut at `?` or `#`, which a URI read naively would open instead.
        FileManager.default.createFile(atPath: directory.path("what"), contents: Data("not a database".utf8))
        let opened = name.hasPrefix("//") ? "/" + path : path
        let db = try SQLiteConnection(path: opened, mode: .immutable)
        #expect(db.isReadOnly)
        let select = try db.prepare("SELECT kind FROM events")
        #expect(try select.step() == .row)
        #expect(select.string(at: 0) == "closed cleanly")
        #expect(!FileManager.default.fileExists(atPath: path + "-shm"))
        let error = #expect(throws: SQLiteError.self) { try db.exec("DELETE FROM events") }
        #expect(error?.code == .readOnly)
    }

    @Test("A read-only connection refuses writes with a clear error")
    func readOnly() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.path("ro.db")
        do {
            let db = try SQLiteConnection(path: path)
            try makeEvents(db)
        }
        let db = try SQLiteConnection(path: path, mode: .readOnly)
        let insert = try db.prepare("INSERT INTO events (kind) VALUES ('nope')")
        let error = #expect(throws: SQLiteError.self) { try insert.run() }
        #expect(error?.code == .readOnly)
        #expect(error?.message.contains("readonly database") == true)
        let execError = #expect(throws: SQLiteError.self) { try db.exec("DELETE FROM events") }
        #expect(execError?.code == .readOnly)
    }

    @Test("Opening a missing file without create fails with CANTOPEN")
    func cannotOpen() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let error = #expect(throws: SQLiteError.self) {
            _ = try SQLiteConnection(path: directory.path("missing.db"), mode: .readWrite)
        }
        #expect(error?.code == .cantOpen)
        #expect(error?.message.contains("missing.db") == true)
    }

    @Test("A second writer waits for the busy timeout, then fails with SQLITE_BUSY")
    func busy() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.path("busy.db")
        let first = try SQLiteConnection(path: path)
        try first.exec("PRAGMA journal_mode=WAL; CREATE TABLE t (x)")
        let second = try SQLiteConnection(path: path, busyTimeoutMilliseconds: 50)
        try first.exec("BEGIN IMMEDIATE")
        let error = #expect(throws: SQLiteError.self) { try second.exec("BEGIN IMMEDIATE") }
        #expect(error?.code == .busy)
        try first.exec("COMMIT")
        try second.exec("BEGIN IMMEDIATE; INSERT INTO t VALUES (1); COMMIT")
    }

    @Test("A writer waiting for the lock gets it once it is released, and waits the whole timeout before failing")
    func busyWaitEnds() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.path("busy.db")
        let first = try SQLiteConnection(path: path)
        try first.exec("PRAGMA journal_mode=WAL; CREATE TABLE t (x)")
        try first.exec("BEGIN IMMEDIATE")
        let waiting = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<String?>(nil)
        Thread.detachNewThread {
            let result: String
            do {
                let second = try SQLiteConnection(path: path, busyTimeoutMilliseconds: 30_000)
                waiting.signal()
                try second.exec("BEGIN IMMEDIATE; INSERT INTO t VALUES (2); COMMIT")
                result = "ok"
            } catch {
                result = "\(error)"
            }
            outcome.withLock { $0 = result }
            done.signal()
        }
        waiting.wait()
        usleep(20_000)  // the second writer is waiting for the lock by now
        try first.exec("INSERT INTO t VALUES (1); COMMIT")
        #expect(done.wait(timeout: .now() + 20) == .success)
        #expect(outcome.withLock { $0 } == "ok")

        // Held throughout: the wait lasts at least the timeout (it is measured, not counted in tries).
        try first.exec("BEGIN IMMEDIATE")
        let third = try SQLiteConnection(path: path, busyTimeoutMilliseconds: 60)
        let start = ContinuousClock.now
        let error = #expect(throws: SQLiteError.self) { try third.exec("BEGIN IMMEDIATE") }
        #expect(error?.code == .busy)
        #expect(ContinuousClock.now - start >= .milliseconds(60))
        try first.exec("COMMIT")
    }
}
