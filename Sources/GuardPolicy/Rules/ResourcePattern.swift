/// An `on:` pattern: `*`, `db`, or `db.collection`, where each part may hold `*` globs (`prod.*`, `*.tmp_*`).
///
/// Matching, part by part (a database name and a collection name are compared separately, never as one joined
/// string, so a name that contains a dot cannot straddle the two parts):
/// - `*` alone matches every target, the cluster included. It is the only pattern that matches the cluster.
/// - `db` (no dot) matches the database-level target `db` only, not its collections.
/// - `db.coll` matches the collection `coll` of `db`; if the collection part is exactly `*`, it also matches the
///   database-level target `db`. A collection named only by its ID, which could be any collection of any database,
///   is matched only by `*` and `*.*`.
/// - In each part, `*` matches any run of characters (including none); every other character matches itself,
///   case-sensitively, as Milvus compares names.
public struct ResourcePattern: Hashable, Sendable, CustomStringConvertible {
    /// The pattern as written.
    public let text: String
    private let database: [UInt8]
    private let collection: [UInt8]?

    /// Why a pattern text is refused.
    public enum Problem: Error, Equatable, CustomStringConvertible {
        case empty, emptyPart, tooManyDots, whitespace

        public var description: String {
            switch self {
            case .empty: "must not be empty"
            case .emptyPart: "needs a name or * on both sides of the dot"
            case .tooManyDots: "has more than one dot (patterns are db or db.collection)"
            case .whitespace: "must not contain spaces or control characters"
            }
        }
    }

    /// Parses a pattern.
    /// - Throws: ``Problem``.
    public init(_ text: String) throws(Problem) {
        guard !text.isEmpty else { throw .empty }
        guard !text.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 }) else {
            throw .whitespace
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { throw .tooManyDots }
        guard parts.allSatisfy({ !$0.isEmpty }) else { throw .emptyPart }
        self.text = text
        self.database = Array(parts[0].utf8)
        self.collection = parts.count == 2 ? Array(parts[1].utf8) : nil
    }

    /// The pattern as written.
    public var description: String { self.text }

    /// Whether the pattern matches `target` (see the type's documentation).
    public func matches(_ target: PolicyTarget) -> Bool {
        if self.text == "*" { return true }
        switch target {
        case .cluster:
            return false
        case .database(let database):
            guard Self.glob(self.database, matches: database) else { return false }
            return self.collection == nil || self.collection == [UInt8(ascii: "*")]
        case .collection(let database, let name):
            guard let collection = self.collection else { return false }
            return Self.glob(self.database, matches: database) && Self.glob(collection, matches: name)
        case .collectionID:
            // Whichever collection of whichever database the ID names: only a pattern that covers them all.
            guard let collection = self.collection else { return false }
            return Self.matchesEverything(self.database) && Self.matchesEverything(collection)
        }
    }

    /// Whether a part made of `*` only, which matches every name.
    private static func matchesEverything(_ part: [UInt8]) -> Bool {
        !part.isEmpty && part.allSatisfy { $0 == UInt8(ascii: "*") }
    }

    /// Whether the pattern may match `target`: ``matches(_:)``, except that a collection named only by its ID may be
    /// any collection of any database, so every pattern that names collections may match it. Deny rules use this:
    /// `deny … on: [prod.payments]` also refuses DescribeCollection by an ID, which could be payments' (fail closed).
    public func mayMatch(_ target: PolicyTarget) -> Bool {
        guard case .collectionID = target else { return self.matches(target) }
        return self.text == "*" || self.collection != nil
    }

    /// Glob matching where `*` is any run of bytes: the classic linear-time two-pointer algorithm with one
    /// backtrack point, over UTF-8 bytes (so a multi-byte character matches only itself), without allocating.
    static func glob(_ pattern: [UInt8], matches text: String) -> Bool {
        let star = UInt8(ascii: "*")
        let bytes = text.utf8
        var p = 0
        var t = bytes.startIndex
        var starAt: Int?
        var resumeAt = bytes.startIndex
        while t < bytes.endIndex {
            if p < pattern.count, pattern[p] == star {
                starAt = p
                resumeAt = t
                p += 1
            } else if p < pattern.count, pattern[p] == bytes[t] {
                p += 1
                t = bytes.index(after: t)
            } else if let starAt {
                p = starAt + 1
                resumeAt = bytes.index(after: resumeAt)
                t = resumeAt
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == star { p += 1 }
        return p == pattern.count
    }
}
