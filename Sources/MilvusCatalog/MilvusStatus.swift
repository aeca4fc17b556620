import ProtoWire

/// Where an RPC's response carries Milvus's `common.Status`: Milvus answers most failures with gRPC OK and a status
/// in the body (`code`, `reason`), so the gRPC status alone says "ok" for a Delete on a missing collection.
public enum ResponseStatus: Hashable, Sendable {
    /// The response message is a `common.Status` (DropCollection, CreateIndex, …).
    case message
    /// The response's field `number` is a `common.Status` (field 1 of MutationResult, BoolResponse, …).
    case field(UInt32)
    /// The response has no status (streaming replication and a few diagnostics).
    case none
}

/// A failed `common.Status` read from the start of a response: `common.Status` fields 1 `error_code` (deprecated),
/// 2 `reason` and 3 `code`.
public struct MilvusStatus: Hashable, Sendable {
    /// `code`, or the deprecated `error_code` when `code` is 0 (older servers); never 0.
    public var code: Int32
    /// `reason`, as far as it was read.
    public var reason: String

    public init(code: Int32, reason: String) {
        self.code = code
        self.reason = reason
    }

    /// Reads the status from `prefix`, the first bytes of a response body (gRPC framing included) as far as they
    /// were kept. Returns nil when the status says success, or is absent, unreadable or compressed: nothing here
    /// may turn a call the guard can't read into a failure. A status cut off at the end of `prefix` is read as far
    /// as it goes (a long `reason` may hide the `code` after it; `error_code`, first, is then used).
    public static func failure(in prefix: ArraySlice<UInt8>, shape: ResponseStatus) -> MilvusStatus? {
        // gRPC framing: 1 byte compressed flag, 4 bytes length.
        guard let end = GRPCMessage.firstMessageEnd(in: prefix), prefix[prefix.startIndex] == 0 else { return nil }
        let message = prefix.dropFirst(5).prefix(end - 5)
        let status: ArraySlice<UInt8>
        switch shape {
        case .none: return nil
        case .message: status = message
        case .field(let number):
            guard let field = Self.firstField(number, in: message) else { return nil }
            status = field
        }
        return Self.readFailure(status)
    }

    /// The bytes of length-delimited field `number` of `message`, cut short if `message` ends inside it.
    private static func firstField(_ number: UInt32, in message: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        var reader = WireReader(message)
        while true {
            let start = reader.remaining
            do {
                guard let field = try reader.nextField() else { return nil }
                guard field.number == number else { continue }
                return try field.bytesValue()
            } catch {
                // Cut off inside the field: its tag and length are there, the rest of its bytes may not be.
                return Self.truncatedField(number, in: start)
            }
        }
    }

    /// Field `number` at the start of `bytes` when it is length-delimited but runs past their end: what is there.
    private static func truncatedField(_ number: UInt32, in bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        var reader = WireReader(bytes)
        guard let key = try? reader.readVarint(), key >> 3 == UInt64(number), key & 7 == 2,
            (try? reader.readVarint()) != nil
        else { return nil }
        return reader.remaining
    }

    private static func readFailure(_ status: ArraySlice<UInt8>) -> MilvusStatus? {
        var reader = WireReader(status)
        var errorCode: Int64 = 0
        var code: Int64 = 0
        var reason = ""
        while true {
            let start = reader.remaining
            do {
                guard let field = try reader.nextField() else { break }
                switch field.number {
                case 1: errorCode = try field.int64Value()
                case 2: reason = String(decoding: try field.bytesValue(), as: UTF8.self)  // as sent, repaired
                case 3: code = try field.int64Value()
                default: continue
                }
            } catch {
                if let cut = Self.truncatedField(2, in: start) { reason = String(decoding: cut, as: UTF8.self) }
                break
            }
        }
        let chosen = code != 0 ? code : errorCode
        guard chosen != 0, let value = Int32(exactly: chosen) else { return nil }
        return MilvusStatus(code: value, reason: reason)
    }
}
