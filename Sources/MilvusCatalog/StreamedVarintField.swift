/// Reads one varint field of the first message of a gRPC body as the body streams past, without holding it: the
/// count of rows a Delete removed (MutationResult field 7, `delete_cnt`) comes after the deleted ids (field 2),
/// which can run to megabytes.
///
/// Feed it every DATA chunk in order (``consume(_:)``). ``value`` is the field's value once the first message has
/// been read to its end: its last occurrence (protobuf's rule), or 0 when it is absent (proto3 leaves zeros out).
/// It stays nil for a compressed or malformed message, or one that did not arrive whole.
public struct StreamedVarintField: Sendable {
    /// The field number to read.
    public let field: UInt32
    /// The field's value once the first message was read whole; nil before, or if it can't be read.
    public var value: UInt64? { self.state == .finished ? self.last ?? 0 : nil }

    private enum State: Equatable, Sendable {
        /// Reading the 5-byte gRPC prefix (compressed flag, length); `read` bytes so far.
        case prefix(read: Int)
        /// Reading a field's key.
        case key
        /// Reading a varint value; `keep` if it is the wanted field's.
        case varint(keep: Bool)
        /// Reading the length of a length-delimited field.
        case length
        /// Skipping `count` more bytes.
        case skip(count: UInt64)
        /// The first message ended.
        case finished
        /// Compressed, malformed or cut short: nothing more is read.
        case failed
    }

    private var state = State.prefix(read: 0)
    /// The gRPC prefix's length field, while it is read; then the bytes of the message not yet consumed.
    private var remaining: UInt64 = 0
    /// The varint being read, and its shift.
    private var accumulator: UInt64 = 0
    private var shift: UInt64 = 0
    private var last: UInt64?

    /// Reads field `field` of the first message.
    public init(field: UInt32) {
        self.field = field
    }

    /// Reads the next bytes of the body.
    public mutating func consume(_ bytes: [UInt8]) {
        var index = 0
        while index < bytes.count {
            switch self.state {
            case .finished, .failed:
                return
            case .prefix(let read):
                if read == 0, bytes[index] != 0 {  // compressed: not read
                    self.state = .failed
                    return
                }
                if read > 0 { self.remaining = self.remaining << 8 | UInt64(bytes[index]) }
                index += 1
                self.state = read == 4 ? (self.remaining == 0 ? .finished : .key) : .prefix(read: read + 1)
            case .skip(let count):
                let step = min(count, UInt64(bytes.count - index))
                index += Int(step)
                self.consumed(step)
                guard self.state != .failed else { return }
                self.state = step == count ? self.afterValue() : .skip(count: count - step)
            case .key, .varint, .length:
                let byte = bytes[index]
                index += 1
                self.consumed(1)
                guard self.state != .failed, self.shift < 64 else {
                    self.state = .failed
                    return
                }
                self.accumulator |= UInt64(byte & 0x7F) << self.shift
                self.shift += 7
                guard byte & 0x80 == 0 else { continue }
                let number = self.accumulator
                (self.accumulator, self.shift) = (0, 0)
                self.varintRead(number)
            }
        }
    }

    /// Counts `count` bytes of the message; past its end is malformed.
    private mutating func consumed(_ count: UInt64) {
        guard count <= self.remaining else {
            self.state = .failed
            return
        }
        self.remaining -= count
    }

    /// The state after a complete value: the next key, or the end of the message.
    private func afterValue() -> State {
        self.remaining == 0 ? .finished : .key
    }

    private mutating func varintRead(_ number: UInt64) {
        switch self.state {
        case .key:
            let wireType = number & 7
            switch wireType {
            case 0: self.state = .varint(keep: number >> 3 == UInt64(self.field))
            case 1: self.state = .skip(count: 8)
            case 2: self.state = .length
            case 5: self.state = .skip(count: 4)
            default: self.state = .failed  // groups, or not a wire type
            }
            if self.state != .failed, self.remaining == 0 { self.state = .failed }  // a key with nothing after it
        case .varint(let keep):
            if keep { self.last = number }
            self.state = self.afterValue()
        case .length:
            guard number <= self.remaining else {
                self.state = .failed
                return
            }
            self.state = number == 0 ? self.afterValue() : .skip(count: number)
        default:
            break
        }
    }
}
