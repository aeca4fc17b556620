/// One SQLite value, as bound to a parameter or read from a column.
///
/// SQLite is dynamically typed per value; these are its five storage classes. Text is UTF-8.
public enum SQLiteValue: Hashable, Sendable {
    /// A 64-bit signed integer.
    case integer(Int64)
    /// An IEEE 754 double.
    case real(Double)
    /// UTF-8 text.
    case text(String)
    /// Raw bytes.
    case blob([UInt8])
    /// SQL NULL.
    case null
}
