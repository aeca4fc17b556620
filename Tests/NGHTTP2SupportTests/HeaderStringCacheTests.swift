import Testing

@testable import NGHTTP2Support

@Suite("HeaderStringCache: repeated header strings are reused, and always spell their bytes")
struct HeaderStringCacheTests {
    /// The cache's answer for `text`'s bytes.
    static func lookUp(_ text: String, in cache: inout HeaderStringCache) -> String {
        Array(text.utf8).withUnsafeBufferPointer { cache.string($0) }
    }

    /// Where a string's UTF-8 bytes are stored: the same address means the same string storage.
    static func storage(of text: String) -> UnsafeRawPointer? {
        text.utf8.withContiguousStorageIfAvailable { UnsafeRawPointer($0.baseAddress) } ?? nil
    }

    @Test("A repeated long value is the same string storage the second time")
    func repeatedValueReused() {
        var cache = HeaderStringCache()
        let value = "grpc-python/1.66.1 grpc-c/43.0.0 (linux; chttp2)"
        let first = Self.lookUp(value, in: &cache)
        let second = Self.lookUp(value, in: &cache)
        #expect(first == value)
        #expect(second == value)
        #expect(Self.storage(of: first) != nil)
        #expect(Self.storage(of: first) == Self.storage(of: second))
    }

    @Test("Values of the same length but other bytes are told apart")
    func sameLengthDifferentBytes() {
        var cache = HeaderStringCache()
        let a = "Basic cm9vdDpNaWx2dXM="
        let b = "Basic cm9vdDpNaWx2dXN="
        #expect(Self.lookUp(a, in: &cache) == a)
        #expect(Self.lookUp(b, in: &cache) == b)
        #expect(Self.lookUp(a, in: &cache) == a)
        #expect(Self.lookUp(b, in: &cache) == b)
    }

    @Test(
        "Short, overlong and known strings come back as they are",
        arguments: [
            "", "x", "127.0.0.1:19531", String(repeating: "k", count: HeaderStringCache.maxBytes + 1),
            "application/grpc", "/milvus.proto.milvus.MilvusService/Search",
        ]
    )
    func uncachedStrings(_ text: String) {
        var cache = HeaderStringCache()
        #expect(Self.lookUp(text, in: &cache) == text)
        #expect(Self.lookUp(text, in: &cache) == text)
    }

    @Test("More distinct values than the cache holds: each still comes back right, before and after eviction")
    func eviction() {
        var cache = HeaderStringCache()
        let values = (0..<(HeaderStringCache.capacity * 3)).map { "user-agent value number \($0)" }
        for _ in 0..<2 {
            for value in values { #expect(Self.lookUp(value, in: &cache) == value) }
        }
    }

    @Test("Bytes that are not UTF-8 are repaired as before, and repeated ones still come back the same")
    func invalidUTF8() {
        var cache = HeaderStringCache()
        let bytes: [UInt8] = Array("authorization-ish ".utf8) + [0xFF, 0xFE] + Array("tail".utf8)
        let expected = String(decoding: bytes, as: UTF8.self)
        for _ in 0..<2 {
            #expect(bytes.withUnsafeBufferPointer { cache.string($0) } == expected)
        }
    }
}

@Suite("Known headers")
struct KnownHeadersTests {
    private func lookup(_ text: String) -> String? {
        Array(text.utf8).withUnsafeBufferPointer { KnownHeaders.string(matching: $0) }
    }

    @Test("Every entry is found, as itself")
    func everyEntry() {
        for entry in KnownHeaders.table {
            #expect(self.lookup(entry) == entry)
        }
    }

    @Test("Near misses, empty and overlong bytes are not known")
    func misses() {
        for entry in KnownHeaders.table {
            // Same length, last byte changed; one byte shorter; one byte longer.
            var changed = Array(entry.utf8)
            changed[changed.count - 1] ^= 0x01
            #expect(changed.withUnsafeBufferPointer { KnownHeaders.string(matching: $0) } == nil)
            #expect(self.lookup(entry + "x") == nil || KnownHeaders.table.contains(entry + "x"))
            let shorter = String(entry.dropLast())
            #expect(self.lookup(shorter) == nil || KnownHeaders.table.contains(shorter))
        }
        #expect(self.lookup("") == nil)
        #expect(self.lookup(String(repeating: "p", count: 4096)) == nil)
    }
}
