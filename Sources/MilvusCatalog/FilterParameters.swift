import ProtoWire

/// A Delete's filter template values (`expr_template_values`, `map<string, schema.TemplateValue>`) as one JSON
/// object: what `{ids}` in `id in {ids}` stood for. pymilvus sends them for `delete(filter=…, filter_params=…)`, and
/// without them the recorded filter does not say which rows were meant.
///
/// Read as Milvus's Go protobuf reads them. Keys are compared and sorted byte for byte (`é` and `e` + U+0301 are two
/// keys, as they are to Milvus); a key sent twice keeps its last entry (protobuf's rule for maps). A message that
/// occurs more than once is merged, not replaced: an entry's value sent twice, or an array member of a oneof sent
/// twice (`ids` as `[1, 2]` then `[3]` is `[1, 2, 3]`); another member of the oneof replaces it. Values:
/// `bool_val`, `int64_val`, `float_val` and `string_val` as JSON literals (a non-finite double as a string),
/// `array_val` as a JSON array (nested arrays too; the elements of a JSON array as strings), `bytes_val` as
/// `"<N bytes>"`.
///
/// What is rendered is bounded, for it is kept with the decoded call while the call lasts and only shown (a record
/// keeps 16 KiB of it): past ``renderBudget`` bytes of rendered keys and values in all, a key or string is shown as
/// `"… N bytes"` and array elements are counted (`"… N more values"`), as they are past 65,536 in one array.
struct FilterParameters {
    /// Rendered keys and values by key (its UTF-8 bytes).
    private var values: [[UInt8]: (key: String, value: String)] = [:]
    /// Bytes of rendered values left to spend.
    private var budget = Self.renderBudget
    /// Rendered value bytes a request's template values may take in all.
    static let renderBudget = 64 << 10

    var isEmpty: Bool { self.values.isEmpty }

    /// Reads one map entry: 1 key, 2 value (a TemplateValue); a later key wins, a later value merges.
    mutating func readEntry(_ reader: inout WireReader) throws(WireError) {
        var key: [UInt8] = []
        var value = TemplateValue()
        while let field = try reader.nextField() {
            switch field.number {
            case 1: key = Array(try field.stringValue().utf8)
            case 2:
                var nested = try reader.nestedReader(for: field)
                try value.merge(&nested, budget: &self.budget)
            default: continue
            }
        }
        // Keys count against the budget too: 64 keys of 1 MiB of control characters, escaped six bytes each,
        // held the loop 11 s (a red-team run).
        let renderedKey =
            key.count <= self.budget
            ? JSONString.quoted(String(decoding: key, as: UTF8.self)) : JSONString.quoted("… \(key.count) bytes")
        self.budget -= renderedKey.utf8.count
        self.values[key] = (renderedKey, value.json)
    }

    /// Distinct keys read so far.
    var count: Int { self.values.count }

    /// The JSON object, keys sorted by their bytes.
    var json: String {
        let keys = self.values.keys.sorted { $0.lexicographicallyPrecedes($1) }
        return "{" + keys.map { self.values[$0].map { $0.key + ":" + $0.value } ?? "" }.joined(separator: ",") + "}"
    }

    /// `schema.TemplateValue` as read so far, a oneof: a scalar member replaces what was there; the array member
    /// merges into an array already there.
    private struct TemplateValue {
        var scalar: String?
        var array: ArrayValue?

        var json: String { self.array?.json ?? self.scalar ?? "null" }

        mutating func merge(_ reader: inout WireReader, budget: inout Int) throws(WireError) {
            while let field = try reader.nextField() {
                let scalar: String
                switch field.number {
                case 1: scalar = try field.boolValue() ? "true" : "false"
                case 2: scalar = String(try field.int64Value())
                case 3: scalar = FilterParameters.number(Double(bitPattern: try field.fixed64Value()))
                case 4:
                    let text = try field.stringValue()
                    scalar =
                        text.utf8.count <= budget
                        ? JSONString.quoted(text) : JSONString.quoted("… \(text.utf8.count) bytes")
                    budget -= scalar.utf8.count
                case 5:
                    var nested = try reader.nestedReader(for: field)
                    // Taken out while it grows: a second reference to its elements would make every merge copy
                    // them all (quadratic in the number of merges).
                    var array = self.array.take() ?? ArrayValue()
                    try array.merge(&nested, budget: &budget)
                    (self.scalar, self.array) = (nil, array)
                    continue
                case 6: scalar = JSONString.quoted("<\(try field.bytesValue().count) bytes>")
                default: continue
                }
                (self.scalar, self.array) = (scalar, nil)
            }
        }
    }

    /// `schema.TemplateArrayValue`, a oneof of 1 BoolArray, 2 LongArray, 3 DoubleArray, 4 StringArray,
    /// 5 TemplateArrayValueArray, 6 JSONArray (each with its elements in field 1): the member sent again adds its
    /// elements, another member replaces them.
    /// Keeps the first ``WireLimits/maxRepeatedValues`` elements and counts the rest (`dropped`): they are shown,
    /// never decided on, and a packed array costs a byte per element on the wire but a `String` each here (a 64 MiB
    /// request made 64 million of them).
    private struct ArrayValue {
        var member: UInt32 = 0
        var elements: [String] = []
        var dropped = 0

        var json: String {
            let more = self.dropped > 0 ? [JSONString.quoted("… \(self.dropped) more values")] : []
            return "[" + (self.elements + more).joined(separator: ",") + "]"
        }

        mutating func merge(_ reader: inout WireReader, budget: inout Int) throws(WireError) {
            let limit = reader.limits.maxRepeatedValues
            while let field = try reader.nextField() {
                guard (1...6).contains(field.number) else { continue }
                if field.number != self.member { (self.member, self.elements, self.dropped) = (field.number, [], 0) }
                var nested = try reader.nestedReader(for: field)
                while let element = try nested.nextField() {
                    guard element.number == 1 else { continue }
                    switch field.number {
                    case 1:
                        try self.scalars(element, fixed: false, limit: limit, budget: &budget) {
                            $0 != 0 ? "true" : "false"
                        }
                    case 2:
                        try self.scalars(element, fixed: false, limit: limit, budget: &budget) {
                            String(Int64(bitPattern: $0))
                        }
                    case 3:
                        try self.scalars(element, fixed: true, limit: limit, budget: &budget) {
                            FilterParameters.number(Double(bitPattern: $0))
                        }
                    case 4:
                        let text = try element.stringValue()  // checked (UTF-8) even when it is not kept
                        let left = budget
                        self.keep(budget: &budget, Self.quoted(text.utf8.count, left) { text }, limit: limit)
                    case 5:
                        // Each element of the repeated field is a TemplateArrayValue of its own.
                        var array = try nested.nestedReader(for: element)
                        var inner = ArrayValue()
                        try inner.merge(&array, budget: &budget)
                        self.keep(budget: &budget, inner.json, limit: limit)
                    default:
                        let bytes = try element.bytesValue()
                        let left = budget
                        self.keep(
                            budget: &budget,
                            Self.quoted(bytes.count, left) { String(decoding: bytes, as: UTF8.self) },
                            limit: limit
                        )
                    }
                }
            }
        }

        /// A text element as JSON, or `"… N bytes"` when it is larger than what is left to render.
        private static func quoted(_ count: Int, _ budget: Int, _ text: () -> String) -> String {
            count <= budget ? JSONString.quoted(text()) : JSONString.quoted("… \(count) bytes")
        }

        private mutating func keep(budget: inout Int, _ element: @autoclosure () -> String, limit: Int) {
            if self.elements.count < limit, budget > 0 {
                let rendered = element()
                budget -= rendered.utf8.count + 1
                self.elements.append(rendered)
            } else {
                self.dropped += 1
            }
        }

        /// A repeated scalar element: one value, or a packed run of them (varints, or with `fixed` 8-byte doubles).
        private mutating func scalars(
            _ element: WireField,
            fixed: Bool,
            limit: Int,
            budget: inout Int,
            _ render: (UInt64) -> String
        ) throws(WireError) {
            switch element.value {
            case .varint(let value) where !fixed: self.keep(budget: &budget, render(value), limit: limit)
            case .fixed64(let value) where fixed: self.keep(budget: &budget, render(value), limit: limit)
            case .lengthDelimited:
                var packed = WireReader(try element.bytesValue())
                while !packed.isAtEnd {
                    let value = try fixed ? packed.readFixed64() : packed.readVarint()
                    self.keep(budget: &budget, render(value), limit: limit)
                }
            default:
                throw WireError(.unexpectedWireType, at: element.offset)
            }
        }
    }

    /// A double as JSON: finite ones as numbers, others as strings.
    fileprivate static func number(_ value: Double) -> String {
        value.isFinite ? "\(value)" : JSONString.quoted("\(value)")
    }
}

/// JSON string literals (RFC 8259 §7), for the few places above the store that write JSON: Delete's filter
/// parameters here, the admin listener's error bodies.
public enum JSONString {
    /// `text` quoted: `"` and `\` escaped, newline, carriage return and tab as `\n \r \t`, other control
    /// characters as `\u00XX`, everything else, non-ASCII included, as it is.
    public static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
