import Glibc

/// One ACL test: a sample expression, how to compare it, and the patterns. An `acl` line or
/// an anonymous `{ ... }` condition.
public final class ACLTest: Sendable {
    public let expression: SampleExpression
    public let method: MatchMethod
    /// The pattern files first, then the line's own patterns (each a runtime-API reference).
    public let patterns: [PatternSet]
    /// `http_auth_group(<userlist>)`: the patterns are group names of that userlist.
    public let groupsOf: String?
    /// The test will never match (no pattern): HAProxy warns and keeps it.
    public let neverMatches: Bool
    /// The ACL keyword as written (`path_beg`, `hdr`, `req.hdr`...), for messages.
    public let keyword: String
    /// The fetch reads what response rules no longer have (the request's headers or buffered
    /// contents): in a response rule the test never matches, as in HAProxy.
    private let goneInResponses: Bool

    /// The common tests read their subject's bytes where they are instead of through the
    /// fetch's samples: a request header's values (`hdr`, `fhdr` and their `req.` forms with
    /// just a name), the path or the query, without converters, for a method that compares
    /// bytes (or `found`).
    private enum Shortcut {
        case none
        case requestHeader(split: Bool)
        case path
        case query
        /// `req.cook(<name>)` / `cook(<name>)`.
        case requestCookie
    }
    private let shortcut: Shortcut
    /// The header or cookie name of a shortcut, as bytes (kept apart: a payload would be
    /// copied, with a retain, at each switch; a string would be read through a copy).
    private let shortcutName: ContiguousArray<UInt8>
    private static let cookieName = ContiguousArray("cookie".utf8)
    /// `patterns` referenced without counting (`patterns` keeps them alive), for the shortcuts.
    private let uncountedLists: ContiguousArray<Unmanaged<PatternSet>>

    init(expression: SampleExpression, method: MatchMethod, patterns: [PatternSet], groupsOf: String?, neverMatches: Bool,
         keyword: String) {
        self.expression = expression
        self.method = method
        self.patterns = patterns
        self.groupsOf = groupsOf
        self.neverMatches = neverMatches
        self.keyword = keyword
        goneInResponses = !expression.fetch.uses.isAvailable(in: SampleUse.available(at: .httpResponse))
        uncountedLists = ContiguousArray(patterns.map { .passUnretained($0) })
        var shortcut = Shortcut.none
        var shortcutName = ""
        if expression.converters.isEmpty, groupsOf == nil, method == .found || CompiledPatterns.matchesBytes(method) {
            let fetch = expression.fetch.name
            if fetch == "path", expression.arguments.isEmpty {
                shortcut = .path
            } else if fetch == "query", expression.arguments.isEmpty {
                shortcut = .query
            } else if fetch == "req.cook" || fetch == "cook", expression.arguments.count == 1, let name = expression.arguments[0].string {
                shortcut = .requestCookie
                shortcutName = name
            } else if ["hdr", "req.hdr", "fhdr", "req.fhdr"].contains(fetch), expression.arguments.count == 1,
                      let name = expression.arguments[0].string {
                shortcut = .requestHeader(split: !fetch.hasSuffix("fhdr"))
                shortcutName = name
            }
        }
        self.shortcut = shortcut
        self.shortcutName = ContiguousArray(shortcutName.utf8)
    }

    /// Whether the bytes of one value match a pattern of the test's lists.
    private func matchesBytes(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        if method == .found { return true }
        return uncountedLists.withUnsafeBufferPointer { lists in
            for list in lists where list._withUnsafeGuaranteedRef({ $0.match(bytes: text) }) != nil { return true }
            return false
        }
    }

    /// The values of the cookies called `name` in a `Cookie` line (items between `;`, blanks
    /// trimmed, cut at their first `=`, as `req.cook` reads them), offered in order.
    static func anyCookie(_ line: UnsafeBufferPointer<UInt8>, named name: UnsafeBufferPointer<UInt8>,
                          _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool {
        BytePieces.anyTrimmed(line, separatedBy: UInt8(ascii: ";")) { item in
            guard let equals = item.firstIndex(of: UInt8(ascii: "=")), equals == name.count,
                  name.count == 0 || memcmp(item.baseAddress!, name.baseAddress!, name.count) == 0 else { return false }
            return body(UnsafeBufferPointer(rebasing: item[(equals + 1)...]))
        }
    }

    public func matches(_ context: SampleContext) -> Bool {
        if neverMatches || goneInResponses && context.readsResponse { return false }
        switch shortcut {
        case .requestHeader(let split):
            if let result = shortcutName.withUnsafeBufferPointer({ context.anyRequestHeaderValue(named: $0, split: split) { self.matchesBytes($0) } }) {
                return result
            }
        case .path:
            // (A closure literal: `matchesBytes` passed as a method retains the test.)
            return context.requestPathMatches { self.matchesBytes($0) } ?? false
        case .query:
            guard let target = context.requestTarget, var query = URLParts.query(target) else { return false }
            return query.withUTF8 { matchesBytes($0) }
        case .requestCookie:
            let result = shortcutName.withUnsafeBufferPointer { name in
                Self.cookieName.withUnsafeBufferPointer { header in
                    context.anyRequestHeaderValue(named: header, split: false) { line in Self.anyCookie(line, named: name) { self.matchesBytes($0) } }
                }
            }
            if let result { return result }
        case .none:
            break
        }
        if method == .found {
            var found = false
            expression.evaluateAll(context) { _ in found = true; return true }
            return found
        }
        if let list = groupsOf {
            guard let user = expression.evaluate(context)?.asString, let userlist = context.userlist(named: list),
                  let entry = userlist.users[user] else { return false }
            return patterns.contains { $0.patterns.entries.contains { entry.groups.contains($0.key) } }
        }
        if method == .bool {
            var result = false
            expression.evaluateAll(context) { v in result = v.asBool ?? false; return result }
            return result
        }
        return uncountedLists.withUnsafeBufferPointer { lists in
            var result = false
            expression.evaluateAll(context) { v in
                for list in lists where list._withUnsafeGuaranteedRef({ $0.match(v) }) != nil {
                    result = true
                    return true
                }
                return false
            }
            return result
        }
    }
}

/// A named ACL: every `acl <name>` line of a proxy, ORed.
public final class NamedACL: @unchecked Sendable {
    public let name: String
    /// Appended to while the section is parsed, read-only afterwards.
    public private(set) var tests: [ACLTest] = []
    /// The same tests referenced without counting (`tests` keeps them alive), in memory of
    /// their own: every request walks them, and an array stored in a class is retained and
    /// released around each walk (a retain and a release per test showed in the profile too).
    private var uncountedTests = UnsafeMutableBufferPointer<Unmanaged<ACLTest>>(start: nil, count: 0)

    init(name: String) { self.name = name }
    deinit { uncountedTests.deallocate() }

    func add(_ test: ACLTest) {
        tests.append(test)
        let grown = UnsafeMutableBufferPointer<Unmanaged<ACLTest>>.allocate(capacity: tests.count)
        for (i, t) in tests.enumerated() { grown[i] = .passUnretained(t) }
        uncountedTests.deallocate()
        uncountedTests = grown
    }

    public func matches(_ context: SampleContext) -> Bool {
        for test in uncountedTests where test._withUnsafeGuaranteedRef({ $0.matches(context) }) { return true }
        return false
    }
}

/// The ACL keywords: fetches plus the derived `<fetch>_<match>` forms, and predefined ACLs.
public enum ACLKeywords {
    /// `path_beg` → (`path`, beg)...
    public static let derived: [String: (fetch: String, method: MatchMethod)] = {
        var table: [String: (String, MatchMethod)] = [:]
        let suffixes: [(String, MatchMethod)] = [("beg", .beg), ("dir", .dir), ("dom", .dom), ("end", .end), ("len", .len),
                                                  ("reg", .reg), ("sub", .sub)]
        let bases: [(String, String)] = [
            // As in HAProxy, the ACL forms of `hdr` and `cook` read the request, those of
            // `shdr` and `scook` the response (the sample fetch `hdr` reads either).
            ("path", "path"), ("url", "url"), ("base", "base"), ("hdr", "req.hdr"), ("cook", "req.cook"), ("scook", "res.cook"),
            ("shdr", "res.hdr"), ("urlp", "url_param"), ("req.ssl_sni", "req.ssl_sni"), ("req_ssl_sni", "req_ssl_sni"),
            ("ssl_fc_sni", "ssl_fc_sni"), ("res.hdr", "res.hdr"), ("req.hdr", "req.hdr"), ("req.cook", "req.cook"),
            ("res.cook", "res.cook"), ("query", "query"), ("pathq", "pathq"),
        ]
        for (prefix, fetch) in bases {
            for (suffix, method) in suffixes { table["\(prefix)_\(suffix)"] = (fetch, method) }
        }
        table["hdr"] = ("req.hdr", .str)
        table["url_ip"] = ("url_ip", .ip)
        table["urlp"] = ("url_param", .str)
        table["urlp_val"] = ("url_param", .int)
        table["hdr_ip"] = ("hdr_ip", .ip)
        table["hdr_val"] = ("hdr_val", .int)
        table["cook_val"] = ("req.cook_val", .int)
        table["url_port"] = ("url_port", .int)
        return table
    }()

    /// The predefined ACLs, as an anonymous ACL's words.
    public static let predefined: [String: [String]] = [
        "TRUE": ["always_true"], "FALSE": ["always_false"],
        "HTTP": ["req.proto_http"], "HTTP_1.0": ["req.ver", "1.0"], "HTTP_1.1": ["req.ver", "1.1"],
        "HTTP_2.0": ["req.ver", "2.0"], "HTTP_3.0": ["req.ver", "3.0"],
        "HTTP_CONTENT": ["req.hdr_val(content-length)", "gt", "0"],
        "HTTP_URL_ABS": ["url_reg", "^[^/:]*://"], "HTTP_URL_SLASH": ["url_beg", "/"], "HTTP_URL_STAR": ["url", "*"],
        "LOCALHOST": ["src", "127.0.0.1/8", "::1"],
        "METH_CONNECT": ["method", "CONNECT"], "METH_DELETE": ["method", "DELETE"], "METH_GET": ["method", "GET", "HEAD"],
        "METH_HEAD": ["method", "HEAD"], "METH_OPTIONS": ["method", "OPTIONS"], "METH_POST": ["method", "POST"],
        "METH_PUT": ["method", "PUT"], "METH_TRACE": ["method", "TRACE"],
        "REQ_CONTENT": ["req.len", "gt", "0"], "WAIT_END": ["always_false"], "RDP_COOKIE": ["always_false"],
    ]

    /// Every name an ACL criterion can start with (for "did you mean").
    public static var allNames: [String] { FetchTable.all.map(\.name) + derived.keys.sorted() }
}

/// Compiles `acl` criteria: `<fetch>[,conv...] [flags] [--] <patterns>`.
public enum ACLCompiler {
    public struct Failure: Error, Sendable {
        public var message: String
    }

    public static func compile(_ words: [String], context: RuleCompilationContext, warn: (String) -> Void) throws(Failure) -> ACLTest {
        guard let first = words.first else { throw Failure(message: "missing fetch method in ACL expression") }
        // `path_beg(...)`-style names map to their fetch and a default match method.
        let nameEnd = first.firstIndex { $0 == "(" || $0 == "," } ?? first.endIndex
        let keyword = String(first[first.startIndex..<nameEnd])
        var method: MatchMethod? = nil
        var text = first
        var aclName = keyword
        if let (fetch, m) = ACLKeywords.derived[keyword] {
            method = m
            text = fetch + first[nameEnd...]
            aclName = keyword
        } else if FetchTable.byName[keyword] == nil {
            throw Failure(message: "unknown fetch method '\(keyword)' in ACL expression '\(keyword)'.")
        }
        let expression: SampleExpression
        do {
            let wasACL = context.compilingACL
            context.compilingACL = true
            defer { context.compilingACL = wasACL }
            expression = try SampleExpressionParser.parse(text, context: context)
        } catch {
            throw Failure(message: "ACL keyword '\(aclName)' : \(error.message).")
        }
        var caseInsensitive = false
        var files: [(path: String, isMap: Bool)] = []
        var i = 1
        while i < words.count, words[i].hasPrefix("-") {
            let flag = words[i]
            if flag == "--" { i += 1; break }
            switch flag {
            case "-i": caseInsensitive = true; i += 1
            case "-n", "-u": i += 1
            case "-m":
                guard i + 1 < words.count else { throw Failure(message: "missing matching method after '-m'.") }
                guard let m = MatchMethod(rawValue: words[i + 1]), m != .meth else {
                    throw Failure(message: "unknown matching method '\(words[i + 1])' when parsing ACL expression.")
                }
                method = m
                i += 2
            case "-f", "-M":
                if flag == "-M" {
                    guard i + 2 < words.count, words[i + 1] == "-f" else { i += 1; continue }
                    files.append((words[i + 2], true))
                    i += 3
                    continue
                }
                guard i + 1 < words.count else { throw Failure(message: "missing pattern file name after '-f'.") }
                files.append((words[i + 1], false))
                i += 2
            default:
                // A negative number is a pattern, not a flag.
                if Int64(flag) != nil { break }
                throw Failure(message: "'\(flag)' is not a valid ACL option. Please use '--' before any pattern beginning with a '-'.")
            }
            if Int64(flag) != nil { break }
        }
        let patternsWords = Array(words[i...])
        let resolved = method ?? MatchMethod.defaultMethod(for: expression.outputType)
        let isGroup = expression.fetch.name == "http_auth_group"
        let compileMethod = isGroup ? MatchMethod.str : resolved
        let store = context.patternFiles
        let location = context.location.map { "file '\($0.file)' line \($0.line)" } ?? "file '' line 0"
        var sets: [PatternSet] = []
        for (path, isMap) in files {
            guard let fileEntries = store.entries(path, withValues: isMap) else {
                throw Failure(message: "failed to open pattern file <\(path)>.")
            }
            let reference = store.fileReference(path, entries: fileEntries, kind: .acl, user: "acl at \(location)")
            do { sets.append(try reference.use(method: compileMethod, caseInsensitive: caseInsensitive, mapOutput: nil)) } catch {
                throw Failure(message: error.message)
            }
        }
        let inline = store.inlineReference(patternsWords, description: "acl '\(aclName)' \(location)")
        do { sets.append(try inline.use(method: compileMethod, caseInsensitive: caseInsensitive, mapOutput: nil)) } catch {
            throw Failure(message: error.message)
        }
        var never = false
        if patternsWords.isEmpty, files.isEmpty, resolved != .found, resolved != .bool {
            warn("parsing acl keyword '\(aclName)' :\n  no pattern to match against were provided, so this ACL will never match.\n  If this is what you intended, please add '--' to get rid of this warning.\n  If you intended to match only for existence, please use '-m found'.\n  If you wanted to force an int to match as a bool, please use '-m bool'.\n")
            never = true
        }
        return ACLTest(expression: expression, method: resolved, patterns: sets,
                       groupsOf: isGroup ? expression.arguments.first?.string : nil, neverMatches: never, keyword: aclName)
    }
}
