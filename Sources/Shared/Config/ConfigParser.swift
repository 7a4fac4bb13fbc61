/// Parses HAProxy-syntax configuration text into a `Configuration`.
///
/// Like HAProxy it keeps going after an error so that one run reports every problem; the caller
/// treats any alert as fatal. Messages reproduce HAProxy's wording, with `[file:line]`.
public struct ConfigParser {
    public struct Result: Sendable {
        public var configuration: Configuration
        public var diagnostics: [Diagnostic]
        public var hasErrors: Bool { diagnostics.contains { $0.level == .alert } }
        public var hasWarnings: Bool { diagnostics.contains { $0.level == .warning } }
    }

    /// One source: a file name for messages and its bytes.
    public struct Source: Sendable {
        public var name: String
        public var text: String
        public init(name: String, text: String) {
            self.name = name
            self.text = text
        }
    }

    private enum Section {
        case none
        case global
        case proxy(ProxySettings)
        /// A section Hasp recognises but does not implement; its lines are skipped.
        case ignored(String)
    }

    private struct ConditionFrame {
        var active: Bool        // lines in the current branch are used
        var anyTaken: Bool      // some branch of this block was already taken
        var parentActive: Bool
        var sawElse: Bool
    }

    private var config = Configuration()
    private var diagnostics: [Diagnostic] = []
    private var section: Section = .none
    private var currentDefaults: ProxySettings
    private var file = ""
    private var lineNumber = 0
    private var erroredFiles: [String] = []
    private var fileHadError = false
    private let lexer: LineLexer
    private let conditions: ConditionEvaluator

    public init(lexer: LineLexer = LineLexer(), conditions: ConditionEvaluator = ConditionEvaluator()) {
        self.lexer = lexer
        self.conditions = conditions
        currentDefaults = ProxySettings(kind: .defaults, name: "", location: SourceLocation(file: "", line: 0))
        // HAProxy's built-in default mode is tcp; a proxy without any defaults gets it.
    }

    public static func parse(_ sources: [Source], lexer: LineLexer = LineLexer(),
                             conditions: ConditionEvaluator = ConditionEvaluator()) -> Result {
        var parser = ConfigParser(lexer: lexer, conditions: conditions)
        for source in sources { parser.parseFile(source) }
        parser.finish()
        return Result(configuration: parser.config, diagnostics: parser.diagnostics)
    }

    // MARK: - Messages

    private var here: SourceLocation { SourceLocation(file: file, line: lineNumber) }

    private mutating func alert(_ text: String) {
        diagnostics.append(Diagnostic(.alert, "config : " + text))
        fileHadError = true
    }

    private mutating func warn(_ text: String) {
        diagnostics.append(Diagnostic(.warning, "config : " + text))
    }

    private mutating func parsingAlert(_ text: String) { alert("parsing [\(file):\(lineNumber)] : \(text)") }
    private mutating func parsingWarning(_ text: String) { warn("parsing [\(file):\(lineNumber)] : \(text)") }

    // MARK: - Files and lines

    private mutating func parseFile(_ source: Source) {
        closeSection()
        section = .none
        file = source.name
        fileHadError = false
        config.files.append(source.name)
        var stack: [ConditionFrame] = []
        var number = 0
        var lines = source.text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        for rawLine in lines {
            number += 1
            lineNumber = number
            var line = rawLine
            if line.last == "\r" { line = line.dropLast() }
            let words: [String]
            do {
                words = try lexer.words(line)
            } catch {
                if stack.allSatisfy(\.active) { reportLexError(error) }
                continue
            }
            guard let first = words.first else { continue }
            if first.hasPrefix(".") && handleDirective(words, &stack) { continue }
            guard stack.allSatisfy(\.active) else { continue }
            handleLine(words)
        }
        if !stack.isEmpty {
            alert("parsing [\(file):\(lineNumber)]: non-terminated '.if' block.")
        }
        closeSection()
        section = .none
        if fileHadError { erroredFiles.append(source.name) }
    }

    private mutating func reportLexError(_ error: LineLexer.LexError) {
        switch error {
        case .unmatchedQuote(let q):
            alert("parsing [\(file):\(lineNumber)] : unmatched quote (\(q)).")
        case .unfinishedEnvironmentVariable:
            alert("parsing [\(file):\(lineNumber)] : unterminated environment variable name.")
        case .invalidEscape(let e):
            alert("parsing [\(file):\(lineNumber)] : truncated or invalid hexadecimal sequence at '\(e)'.")
        case .tooManyWords(let n):
            alert("parsing [\(file):\(lineNumber)] : too many words (\(n)), truncating after word \(LineLexer.maximumWords).")
        }
    }

    /// Returns true when the line was a conditional or message directive.
    private mutating func handleDirective(_ words: [String], _ stack: inout [ConditionFrame]) -> Bool {
        let directive = words[0]
        let active = stack.allSatisfy(\.active)
        let expression = words.dropFirst().joined(separator: " ")
        let position = "parsing [\(file):\(lineNumber)]"
        switch directive {
        case ".if":
            var value = false
            if active {
                do { value = try conditions.evaluate(expression) } catch {
                    alert("\(position): \(error.message) in '.if'.")
                }
            }
            stack.append(ConditionFrame(active: active && value, anyTaken: value, parentActive: active, sawElse: false))
        case ".elif":
            guard var frame = stack.popLast(), !frame.sawElse else {
                alert("\(position): lone '.elif' with no matching '.if'.")
                return true
            }
            var value = false
            if frame.parentActive && !frame.anyTaken {
                do { value = try conditions.evaluate(expression) } catch {
                    alert("\(position): \(error.message) in '.elif'.")
                }
            }
            frame.active = frame.parentActive && !frame.anyTaken && value
            frame.anyTaken = frame.anyTaken || value
            stack.append(frame)
        case ".else":
            guard var frame = stack.popLast(), !frame.sawElse else {
                alert("\(position): lone '.else' with no matching '.if'.")
                return true
            }
            if words.count > 1 { alert("\(position): Unexpected argument '\(words[1])' for '.else'.") }
            frame.active = frame.parentActive && !frame.anyTaken
            frame.anyTaken = true
            frame.sawElse = true
            stack.append(frame)
        case ".endif":
            if words.count > 1 {
                alert("\(position): Unexpected argument '\(words[1])' for '.endif'.")
                return true
            }
            if stack.popLast() == nil { alert("\(position): lone '.endif' with no matching '.if'.") }
        case ".notice", ".warning", ".alert", ".diag":
            guard active else { return true }
            let message = "\(position): '\(expression)'."
            switch directive {
            case ".notice": diagnostics.append(Diagnostic(.notice, "config : " + message))
            case ".warning": warn(message)
            case ".alert": alert(message)
            default: diagnostics.append(Diagnostic(.diag, "config : " + message))
            }
        default:
            return false
        }
        return true
    }

    // MARK: - Sections

    private static let sectionKeywords: Set<String> = ["global", "defaults", "frontend", "backend", "listen"]
    private static let ignoredSections: Set<String> = [
        "userlist", "peers", "resolvers", "mailers", "program", "http-errors", "ring", "cache",
        "crt-store", "traces", "log-forward",
    ]

    private mutating func handleLine(_ words: [String]) {
        let keyword = words[0]
        if Self.sectionKeywords.contains(keyword) {
            openSection(words)
            return
        }
        if Self.ignoredSections.contains(keyword) {
            closeSection()
            warn("parsing [\(file):\(lineNumber)] : section '\(keyword)' is not supported by Hasp yet; its content is ignored.")
            section = .ignored(keyword)
            return
        }
        switch section {
        case .none:
            alert("parsing [\(file):\(lineNumber)]: unknown keyword '\(keyword)' out of section.")
        case .global:
            parseGlobal(words)
        case .proxy(var proxy):
            parseProxy(words, &proxy)
            section = .proxy(proxy)
        case .ignored:
            break
        }
    }

    private mutating func openSection(_ words: [String]) {
        closeSection()
        let keyword = words[0]
        if keyword == "global" {
            section = .global
            return
        }
        let kind = ProxyKind(rawValue: keyword)!
        var name = ""
        var fromName: String? = nil
        var rest = words.dropFirst()
        if let first = rest.first, first != "from" {
            name = first
            rest = rest.dropFirst()
        }
        if rest.first == "from" {
            guard rest.count >= 2 else {
                parsingAlert("'\(keyword)' : 'from' expects a defaults section name.")
                section = .ignored(keyword)
                return
            }
            fromName = rest[rest.index(after: rest.startIndex)]
        }
        if name.isEmpty && kind != .defaults {
            parsingAlert("'\(keyword)' expects an <id> argument")
            section = .ignored(keyword)
            return
        }
        if let bad = name.first(where: { !($0.isLetter || $0.isNumber || "-_.:".contains($0)) }) {
            parsingAlert("character '\(bad)' is not permitted in '\(keyword)' name '\(name)'.")
            section = .ignored(keyword)
            return
        }
        var base = currentDefaults
        if let fromName {
            guard let named = config.namedDefaults[fromName] else {
                parsingAlert("defaults section '\(fromName)' not found for \(keyword) '\(name)'.")
                section = .ignored(keyword)
                return
            }
            base = named
        }
        if kind != .defaults, let existing = config.proxies.first(where: {
            $0.name == name && !$0.capabilities.intersection(kind.capabilities).isEmpty
        }) {
            alert("Parsing [\(file):\(lineNumber)]: \(kind.rawValue) '\(name)' has the same name as \(existing.kind.rawValue) '\(name)' declared at \(existing.location).")
        }
        section = .proxy(base.inherit(as: kind, name: name, location: here))
    }

    private mutating func closeSection() {
        if case .proxy(let proxy) = section {
            if proxy.kind == .defaults {
                currentDefaults = proxy
                if !proxy.name.isEmpty { config.namedDefaults[proxy.name] = proxy }
            } else {
                var p = proxy
                p.id = config.proxies.count + 1
                config.proxies.append(p)
            }
        }
        section = .none
    }

    // MARK: - global

    static let globalKeywords = [
        "maxconn", "nbthread", "thread-groups", "pidfile", "daemon", "quiet", "zero-warning", "log", "stats",
        "hard-stop-after", "mworker-max-reloads", "master-worker", "user", "group", "uid", "gid", "chroot",
        "tune.bufsize", "tune.maxrewrite", "setenv", "presetenv", "unsetenv", "resetenv", "ca-base", "crt-base",
        "ssl-default-bind-ciphers", "ssl-default-bind-ciphersuites", "ssl-default-bind-options",
        "ssl-default-server-ciphers", "ssl-default-server-ciphersuites", "ssl-default-server-options",
        "ssl-dh-param-file", "tune.ssl.default-dh-param", "log-send-hostname", "log-tag", "node", "description",
        "spread-checks", "localpeer", "insecure-fork-wanted", "expose-experimental-directives", "nbproc",
        "hasp.idle-handover", "server-state-file", "server-state-base", "cpu-map", "ulimit-n", "busy-polling",
    ]

    private static let globalAcceptedSilently: Set<String> = [
        "ca-base", "crt-base", "ssl-default-bind-ciphers", "ssl-default-bind-ciphersuites",
        "ssl-default-bind-options", "ssl-default-server-ciphers", "ssl-default-server-ciphersuites",
        "ssl-default-server-options", "ssl-dh-param-file", "tune.ssl.default-dh-param", "log-send-hostname",
        "log-tag", "node", "description", "spread-checks", "localpeer", "insecure-fork-wanted",
        "expose-experimental-directives", "server-state-file", "server-state-base", "cpu-map", "ulimit-n",
        "busy-polling",
    ]

    private mutating func parseGlobal(_ w: [String]) {
        let k = w[0]
        func intArg(_ name: String) -> Int? {
            guard w.count >= 2, let n = Int(w[1]) else {
                parsingAlert("'\(name)' expects an integer argument.")
                return nil
            }
            return n
        }
        switch k {
        case "maxconn":
            if let n = intArg(k) { config.global.maxconn = n }
        case "nbthread":
            guard w.count >= 2, let n = Int(w[1]), n >= 1 else {
                parsingAlert("'nbthread' passed a missing or unparsable integer value in '\(w.count > 1 ? w[1] : "")'")
                return
            }
            guard n <= 4096 else {
                parsingAlert("'nbthread' value '\(n)' is too large (max 4096)")
                return
            }
            config.global.nbthread = n
        case "thread-groups":
            guard w.count >= 2, let n = Int(w[1]), n >= 1 else {
                parsingAlert("'thread-groups' passed a missing or unparsable integer value in '\(w.count > 1 ? w[1] : "")'")
                return
            }
            config.global.threadGroups = n
        case "pidfile":
            guard w.count >= 2 else { parsingAlert("'pidfile' expects a file name as an argument."); return }
            config.global.pidfile = w[1]
        case "daemon": config.global.daemon = true
        case "quiet": config.global.quiet = true
        case "zero-warning": config.global.zeroWarning = true
        case "log":
            guard w.count >= 2 else {
                parsingAlert("'log' expects either <address[:port]> and <facility> or 'global' as arguments.")
                return
            }
            config.global.logTargets.append(parseLogTarget(w))
        case "stats":
            parseStats(w)
        case "hard-stop-after":
            guard w.count >= 2 else { parsingAlert("'hard-stop-after' expects <time> as argument."); return }
            do { config.global.hardStopAfterMs = try Units.milliseconds(w[1]) } catch {
                parsingAlert("unexpected character '\(timeErrorCharacter(error))' in argument to <hard-stop-after>.")
            }
        case "mworker-max-reloads":
            guard w.count >= 2, let n = Int(w[1]), n >= 0 else {
                parsingAlert("'mworker-max-reloads' expects an integer argument.")
                return
            }
            config.global.mworkerMaxReloads = n
        case "master-worker":
            if w.count == 1 {
                parsingAlert("support for 'master-worker' was removed in version 3.5. Use -W or -Ws in the startup script instead.")
            } else if w[1] == "no-exit-on-failure" {
                config.global.noExitOnFailure = true
            } else {
                parsingAlert("'master-worker' only supports 'no-exit-on-failure'.")
            }
        case "user", "uid":
            guard w.count >= 2 else { parsingAlert("'\(k)' expects an argument."); return }
            config.global.user = w[1]
        case "group", "gid":
            guard w.count >= 2 else { parsingAlert("'\(k)' expects an argument."); return }
            config.global.group = w[1]
        case "chroot":
            guard w.count >= 2 else { parsingAlert("'chroot' expects a directory as an argument."); return }
            config.global.chroot = w[1]
        case "tune.bufsize":
            guard w.count >= 2, let n = Units.size(w[1]), n >= 1024 else {
                parsingAlert("'tune.bufsize' expects a positive integer argument.")
                return
            }
            config.global.bufferSize = n
        case "tune.maxrewrite":
            guard let n = intArg(k), n >= 0 else { return }
            config.global.maxRewrite = n
        case "setenv", "presetenv":
            guard w.count >= 3 else { parsingAlert("'\(k)' expects a name and a value."); return }
            if k == "setenv" || ProcessEnvironment.get(w[1]) == nil { ProcessEnvironment.set(w[1], w[2]) }
        case "unsetenv", "resetenv":
            break
        case "hasp.idle-handover":
            guard w.count >= 2, w[1] == "on" || w[1] == "off" else {
                parsingAlert("'hasp.idle-handover' expects 'on' or 'off'.")
                return
            }
            config.global.idleConnectionHandover = w[1] == "on"
        case "nbproc":
            parsingAlert("nbproc is not supported any more since HAProxy 2.5. Threads will automatically be used on multi-processor machines if available.")
        default:
            if Self.globalAcceptedSilently.contains(k) { return }
            unknownKeyword(k, section: "global", candidates: Self.globalKeywords)
        }
    }

    private mutating func unknownKeyword(_ keyword: String, section name: String, candidates: [String]) {
        if let s = Suggestion.closest(to: keyword, in: candidates) {
            parsingAlert("unknown keyword '\(keyword)' in '\(name)' section; did you mean '\(s)' maybe ?")
        } else {
            parsingAlert("unknown keyword '\(keyword)' in '\(name)' section")
        }
    }

    private func parseLogTarget(_ w: [String]) -> LogTarget {
        var target = LogTarget(address: w[1])
        var i = 2
        while i < w.count {
            switch w[i] {
            case "format" where i + 1 < w.count: target.format = w[i + 1]; i += 2
            case "len", "sample", "profile": i += 2
            default:
                if target.facility == nil { target.facility = w[i] } else if target.level == nil { target.level = w[i] }
                i += 1
            }
        }
        return target
    }

    private mutating func parseStats(_ w: [String]) {
        guard w.count >= 2 else {
            parsingAlert("'stats' expects 'socket', 'maxconn', 'timeout' or 'bind-process'.")
            return
        }
        switch w[1] {
        case "socket":
            guard w.count >= 3 else {
                parsingAlert("'stats socket' requires a path or an address.")
                return
            }
            let addresses: [ListenAddress]
            do { addresses = try AddressParser.listenAddresses(w[2]) } catch {
                parsingAlert("'stats socket' : invalid address: '\(w[2])'")
                return
            }
            guard addresses.count == 1 else {
                parsingAlert("'stats socket' : port ranges are not allowed: '\(w[2])'")
                return
            }
            var socket = StatsSocketSettings(address: addresses[0], location: here)
            var i = 3
            while i < w.count {
                let option = w[i]
                let value = i + 1 < w.count ? w[i + 1] : nil
                switch option {
                case "level":
                    guard let value, ["user", "operator", "admin"].contains(value) else {
                        parsingAlert("'level' only supports 'user', 'operator', and 'admin' (got '\(value ?? "")').")
                        return
                    }
                    socket.level = value
                    i += 2
                case "mode":
                    guard let value, let m = UInt32(value, radix: 8) else {
                        parsingAlert("'mode' : missing or invalid mode '\(value ?? "")' (octal integer expected)")
                        return
                    }
                    socket.mode = m
                    i += 2
                case "user", "uid": socket.user = value; i += 2
                case "group", "gid": socket.group = value; i += 2
                case "expose-fd":
                    guard value == "listeners" else {
                        parsingAlert("'expose-fd' : unsupported value '\(value ?? "")', only 'listeners' is supported.")
                        return
                    }
                    socket.exposeFdListeners = true
                    i += 2
                case "process", "name", "maxconn", "thread", "severity-output": i += 2
                case "accept-netscaler-cip": i += 2
                default: i += 1
                }
            }
            config.global.statsSockets.append(socket)
        case "timeout":
            guard w.count >= 3 else { parsingAlert("'stats timeout' expects <time> as argument."); return }
            do { config.global.statsTimeoutMs = try Units.milliseconds(w[2]) } catch {
                parsingAlert("unexpected character '\(timeErrorCharacter(error))' in 'stats timeout'")
            }
        case "maxconn", "bind-process":
            break
        default:
            parsingAlert("'stats' only supports 'socket', 'maxconn', 'bind-process' and 'timeout' (got '\(w[1])').")
        }
    }

    private func timeErrorCharacter(_ error: Units.TimeError) -> String {
        switch error {
        case .unexpectedCharacter(let c): return String(c)
        case .empty, .overflow: return ""
        }
    }

    // MARK: - proxies

    static let proxyKeywords = [
        "mode", "bind", "default_backend", "use_backend", "server", "default-server", "balance", "hash-type",
        "timeout", "maxconn", "retries", "option", "no", "http-reuse", "http-request", "log", "errorfile",
        "disabled", "enabled", "id", "description", "fullconn", "contimeout", "clitimeout", "srvtimeout",
        "http-check", "tcp-check", "acl", "http-response", "tcp-request", "tcp-response", "stats", "capture",
        "compression", "cookie", "stick-table", "stick", "monitor-uri", "errorloc", "errorloc302", "errorloc303",
        "http-after-response", "unique-id-format", "unique-id-header", "log-format", "default-server",
    ]

    private mutating func parseProxy(_ w: [String], _ p: inout ProxySettings) {
        let k = w[0]
        let caps = p.capabilities
        switch k {
        case "mode":
            guard w.count >= 2, let mode = ProxyMode(rawValue: w[1]) else {
                parsingAlert("unknown proxy mode '\(w.count > 1 ? w[1] : "")'.")
                return
            }
            p.mode = mode
        case "bind":
            guard caps.contains(.frontend), p.kind != .defaults else {
                parsingAlert("'bind' not allowed in '\(p.kind.rawValue)' section.")
                return
            }
            parseBind(w, &p)
        case "default_backend":
            guard caps.contains(.frontend) else {
                parsingWarning("'default_backend' ignored because \(p.kind.rawValue) '\(p.name)' has no frontend capability.")
                return
            }
            guard w.count >= 2 else { parsingAlert("'default_backend' expects a backend name."); return }
            p.defaultBackend = w[1]
        case "use_backend":
            guard caps.contains(.frontend), p.kind != .defaults else {
                parsingAlert("'use_backend' not allowed in '\(p.kind.rawValue)' section.")
                return
            }
            guard w.count >= 2 else { parsingAlert("'use_backend' requires a backend name."); return }
            if w.count > 2 {
                parsingAlert("'use_backend' : conditions ('\(w[2])') need ACLs, which Hasp does not support yet.")
                return
            }
            p.useBackends.append(UseBackendRule(backend: w[1], location: here))
        case "server":
            guard caps.contains(.backend), p.kind != .defaults else {
                parsingAlert("'server' not allowed in '\(p.kind.rawValue)' section.")
                return
            }
            parseServer(w, &p)
        case "default-server":
            guard caps.contains(.backend) else {
                parsingAlert("'default-server' not allowed in '\(p.kind.rawValue)' section.")
                return
            }
            var template = p.defaultServer.template
            if parseServerKeywords(w, from: 1, into: &template, proxy: p, label: "default-server") {
                p.defaultServer.template = template
            }
        case "balance":
            parseBalance(w, &p)
        case "hash-type":
            guard w.count >= 2 else {
                parsingAlert("'hash-type' only supports 'consistent' and 'map-based'.")
                return
            }
            switch w[1] {
            case "map-based": p.hashType = .mapBased
            case "consistent": p.hashType = .consistent
            default: parsingAlert("'hash-type' only supports 'consistent' and 'map-based'.")
            }
        case "timeout":
            parseTimeout(w, &p)
        case "contimeout", "clitimeout", "srvtimeout":
            parsingAlert("the '\(k)' directive is not supported anymore since HAProxy 2.1. Use 'timeout \(["contimeout": "connect", "clitimeout": "client", "srvtimeout": "server"][k]!)'.")
        case "maxconn":
            guard w.count >= 2, let n = Int(w[1]), n >= 0 else {
                parsingAlert("'maxconn' expects an integer argument.")
                return
            }
            guard caps.contains(.frontend) else {
                parsingWarning("'maxconn' ignored because \(p.kind.rawValue) '\(p.name)' has no frontend capability. Maybe you want 'fullconn' instead ?")
                return
            }
            p.maxconn = n
        case "retries":
            guard w.count >= 2, let n = Int(w[1]), n >= 0 else {
                parsingAlert("'retries' expects an integer argument (dispatch counts for one).")
                return
            }
            p.retries = n
        case "option":
            parseOption(w, from: 1, negated: false, &p)
        case "no":
            guard w.count >= 3, w[1] == "option" else {
                parsingAlert("'no' only supports 'option'.")
                return
            }
            parseOption(w, from: 2, negated: true, &p)
        case "http-reuse":
            guard w.count >= 2, let reuse = HTTPReuse(rawValue: w[1]) else {
                parsingAlert("'http-reuse' only supports 'never', 'safe', 'aggressive', 'always'.")
                return
            }
            p.httpReuse = reuse
        case "http-request":
            parseHTTPRequest(w, &p)
        case "log":
            break
        case "errorfile":
            parsingWarning("'errorfile' is not supported by Hasp yet; the built-in error pages are used.")
        case "disabled": p.disabled = true
        case "enabled": p.disabled = false
        case "id":
            guard w.count >= 2, let n = Int(w[1]), n > 0 else {
                parsingAlert("'id' expects a positive integer argument.")
                return
            }
        case "description", "fullconn":
            break
        case "http-check", "tcp-check":
            // Parsed in the health-check work; accepted here so that ordinary files load.
            break
        case "acl", "http-response", "tcp-request", "tcp-response", "stats", "capture", "compression", "cookie",
             "stick-table", "stick", "monitor-uri", "errorloc", "errorloc302", "errorloc303", "http-after-response",
             "unique-id-format", "unique-id-header", "log-format":
            parsingAlert("'\(k)' is not supported by Hasp yet.")
        default:
            unknownKeyword(k, section: p.kind.rawValue, candidates: Self.proxyKeywords)
        }
    }

    private mutating func parseBind(_ w: [String], _ p: inout ProxySettings) {
        guard w.count >= 2 else {
            parsingAlert("'bind' expects {<path>|[addr1]:port1[-end1]}{,[addr]:port[-end]}... as arguments.")
            return
        }
        var addresses: [ListenAddress] = []
        for item in w[1].split(separator: ",", omittingEmptySubsequences: true) {
            do {
                addresses.append(contentsOf: try AddressParser.listenAddresses(String(item)))
            } catch {
                switch error {
                case .invalidPort(let port): parsingAlert("'bind' : invalid port '\(port)'")
                case .invalidPortRange(let r): parsingAlert("'bind' : invalid port range '\(r)'")
                case .missingPort: parsingAlert("'bind' : missing port number: '\(item)'")
                case .invalidAddress(let a): parsingAlert("'bind' : invalid address: '\(a)' in '\(item)'")
                }
                return
            }
        }
        var bind = BindSettings(addresses: addresses, location: here)
        let bindKeywords = ["name", "maxconn", "backlog", "accept-proxy", "mode", "user", "group", "uid", "gid",
                            "v4v6", "v6only", "transparent", "defer-accept", "tfo", "process", "thread", "id",
                            "nice", "alpn", "ssl", "crt", "interface", "namespace", "level", "severity-output",
                            "expose-fd"]
        var i = 2
        while i < w.count {
            let option = w[i]
            let value = i + 1 < w.count ? w[i + 1] : nil
            func needValue() -> String? {
                guard let value else {
                    parsingAlert("'bind \(w[1])' : missing argument for '\(option)'.")
                    return nil
                }
                return value
            }
            switch option {
            case "name":
                guard let v = needValue() else { return }
                bind.name = v; i += 2
            case "maxconn", "backlog":
                guard let v = needValue() else { return }
                guard let n = Int(v), n >= 0 else {
                    parsingAlert("'bind \(w[1])' : '\(option)' expects a positive integer argument.")
                    return
                }
                if option == "maxconn" { bind.maxconn = n } else { bind.backlog = n }
                i += 2
            case "accept-proxy":
                bind.acceptProxy = true; i += 1
            case "mode":
                guard let v = needValue() else { return }
                guard let m = UInt32(v, radix: 8) else {
                    parsingAlert("'bind \(w[1])' : '\(option)' : missing or invalid mode '\(v)' (octal integer expected)")
                    return
                }
                bind.unixMode = m; i += 2
            case "user", "uid":
                guard let v = needValue() else { return }
                bind.unixUser = v; i += 2
            case "group", "gid":
                guard let v = needValue() else { return }
                bind.unixGroup = v; i += 2
            case "v4v6", "v6only", "transparent", "defer-accept", "tfo":
                i += 1
            case "process", "thread", "id", "nice", "interface", "namespace":
                guard needValue() != nil else { return }
                i += 2
            case "ssl", "crt", "alpn":
                parsingAlert("'bind \(w[1])' : '\(option)' : TLS is not supported by Hasp yet.")
                return
            default:
                if let s = Suggestion.closest(to: option, in: bindKeywords) {
                    parsingAlert("'bind \(w[1])' in section '\(p.kind.rawValue)': unknown keyword '\(option)'; did you mean '\(s)' maybe ?")
                } else {
                    parsingAlert("'bind \(w[1])' in section '\(p.kind.rawValue)': unknown keyword '\(option)'.")
                }
                return
            }
        }
        p.binds.append(bind)
    }

    private mutating func parseServer(_ w: [String], _ p: inout ProxySettings) {
        guard w.count >= 3 else {
            alert("[\(file):\(lineNumber)] : 'server' expects <name> and <addr>[:<port>] as arguments.")
            return
        }
        let name = w[1]
        if let existing = p.servers.first(where: { $0.name == name }) {
            alert("parsing [\(file):\(lineNumber)] : backend '\(p.name)' : server name '\(name)' is already used at \(existing.location).")
            return
        }
        let address: ServerAddress
        do { address = try AddressParser.serverAddress(w[2]) } catch {
            alert("[\(file):\(lineNumber)] : 'server \(p.name)/\(name)' : could not resolve address '\(w[2])'.")
            return
        }
        var server = p.defaultServer.template
        server.name = name
        server.address = address
        server.location = here
        if parseServerKeywords(w, from: 3, into: &server, proxy: p, label: "server \(p.name)/\(name)") {
            p.servers.append(server)
        }
    }

    static let serverKeywords = [
        "weight", "maxconn", "maxqueue", "backup", "disabled", "enabled", "check", "no-check", "inter", "fastinter",
        "downinter", "rise", "fall", "pool-max-conn", "pool-purge-delay", "pool-low-conn", "max-reuse", "id",
        "port", "addr", "slowstart", "on-error", "on-marked-down", "on-marked-up", "observe", "error-limit",
        "agent-check", "agent-port", "agent-inter", "agent-addr", "agent-send", "track", "cookie", "send-proxy",
        "send-proxy-v2", "ssl", "verify", "sni", "alpn", "minconn", "resolvers", "init-addr", "resolve-prefer",
        "check-send-proxy", "no-backup", "proto", "tfo", "namespace",
    ]

    /// Applies `server`/`default-server` keywords from index `from`. Returns false after an error.
    private mutating func parseServerKeywords(_ w: [String], from start: Int, into s: inout ServerSettings,
                                              proxy p: ProxySettings, label: String) -> Bool {
        var i = start
        while i < w.count {
            let k = w[i]
            let value = i + 1 < w.count ? w[i + 1] : nil
            func prefix() -> String { "[\(file):\(lineNumber)] : '\(label)' : " }
            func integer(_ range: ClosedRange<Int>) -> Int? {
                guard let value else {
                    alert(prefix() + "'\(k)' expects an integer argument.")
                    return nil
                }
                guard let n = Int(value), range.contains(n) else {
                    alert(prefix() + "invalid value '\(value)' for '\(k)', must be between \(range.lowerBound) and \(range.upperBound).")
                    return nil
                }
                return n
            }
            func time() -> Int64? {
                guard let value else {
                    alert(prefix() + "'\(k)' expects <time> as argument.")
                    return nil
                }
                do { return try Units.milliseconds(value) } catch {
                    alert(prefix() + "unexpected character '\(timeErrorCharacter(error))' in argument to <\(k)>.")
                    return nil
                }
            }
            switch k {
            case "weight": guard let n = integer(0...256) else { return false }; s.weight = n; i += 2
            case "maxconn": guard let n = integer(0...Int(Int32.max)) else { return false }; s.maxconn = n; i += 2
            case "maxqueue": guard let n = integer(0...Int(Int32.max)) else { return false }; s.maxqueue = n; i += 2
            case "backup": s.backup = true; i += 1
            case "no-backup": s.backup = false; i += 1
            case "disabled": s.disabled = true; i += 1
            case "enabled": s.disabled = false; i += 1
            case "check": s.check = true; i += 1
            case "no-check": s.check = false; i += 1
            case "inter": guard let t = time() else { return false }; s.interMs = t; i += 2
            case "fastinter", "downinter", "slowstart", "agent-inter":
                guard time() != nil else { return false }; i += 2
            case "rise": guard let n = integer(1...Int(Int32.max)) else { return false }; s.rise = n; i += 2
            case "fall": guard let n = integer(1...Int(Int32.max)) else { return false }; s.fall = n; i += 2
            case "pool-max-conn": guard let n = integer(-1...Int(Int32.max)) else { return false }; s.poolMaxConn = n; i += 2
            case "pool-purge-delay": guard let t = time() else { return false }; s.poolPurgeDelayMs = t; i += 2
            case "pool-low-conn": guard let n = integer(0...Int(Int32.max)) else { return false }; s.poolLowConn = n; i += 2
            case "max-reuse": guard let n = integer(-1...Int(Int32.max)) else { return false }; s.maxReuse = n; i += 2
            case "id": guard let n = integer(1...Int(Int32.max)) else { return false }; s.id = n; i += 2
            case "port", "addr", "on-error", "on-marked-down", "on-marked-up", "observe", "error-limit", "agent-port",
                 "agent-addr", "agent-send", "track", "cookie", "minconn", "resolvers", "init-addr", "resolve-prefer",
                 "proto", "namespace":
                guard value != nil else {
                    alert(prefix() + "'\(k)' expects an argument.")
                    return false
                }
                i += 2
            case "agent-check", "send-proxy", "send-proxy-v2", "check-send-proxy", "tfo":
                i += 1
            case "ssl", "verify", "sni", "alpn":
                alert(prefix() + "'\(k)' : TLS is not supported by Hasp yet.")
                return false
            default:
                if let suggestion = Suggestion.closest(to: k, in: Self.serverKeywords) {
                    alert(prefix() + "unknown keyword '\(k)'; did you mean '\(suggestion)' maybe ?")
                } else {
                    alert(prefix() + "unknown keyword '\(k)'.")
                }
                return false
            }
        }
        return true
    }

    private mutating func parseBalance(_ w: [String], _ p: inout ProxySettings) {
        let usage = "balance only supports 'roundrobin', 'static-rr', 'leastconn', 'first', 'source', 'random', 'uri', 'hdr(name)' options."
        guard w.count >= 2 else { parsingAlert(usage); return }
        let algo = w[1]
        switch algo {
        case "roundrobin": p.balance = .roundRobin
        case "static-rr": p.balance = .staticRoundRobin
        case "leastconn": p.balance = .leastConnections
        case "first": p.balance = .first
        case "source": p.balance = .source
        case "random":
            var draws = 2
            if w.count >= 3, w[2].hasPrefix("("), w[2].hasSuffix(")"), let n = Int(w[2].dropFirst().dropLast()) { draws = n }
            p.balance = .random(draws: draws)
        case "uri":
            var depth: Int? = nil
            var length: Int? = nil
            var whole = false
            var i = 2
            while i < w.count {
                switch w[i] {
                case "depth" where i + 1 < w.count: depth = Int(w[i + 1]); i += 2
                case "len" where i + 1 < w.count: length = Int(w[i + 1]); i += 2
                case "whole": whole = true; i += 1
                case "path-only": i += 1
                default:
                    parsingAlert("'balance uri' only accepts parameters 'whole', 'path-only', 'len' and 'depth' (got '\(w[i])').")
                    return
                }
            }
            p.balance = .uri(depth: depth, length: length, wholeURI: whole)
        default:
            if algo.hasPrefix("random(") && algo.hasSuffix(")") {
                p.balance = .random(draws: Int(algo.dropFirst(7).dropLast()) ?? 2)
            } else if algo.hasPrefix("hdr(") && algo.hasSuffix(")") && algo.count > 5 {
                let name = String(algo.dropFirst(4).dropLast())
                let domainOnly = w.count >= 3 && w[2] == "use_domain_only"
                p.balance = .header(name: name, useDomainOnly: domainOnly)
            } else {
                parsingAlert(usage)
            }
        }
    }

    private mutating func parseTimeout(_ w: [String], _ p: inout ProxySettings) {
        let names = "'client', 'server', 'connect', 'check', 'queue', 'http-keep-alive', 'http-request', 'tunnel', 'tarpit', 'client-fin' and 'server-fin'"
        guard w.count >= 2 else {
            parsingAlert("'timeout' supports \(names) (got '')")
            return
        }
        let name = w[1]
        let keyPath: WritableKeyPath<Timeouts, Int64?>
        switch name {
        case "connect": keyPath = \.connect
        case "client": keyPath = \.client
        case "server": keyPath = \.server
        case "http-request": keyPath = \.httpRequest
        case "http-keep-alive": keyPath = \.httpKeepAlive
        case "queue": keyPath = \.queue
        case "tunnel": keyPath = \.tunnel
        case "client-fin": keyPath = \.clientFin
        case "server-fin": keyPath = \.serverFin
        case "check": keyPath = \.check
        case "tarpit": return
        default:
            parsingAlert("'timeout' supports \(names) (got '\(name)')")
            return
        }
        guard w.count >= 3 else {
            parsingAlert("'timeout \(name)' expects an integer value (in milliseconds)")
            return
        }
        do {
            p.timeouts[keyPath: keyPath] = try Units.milliseconds(w[2])
        } catch {
            switch error {
            case .unexpectedCharacter(let c): parsingAlert("unexpected character '\(c)' in 'timeout \(name)'")
            case .empty: parsingAlert("'timeout \(name)' expects an integer value (in milliseconds)")
            case .overflow: parsingAlert("timer overflow in argument '\(w[2])' to 'timeout \(name)' (maximum value is 2147483647 ms or ~24.8 days)")
            }
        }
    }

    static let supportedOptions = [
        "redispatch", "httplog", "tcplog", "forwardfor", "http-keep-alive", "http-server-close", "httpclose",
        "dontlognull", "idle-close-on-response",
    ]
    /// Options an ordinary configuration uses that Hasp accepts without acting on them yet.
    static let acceptedOptions: Set<String> = [
        "httpchk", "log-health-checks", "abortonclose", "splice-auto", "splice-request", "splice-response",
        "tcpka", "clitcpka", "srvtcpka", "http-buffer-request", "log-separate-errors", "allbackups",
        "dontlog-normal", "prefer-last-server", "persist", "nolinger", "independent-streams", "http-pretend-keepalive",
        "http-no-delay", "logasap", "contstats", "socket-stats", "checkcache", "http-ignore-probes",
        "tcp-smart-accept", "tcp-smart-connect", "accept-invalid-http-request", "accept-invalid-http-response",
        "h1-case-adjust-bogus-client", "h1-case-adjust-bogus-server", "disable-h2-upgrade", "http-use-htx",
        "originalto", "ssl-hello-chk", "mysql-check", "pgsql-check", "redis-check", "smtpchk", "ldap-check",
        "spop-check", "tcp-check", "external-check", "transparent", "http_proxy", "http-use-proxy-header",
    ]

    private mutating func parseOption(_ w: [String], from i: Int, negated: Bool, _ p: inout ProxySettings) {
        guard i < w.count else { parsingAlert("'option' expects an option name."); return }
        let name = w[i]
        switch name {
        case "redispatch": p.options.redispatch = !negated
        case "httplog": p.options.httpLog = !negated
        case "tcplog": p.options.tcpLog = !negated
        case "dontlognull": p.options.dontLogNull = !negated
        case "idle-close-on-response": p.options.idleCloseOnResponse = !negated
        case "http-keep-alive": p.options.connectionMode = negated ? .close : .keepAlive
        case "http-server-close": p.options.connectionMode = negated ? .keepAlive : .serverClose
        case "httpclose": p.options.connectionMode = negated ? .keepAlive : .close
        case "forwardfor":
            p.options.forwardFor = !negated
            var j = i + 1
            while j < w.count {
                switch w[j] {
                case "except" where j + 1 < w.count:
                    p.options.forwardForExceptLocal = w[j + 1].hasPrefix("127.")
                    j += 2
                case "header" where j + 1 < w.count:
                    p.options.forwardForHeader = w[j + 1]
                    j += 2
                case "if-none":
                    j += 1
                default:
                    parsingAlert("'option forwardfor' only supports optional values 'except', 'header' and 'if-none'.")
                    return
                }
            }
        default:
            if Self.acceptedOptions.contains(name) { return }
            parsingAlert("unknown option '\(name)'.")
        }
    }

    private mutating func parseHTTPRequest(_ w: [String], _ p: inout ProxySettings) {
        guard w.count >= 2 else {
            alert("parsing [\(file):\(lineNumber)]: 'http-request' expects an action.")
            return
        }
        let context = "error detected in \(p.kind.rawValue) '\(p.name)' while parsing 'http-request \(w[1])' rule : "
        guard w[1] == "return" else {
            alert("parsing [\(file):\(lineNumber)]: 'http-request' action '\(w[1])' is not supported by Hasp yet (only 'return').")
            return
        }
        var status = 200
        var contentType: String? = nil
        var body: [UInt8] = []
        var i = 2
        while i < w.count {
            let k = w[i]
            let value = i + 1 < w.count ? w[i + 1] : nil
            switch k {
            case "status":
                guard let value, let code = Int(value), (200...599).contains(code) else {
                    parsingAlert(context + "Unexpected status code '\(value ?? "")'.")
                    return
                }
                status = code
                i += 2
            case "content-type":
                guard let value else { parsingAlert(context + "'content-type' expects an argument."); return }
                contentType = value
                i += 2
            case "string", "lf-string":
                guard let value else { parsingAlert(context + "'\(k)' expects <str> as argument."); return }
                body = Array(value.utf8)
                i += 2
            case "file", "lf-file":
                guard let value else { parsingAlert(context + "'\(k)' expects <file> as argument."); return }
                guard let bytes = FileReader.read(value) else {
                    parsingAlert(context + "failed to open file '\(value)'.")
                    return
                }
                body = bytes
                i += 2
            case "if", "unless":
                parsingAlert(context + "conditions need ACLs, which Hasp does not support yet.")
                return
            case "hdr":
                guard i + 2 < w.count else { parsingAlert(context + "'hdr' expects <name> and <fmt> as arguments."); return }
                i += 3
            default:
                parsingAlert(context + "unknown keyword '\(k)'.")
                return
            }
        }
        if !body.isEmpty, contentType == nil {
            parsingAlert(context + "a content-type must be specified when a payload is set.")
            return
        }
        p.httpRequestRules.append(.returnResponse(HTTPReturnRule(status: status, contentType: contentType, body: body, location: here)))
    }

    // MARK: - Cross-checks

    private mutating func finish() {
        closeSection()
        for name in erroredFiles {
            diagnostics.append(Diagnostic(.alert, "config : Error(s) found in configuration file : \(name)"))
        }
        for proxy in config.proxies where proxy.capabilities.contains(.frontend) {
            for target in [proxy.defaultBackend].compactMap({ $0 }) + proxy.useBackends.map(\.backend) {
                guard let backend = config.proxies.first(where: { $0.name == target && $0.capabilities.contains(.backend) }) else {
                    let what = target == proxy.defaultBackend ? "default_backend" : "use_backend"
                    diagnostics.append(Diagnostic(.alert, "config : Proxy '\(proxy.name)': unable to find required \(what): '\(target)'."))
                    continue
                }
                if backend.mode != proxy.mode {
                    diagnostics.append(Diagnostic(.alert, "config : \(proxy.kind.rawValue) '\(proxy.name)' : cannot use \(backend.kind.rawValue) '\(backend.name)' in \(proxy.mode.rawValue) mode because it is in \(backend.mode.rawValue) mode."))
                }
            }
            if proxy.binds.isEmpty && proxy.kind == .frontend {
                warn("\(proxy.kind.rawValue) '\(proxy.name)' has no 'bind' directive. Please declare it as a backend if this was intended.")
            }
        }
        for proxy in config.proxies {
            let t = proxy.timeouts
            let needsClient = proxy.capabilities.contains(.frontend)
            let needsServer = proxy.capabilities.contains(.backend)
            if (needsClient && (t.client ?? 0) == 0) || (needsServer && ((t.connect ?? 0) == 0 || (t.server ?? 0) == 0)) {
                let kind = proxy.kind == .listen ? "proxy" : proxy.kind.rawValue
                warn("""
                missing timeouts for \(kind) '\(proxy.name)'.
                   | While not properly invalid, you will certainly encounter various problems
                   | with such a configuration. To fix this, please ensure that all following
                   | timeouts are set to a non-zero value: 'client', 'connect', 'server'.
                """)
            }
        }
        if diagnostics.contains(where: { $0.level == .alert }) {
            diagnostics.append(Diagnostic(.alert, "config : Fatal errors found in configuration."))
        }
    }
}

/// Reads whole small files (configuration, payloads) at load time, never on an event loop.
public enum FileReader {
    public static func read(_ path: String) -> [UInt8]? {
        guard let f = fopen(path, "rb") else { return nil }
        defer { fclose(f) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buffer, 1, buffer.count, f)
            if n > 0 { result.append(contentsOf: buffer[0..<n]) }
            if n < buffer.count { break }
        }
        return ferror(f) == 0 ? result : nil
    }
}

#if canImport(Glibc)
import Glibc
#endif
