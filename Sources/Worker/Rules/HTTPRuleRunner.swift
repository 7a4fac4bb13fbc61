import NIOCore
import Shared

/// A response the proxy writes itself, built by a rule or a built-in error: a parsed head
/// (so that `http-after-response` rules can edit it) and a body.
struct LocalAnswer {
    var head: MessageHead
    var body: [UInt8]
    /// The termination flags of the log line (`PR` for a deny, `LR` for a return...).
    var cause: (Character, Character)
    /// Counted as a denied request (`dreq`).
    var denied = false

    /// Builds the answer from a status, headers and body.
    static func make(status: Int, reason: String? = nil, headers: [(String, String)], body: [UInt8],
                     cause: (Character, Character)) -> LocalAnswer {
        var text = "HTTP/1.1 \(status) \(reason ?? HTTPReasonPhrase.text(status))\r\n"
        for (name, value) in headers where MessageHead.isSafeValue(value) { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        return parse(Array(text.utf8), body: body, cause: cause)
    }

    /// A whole raw response (an `errorfile`): its head is parsed, the rest is the body.
    static func raw(_ bytes: [UInt8], cause: (Character, Character)) -> LocalAnswer {
        var end = 0
        var i = 0
        while i + 3 < bytes.count {
            if bytes[i] == 13, bytes[i + 1] == 10, bytes[i + 2] == 13, bytes[i + 3] == 10 { end = i + 4; break }
            i += 1
        }
        if end == 0 { end = bytes.count }
        return parse(Array(bytes[0..<end]), body: Array(bytes[end...]), cause: cause)
    }

    private static func parse(_ headBytes: [UInt8], body: [UInt8], cause: (Character, Character)) -> LocalAnswer {
        var buffer = ByteBuffer()
        buffer.writeBytes(headBytes)
        if case .complete(let head, _) = HeadParser.parseResponse(buffer, limit: max(headBytes.count + 1, 1 << 16), maxHeaders: 1000) {
            return LocalAnswer(head: head, body: body, cause: cause)
        }
        // An unparsable errorfile: the built-in 500 says so rather than sending garbage.
        var fallback = ByteBuffer()
        fallback.writeString("HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n")
        guard case .complete(let head, _) = HeadParser.parseResponse(fallback, limit: 1 << 16) else { fatalError("built-in head") }
        return LocalAnswer(head: head, body: [], cause: cause)
    }

    /// HAProxy's page for `status` (or the proxy's `errorfile` for it).
    static func errorPage(_ status: Int, errorFiles: [Int: [UInt8]], cause: (Character, Character),
                          extraHeaders: [(String, String)] = []) -> LocalAnswer {
        if let custom = errorFiles[status] { return raw(custom, cause: cause) }
        let page = ErrorPages.page(status)
        var headers: [(String, String)] = [("content-length", String(page.body.utf8.count)), ("cache-control", "no-cache"),
                                           ("content-type", "text/html")]
        headers.append(contentsOf: extraHeaders)
        return make(status: status, reason: page.reason, headers: headers, body: Array(page.body.utf8), cause: cause)
    }
}

/// HAProxy's built-in error pages, by status.
enum ErrorPages {
    static func page(_ status: Int) -> (reason: String, body: String) {
        let (reason, text): (String, String)
        switch status {
        case 200: (reason, text) = ("OK", "Service ready.")
        case 400: (reason, text) = ("Bad request", "Your browser sent an invalid request.")
        case 401: (reason, text) = ("Unauthorized", "You need a valid user and password to access this content.")
        case 403: (reason, text) = ("Forbidden", "Request forbidden by administrative rules.")
        case 404: (reason, text) = ("Not Found", "The resource could not be found.")
        case 405: (reason, text) = ("Method Not Allowed", "A request was made of a resource using a request method not supported by that resource")
        case 407: (reason, text) = ("Unauthorized", "You need a valid user and password to access this content.")
        case 408: (reason, text) = ("Request Time-out", "Your browser didn't send a complete request in time.")
        case 410: (reason, text) = ("Gone", "The resource is no longer available and will not be available again.")
        case 413: (reason, text) = ("Payload Too Large", "The request entity exceeds the maximum allowed.")
        case 425: (reason, text) = ("Too Early", "Your browser sent early data.")
        case 429: (reason, text) = ("Too Many Requests", "You have sent too many requests in a given amount of time.")
        case 500: (reason, text) = ("Internal Server Error", "An internal server error occurred.")
        case 501: (reason, text) = ("Not Implemented", ".The server does not support the functionality required to fulfill the request.")
        case 502: (reason, text) = ("Bad Gateway", "The server returned an invalid or incomplete response.")
        case 503: (reason, text) = ("Service Unavailable", "No server is available to handle this request.")
        case 504: (reason, text) = ("Gateway Time-out", "The server didn't respond in time.")
        default: (reason, text) = (HTTPReasonPhrase.text(status), "")
        }
        return (reason, "<html><body><h1>\(status) \(reason)</h1>\n\(text)\n</body></html>\n")
    }
}

/// Runs a list of HTTP rules over a stream's context. Pure logic over `StreamContext` and
/// the message heads it holds: no channel, no I/O.
enum HTTPRuleRunner {
    enum Outcome {
        /// The list ran to its end or stopped at `allow`: go on.
        case proceed
        case answer(LocalAnswer)
        /// `tarpit`: hold the connection for `timeout tarpit`, then answer.
        case tarpit(LocalAnswer)
        /// Close without an answer.
        case reject
        /// `wait-for-body`: the body (up to the limit) must be read before the rules go on;
        /// `resume` is the index of the rule to continue from.
        case waitForBody(milliseconds: Int64, atLeast: Int?, resume: Int)
        /// `use-service`: the service answers.
        case service(HTTPService)
    }

    /// The 401 that asks for credentials of `realm`.
    static func authChallenge(realm: String, errorFiles: [Int: [UInt8]]) -> LocalAnswer {
        var answer = LocalAnswer.errorPage(401, errorFiles: errorFiles, cause: ("P", "R"),
                                           extraHeaders: [("www-authenticate", "Basic realm=\"\(realm)\"")])
        if errorFiles[401] != nil { answer.head.addHeader("www-authenticate", "Basic realm=\"\(realm)\"") }
        return answer
    }

    /// What the first look at a rule did: its condition failed, it was one of the common
    /// actions and is done, or its action is for the general switch.
    private enum CommonStep { case skipped, done, other }

    /// `errorFiles` are the proxy's pages for deny/tarpit/auth; `defaultRealm` is what `auth`
    /// without a realm names (the proxy). Both are read only when a rule answers: passed as
    /// values, they cost a retain and a release each on every run.
    static func run(_ rules: [HTTPRule], from start: Int = 0, stage: RuleStage, context c: StreamContext,
                    errorFiles: @autoclosure () -> [Int: [UInt8]], defaultRealm: @autoclosure () -> String) -> Outcome {
        let wasResponse = c.readsResponse
        c.readsResponse = stage == .httpResponse || stage == .httpAfterResponse
        defer { c.readsResponse = wasResponse }
        let response = stage != .httpRequest
        var index = start
        while index < rules.count {
            // The condition and the common actions run on the rule as a reference the array
            // keeps alive, not counted: a counted one costs a retain and a release of the rule
            // and of each of its values read, for every rule of every request.
            let unmanaged = rules.withUnsafeBufferPointer { Unmanaged.passUnretained($0[index]) }
            index += 1
            let step = unmanaged._withUnsafeGuaranteedRef { rule -> CommonStep in
                if let condition = rule.condition, !condition.matches(c) { return .skipped }
                switch rule.common {
                case .setHeader:
                    c.editHeader(.set, rule.headerName, rule.valueFormat!.evaluate(c), response: response)
                case .addHeader:
                    c.editHeader(.add, rule.headerName, rule.valueFormat!.evaluate(c), response: response)
                case .deleteHeader:
                    c.editHeader(.remove, rule.headerName, "", response: response)
                case .setVariable:
                    if let v = rule.expression!.evaluate(c) { c.setVariable(rule.variable!, v) }
                case .other:
                    return .other
                }
                return .done
            }
            if step != .other { continue }
            let rule = rules[index - 1]
            switch rule.action {
            case .allow:
                return .proceed
            case .deny(let reply):
                var answer = reply.body.isErrorPage
                    ? LocalAnswer.errorPage(reply.status, errorFiles: errorFiles(), cause: ("P", stage == .httpRequest ? "R" : "H"))
                    : build(reply, context: c, cause: ("P", stage == .httpRequest ? "R" : "H"))
                answer.denied = true
                return .answer(answer)
            case .tarpit(let reply):
                var answer = reply.body.isErrorPage
                    ? LocalAnswer.errorPage(reply.status, errorFiles: errorFiles(), cause: ("P", "T"))
                    : build(reply, context: c, cause: ("P", "T"))
                answer.denied = true
                return .tarpit(answer)
            case .reject:
                return .reject
            case .auth(let realm):
                return .answer(authChallenge(realm: realm ?? defaultRealm(), errorFiles: errorFiles()))
            case .redirect(let redirect):
                guard let answer = redirectAnswer(redirect, context: c) else { continue }
                return .answer(answer)
            case .reply(let reply):
                if reply.body.isErrorPage {
                    return .answer(LocalAnswer.errorPage(reply.status, errorFiles: errorFiles(), cause: ("L", "R")))
                }
                return .answer(build(reply, context: c, cause: ("L", "R")))
            case .setHeader, .addHeader, .delHeader(_, .exact), .setVar:
                // Run above, from the rule's `common` form.
                break
            case .delHeader(let name, let match):
                editHeaders(stage, c, nil) { head in
                    switch match {
                    case .exact: head.removeHeader(name)
                    case .prefix: head.removeHeaders { $0.lowercased().hasPrefix(name.lowercased()) }
                    case .suffix: head.removeHeaders { $0.lowercased().hasSuffix(name.lowercased()) }
                    case .substring: head.removeHeaders { $0.lowercased().contains(name.lowercased()) }
                    case .regex(let r): head.removeHeaders { r.matches($0) }
                    }
                }
            case .replaceHeader(let name, let regex, let format, let eachValue):
                let template = format.evaluate(c)
                editHeaders(stage, c, name) { head in
                    head.replaceHeaderValues(name) { value in
                        if eachValue {
                            return value.split(separator: ",", omittingEmptySubsequences: false).map { part -> String in
                                let trimmed = String(part.drop { $0 == " " || $0 == "\t" })
                                return RegexReplace.replaceWhole(trimmed, regex: regex, template: template) ?? trimmed
                            }.joined(separator: ", ")
                        }
                        return RegexReplace.replaceWhole(value, regex: regex, template: template) ?? value
                    }
                }
            case .setRequestLine(let part, let format):
                let value = format.evaluate(c)
                c.editRequest { $0.setRequestLinePart(part, value) }
            case .replaceRequestLine(let part, let regex, let format):
                guard let target = c.requestTarget else { continue }
                let template = format.evaluate(c)
                let subject: String
                switch part {
                case .path: subject = String(URLParts.path(target) ?? "")
                case .pathq: subject = String(URLParts.pathAndQuery(target) ?? "")
                default: subject = target
                }
                if let replaced = RegexReplace.replaceWhole(subject, regex: regex, template: template) {
                    c.editRequest { $0.setRequestLinePart(part, replaced) }
                }
            case .setVarFormat(let name, let format):
                c.setVariable(name, .string(format.evaluate(c)))
            case .unsetVar(let name):
                c.setVariable(name, nil)
            case .setLogLevel(let level):
                c.logLevel = level
            case .capture(let expression, let length, let slot):
                let value = expression.evaluate(c)?.asString.map { String($0.utf8.prefix(length == 0 ? 1 << 16 : length)) ?? $0 }
                if stage == .httpRequest {
                    c.capture(value, slot: slot, response: false)
                } else {
                    c.capture(value, slot: slot, response: true)
                }
            case .waitForBody(let ms, let atLeast):
                if stage == .httpRequest, c.body == nil { return .waitForBody(milliseconds: ms, atLeast: atLeast, resume: index - 1) }
            case .setStatus(let code, let reason):
                c.editResponse { $0.setStatus(code, reason: reason) }
            case .setTimeout(let server, let expression):
                if let ms = expression.evaluate(c)?.asInt { c.timeoutOverride = (server, ms) }
            case .setSource(let expression):
                if let v = expression.evaluate(c) { c.overrideAddress(v, source: true) }
            case .setDestination(let expression):
                if let v = expression.evaluate(c) { c.overrideAddress(v, source: false) }
            case .normalizeURI(let kind, let option):
                guard let target = c.requestTarget else { continue }
                // A strict normalizer refuses a bad percent-encoding with a 400.
                guard let normalized = URINormalizer.apply(kind, option: option, to: target) else {
                    return .answer(LocalAnswer.errorPage(400, errorFiles: errorFiles(), cause: ("P", "R")))
                }
                if normalized != target { c.editRequest { $0.setRequestLinePart(.uri, normalized) } }
            case .useService(let service):
                return .service(service)
            case .track(let track):
                c.track(track, level: .stream, countsRequest: stage == .httpRequest)
                if stage == .httpResponse, let status = c.responseStatus { c.stickCounters?.countStatus(status) }
            case .stickCounter(let action):
                c.stickCounters?.apply(action, context: c)
            case .earlyHint, .ignored:
                break
            }
        }
        return .proceed
    }

    /// An edit of the headers only (`name` the one it changes, nil when it may be any): what
    /// rules read of the request line and of other headers stays cached.
    static func editHeaders(_ stage: RuleStage, _ c: StreamContext, _ name: String?, _ edit: (inout MessageHead) -> Void) {
        if stage == .httpRequest { c.editRequestHeaders(name, edit) } else { c.editResponse(edit) }
    }

    /// `return` / `deny` with their own content.
    static func build(_ reply: LocalReply, context c: StreamContext, cause: (Character, Character)) -> LocalAnswer {
        if reply.contentType == "\u{0}raw", case .bytes(let bytes) = reply.body { return LocalAnswer.raw(bytes, cause: cause) }
        var body: [UInt8] = []
        switch reply.body {
        case .bytes(let b): body = b
        case .format(let f): body = Array(f.evaluate(c).utf8)
        case .none, .errorPage: break
        }
        // `hdr` lines whose value comes out empty are left out.
        var headers: [(String, String)] = reply.headers.compactMap { h in
            let value = h.value.evaluate(c)
            return value.isEmpty ? nil : (h.name.lowercased(), value)
        }
        headers.append(("content-length", String(body.count)))
        if let type = reply.contentType, !body.isEmpty || reply.body.hasContent { headers.append(("content-type", type)) }
        return LocalAnswer.make(status: reply.status, headers: headers, body: body, cause: cause)
    }

    static func redirectAnswer(_ r: RedirectRule, context c: StreamContext) -> LocalAnswer? {
        let value = r.target.evaluate(c)
        if r.ignoreEmpty, value.isEmpty { return nil }
        var location: String
        switch r.kind {
        case .location:
            location = value
        case .prefix, .scheme:
            guard let target = c.requestTarget else { return nil }
            var path = String(URLParts.path(target) ?? "/")
            let query = URLParts.query(target)
            if r.appendSlash, !path.hasSuffix("/") { path += "/" }
            if r.kind == .prefix {
                location = (value == "/" ? "" : value) + path
            } else {
                let host = c.headerValues("host", response: false).first ?? ""
                location = value + "://" + host + path
            }
            if !r.dropQuery, let query { location += "?" + query }
        }
        if location.isEmpty { return nil }
        var headers: [(String, String)] = [("content-length", "0"), ("location", location)]
        if r.code != 301 && r.code != 308 { headers.append(("cache-control", "no-cache")) }
        if let cookie = r.setCookie { headers.append(("set-cookie", "\(cookie); path=/;")) }
        if let cookie = r.clearCookie {
            let name = cookie.hasSuffix("=") ? cookie : cookie + "="
            headers.append(("set-cookie", "\(name); path=/; Max-Age=0; Expires=Thu, 01-Jan-1970 00:00:01 GMT;"))
        }
        return LocalAnswer.make(status: r.code, headers: headers, body: [], cause: ("L", "R"))
    }
}


extension MessageHead {
    /// `set-path`, `set-query`, `set-uri`, `set-method`... on the request line.
    /// A value with a blank or a line break would break the request line: it is not applied.
    mutating func setRequestLinePart(_ part: RequestLinePart, _ value: String) {
        guard !value.utf8.contains(where: { $0 == 32 || $0 == 9 || $0 == 13 || $0 == 10 || $0 == 0 }) else { return }
        let current = String(target)
        switch part {
        case .method:
            method = Substring(value)
            return
        case .uri:
            target = Substring(value)
            return
        case .path:
            let query = URLParts.query(current)
            target = Substring(String(URLParts.schemeAndAuthority(current)) + value + (query.map { "?" + $0 } ?? ""))
        case .pathq:
            target = Substring(String(URLParts.schemeAndAuthority(current)) + value)
        case .query:
            let base = current.firstIndex(of: "?").map { String(current[..<$0]) } ?? current
            let q = value.hasPrefix("?") ? String(value.dropFirst()) : value
            target = Substring(q.isEmpty ? base : base + "?" + q)
        }
    }
}

/// `http-request normalize-uri <normalizer> [full|strict]`: HAProxy's normalizers.
enum URINormalizer {
    /// The normalized target; nil when a `strict` normalizer finds a bad percent-encoding.
    static func apply(_ kind: String, option: String? = nil, to target: String) -> String? {
        let path = String(URLParts.path(target) ?? "")
        let query = URLParts.query(target)
        func rebuild(_ p: String, _ q: Substring?) -> String { p + (q.map { "?" + $0 } ?? "") }
        switch kind {
        case "path-merge-slashes":
            var out = ""
            for ch in path where !(ch == "/" && out.hasSuffix("/")) { out.append(ch) }
            return rebuild(out, query)
        case "path-strip-dot", "path-strip-dotdot":
            guard path.hasPrefix("/") else { return target }
            return rebuild(stripDots(path, dotdot: kind == "path-strip-dotdot", full: option == "full"), query)
        case "percent-to-uppercase", "percent-decode-unreserved":
            return percentNormalized(target, decode: kind == "percent-decode-unreserved", strict: option == "strict")
        case "query-sort-by-name":
            guard let query else { return target }
            let sorted = query.split(separator: "&").sorted { $0.prefix { $0 != "=" } < $1.prefix { $0 != "=" } }
            return rebuild(path, Substring(sorted.joined(separator: "&")))
        case "fragment-strip":
            return String(target.prefix { $0 != "#" })
        case "fragment-encode":
            return target.replacingOccurrences(of: "#", with: "%23")
        default:
            return target
        }
    }

    /// `.` segments (and with `dotdot`, `..` with the segment before it) taken out of an
    /// absolute path; a removed last segment leaves its slash (`/a/.` is `/a/`). A `..` with
    /// nothing before it stays, unless `full`.
    static func stripDots(_ path: String, dotdot: Bool, full: Bool) -> String {
        var kept: [Substring] = []
        let segments = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        for (index, segment) in segments.enumerated() {
            let isLast = index == segments.count - 1
            if segment == "." {
                if isLast { kept.append("") }
            } else if dotdot, segment == ".." {
                if let top = kept.last, top != ".." {
                    kept.removeLast()
                } else if !full {
                    kept.append(segment)
                    continue
                }
                if isLast { kept.append("") }
            } else {
                kept.append(segment)
            }
        }
        return "/" + kept.joined(separator: "/")
    }

    /// `%xx` escapes in uppercase, or (decode) the ones of unreserved characters decoded; a `%`
    /// not followed by two hex digits stays, or makes the target invalid when `strict`.
    static func percentNormalized(_ target: String, decode: Bool, strict: Bool) -> String? {
        let bytes = Array(target.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            guard bytes[i] == UInt8(ascii: "%") else { out.append(bytes[i]); i += 1; continue }
            guard i + 2 < bytes.count, let high = Hex.digit(bytes[i + 1]), let low = Hex.digit(bytes[i + 2]) else {
                if strict { return nil }
                out.append(bytes[i])
                i += 1
                continue
            }
            let value = high << 4 | low
            let unreserved = (value >= 0x41 && value <= 0x5a) || (value >= 0x61 && value <= 0x7a) || (value >= 0x30 && value <= 0x39)
                || value == UInt8(ascii: "-") || value == UInt8(ascii: ".") || value == UInt8(ascii: "_") || value == UInt8(ascii: "~")
            if decode, unreserved {
                out.append(value)
            } else if decode {
                out.append(contentsOf: bytes[i...(i + 2)])
            } else {
                out.append(contentsOf: [UInt8(ascii: "%"), Hex.upperDigits[Int(high)], Hex.upperDigits[Int(low)]])
            }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
