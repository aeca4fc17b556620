import SQLiteSupport
import Testing

@testable import AuditStore

@Suite("ChainEncoder")
struct ChainEncoderTests {
    /// Records that exercise every column shape: full, empty, escapes, non-ASCII, extreme integers.
    static let records: [AuditRecord] = {
        var escaped = fullRequest(2)
        escaped.filter = "title == \"a\\b\"\n\t\u{01}\u{1F} and x < 5"
        escaped.partitions = ["p\"1", "", "ünï"]
        escaped.targets = ["role": "a,b", "index": "i\\x", "zeta": "\u{7F}", "alias": "日本"]
        escaped.message = "\u{08}\u{0C}\r"
        var extremes = AuditRecord(kind: .refusal, callID: "", timeMilliseconds: Int64.min)
        extremes.rows = Int64.max
        extremes.requestBytes = 0
        extremes.status = Int32.min
        extremes.durationMilliseconds = -0.0004
        extremes.tls = false
        var huge = outcome(9)
        huge.durationMilliseconds = .infinity
        var milvusFailure = outcome(10, status: 0, message: "collection 'x' does not exist")
        milvusFailure.milvusCode = Int32.min
        var decided = fullRequest(11)
        decided.policySequence = 1
        var bothLater = outcome(12, status: 0, message: "x")
        (bothLater.milvusCode, bothLater.policySequence) = (65535, Int64.max)
        return [
            fullRequest(1), outcome(1, status: 5, message: "not found"), escaped, extremes, huge, milvusFailure,
            decided,
            bothLater,
        ]
    }()

    @Test("Later columns are in the canonical text up to the last that is not NULL, so none can stand for another")
    func laterColumns() {
        func canonical(milvusCode: Int32?, policySequence: Int64?) -> String {
            var record = outcome(1, status: 0)
            (record.milvusCode, record.policySequence) = (milvusCode, policySequence)
            return ChainRow.canonical(ChainRow.columns(of: record, sequence: 2))
        }
        // duration_us (12345) is the last of the first columns.
        #expect(canonical(milvusCode: nil, policySequence: nil).hasSuffix(",12345]"))  // as before either existed
        #expect(canonical(milvusCode: 5, policySequence: nil).hasSuffix(",12345,5]"))  // as written since v6
        #expect(canonical(milvusCode: nil, policySequence: 5).hasSuffix(",12345,null,5]"))
        #expect(canonical(milvusCode: 5, policySequence: 6).hasSuffix(",12345,5,6]"))
    }

    @Test("Encodes the same canonical text, hash and column values as ChainRow, row after row")
    func agreesWithChainRow() {
        var encoder = ChainEncoder()
        var prevHash = ChainRow.zeroHash
        for (offset, record) in Self.records.enumerated() {
            let sequence = Int64(offset + 1) * 1_000_003
            let row = ChainRow(record: record, sequence: sequence, prevHash: prevHash)
            encoder.clear()
            encoder.encode(record, sequence: sequence)

            #expect(String(decoding: encoder.hashed, as: UTF8.self) == prevHash + ChainRow.canonical(row.columns))
            #expect(encoder.hashText == row.hash)
            #expect(encoder.columns.count == row.columns.count + 2)
            // Table order: the first content columns, prev_hash and hash, then the later content columns.
            let first = ChainRow.columnNames.count
            let tableOrder = row.columns[..<first] + [.text(prevHash), .text(row.hash)] + row.columns[first...]
            for (column, expected) in zip(encoder.columns, tableOrder) {
                switch column {
                case .integer(let value): #expect(expected == .integer(value))
                case .null: #expect(expected == .null)
                case .text(let range):
                    #expect(expected == .text(String(decoding: encoder.text[range], as: UTF8.self)))
                }
            }
            prevHash = row.hash
        }
    }

    @Test("Rows encoded without clear() follow each other in columns and text")
    func severalRows() {
        var encoder = ChainEncoder()
        encoder.encode(fullRequest(1), sequence: 1)
        let first = encoder.hashText
        encoder.encode(outcome(1), sequence: 2)
        let width = SQLiteAuditSchema.allColumns.count
        #expect(encoder.columns.count == 2 * width)
        let row = ChainRow(record: outcome(1), sequence: 2, prevHash: first)
        #expect(encoder.hashText == row.hash)
        guard case .text(let range) = encoder.columns[width + 1],
            case .text(let prev) = encoder.columns[width + ChainRow.columnNames.count]
        else {
            Issue.record("kind and prev_hash are text")
            return
        }
        #expect(String(decoding: encoder.text[range], as: UTF8.self) == "outcome")
        #expect(String(decoding: encoder.text[prev], as: UTF8.self) == first)
    }

    @Test("An encoder continues a chain from a head read back from the store")
    func continuesAChain() {
        var first = ChainEncoder()
        first.encode(fullRequest(1), sequence: 1)
        var second = ChainEncoder(prevHash: first.hashText)
        second.encode(fullRequest(2), sequence: 2)
        first.encode(fullRequest(2), sequence: 2)
        #expect(second.hashText == first.hashText)
    }

    @Test("Decimal integers are written as String(value) writes them")
    func decimals() {
        var values: [Int64] = [0, 7, -7, 9, 10, 99, 100, 1_000_003, Int64.max, Int64.min, Int64.min + 1, -10]
        var power: Int64 = 1
        for _ in 0..<18 {  // every digit count, at its edges
            power *= 10
            values += [power - 1, power, power + 1, -(power - 1), -power, -(power + 1)]
        }
        for value in values {
            var out: [UInt8] = []
            ChainRow.appendDecimal(value, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == String(value))
        }
    }
}
