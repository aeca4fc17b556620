import CSQLite

/// Owns one prepared `sqlite3_stmt*`; going out of scope finalizes it.
///
/// `~Copyable` so exactly one owner finalizes the handle (sqlite-nio leaks statements on some paths; this cannot).
/// It keeps its ``SQLiteConnection`` alive. Parameters and columns use SQLite's indexing: parameters from 1,
/// columns from 0. Column values are valid only while the statement sits on a ``StepResult/row``; accessors copy
/// them into Swift values.
public struct Statement: ~Copyable {
    /// The result of ``step()``.
    public enum StepResult: Hashable, Sendable {
        /// A row is available through the column accessors.
        case row
        /// The statement has finished; ``reset()`` to run it again.
        case done
    }

    private let handle: OpaquePointer
    private let connection: SQLiteConnection

    init(handle: OpaquePointer, connection: SQLiteConnection) {
        self.handle = handle
        self.connection = connection
    }

    deinit {
        sqlite3_finalize(self.handle)
    }

    private func check(_ rc: Int32, _ what: @autoclosure () -> String) throws(SQLiteError) {
        guard rc == SQLITE_OK else {
            throw self.connection.lastError(rc, context: what())
        }
    }

    // MARK: Binding

    /// Binds a 64-bit integer to the 1-based parameter `index`.
    ///
    /// - Throws: ``SQLiteError/Code/range`` for an index outside `1...parameterCount`.
    public func bind(_ value: Int64, at index: Int) throws(SQLiteError) {
        try self.check(sqlite3_bind_int64(self.handle, Int32(clamping: index), value), "bind parameter \(index)")
    }

    /// Binds a double to the 1-based parameter `index`.
    ///
    /// - Throws: ``SQLiteError/Code/range`` for an index outside `1...parameterCount`.
    public func bind(_ value: Double, at index: Int) throws(SQLiteError) {
        try self.check(sqlite3_bind_double(self.handle, Int32(clamping: index), value), "bind parameter \(index)")
    }

    /// Binds UTF-8 text to the 1-based parameter `index`; SQLite copies it (`SQLITE_TRANSIENT`).
    ///
    /// - Throws: ``SQLiteError/Code/range`` for a bad index; `SQLITE_TOOBIG` past SQLite's length limit.
    public func bind(_ value: String, at index: Int) throws(SQLiteError) {
        let length = UInt64(value.utf8.count)
        // withCString never passes NULL, which SQLite would bind as SQL NULL instead of ''.
        let rc = value.withCString { text in
            sqlite3_bind_text64(
                self.handle,
                Int32(clamping: index),
                text,
                length,
                csqlite_transient(),
                UInt8(SQLITE_UTF8)
            )
        }
        try self.check(rc, "bind parameter \(index)")
    }

    /// Binds raw bytes to the 1-based parameter `index`; SQLite copies them. An empty array binds an empty blob,
    /// not NULL.
    ///
    /// - Throws: ``SQLiteError/Code/range`` for a bad index; `SQLITE_TOOBIG` past SQLite's length limit.
    public func bind(_ value: [UInt8], at index: Int) throws(SQLiteError) {
        let rc = value.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress, !bytes.isEmpty else {
                return sqlite3_bind_zeroblob(self.handle, Int32(clamping: index), 0)
            }
            return sqlite3_bind_blob64(
                self.handle,
                Int32(clamping: index),
                base,
                UInt64(bytes.count),
                csqlite_transient()
            )
        }
        try self.check(rc, "bind parameter \(index)")
    }

    /// Binds SQL NULL to the 1-based parameter `index`.
    ///
    /// - Throws: ``SQLiteError/Code/range`` for a bad index.
    public func bindNull(at index: Int) throws(SQLiteError) {
        try self.check(sqlite3_bind_null(self.handle, Int32(clamping: index)), "bind parameter \(index)")
    }

    /// Binds any ``SQLiteValue`` to the 1-based parameter `index`.
    ///
    /// - Throws: ``SQLiteError`` as the typed `bind` overloads do.
    public func bind(_ value: SQLiteValue, at index: Int) throws(SQLiteError) {
        switch value {
        case .integer(let integer): try self.bind(integer, at: index)
        case .real(let real): try self.bind(real, at: index)
        case .text(let text): try self.bind(text, at: index)
        case .blob(let blob): try self.bind(blob, at: index)
        case .null: try self.bindNull(at: index)
        }
    }

    /// Binds `values` to parameters 1, 2, … in order.
    ///
    /// - Throws: ``SQLiteError/Code/range`` if `values.count` differs from ``parameterCount`` (a missing value would
    ///   silently be NULL), or any error from binding.
    public func bind(_ values: [SQLiteValue]) throws(SQLiteError) {
        guard values.count == self.parameterCount else {
            throw SQLiteError(
                extendedCode: SQLITE_RANGE,
                message: "\(values.count) values for \(self.parameterCount) parameters"
            )
        }
        for (offset, value) in values.enumerated() {
            try self.bind(value, at: offset + 1)
        }
    }

    /// The number of SQL parameters (the largest parameter index).
    public var parameterCount: Int {
        Int(sqlite3_bind_parameter_count(self.handle))
    }

    /// The 1-based index of the parameter named `name` (with its prefix: `:id`, `@id`, `$id`), or `nil`.
    public func parameterIndex(named name: String) -> Int? {
        let index = Int(sqlite3_bind_parameter_index(self.handle, name))
        return index == 0 ? nil : index
    }

    /// Sets every parameter back to NULL.
    public func clearBindings() {
        sqlite3_clear_bindings(self.handle)
    }

    // MARK: Running

    /// Runs the statement to its next row or to completion.
    ///
    /// - Returns: ``StepResult/row`` when a row is available, ``StepResult/done`` when finished.
    /// - Throws: ``SQLiteError`` such as ``SQLiteError/Code/constraint``, ``SQLiteError/Code/busy`` (after the busy
    ///   timeout) or ``SQLiteError/Code/readOnly``. Call ``reset()`` before running it again.
    public func step() throws(SQLiteError) -> StepResult {
        let rc = sqlite3_step(self.handle)
        switch rc {
        case SQLITE_ROW: return .row
        case SQLITE_DONE: return .done
        default: throw self.connection.lastError(rc)
        }
    }

    /// Steps until ``StepResult/done``, ignoring rows: for `INSERT`, `UPDATE`, `DELETE`.
    ///
    /// - Throws: ``SQLiteError`` from ``step()``.
    public func run() throws(SQLiteError) {
        while try self.step() == .row {}
    }

    /// A parameter of ``run(_:text:)``: an integer, NULL, or UTF-8 text found in that call's `text` buffer.
    public enum Parameter: Hashable, Sendable {
        case integer(Int64)
        case null
        /// `text[range]` (an empty range binds `''`, not NULL).
        case text(Range<Int>)
    }

    /// Binds `parameters` to parameters 1, 2, … and runs the statement to completion, then rewinds it and clears
    /// the bindings: the insert of a batch, row after row, without copying any text.
    ///
    /// Text is bound without a copy (`SQLITE_STATIC`): SQLite reads it from `text` during the step, and the
    /// bindings are cleared before `text` can go away.
    ///
    /// - Throws: ``SQLiteError/Code/range`` if `parameters.count` differs from ``parameterCount`` or a range lies
    ///   outside `text`; any error from binding or stepping (the statement is rewound either way).
    public func run(_ parameters: [Parameter], text: [UInt8]) throws(SQLiteError) {
        guard parameters.count == self.parameterCount else {
            throw SQLiteError(
                extendedCode: SQLITE_RANGE,
                message: "\(parameters.count) values for \(self.parameterCount) parameters"
            )
        }
        defer {
            sqlite3_reset(self.handle)
            sqlite3_clear_bindings(self.handle)
        }
        try text.withUnsafeBufferPointer { (buffer) throws(SQLiteError) in
            // A valid non-NULL address even for an empty buffer: NULL would bind SQL NULL instead of ''.
            let empty: StaticString = ""
            for (offset, parameter) in parameters.enumerated() {
                let index = Int32(offset + 1)
                let rc: Int32
                switch parameter {
                case .integer(let value):
                    rc = sqlite3_bind_int64(self.handle, index, value)
                case .null:
                    rc = sqlite3_bind_null(self.handle, index)
                case .text(let range):
                    guard range.lowerBound >= 0, range.upperBound <= buffer.count else {
                        throw SQLiteError(
                            extendedCode: SQLITE_RANGE,
                            message: "text \(range) outside a buffer of \(buffer.count) bytes"
                        )
                    }
                    let start =
                        range.isEmpty
                        ? UnsafeRawPointer(empty.utf8Start) : UnsafeRawPointer(buffer.baseAddress! + range.lowerBound)
                    rc = sqlite3_bind_text64(
                        self.handle,
                        index,
                        start.assumingMemoryBound(to: CChar.self),
                        UInt64(range.count),
                        nil,  // SQLITE_STATIC
                        UInt8(SQLITE_UTF8)
                    )
                }
                try self.check(rc, "bind parameter \(index)")
            }
            while try self.step() == .row {}
        }
    }

    /// Rewinds the statement so it can run again; bindings are kept.
    ///
    /// Does not throw: after a failed step `sqlite3_reset` only repeats that step's error, which ``step()`` already
    /// threw, and the statement is rewound either way.
    public func reset() {
        sqlite3_reset(self.handle)
    }

    // MARK: Columns

    /// The number of columns in the result.
    public var columnCount: Int {
        Int(sqlite3_column_count(self.handle))
    }

    /// The name of the 0-based column `index` (its `AS` alias if any), or `nil` out of range.
    public func columnName(at index: Int) -> String? {
        sqlite3_column_name(self.handle, Int32(clamping: index)).map { String(cString: $0) }
    }

    /// Whether the 0-based column `index` of the current row is NULL.
    public func isNull(at index: Int) -> Bool {
        sqlite3_column_type(self.handle, Int32(clamping: index)) == SQLITE_NULL
    }

    /// The 0-based column `index` as an integer (SQLite converts; NULL is 0).
    public func int64(at index: Int) -> Int64 {
        sqlite3_column_int64(self.handle, Int32(clamping: index))
    }

    /// The 0-based column `index` as a double (SQLite converts; NULL is 0.0).
    public func double(at index: Int) -> Double {
        sqlite3_column_double(self.handle, Int32(clamping: index))
    }

    /// The 0-based column `index` as text, or `nil` for NULL. Invalid UTF-8 is repaired with U+FFFD.
    public func string(at index: Int) -> String? {
        let column = Int32(clamping: index)
        guard let text = sqlite3_column_text(self.handle, column) else { return nil }
        let count = Int(sqlite3_column_bytes(self.handle, column))
        return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
    }

    /// The 0-based column `index` as bytes, or `nil` for NULL. An empty blob is `[]`.
    public func blob(at index: Int) -> [UInt8]? {
        let column = Int32(clamping: index)
        guard sqlite3_column_type(self.handle, column) != SQLITE_NULL else { return nil }
        let bytes = sqlite3_column_blob(self.handle, column)
        let count = Int(sqlite3_column_bytes(self.handle, column))
        guard let bytes, count > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: count))
    }

    /// The 0-based column `index` in its own storage class.
    public func value(at index: Int) -> SQLiteValue {
        switch sqlite3_column_type(self.handle, Int32(clamping: index)) {
        case SQLITE_INTEGER: .integer(self.int64(at: index))
        case SQLITE_FLOAT: .real(self.double(at: index))
        case SQLITE_TEXT: .text(self.string(at: index) ?? "")
        case SQLITE_BLOB: .blob(self.blob(at: index) ?? [])
        default: .null
        }
    }

    /// The SQL text the statement was prepared from.
    public var sql: String {
        sqlite3_sql(self.handle).map { String(cString: $0) } ?? ""
    }
}

@available(*, unavailable)
extension Statement: Sendable {}
