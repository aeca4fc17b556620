/// Parses one HTTP/1.1 request for the admin listener from bytes fed in pieces. Sans-I/O: bytes in, one
/// outcome out, no sockets.
///
/// The admin listener serves one bodiless GET or HEAD per connection, so the parser only has to find the
/// end of the head (the first empty line) and then checks the whole head at once:
///
/// - request line `METHOD SP origin-form SP HTTP/1.x` (RFC 9112 §3): another method is 405, anything else
///   malformed is 400; the target must start with `/` and carry no fragment;
/// - the path and the query are percent-decoded (RFC 3986 §2.1) and must be valid UTF-8; in the query `+` is
///   a space (application/x-www-form-urlencoded, as `curl -G --data-urlencode` and Python's `urlencode`
///   write it), so a literal plus is `%2B`;
/// - **a repeated query parameter is 400**, not "last wins": two `user=` filters on an audit query are a
///   mistake or an attempt to confuse, and refusing costs the honest client nothing;
/// - header names are case-insensitive tokens, no whitespace before the colon, no obs-fold (RFC 9112 §5);
///   `authorization`, `host` and `content-length` may appear once; HTTP/1.1 needs `Host` (RFC 9112 §3.2);
/// - no body: `Transfer-Encoding`, or a `Content-Length` above 0, is 400;
/// - the head, request line included, is at most ``maxHeadBytes`` (8 KiB): beyond that, 431.
///
/// Lines end in CRLF; a bare LF is accepted too (RFC 9112 §2.2), a CR anywhere else is malformed. Bytes after
/// the head (a pipelined second request) are ignored: the server answers once and closes.
///
/// Once the parser has an outcome, every further ``feed(_:)`` returns it again.
struct AdminRequestParser: Sendable {
    /// The default bound on the request line plus headers.
    static let defaultMaxHeadBytes = 8 * 1024

    /// Why a request is refused; ``status`` is the HTTP status to answer with.
    enum Failure: Error, Equatable, Sendable {
        /// Not a well-formed request (400); the text says what, for logs.
        case malformed(String)
        /// A well-formed request line with a method other than GET or HEAD (405).
        case methodNotAllowed(String)
        /// The head exceeds ``AdminRequestParser/maxHeadBytes`` (431).
        case headTooLarge
        /// The request announces a body (400).
        case bodyNotAccepted

        /// The HTTP status code for this failure.
        var status: Int {
            switch self {
            case .malformed, .bodyNotAccepted: 400
            case .methodNotAllowed: 405
            case .headTooLarge: 431
            }
        }
    }

    /// What feeding bytes produced.
    enum OnFeed: Equatable, Sendable {
        /// The head is not complete yet.
        case needMore
        /// A complete, valid request.
        case request(AdminRequest)
        /// The request is refused.
        case failure(Failure)
    }

    /// The bound on the request line plus headers, terminating empty line included.
    let maxHeadBytes: Int
    private var buffer: [UInt8] = []
    /// Where the current (unfinished) line starts in ``buffer``.
    private var lineStart = 0
    /// How far ``buffer`` has been searched for line ends.
    private var scanned = 0
    private var outcome: OnFeed?

    init(maxHeadBytes: Int = Self.defaultMaxHeadBytes) {
        self.maxHeadBytes = max(16, maxHeadBytes)
    }

    /// Adds bytes and reports whether a request is complete, refused, or still needs bytes.
    mutating func feed(_ bytes: some Collection<UInt8>) -> OnFeed {
        if let outcome = self.outcome { return outcome }
        let room = self.maxHeadBytes - self.buffer.count
        let overflowed = bytes.count > room
        self.buffer.append(contentsOf: bytes.prefix(room))
        guard let headEnd = self.findHeadEnd() else {
            guard !overflowed else { return self.finish(.failure(.headTooLarge)) }
            return .needMore
        }
        do {
            return self.finish(.request(try Self.parseHead(self.buffer[..<headEnd])))
        } catch {
            return self.finish(.failure(error))
        }
    }

    private mutating func finish(_ outcome: OnFeed) -> OnFeed {
        self.outcome = outcome
        self.buffer = []
        return outcome
    }

    /// Scans new bytes for line ends; returns the index just past the empty line that ends the head.
    private mutating func findHeadEnd() -> Int? {
        while self.scanned < self.buffer.count {
            let index = self.scanned
            self.scanned += 1
            guard self.buffer[index] == ASCII.lf else { continue }
            var lineEnd = index
            if lineEnd > self.lineStart && self.buffer[lineEnd - 1] == ASCII.cr { lineEnd -= 1 }
            // The first empty line after at least one line ends the head; an empty first line is left to the
            // request-line check, which refuses it.
            if lineEnd == self.lineStart && self.lineStart > 0 { return index + 1 }
            self.lineStart = index + 1
        }
        return nil
    }

    // MARK: Parsing the head

    private static func parseHead(_ head: ArraySlice<UInt8>) throws(Failure) -> AdminRequest {
        var lines = try Self.lines(head)
        guard !lines.isEmpty else { throw .malformed("empty request") }
        let requestLine = lines.removeFirst()
        let (method, target, isHTTP11) = try Self.parseRequestLine(requestLine)
        let (path, query) = try Self.parseTarget(target)
        let headers = try Self.parseHeaders(lines)
        if headers["transfer-encoding"] != nil { throw .bodyNotAccepted }
        if let length = headers["content-length"] {
            guard !length.isEmpty, length.utf8.allSatisfy(ASCII.isDigit) else {
                throw .malformed("invalid Content-Length")
            }
            guard length.utf8.allSatisfy({ $0 == ASCII.zero }) else { throw .bodyNotAccepted }
        }
        if isHTTP11 && headers["host"] == nil { throw .malformed("HTTP/1.1 request without Host") }
        return AdminRequest(method: method, path: path, query: query, headers: headers)
    }

    /// Splits the head into lines without their CRLF (or LF), dropping the final empty line.
    private static func lines(_ head: ArraySlice<UInt8>) throws(Failure) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        var start = head.startIndex
        for index in head.indices where head[index] == ASCII.lf {
            var line = head[start..<index]
            if line.last == ASCII.cr { line = line.dropLast() }
            guard !line.contains(ASCII.cr) else { throw .malformed("bare CR") }
            lines.append(line)
            start = index + 1
        }
        if lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }

    private static func parseRequestLine(
        _ line: ArraySlice<UInt8>
    ) throws(Failure) -> (AdminRequest.Method, ArraySlice<UInt8>, Bool) {
        let parts = line.split(separator: ASCII.space, omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw .malformed("request line is not METHOD SP target SP version") }
        let (methodBytes, target, version) = (parts[0], parts[1], parts[2])
        guard !methodBytes.isEmpty, methodBytes.allSatisfy(ASCII.isTokenCharacter) else {
            throw .malformed("invalid method")
        }
        let isHTTP11: Bool
        if version.elementsEqual("HTTP/1.1".utf8) {
            isHTTP11 = true
        } else if version.elementsEqual("HTTP/1.0".utf8) {
            isHTTP11 = false
        } else {
            throw .malformed("unsupported version")
        }
        guard !target.isEmpty, target.allSatisfy(ASCII.isVisible) else { throw .malformed("invalid target") }
        let methodText = String(decoding: methodBytes, as: UTF8.self)
        guard let method = AdminRequest.Method(rawValue: methodText) else { throw .methodNotAllowed(methodText) }
        return (method, target, isHTTP11)
    }

    private static func parseTarget(_ target: ArraySlice<UInt8>) throws(Failure) -> (String, [String: String]) {
        guard target.first == ASCII.slash else { throw .malformed("target is not origin-form") }
        guard !target.contains(ASCII.hash) else { throw .malformed("fragment in target") }
        let pathEnd = target.firstIndex(of: ASCII.question) ?? target.endIndex
        guard let path = Self.percentDecoded(target[..<pathEnd], plusIsSpace: false) else {
            throw .malformed("invalid percent-encoding in path")
        }
        var query: [String: String] = [:]
        guard pathEnd < target.endIndex else { return (path, query) }
        let queryBytes = target[(pathEnd + 1)...]
        for pair in queryBytes.split(separator: ASCII.ampersand) {
            let equals = pair.firstIndex(of: ASCII.equals) ?? pair.endIndex
            let valueBytes = equals < pair.endIndex ? pair[(equals + 1)...] : pair[pair.endIndex...]
            guard let name = Self.percentDecoded(pair[..<equals], plusIsSpace: true),
                let value = Self.percentDecoded(valueBytes, plusIsSpace: true)
            else { throw .malformed("invalid percent-encoding in query") }
            guard !name.isEmpty else { throw .malformed("query parameter without a name") }
            guard query.updateValue(value, forKey: name) == nil else {
                throw .malformed("query parameter \(name) given twice")
            }
        }
        return (path, query)
    }

    /// Header names whose repetition makes the request ambiguous.
    private static let singletonHeaders: Set<String> = ["authorization", "host", "content-length"]

    private static func parseHeaders(_ lines: [ArraySlice<UInt8>]) throws(Failure) -> [String: String] {
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ASCII.colon) else { throw .malformed("header line without colon") }
            let nameBytes = line[..<colon]
            // Whitespace before the colon, or an obs-fold continuation line, is not a token: 400 (RFC 9112 §5.1, §5.2).
            guard !nameBytes.isEmpty, nameBytes.allSatisfy(ASCII.isTokenCharacter) else {
                throw .malformed("invalid header name")
            }
            var value = line[(colon + 1)...]
            while let first = value.first, ASCII.isWhitespace(first) { value = value.dropFirst() }
            while let last = value.last, ASCII.isWhitespace(last) { value = value.dropLast() }
            guard value.allSatisfy(ASCII.isFieldValueByte) else { throw .malformed("invalid header value") }
            let name = String(decoding: nameBytes.map(ASCII.lowercased), as: UTF8.self)
            let text = String(decoding: value, as: UTF8.self)
            if let existing = headers[name] {
                guard !Self.singletonHeaders.contains(name) else { throw .malformed("header \(name) given twice") }
                headers[name] = existing + ", " + text
            } else {
                headers[name] = text
            }
        }
        return headers
    }

    /// Percent-decodes `bytes` into a UTF-8 string; nil for a broken `%` escape or invalid UTF-8.
    static func percentDecoded(_ bytes: ArraySlice<UInt8>, plusIsSpace: Bool) -> String? {
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == ASCII.percent {
                guard bytes.endIndex - index >= 3, let high = ASCII.hexValue(bytes[index + 1]),
                    let low = ASCII.hexValue(bytes[index + 2])
                else { return nil }
                decoded.append(high << 4 | low)
                index += 3
            } else {
                decoded.append(plusIsSpace && byte == ASCII.plus ? ASCII.space : byte)
                index += 1
            }
        }
        return String(validating: decoded, as: UTF8.self)
    }
}

/// The ASCII bytes and classes HTTP/1.1 parsing needs (RFC 9110 §5.6.2 tokens, §5.5 field values).
enum ASCII {
    static let lf: UInt8 = 0x0A
    static let cr: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let hash: UInt8 = 0x23
    static let percent: UInt8 = 0x25
    static let ampersand: UInt8 = 0x26
    static let plus: UInt8 = 0x2B
    static let slash: UInt8 = 0x2F
    static let zero: UInt8 = 0x30
    static let colon: UInt8 = 0x3A
    static let equals: UInt8 = 0x3D
    static let question: UInt8 = 0x3F

    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    static func isWhitespace(_ byte: UInt8) -> Bool { byte == Self.space || byte == Self.tab }

    /// VCHAR: printable ASCII without space.
    static func isVisible(_ byte: UInt8) -> Bool { byte >= 0x21 && byte <= 0x7E }

    /// tchar: `!#$%&'*+-.^_`|~`, digits and letters.
    static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: true
        default: false
        }
    }

    /// field-vchar, SP or HTAB; obs-text (0x80…0xFF) is allowed, other control bytes are not.
    static func isFieldValueByte(_ byte: UInt8) -> Bool {
        byte == Self.tab || (byte >= 0x20 && byte != 0x7F)
    }

    static func lowercased(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte - 0x30
        case 0x41...0x46: byte - 0x41 + 10
        case 0x61...0x66: byte - 0x61 + 10
        default: nil
        }
    }
}
