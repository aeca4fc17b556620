public import ProtoWire

/// The catalog of Milvus RPCs the guard knows: pymilvus 3.0.2's 144 (see `MilvusRPCs+Table.swift`).
///
/// A path not in the catalog is unknown, and the proxy refuses it. Lookups are exact and O(1).
public enum MilvusRPCs {
    private static let byName: [String: RPCDescriptor] = Dictionary(
        uniqueKeysWithValues: Self.all.map { ($0.name, $0) }
    )
    /// Each catalog descriptor's position in ``all``, keyed by the identity of its shared storage.
    private static let indexByIdentity: [ObjectIdentifier: Int] = Dictionary(
        uniqueKeysWithValues: Self.all.enumerated().map { ($0.element.identity, $0.offset) }
    )

    /// The position of `descriptor` in ``all`` (a dense key `0..<all.count` for per-RPC tables such as the
    /// proxy's metrics), or `nil` for a descriptor that is not the catalog's own. Hashes one pointer; allocates
    /// nothing.
    public static func index(of descriptor: RPCDescriptor) -> Int? {
        Self.indexByIdentity[descriptor.identity]
    }

    /// The RPC whose gRPC `:path` is exactly `path`, byte for byte, or `nil`.
    ///
    /// Case variants, query strings, trailing slashes and percent-encodings are unknown. `String` equality
    /// (and so a dictionary lookup) treats canonically equivalent strings as equal (U+212A KELVIN SIGN equals
    /// "K"), so a hit is confirmed on the UTF-8 bytes.
    public static func descriptor(forPath path: String) -> RPCDescriptor? {
        // Compare the prefix as bytes, then look the rest up by name (a shorter key to hash).
        var path = path
        return path.withUTF8 { bytes in
            let prefix = RPCDescriptor.pathPrefix.utf8
            guard bytes.count > prefix.count, bytes.prefix(prefix.count).elementsEqual(prefix) else { return nil }
            // Invalid UTF-8 becomes U+FFFD here, and then matches no name byte for byte.
            return Self.descriptor(named: String(decoding: bytes[prefix.count...], as: UTF8.self))
        }
    }

    /// The RPC whose `:path` is exactly these bytes (as an HTTP/2 library hands them over), or `nil`;
    /// invalid UTF-8 is unknown.
    public static func descriptor(forPath path: some Collection<UInt8>) -> RPCDescriptor? {
        // Invalid UTF-8 is repaired with U+FFFD, which then matches no path byte for byte.
        Self.descriptor(forPath: String(decoding: path, as: UTF8.self))
    }

    /// The RPC named exactly `name` (e.g. `DropCollection`), or `nil`.
    public static func descriptor(named name: String) -> RPCDescriptor? {
        guard let descriptor = Self.byName[name], descriptor.name.utf8.elementsEqual(name.utf8) else {
            return nil
        }
        return descriptor
    }

    /// Decodes the request `message` of the RPC at `path`; see ``MilvusCall/init(decoding:rpc:metadataDatabase:limits:)``.
    ///
    /// - Throws: ``CatalogError`` `.unknownRPC` if `path` is not in the catalog, `.malformedRequest` (with the
    ///   ``WireError``) if the message does not decode.
    public static func decodeCall(
        path: String,
        message: ArraySlice<UInt8>,
        metadataDatabase: String?,
        limits: WireLimits = .default
    ) throws(CatalogError) -> MilvusCall {
        guard let rpc = Self.descriptor(forPath: path) else {
            throw CatalogError(.unknownRPC, path: path)
        }
        do {
            return try MilvusCall(decoding: message, rpc: rpc, metadataDatabase: metadataDatabase, limits: limits)
        } catch {
            throw CatalogError(.malformedRequest, path: path, wireError: error)
        }
    }
}
