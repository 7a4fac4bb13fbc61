/// What the persistence cookie of a request said (the third character of `%tsc`).
public enum ClientCookieState: Character, Sendable {
    case none = "N", invalid = "I", down = "D", valid = "V", expired = "E", old = "O", unused = "U"
}

/// What became of the persistence cookie in the response (the fourth character of `%tsc`).
public enum ServerCookieState: Character, Sendable {
    case none = "N", present = "P", deleted = "D", inserted = "I", rewritten = "R", updated = "U"
}

/// How a cookie value matched a server, for the request side.
public enum CookieServerMatch<Server> {
    /// No server has this cookie.
    case none
    /// A server has it but may not take the request (down, without `option persist`).
    case down
    /// The server takes the request; `running` false when it is down but persistence forces it.
    case server(Server, running: Bool)
}

/// The cookie side of HAProxy's persistence: reading the `Cookie` lines of a request, rewriting
/// the `Set-Cookie` lines of a response and building the inserted cookie. Pure text work; the
/// session supplies the servers and the clock.
public enum CookiePersistence {
    /// The request side's findings.
    public struct RequestOutcome<Server> {
        public var state: ClientCookieState = .none
        public var server: Server? = nil
        /// The dates a cookie with `maxidle`/`maxlife` carried (Unix seconds, 0 when absent).
        public var lastSeen: Int64 = 0
        public var firstSeen: Int64 = 0
        /// The `Cookie` lines to send on, one per line received (nil drops it), when any
        /// changed.
        public var rewrittenLines: [String?]? = nil
    }

    /// Reads the persistence cookie from `lines` (every `Cookie` header line, in order).
    /// `skipLookup`: `ignore-persist` matched or a server is already assigned.
    /// `match` gives the server of a cookie value, trying servers in declaration order.
    public static func inspectRequest<Server>(lines: [String], settings: CookieSettings, now: Int64, skipLookup: Bool,
                                              match: (Substring) -> CookieServerMatch<Server>) -> RequestOutcome<Server> {
        var outcome = RequestOutcome<Server>()
        var changed = false
        var output: [String?] = []
        var assigned = skipLookup
        for line in lines {
            var items = CookieLine.items(of: line)
            var lineChanged = false
            var deleting = false
            for index in items.indices {
                let item = items[index]
                if item.isAttribute {
                    if deleting { items[index].keep = false }
                    continue
                }
                guard item.hasValue, item.name == settings.name else {
                    deleting = false
                    continue
                }
                let value = item.value
                var serverPart = value
                var prefixRest: Substring? = nil
                if settings.mode == .prefix {
                    if let tilde = value.firstIndex(of: "~") {
                        serverPart = value[..<tilde]
                        prefixRest = value[value.index(after: tilde)...]
                    }
                } else if let bar = value.firstIndex(of: "|") {
                    serverPart = value[..<bar]
                    let dates = value[value.index(after: bar)...]
                    if dates.utf8.count >= 5, let last = decodeDate(dates.prefix(5)) { outcome.lastSeen = last }
                    if let bar2 = dates.firstIndex(of: "|") {
                        let second = dates[dates.index(after: bar2)...]
                        if second.utf8.count >= 5, let first = decodeDate(second.prefix(5)) { outcome.firstSeen = first }
                    }
                }
                var pretendAbsent = false
                if outcome.firstSeen != 0, settings.maxLifeSeconds > 0,
                   now - outcome.firstSeen > settings.maxLifeSeconds || outcome.firstSeen - now > 86_400 {
                    outcome.state = .old
                    pretendAbsent = true
                    outcome.firstSeen = 0
                    outcome.lastSeen = 0
                } else if outcome.lastSeen != 0, settings.maxIdleSeconds > 0,
                          now - outcome.lastSeen > settings.maxIdleSeconds || outcome.lastSeen - now > 86_400 {
                    outcome.state = .expired
                    pretendAbsent = true
                    outcome.firstSeen = 0
                    outcome.lastSeen = 0
                }
                var found = false
                if !pretendAbsent, !serverPart.isEmpty, !assigned {
                    switch match(serverPart) {
                    case .server(let server, let running):
                        outcome.state = running ? .valid : .down
                        outcome.server = server
                        assigned = true
                        found = true
                    case .down:
                        outcome.state = .down
                    case .none:
                        break
                    }
                }
                // HAProxy tests the state against a mask covering every state: only a cookie
                // that is the first to say anything is marked invalid or unused.
                if !found, outcome.state == .none {
                    outcome.state = assigned ? .unused : .invalid
                }
                if let rest = prefixRest {
                    items[index].replacement = "\(item.leading)\(item.name)=\(rest)"
                    lineChanged = true
                    deleting = false
                } else if settings.mode == .insert, settings.indirect {
                    items[index].keep = false
                    lineChanged = true
                    deleting = true
                } else {
                    deleting = false
                }
            }
            if lineChanged {
                changed = true
                output.append(CookieLine.join(items))
            } else {
                output.append(line)
            }
        }
        if changed { outcome.rewrittenLines = output }
        return outcome
    }

    /// The response side: `Set-Cookie` lines (in order) the server sent, given the server that
    /// answered (`serverCookie` its cookie value) and whether the request came to it through
    /// persistence. Returns the new lines (nil when unchanged) and the state.
    public static func rewriteResponse(lines: [String], settings: CookieSettings, serverCookie: String?, direct: Bool,
                                       ignorePersist: Bool) -> (lines: [String?]?, state: ServerCookieState) {
        var state = ServerCookieState.none
        guard !ignorePersist else { return (nil, state) }
        var output: [String?] = []
        var changed = false
        for line in lines {
            guard let cookie = CookieLine.firstSetCookie(line), cookie.name == settings.name else {
                output.append(line)
                continue
            }
            state = .present
            if settings.preserve {
                output.append(line)
            } else if settings.mode == .insert || (direct && settings.indirect) {
                output.append(nil)
                state = .deleted
                changed = true
            } else if let serverCookie, settings.mode == .rewrite {
                output.append(String(line[..<cookie.valueRange.lowerBound]) + serverCookie + line[cookie.valueRange.upperBound...])
                state = .rewritten
                changed = true
            } else if let serverCookie, settings.mode == .prefix {
                output.append(String(line[..<cookie.valueRange.lowerBound]) + serverCookie + "~" + line[cookie.valueRange.lowerBound...])
                state = .rewritten
                changed = true
            } else {
                output.append(line)
            }
        }
        return (changed ? output : nil, state)
    }

    /// Whether the response gets a `Set-Cookie` of its own (insert mode).
    public static func shouldInsert(settings: CookieSettings, state: ServerCookieState, direct: Bool, lastSeen: Int64,
                                    firstSeen: Int64, now: Int64, isPost: Bool, ignorePersist: Bool) -> Bool {
        guard settings.mode == .insert, !ignorePersist else { return false }
        if settings.preserve && state == .present { return false }
        if settings.postOnly && !isPost { return false }
        let dated = settings.maxIdleSeconds > 0 || lastSeen != 0
        return !direct
            || (dated && (lastSeen == 0 || lastSeen < now))
            || (settings.maxLifeSeconds > 0 && firstSeen == 0)
            || (settings.maxLifeSeconds == 0 && firstSeen != 0)
    }

    /// The inserted `Set-Cookie` value: the server's cookie (with dates when `maxidle` or
    /// `maxlife` is set), or an expired empty cookie for a server without one.
    public static func insertedCookie(settings: CookieSettings, serverCookie: String?, firstSeen: Int64, now: Int64) -> String {
        var text: String
        if let serverCookie {
            text = settings.name + "=" + serverCookie
            if settings.maxIdleSeconds > 0 || settings.maxLifeSeconds > 0 {
                text += "|" + encodeDate((now + 3) >> 2)
                if settings.maxLifeSeconds > 0 {
                    text += "|" + encodeDate(firstSeen != 0 ? firstSeen >> 2 : (now + 3) >> 2)
                }
            }
            text += "; path=/"
        } else {
            text = settings.name + "=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/"
        }
        return text + settings.insertedAttributes
    }

    // MARK: - Dates (HAProxy's 30-bit base64, in 4-second units)

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encodeDate(_ value: Int64) -> String {
        var bytes = [UInt8]()
        var v = Int(truncatingIfNeeded: value)
        for _ in 0..<5 {
            bytes.append(alphabet[(v >> 24) & 0x3F])
            v <<= 6
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The Unix date of 5 characters, nil when one is outside the alphabet or the value is 0.
    static func decodeDate(_ text: Substring) -> Int64? {
        var value: Int64 = 0
        for byte in text.utf8 {
            guard let digit = alphabet.firstIndex(of: byte) else { return nil }
            value = (value << 6) + Int64(digit)
        }
        return value > 0 ? value << 2 : nil
    }
}

/// The items of a `Cookie` line as HAProxy delimits them (`;` or `,` outside quotes), and the
/// first cookie of a `Set-Cookie` line.
enum CookieLine {
    struct Item {
        /// The delimiter before the item (nil for the first one).
        var delimiter: Character?
        /// The text between the delimiters, spaces included.
        var text: Substring
        var leading: Substring
        var name: Substring
        var value: Substring
        var hasValue: Bool
        var isAttribute: Bool { name.hasPrefix("$") }
        var keep = true
        var replacement: String? = nil
    }

    static func isSpace(_ c: Character) -> Bool { c == " " || c == "\t" }

    static func items(of line: String) -> [Item] {
        var items: [Item] = []
        var delimiter: Character? = nil
        var start = line.startIndex
        var index = start
        var quoted = false
        var escaped = false
        var sawEqual = false
        func finish(at end: String.Index) {
            let text = line[start..<end]
            let trimmedStart = text.firstIndex { !isSpace($0) } ?? text.endIndex
            let leading = text[..<trimmedStart]
            let body = text[trimmedStart...]
            var name = body
            var value: Substring = ""
            var hasValue = false
            if let eq = body.firstIndex(of: "=") {
                name = body[..<eq]
                value = body[body.index(after: eq)...]
                hasValue = true
            }
            items.append(Item(delimiter: delimiter, text: text, leading: leading, name: name.trimmingBlanks(), value: value.trimmingBlanks(), hasValue: hasValue))
        }
        while index < line.endIndex {
            let c = line[index]
            if escaped {
                escaped = false
            } else if quoted {
                if c == "\\" { escaped = true } else if c == "\"" { quoted = false }
            } else if c == "\"" && sawEqual {
                quoted = true
            } else if c == "=" {
                sawEqual = true
            } else if c == ";" || c == "," {
                finish(at: index)
                delimiter = c
                start = line.index(after: index)
                sawEqual = false
            }
            index = line.index(after: index)
        }
        finish(at: line.endIndex)
        return items
    }

    /// The line without the dropped items, mending delimiters as HAProxy does; nil when nothing
    /// is left.
    static func join(_ items: [Item]) -> String? {
        var out = ""
        var emitted = false
        var gap = false
        for (position, item) in items.enumerated() {
            guard item.keep else {
                gap = true
                continue
            }
            let text = item.replacement.map { Substring($0) } ?? item.text
            if !emitted {
                out = position == 0 ? String(text) : String(text.drop { isSpace($0) })
            } else if gap {
                while let l = out.last, isSpace(l) { out.removeLast() }
                out.append(item.delimiter ?? ";")
                out.append(" ")
                out += text.drop { isSpace($0) }
            } else {
                out.append(item.delimiter ?? ";")
                out += text
            }
            emitted = true
            gap = false
        }
        return emitted ? out : nil
    }

    /// The name and the value's place of the first cookie of a `Set-Cookie` line.
    static func firstSetCookie(_ line: String) -> (name: Substring, valueRange: Range<String.Index>)? {
        let end = line.firstIndex(of: ";") ?? line.endIndex
        let pair = line[..<end]
        guard let eq = pair.firstIndex(of: "=") else { return nil }
        let name = pair[..<eq].trimmingBlanks()
        let value = pair[pair.index(after: eq)...].trimmingBlanks()
        return (name, value.startIndex..<value.endIndex)
    }
}

extension CookiePersistence {
    /// Whether a response may be cached (what `cookie ... nocache` protects with
    /// `Cache-control: private`): a safe request method, a status cacheable by default, and no
    /// header forbidding it. `lines(name)` gives a response header's lines.
    public static func isCacheable(method: Substring, status: Int, lines: (String) -> [String]) -> Bool {
        func values(_ name: String) -> [Substring] {
            lines(name).flatMap { $0.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingBlanks() } }
        }
        var cacheable = ["GET", "HEAD", "OPTIONS", "TRACE"].contains(method)
        switch status {
        case 200, 203, 204, 206, 300, 301, 404, 405, 410, 414, 501: break
        default: cacheable = false
        }
        if lines("pragma").first.map({ Substring($0).trimmingBlanks().lowercased() == "no-cache" }) == true { return false }
        var nullMaxAge = false
        var freshness = false
        for raw in values("cache-control") {
            let value = raw.lowercased()
            if value == "public" {
                cacheable = true
            } else if value == "max-age=0" {
                nullMaxAge = true
            } else if value == "no-cache=\"set-cookie\"" {
                continue
            } else if value == "private" || value.hasPrefix("private=") || value == "no-cache" || value.hasPrefix("no-cache=")
                        || value == "no-store" || value.hasPrefix("no-store=") || value == "s-maxage=0" {
                cacheable = false
            } else if value.hasPrefix("s-maxage") {
                freshness = true
                nullMaxAge = false
            } else if value.hasPrefix("max-age") {
                freshness = true
            }
        }
        if nullMaxAge { cacheable = false }
        if !freshness { freshness = !values("expires").isEmpty }
        if !freshness && values("etag").isEmpty && values("last-modified").isEmpty { cacheable = false }
        return cacheable
    }
}
