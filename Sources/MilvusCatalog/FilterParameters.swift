import ProtoWire

/// A Delete's filter template values (`expr_template_values`, `map<string, schema.TemplateValue>`) as one JSON
/// object: what `{ids}` in `id in {ids}` stood for. pymilvus sends them for `delete(filter=…, filter_params=…)`, and
/// without them the recorded filter does not say which rows were meant.
///
/// Keys are sorted; a key sent twice keeps its last value (protobuf's rule for maps). Values: `bool_val`,
/// `int64_val`, `float_val` and `string_val` as JSON literals (a non-finite double as a string), `array_val` as a
/// JSON array (nested arrays too; the elements of a JSON array as strings), `bytes_val` as `"<N bytes>"`.
struct FilterParameters {
    /// Rendered values by key.
    private var values: [String: String] = [:]

    var isEmpty: Bool { self.values.isEmpty }

    /// Reads one map entry: 1 key, 2 value (a TemplateValue); later fields of the entry win.
    mutating func readEntry(_ reader: inout WireReader) throws(WireError) {
        var key = ""
        var value = "null"
        while let field = try reader.nextField() {
            switch field.number {
            case 1: key = try field.stringValue()
            case 2:
                var nested = try reader.nestedReader(for: field)
                value = try Self.templateValue(&nested)
            default: continue
            }
        }
        self.values[key] = value
    }

    /// The JSON object, keys sorted.
    var json: String {
        "{" + self.values.keys.sorted().map { JSONString.quoted($0) + ":" + self.values[$0]! }.joined(separator: ",")
            + "}"
    }

    /// `schema.TemplateValue`, a oneof: the last field present wins.
    private static func templateValue(_ reader: inout WireReader) throws(WireError) -> String {
        var value = "null"
        while let field = try reader.nextField() {
            switch field.number {
            case 1: value = try field.boolValue() ? "true" : "false"
            case 2: value = String(try field.int64Value())
            case 3: value = Self.number(Double(bitPattern: try field.fixed64Value()))
            case 4: value = JSONString.quoted(try field.stringValue())
            case 5:
                var nested = try reader.nestedReader(for: field)
                value = try Self.arrayValue(&nested)
            case 6: value = JSONString.quoted("<\(try field.bytesValue().count) bytes>")
            default: continue
            }
        }
        return value
    }

    /// `schema.TemplateArrayValue`, a oneof of 1 BoolArray, 2 LongArray, 3 DoubleArray, 4 StringArray,
    /// 5 TemplateArrayValueArray, 6 JSONArray (each with its elements in field 1): the last present wins.
    private static func arrayValue(_ reader: inout WireReader) throws(WireError) -> String {
        var elements: [String] = []
        while let field = try reader.nextField() {
            guard (1...6).contains(field.number) else { continue }
            var nested = try reader.nestedReader(for: field)
            elements = []
            while let element = try nested.nextField() {
                guard element.number == 1 else { continue }
                switch field.number {
                case 1: try Self.scalars(element, fixed: false, into: &elements) { $0 != 0 ? "true" : "false" }
                case 2: try Self.scalars(element, fixed: false, into: &elements) { String(Int64(bitPattern: $0)) }
                case 3: try Self.scalars(element, fixed: true, into: &elements) { Self.number(Double(bitPattern: $0)) }
                case 4: elements.append(JSONString.quoted(try element.stringValue()))
                case 5:
                    var array = try nested.nestedReader(for: element)
                    elements.append(try Self.arrayValue(&array))
                default: elements.append(JSONString.quoted(String(decoding: try element.bytesValue(), as: UTF8.self)))
                }
            }
        }
        return "[" + elements.joined(separator: ",") + "]"
    }

    /// A repeated scalar element: one value, or a packed run of them (varints, or with `fixed` 8-byte doubles).
    private static func scalars(
        _ element: WireField,
        fixed: Bool,
        into elements: inout [String],
        _ render: (UInt64) -> String
    ) throws(WireError) {
        switch element.value {
        case .varint(let value) where !fixed: elements.append(render(value))
        case .fixed64(let value) where fixed: elements.append(render(value))
        case .lengthDelimited:
            var packed = WireReader(try element.bytesValue())
            while !packed.isAtEnd { elements.append(render(try fixed ? packed.readFixed64() : packed.readVarint())) }
        default:
            throw WireError(.unexpectedWireType, at: element.offset)
        }
    }

    /// A double as JSON: finite ones as numbers, others as strings.
    private static func number(_ value: Double) -> String {
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
