import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Parses heads strictly, the way HAProxy's H1 parser rejects what it cannot trust.
enum HeadParser {
    enum Outcome {
        case incomplete
        case invalid
        /// The head and the number of bytes it took.
        case complete(MessageHead, Int)
    }

    /// HAProxy's `tune.http.maxhdr` default: a head may carry at most this many header lines
    /// minus one.
    static let defaultMaxHeaders = 101

    /// Looks for the end of a head in `buffer`; `limit` bounds its size, and a head with
    /// `maxHeaders` header lines or more is refused.
    static func parseRequest(_ buffer: ByteBuffer, limit: Int, maxHeaders: Int = defaultMaxHeaders) -> Outcome {
        parse(buffer, limit: limit, maxHeaders: maxHeaders, isRequest: true)
    }

    static func parseResponse(_ buffer: ByteBuffer, limit: Int, maxHeaders: Int = defaultMaxHeaders) -> Outcome {
        parse(buffer, limit: limit, maxHeaders: maxHeaders, isRequest: false)
    }

    private static func parse(_ buffer: ByteBuffer, limit: Int, maxHeaders: Int, isRequest: Bool) -> Outcome {
        var length = 0
        switch read(buffer, limit: limit, maxHeaders: maxHeaders, isRequest: isRequest, length: &length) {
        case .incomplete: return .incomplete
        case .invalid: return .invalid
        case .head(let head): return .complete(head, length)
        }
    }

    /// What `H1Reader` reads: the head moved into the case that carries it, and in `length` the
    /// number of bytes it took (0: incomplete, -1: invalid). (Each re-wrapping of a head in
    /// another enum copied it, a retain and a release of each of its references, on every
    /// message.)
    static func read(_ buffer: ByteBuffer, limit: Int, maxHeaders: Int, isRequest: Bool, length: inout Int) -> H1Reader.Head {
        enum Scan { case complete(Int), incomplete, badStartLine }
        let scan: Scan = buffer.withUnsafeReadableBytes { p -> Scan in
            // Empty lines before a message are skipped, as RFC 9112 allows.
            var i = 0
            let n = p.count
            while i < n, p[i] == 13 || p[i] == 10 { i += 1 }
            let start = i
            var startLineChecked = false
            // From line feed to line feed (memchr, not byte by byte: heads are scanned whole).
            while i < n, let found = memchr(p.baseAddress! + i, 10, n - i) {
                i = p.baseAddress!.distance(to: UnsafeRawPointer(found))
                if !startLineChecked {
                    // The start line is judged as soon as it is whole: a request line
                    // without a version (HTTP/0.9) is refused at once rather than waiting
                    // for a blank line that will never come.
                    startLineChecked = true
                    let end = p[i - 1] == 13 ? i - 1 : i
                    if isRequest, !isRequestLine(p, start, end) { return .badStartLine }
                }
                if p[i - 1] == 10 { return .complete(i + 1) }
                if i - 2 >= start, p[i - 1] == 13, p[i - 2] == 10 { return .complete(i + 1) }
                i += 1
            }
            return .incomplete
        }
        switch scan {
        case .badStartLine:
            length = -1
            return .invalid(buffer)
        case .incomplete:
            guard buffer.readableBytes <= limit else {
                length = -1
                return .invalid(buffer)
            }
            return .incomplete
        case .complete(let n):
            length = n
        }
        if length > limit {
            length = -1
            return .invalid(buffer)
        }
        // The head is built where it ends up: returned from an optional, it was copied (a
        // retain and a release of each of its references) on every message.
        var head = MessageHead(bytes: buffer.getSlice(at: buffer.readerIndex, length: length)!)
        guard parseHead(&head, isRequest: isRequest), head.fields.count < maxHeaders else {
            length = -1
            return .invalid(buffer)
        }
        return .head(consume head)
    }

    /// `method SP target SP HTTP/1.x` in p[start..<end].
    private static func isRequestLine(_ p: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Bool {
        guard let sp1 = (start..<end).first(where: { p[$0] == 32 }), sp1 > start,
              let sp2 = ((sp1 + 1)..<end).first(where: { p[$0] == 32 }), sp2 > sp1 + 1 else { return false }
        for j in start..<sp1 where !isTokenChar(p[j]) { return false }
        for j in (sp1 + 1)..<sp2 where p[j] <= 32 || p[j] == 127 { return false }
        return version(p, sp2 + 1, end) != nil
    }

    private static func isTokenChar(_ c: UInt8) -> Bool {
        switch c {
        case 48...57, 65...90, 97...122: return true
        case 33, 35, 36, 37, 38, 39, 42, 43, 45, 46, 94, 95, 96, 124, 126: return true
        default: return false
        }
    }

    /// Fills `head`, whose `bytes` are the head's bytes; false when the head is invalid.
    private static func parseHead(_ head: inout MessageHead, isRequest: Bool) -> Bool {
        // Room for the usual number of fields at once, rather than growing 1, 2, 4, 8.
        head.fields.reserveCapacity(16)
        let bytes = head.bytes
        let ok = bytes.withUnsafeReadableBytes { p -> Bool in
            let n = p.count
            var i = 0
            // Line ends: CRLF, or a bare LF (tolerated as RFC 9112 allows); a bare CR is fatal:
            // the first CR of a line must be the one just before its first LF.
            func lineEnd(from start: Int) -> (end: Int, next: Int)? {
                guard start < n, let base = p.baseAddress, let found = memchr(base + start, 10, n - start) else { return nil }
                let j = base.distance(to: UnsafeRawPointer(found))
                if let cr = memchr(base + start, 13, j - start), base.distance(to: UnsafeRawPointer(cr)) != j - 1 { return nil }
                return (j > start && p[j - 1] == 13 ? j - 1 : j, j + 1)
            }
            while i < n, p[i] == 13 || p[i] == 10 { i += 1 }
            guard let first = lineEnd(from: i) else { return false }
            // Start line.
            let lineStart = i
            let lineStop = first.end
            guard let sp1 = (lineStart..<lineStop).first(where: { p[$0] == 32 }) else { return false }
            if isRequest {
                // `parse` validated the request line (`isRequestLine`) as soon as it was whole.
                guard let sp2 = ((sp1 + 1)..<lineStop).first(where: { p[$0] == 32 }),
                      let minor = version(p, sp2 + 1, lineStop) else { return false }
                head.versionMinor = minor
                head.method = Substring(String(decoding: UnsafeRawBufferPointer(rebasing: p[lineStart..<sp1]), as: UTF8.self))
                head.target = Substring(String(decoding: UnsafeRawBufferPointer(rebasing: p[(sp1 + 1)..<sp2]), as: UTF8.self))
            } else {
                guard let minor = version(p, lineStart, sp1) else { return false }
                head.versionMinor = minor
                guard sp1 + 4 <= lineStop else { return false }
                var status = 0
                for j in (sp1 + 1)..<(sp1 + 4) {
                    let c = p[j]
                    guard c >= 48 && c <= 57 else { return false }
                    status = status * 10 + Int(c - 48)
                }
                guard status >= 100, sp1 + 4 == lineStop || p[sp1 + 4] == 32 else { return false }
                head.status = status
                head.reasonStart = min(sp1 + 5, lineStop)
                head.reasonEnd = lineStop
            }
            i = first.next
            // Header lines.
            while i < n {
                guard let line = lineEnd(from: i) else { return false }
                if line.end == i { return true }   // empty line: end of head
                let start = i
                if p[start] == 32 || p[start] == 9 { return false }   // obsolete line folding
                var colon = start
                while colon < line.end, p[colon] != 58 { colon += 1 }
                guard colon < line.end, colon > start else { return false }
                for j in start..<colon where !isTokenChar(p[j]) { return false }
                var vs = colon + 1
                var ve = line.end
                while vs < ve, p[vs] == 32 || p[vs] == 9 { vs += 1 }
                while ve > vs, p[ve - 1] == 32 || p[ve - 1] == 9 { ve -= 1 }
                for j in vs..<ve where (p[j] < 32 && p[j] != 9) || p[j] == 127 { return false }
                let kind = HeaderKind.classify(p, start, colon)
                head.fields.append(HeaderField(nameStart: start, nameEnd: colon, valueStart: vs, valueEnd: ve, kind: kind))
                switch kind {
                case .contentLength:
                    // 1*DIGIT, or a comma list of identical values with optional white space
                    // around each: "1 0" is not ten.
                    guard let value = contentLength(p, vs, ve) else { return false }
                    if let existing = head.contentLength {
                        if existing != value.length { return false }
                        head.contentLengthNeedsRewrite = true
                    }
                    if value.isList { head.contentLengthNeedsRewrite = true }
                    head.contentLength = value.length
                case .transferEncoding:
                    head.hasTransferEncoding = true
                    // Only "chunked" as the final coding is framed; anything after chunked is invalid.
                    let text = String(decoding: UnsafeRawBufferPointer(rebasing: p[vs..<ve]), as: UTF8.self).lowercased()
                    let codings = text.split(separator: ",").map { $0.trimmingBlanks() }
                    if head.chunked { return false }
                    if let last = codings.last, last == "chunked" {
                        if codings.dropLast().contains("chunked") { return false }
                        head.chunked = true
                    } else if isRequest {
                        return false
                    }
                case .connection:
                    // The usual single tokens, without building strings.
                    let value = UnsafeRawBufferPointer(rebasing: p[vs..<ve])
                    if Self.equalsIgnoringCase(value, Self.closeToken) {
                        head.connectionClose = true
                        break
                    }
                    if Self.equalsIgnoringCase(value, Self.keepAliveToken) {
                        head.connectionKeepAlive = true
                        break
                    }
                    let text = String(decoding: value, as: UTF8.self).lowercased()
                    for token in text.split(separator: ",") {
                        let t = token.trimmingBlanks()
                        switch t {
                        case "close": head.connectionClose = true
                        case "keep-alive": head.connectionKeepAlive = true
                        case "upgrade": head.connectionUpgrade = true
                        case "": break
                        default: head.connectionNames.append(String(t))
                        }
                    }
                case .host:
                    head.hostCount += 1
                case .upgrade:
                    head.hasUpgrade = true
                default:
                    break
                }
                i = line.next
            }
            return false
        }
        guard ok else { return false }
        // Framing rules: a message with both Content-Length and Transfer-Encoding is refused.
        if head.hasTransferEncoding, head.contentLength != nil { return false }
        if isRequest, head.versionMinor >= 1, head.hostCount != 1 { return false }
        if isRequest, head.versionMinor == 0, head.hostCount > 1 { return false }
        if isRequest, head.hostCount == 1, !authorityMatchesHost(head) { return false }
        return true
    }

    /// A Content-Length value: its length, and whether it was written as a list.
    private static func contentLength(_ p: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> (length: Int, isList: Bool)? {
        var value: Int? = nil
        var isList = false
        var j = start
        while true {
            while j < end, p[j] == 32 || p[j] == 9 { j += 1 }
            var current = 0
            var digits = 0
            while j < end, p[j] >= 48, p[j] <= 57 {
                let (m, o1) = current.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(Int(p[j] - 48))
                if o1 || o2 { return nil }
                current = a
                digits += 1
                j += 1
            }
            guard digits > 0 else { return nil }
            if let v = value, v != current { return nil }
            value = current
            while j < end, p[j] == 32 || p[j] == 9 { j += 1 }
            if j == end { return value.map { ($0, isList) } }
            guard p[j] == 44 else { return nil }
            isList = true
            j += 1
        }
    }

    /// A request whose target is in absolute form (`scheme://authority/...`) or, for CONNECT,
    /// in authority form, names the same authority as its Host header (case aside, a scheme's
    /// default port aside, user information aside), as HAProxy requires.
    static func authorityMatchesHost(_ head: MessageHead) -> Bool {
        // The usual origin-form target ("/path", or "*") names no authority: nothing to compare.
        if head.method != "CONNECT", let first = head.target.utf8.first, first == UInt8(ascii: "/") || first == UInt8(ascii: "*") {
            return true
        }
        guard let host = head.value(named: "host") else { return true }
        let target = head.target.utf8
        if head.method == "CONNECT" {
            return target.count == host.utf8.count && zip(target, host.utf8).allSatisfy { lowercased($0) == lowercased($1) }
        }
        guard let schemeEnd = target.firstIndex(of: UInt8(ascii: ":")),
              target[schemeEnd...].starts(with: "://".utf8) else { return true }
        let scheme = String(decoding: target[..<schemeEnd], as: UTF8.self).lowercased()
        let authorityStart = target.index(schemeEnd, offsetBy: 3)
        var authority = target[authorityStart...].prefix { $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }
        if let at = authority.lastIndex(of: UInt8(ascii: "@")) { authority = authority[authority.index(after: at)...] }
        let defaultPort = scheme == "http" ? "80" : scheme == "https" ? "443" : nil
        return hostKey(Substring(authority), defaultPort: defaultPort) == hostKey(Substring(host), defaultPort: defaultPort)
    }

    /// An authority for comparison: lowercased, without the scheme's default port.
    private static func hostKey(_ authority: Substring, defaultPort: String?) -> String {
        var text = authority.lowercased()
        // The port follows the last colon, unless that colon is inside an IPv6 literal.
        if let colon = text.lastIndex(of: ":"), !text[colon...].contains("]") {
            let port = text[text.index(after: colon)...]
            if port.isEmpty || (defaultPort.map { port == $0 } ?? false) { text = String(text[..<colon]) }
        }
        return text
    }

    @inline(__always) private static func lowercased(_ c: UInt8) -> UInt8 { (c >= 65 && c <= 90) ? c | 0x20 : c }

    private static let closeToken = Array("close".utf8)
    private static let keepAliveToken = Array("keep-alive".utf8)

    /// ASCII case-insensitive comparison with a lowercase token.
    private static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ token: [UInt8]) -> Bool {
        guard bytes.count == token.count else { return false }
        for i in 0..<token.count {
            let b = bytes[i]
            if (b >= 65 && b <= 90 ? b + 32 : b) != token[i] { return false }
        }
        return true
    }

    /// Parses `HTTP/1.x` in p[start..<end]; returns the minor version.
    private static func version(_ p: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Int? {
        guard end - start == 8 else { return nil }
        let expected: [UInt8] = [72, 84, 84, 80, 47, 49, 46]   // "HTTP/1."
        for k in 0..<7 where p[start + k] != expected[k] { return nil }
        let minor = p[start + 7]
        guard minor == 48 || minor == 49 else { return nil }
        return Int(minor - 48)
    }

    /// The body framing of a request.
    static func requestFraming(_ head: MessageHead) -> BodyFraming {
        if head.chunked { return .chunked }
        if let n = head.contentLength { return n > 0 ? .length(n) : .none }
        return .none
    }

    /// The body framing of a response to a request with `method`.
    static func responseFraming(_ head: MessageHead, requestMethod: Substring) -> BodyFraming {
        if requestMethod == "HEAD" || (100..<200).contains(head.status) || head.status == 204 || head.status == 304 {
            return .none
        }
        if head.chunked { return .chunked }
        if head.hasTransferEncoding { return .untilClose }
        if let n = head.contentLength { return n > 0 ? .length(n) : .none }
        return .untilClose
    }
}
