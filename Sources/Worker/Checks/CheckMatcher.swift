import Shared

enum ExpectVerdict: Equatable {
    case satisfied
    case waiting
    case failed(CheckReport)
}

/// The status line, headers end and body of an HTTP check response.
struct HTTPCheckResponse: Equatable {
    var code: Int
    var reason: String
    var body: [UInt8]

    /// Nil while the response is incomplete (or, once `complete`, when it is not HTTP).
    init?(parsing bytes: [UInt8], complete: Bool) {
        guard let end = Self.headerEnd(bytes) else { return nil }
        let head = String(decoding: bytes[..<end], as: UTF8.self)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusLine = lines.first?.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false) ?? []
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/"), let code = Int(statusLine[1]), (100...999).contains(code) else {
            return nil
        }
        var length: Int? = nil
        var chunked = false
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = String(line[line.index(after: colon)...].trimmingBlanks())
            if name == "content-length" { length = Int(value) }
            if name == "transfer-encoding", value.lowercased().contains("chunked") { chunked = true }
        }
        let bodyStart = end + 4
        var body = Array(bytes[bodyStart...])
        if let length {
            guard body.count >= length || complete else { return nil }
            body = Array(body.prefix(length))
        } else if chunked {
            guard let decoded = Self.dechunk(body) else {
                if complete { body = [] } else { return nil }
                self.code = code
                self.reason = statusLine.count > 2 ? String(statusLine[2]) : ""
                self.body = body
                return
            }
            body = decoded
        } else if !complete, code >= 200, code != 204, code != 304 {
            // Delimited by the end of the connection.
            return nil
        }
        self.code = code
        reason = statusLine.count > 2 ? String(statusLine[2]) : ""
        self.body = body
    }

    static func headerEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i
        }
        return nil
    }

    /// The body of a complete chunked message, or nil while the last chunk is missing.
    static func dechunk(_ bytes: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        var i = 0
        while true {
            guard let lineEnd = (i..<max(i, bytes.count - 1)).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 }) else { return nil }
            let sizeText = String(decoding: bytes[i..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingBlanks(), radix: 16) else { return nil }
            i = lineEnd + 2
            if size == 0 { return out }
            guard bytes.count >= i + size + 2 else { return nil }
            out.append(contentsOf: bytes[i..<i + size])
            i += size + 2
        }
    }
}

/// Evaluates `expect` rules.
enum CheckMatcher {
    /// A `tcp-check expect` on the bytes received so far.
    static func tcp(_ e: CheckExpectation, _ pattern: CheckPattern?, buffer: [UInt8], complete: Bool, step: Int) -> ExpectVerdict {
        let found: Bool
        switch e.match {
        case .string(let s): found = contains(buffer, Array(s.utf8))
        case .binary(let b): found = contains(buffer, b)
        case .stringPattern: found = pattern?.matches(String(decoding: buffer.filter { $0 != 0 }, as: UTF8.self)) ?? false
        case .binaryPattern: found = pattern?.matches(hex(buffer)) ?? false
        case .status, .statusPattern: found = false
        }
        if found != e.negated { return found || complete ? .satisfied : .waiting }
        // A positive rule may still match with more data; a negative one only fails on a match.
        if !found, !complete { return .waiting }
        if buffer.isEmpty { return .failed(CheckReport(status: .l7response, description: "TCPCHK got an empty response at step \(step)")) }
        let what: String
        switch e.match {
        case .string(let s): what = " '\(s)'"
        case .binary: what = " (binary)"
        case .stringPattern: what = " (regex)"
        case .binaryPattern: what = " (binary regex)"
        case .status, .statusPattern: what = "(status codes)"
        }
        let verb = e.negated ? "TCPCHK matched unwanted content" : "TCPCHK did not match content"
        return .failed(CheckReport(status: .l7response, description: "\(verb)\(what) at step \(step)"))
    }

    /// How HAProxy names an expect rule in a timeout report.
    static func expectName(_ e: CheckExpectation) -> String {
        switch e.match {
        case .string(let s): return "expect string '\(s)'"
        case .binary(let b): return "expect binary '\(hex(b))'"
        case .stringPattern: return "expect regex"
        case .binaryPattern: return "expect binary regex"
        case .status: return "expect HTTP status codes"
        case .statusPattern: return "expect HTTP status regex"
        }
    }

    /// An `http-check expect` on a complete response.
    static func http(_ e: CheckExpectation, _ pattern: CheckPattern?, _ response: HTTPCheckResponse) -> ExpectVerdict {
        var matched: Bool
        var statusRule = false
        switch e.match {
        case .status(let ranges):
            statusRule = true
            matched = ranges.contains { $0.contains(response.code) }
        case .statusPattern:
            statusRule = true
            matched = pattern?.matches(String(response.code)) ?? false
        case .string(let s): matched = contains(response.body, Array(s.utf8))
        case .stringPattern: matched = pattern?.matches(String(decoding: response.body.filter { $0 != 0 }, as: UTF8.self)) ?? false
        case .binary(let b): matched = contains(response.body, b)
        case .binaryPattern: matched = pattern?.matches(hex(response.body)) ?? false
        }
        if e.negated { matched.toggle() }
        if matched { return .satisfied }
        if statusRule { return .failed(CheckReport(status: .l7status, code: response.code, description: response.reason)) }
        return .failed(CheckReport(status: .l7response, code: response.code,
                                   description: e.negated ? "HTTP check matched unwanted content" : "HTTP content check did not match"))
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty else { return true }
        guard haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<start + needle.count].elementsEqual(needle) { return true }
        }
        return false
    }

    static func hex(_ bytes: [UInt8]) -> String { Hex.upper(bytes) }
}
