import Glibc

/// The strings of recently received header names and values that ``KnownHeaders`` does not hold, per
/// session: a peer repeats most of its metadata on every request (a long `authorization`, its `user-agent`,
/// `grpc-accept-encoding`, a response's `server` and `date`), and each repetition then reuses one `String`
/// instead of allocating a new one.
///
/// Only strings that Swift cannot store inline are kept (more than 15 UTF-8 bytes; shorter ones cost no
/// allocation anyway), and none longer than ``maxBytes``, so a session's cache holds at most
/// ``capacity`` × ``maxBytes`` bytes whatever its peer sends. Entries are replaced round robin; a lookup
/// compares lengths first, then bytes, so a miss costs a few comparisons.
struct HeaderStringCache {
    /// How many strings are kept.
    static let capacity = 16
    /// The longest string kept, in UTF-8 bytes.
    static let maxBytes = 128
    /// Strings Swift stores inline, without an allocation, are at most this long on 64-bit platforms.
    private static let inlineBytes = 15

    private var entries: [String] = []
    /// `entries[i].utf8.count`, beside them: the length test then touches no string (iterating over the strings
    /// would retain and release each one).
    private var lengths: [Int] = []
    /// The entry replaced next once the cache is full.
    private var next = 0

    /// The bytes as a `String`: a known header's constant, a cached string with the same bytes, or a new
    /// string (kept when its length qualifies).
    mutating func string(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        if let known = KnownHeaders.string(matching: bytes) { return known }
        guard bytes.count > Self.inlineBytes, bytes.count <= Self.maxBytes, let base = bytes.baseAddress else {
            return String(decoding: bytes, as: UTF8.self)
        }
        for index in self.lengths.indices where self.lengths[index] == bytes.count {
            let equal = self.entries[index].utf8.withContiguousStorageIfAvailable { stored in
                guard let storedBase = stored.baseAddress else { return false }
                return memcmp(storedBase, base, bytes.count) == 0
            }
            if equal == true { return self.entries[index] }
        }
        let string = String(decoding: bytes, as: UTF8.self)
        if self.entries.count < Self.capacity {
            self.entries.append(string)
            self.lengths.append(bytes.count)
        } else {
            self.entries[self.next] = string
            self.lengths[self.next] = bytes.count
            self.next = (self.next + 1) % Self.capacity
        }
        return string
    }
}
