/// An error returned by SQLite, with its message captured at once (`sqlite3_errmsg` is overwritten by the next call).
///
/// Equality looks at ``code`` (the primary result code) only; ``extendedCode``, ``message`` and the location are
/// for logs and for callers that need to tell, say, a UNIQUE violation from a NOT NULL one.
public struct SQLiteError: Error, Equatable, CustomStringConvertible {
    /// A primary SQLite result code (the low 8 bits of an extended code), e.g. ``busy`` or ``readOnly``.
    ///
    /// A struct rather than an enum because SQLite's set is open: a newer library may return a code this wrapper
    /// does not name, and it must still round-trip.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The numeric primary result code (`SQLITE_*`).
        public let rawValue: Int32

        /// Wraps a numeric code, keeping only its primary part.
        public init(rawValue: Int32) {
            self.rawValue = rawValue & 0xFF
        }

        /// `SQLITE_ERROR` (1): a generic error, e.g. an SQL syntax error.
        public static let error = Code(rawValue: 1)
        /// `SQLITE_INTERNAL` (2).
        public static let `internal` = Code(rawValue: 2)
        /// `SQLITE_PERM` (3).
        public static let permission = Code(rawValue: 3)
        /// `SQLITE_ABORT` (4).
        public static let abort = Code(rawValue: 4)
        /// `SQLITE_BUSY` (5): another connection holds the lock past the busy timeout.
        public static let busy = Code(rawValue: 5)
        /// `SQLITE_LOCKED` (6).
        public static let locked = Code(rawValue: 6)
        /// `SQLITE_NOMEM` (7).
        public static let noMemory = Code(rawValue: 7)
        /// `SQLITE_READONLY` (8): a write on a read-only connection or file.
        public static let readOnly = Code(rawValue: 8)
        /// `SQLITE_INTERRUPT` (9).
        public static let interrupt = Code(rawValue: 9)
        /// `SQLITE_IOERR` (10).
        public static let ioError = Code(rawValue: 10)
        /// `SQLITE_CORRUPT` (11).
        public static let corrupt = Code(rawValue: 11)
        /// `SQLITE_FULL` (13): the disk or the database size limit is full.
        public static let full = Code(rawValue: 13)
        /// `SQLITE_CANTOPEN` (14).
        public static let cantOpen = Code(rawValue: 14)
        /// `SQLITE_TOOBIG` (18): a string or blob longer than `SQLITE_LIMIT_LENGTH`.
        public static let tooBig = Code(rawValue: 18)
        /// `SQLITE_CONSTRAINT` (19): a UNIQUE, NOT NULL, CHECK or foreign key constraint failed.
        public static let constraint = Code(rawValue: 19)
        /// `SQLITE_MISMATCH` (20).
        public static let mismatch = Code(rawValue: 20)
        /// `SQLITE_MISUSE` (21): the API was used wrongly; this wrapper also uses it for its own argument checks.
        public static let misuse = Code(rawValue: 21)
        /// `SQLITE_RANGE` (25): a bind index out of range.
        public static let range = Code(rawValue: 25)
        /// `SQLITE_NOTADB` (26).
        public static let notADatabase = Code(rawValue: 26)

        /// `SQLITE_<n>`.
        public var description: String {
            "SQLITE_\(self.rawValue)"
        }
    }

    /// The primary result code.
    public let code: Code
    /// The extended result code (e.g. 2067, `SQLITE_CONSTRAINT_UNIQUE`); equal to the primary code when SQLite
    /// gave none.
    public let extendedCode: Int32
    /// `sqlite3_errmsg` (or the `sqlite3_exec` message) at the time of the failure, or this wrapper's description.
    public let message: String
    /// `#fileID:#line` of the throw site.
    private let location: String

    /// Creates an error from an extended result code and its message.
    public init(extendedCode: Int32, message: String, file: String = #fileID, line: UInt = #line) {
        self.code = Code(rawValue: extendedCode)
        self.extendedCode = extendedCode
        self.message = message
        self.location = "\(file):\(line)"
    }

    /// `SQLiteError(SQLITE_n/extended): message (at file:line)`.
    public var description: String {
        "SQLiteError(\(self.code)/\(self.extendedCode)): \(self.message) (at \(self.location))"
    }

    /// Compares only ``code``.
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.code == rhs.code
    }
}
