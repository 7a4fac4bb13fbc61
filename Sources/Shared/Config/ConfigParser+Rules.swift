/// `acl`, `http-request`, `http-response`, `http-after-response`, `tcp-request`,
/// `tcp-response`, `use_backend`, `use-server`, `redirect`, `monitor`, `capture` and
/// `userlist` sections: compiled into `ProxyRules` as they are read.
extension ConfigParser {
    /// The HTTP actions by the rule sets that accept them; one table for parsing, hints and
    /// the man page.
    public static let httpActionNames: [(name: String, stages: RuleStage)] = [
        ("allow", [.httpRequest, .httpResponse]), ("deny", [.httpRequest, .httpResponse]), ("tarpit", .httpRequest),
        ("reject", [.httpRequest]), ("auth", .httpRequest), ("redirect", [.httpRequest, .httpResponse]),
        ("return", [.httpRequest, .httpResponse]),
        ("set-header", [.httpRequest, .httpResponse, .httpAfterResponse]),
        ("add-header", [.httpRequest, .httpResponse, .httpAfterResponse]),
        ("del-header", [.httpRequest, .httpResponse, .httpAfterResponse]),
        ("replace-header", [.httpRequest, .httpResponse, .httpAfterResponse]),
        ("replace-value", [.httpRequest, .httpResponse, .httpAfterResponse]),
        ("set-path", .httpRequest), ("set-pathq", .httpRequest), ("set-query", .httpRequest), ("set-uri", .httpRequest),
        ("set-method", .httpRequest), ("replace-path", .httpRequest), ("replace-pathq", .httpRequest),
        ("replace-uri", .httpRequest), ("set-var(*)", [.httpRequest, .httpResponse, .httpAfterResponse]),
        ("set-var-fmt(*)", [.httpRequest, .httpResponse, .httpAfterResponse]),
        ("unset-var(*)", [.httpRequest, .httpResponse, .httpAfterResponse]),
        ("set-log-level", [.httpRequest, .httpResponse, .httpAfterResponse]), ("set-nice", [.httpRequest, .httpResponse]),
        ("allow", .httpAfterResponse),
        ("capture", [.httpRequest, .httpResponse]), ("wait-for-body", [.httpRequest, .httpResponse]),
        ("set-timeout", .httpRequest), ("set-dst", .httpRequest), ("set-src", .httpRequest),
        ("set-dst-port", .httpRequest), ("set-src-port", .httpRequest),
        ("disable-l7-retry", .httpRequest), ("early-hint", .httpRequest), ("normalize-uri", .httpRequest),
        ("set-status", [.httpResponse, .httpAfterResponse]), ("set-mark", [.httpRequest, .httpResponse]),
        ("set-tos", [.httpRequest, .httpResponse]), ("strict-mode", [.httpRequest, .httpResponse, .httpAfterResponse]),
        ("silent-drop", [.httpRequest, .httpResponse]), ("wait-for-handshake", .httpRequest),
        ("track-sc(*)", [.httpRequest, .httpResponse]), ("use-service", .httpRequest),
        ("sc-inc-gpc(*)", [.httpRequest, .httpResponse]), ("sc-inc-gpc0(*)", [.httpRequest, .httpResponse]),
        ("sc-inc-gpc1(*)", [.httpRequest, .httpResponse]), ("sc-add-gpc(*)", [.httpRequest, .httpResponse]),
        ("sc-set-gpt(*)", [.httpRequest, .httpResponse]), ("sc-set-gpt0(*)", [.httpRequest, .httpResponse]),
    ]

    static let tcpActionNames: [String] = [
        "accept", "reject", "set-var(*)", "set-var-fmt(*)", "unset-var(*)", "capture", "expect-proxy", "set-src",
        "set-dst", "set-log-level", "switch-mode", "silent-drop", "set-mark", "set-tos", "set-nice", "track-sc(*)",
        "do-resolve(*)", "use-service", "set-src-port", "set-dst-port", "close", "sc-inc-gpc0(*)", "sc-set-gpt0(*)",
        "sc-inc-gpc(*)", "sc-inc-gpc1(*)", "sc-add-gpc(*)", "sc-set-gpt(*)",
    ]

    var ruleContext: RuleCompilationContext {
        RuleCompilationContext(patternFiles: config.patternFiles, location: here, proxyName: currentProxyName,
                               tableReferences: tableReferences)
    }

    // MARK: - acl

    mutating func parseACL(_ w: [String], _ p: inout ProxySettings) {
        guard p.kind != .defaults || !p.name.isEmpty else {
            parsingAlert("'acl' not allowed in anonymous 'defaults' section.")
            return
        }
        guard w.count >= 3 else {
            parsingAlert("'acl' expects a name and a criterion.")
            return
        }
        let name = w[1]
        if let bad = name.first(where: { !($0.isASCII && ($0.isLetter || $0.isNumber || "-_.:".contains($0))) }) {
            parsingAlert("character '\(bad)' is not permitted in acl name '\(name)'.")
            return
        }
        var warnings: [String] = []
        do {
            let test = try ACLCompiler.compile(Array(w[2...]), context: ruleContext) { warnings.append($0) }
            let acl = p.rules.acls[name] ?? NamedACL(name: name)
            acl.add(test)
            p.rules.acls[name] = acl
        } catch {
            parsingAlert("error detected while parsing ACL '\(name)' : \(error.message)")
        }
        for text in warnings { warn(text) }
    }

    /// Splits a rule's words at its `if`/`unless`.
    static func splitCondition(_ w: [String], from start: Int) -> (action: [String], condition: ArraySlice<String>?) {
        var depth = 0
        for i in start..<w.count {
            if w[i] == "{" { depth += 1 } else if w[i] == "}" { depth -= 1 }
            if depth == 0, w[i] == "if" || w[i] == "unless" { return (Array(w[start..<i]), w[i...]) }
        }
        return (Array(w[start...]), nil)
    }

    /// A log-format argument, with the stage check of its samples.
    /// What rules of `stage` may read in the section being read: a backend's request rules
    /// also have the backend.
    func availableUses(at stage: RuleStage) -> SampleUse {
        SampleUse.available(at: stage, inBackend: currentProxyIsBackend)
    }

    mutating func compileFormat(_ text: String, stage: RuleStage, context prefix: String) -> LogFormatString? {
        do {
            let format = try LogFormatString.parse(text, context: ruleContext)
            let available = availableUses(at: stage)
            for e in format.expressions {
                if let missing = e.fetch.uses.missingName(in: available) {
                    parsingAlert(prefix + "sample fetch <\(e.source)]> may not be reliably used here because it needs '\(missing)' which is not available here.")
                    return nil
                }
            }
            return format
        } catch {
            parsingAlert(prefix + error.message + (error.message.hasSuffix(".") ? "" : "."))
            return nil
        }
    }

    mutating func compileSample(_ text: String, stage: RuleStage, context prefix: String) -> SampleExpression? {
        do {
            let e = try SampleExpressionParser.parse(text, context: ruleContext)
            if let missing = e.fetch.uses.missingName(in: availableUses(at: stage)) {
                parsingAlert(prefix + "fetch method '\(e.fetch.name)' extracts information from '\(missing)', none of which is available here.")
                return nil
            }
            return e
        } catch {
            parsingAlert(prefix + "failed to parse sample expression <\(text)> : \(error.message)")
            return nil
        }
    }

    // MARK: - http-request / http-response / http-after-response

    mutating func parseHTTPRule(_ w: [String], _ p: inout ProxySettings, stage: RuleStage) {
        let keyword = w[0]
        if p.kind == .defaults && p.name.isEmpty {
            parsingAlert("'\(keyword)' not allowed in anonymous 'defaults' section.")
            return
        }
        if p.closedRuleStages.contains(stage) {
            warn("parsing [\(file):\(lineNumber)]: previous '\(keyword)' action is final and has no condition attached, further entries are NOOP.")
        }
        let names = Self.httpActionNames.filter { $0.stages.contains(stage) }.map(\.name)
        guard w.count >= 2 else {
            parsingAlert("'\(keyword)' expects \(names.map { "'\($0)'" }.joined(separator: ", ")), but got ''.")
            return
        }
        let verb = w[1]
        let base = verb.hasPrefix("track-sc") ? "track-sc(*)" : verb.firstIndex(of: "(").map { String(verb[..<$0]) + "(*)" } ?? verb
        guard names.contains(base) else {
            var text = "parsing [\(file):\(lineNumber)]: '\(keyword)' expects \(names.map { "'\($0)'" }.joined(separator: ", ")), but got '\(verb)'."
            if let s = Suggestion.closest(to: verb, in: names) { text += " Did you mean '\(s)' maybe ?" }
            alert(text)
            return
        }
        let (actionWords, conditionWords) = Self.splitCondition(w, from: 1)
        let prefix = "error detected in \(p.kind == .listen ? "proxy" : p.kind.rawValue) '\(p.name)' while parsing '\(keyword) \(verb)' rule : "
        guard var action = parseHTTPAction(actionWords, stage: stage, prefix: prefix, p) else { return }
        if case .capture(let e, let length, nil) = action {
            // `capture ... len <n>` opens a new slot after the declared ones.
            if stage == .httpRequest {
                action = .capture(e, length: length, slot: p.rules.requestCaptures.count)
                p.rules.requestCaptures.append((nil, length))
            } else {
                action = .capture(e, length: length, slot: p.rules.responseCaptures.count)
                p.rules.responseCaptures.append((nil, length))
            }
        }
        if stage == .httpRequest { noteRuleKind(.httpRequest, keyword: keyword, &p) }
        guard let condition = compileCondition(conditionWords, p, stage: stage, what: "an '\(keyword) \(verb)' condition") else { return }
        let rule = HTTPRule(action: action, condition: condition, location: here)
        if condition == nil, action.isFinal { p.closedRuleStages.insert(stage) } else { p.closedRuleStages.remove(stage) }
        switch stage {
        case .httpRequest: p.rules.httpRequest.append(rule)
        case .httpResponse: p.rules.httpResponse.append(rule)
        default: p.rules.httpAfterResponse.append(rule)
        }
    }

    /// The action of an HTTP rule; `w[0]` is the action name. Nil after an error (reported).
    mutating func parseHTTPAction(_ w: [String], stage: RuleStage, prefix: String, _ p: ProxySettings) -> HTTPAction? {
        let verb = w[0]
        let args = Array(w.dropFirst())
        func exactly(_ n: Int) -> Bool {
            if args.count != n {
                parsingAlert(prefix + "expects exactly \(n) argument\(n == 1 ? "" : "s").")
                return false
            }
            return true
        }
        func format(_ text: String) -> LogFormatString? { compileFormat(text, stage: stage, context: prefix) }
        func regex(_ text: String) -> Regex? {
            do {
                return try Regex(text)
            } catch {
                parsingAlert(prefix + "regex '\(text)' is invalid (error=\(error.message), erroffset=\(error.offset)).")
                return nil
            }
        }
        if verb.hasPrefix("set-var(") || verb.hasPrefix("set-var-fmt(") || verb.hasPrefix("unset-var(") {
            guard verb.hasSuffix(")"), let open = verb.firstIndex(of: "(") else {
                parsingAlert(prefix + "missing closing ')' in variable name.")
                return nil
            }
            let nameText = String(verb[verb.index(after: open)..<verb.index(before: verb.endIndex)])
            let name: VariableName
            do { name = try VariableName.parse(nameText) } catch {
                parsingAlert(prefix + error.message + ".")
                return nil
            }
            if verb.hasPrefix("unset-var(") {
                guard args.isEmpty else { parsingAlert(prefix + "expects no argument."); return nil }
                return .unsetVar(name)
            }
            guard !args.isEmpty else { parsingAlert(prefix + "expects a sample expression."); return nil }
            if verb.hasPrefix("set-var-fmt(") { return format(args[0]).map { .setVarFormat(name, $0) } }
            return compileSample(args[0], stage: stage, context: prefix).map { .setVar(name, $0) }
        }
        switch parseStickAction(verb, args, stage: stage, prefix: prefix, p) {
        case (true, nil): return nil
        case (true, .track(let t)?): return .track(t)
        case (true, .counter(let c)?): return .stickCounter(c)
        default: break
        }
        switch verb {
        case "allow":
            return .allow
        case "deny", "tarpit":
            guard let reply = parseReply(args, defaultStatus: verb == "deny" ? 403 : 500, denyStyle: true, stage: stage, prefix: prefix) else {
                return nil
            }
            return verb == "deny" ? .deny(reply) : .tarpit(reply)
        case "return":
            return parseReply(args, defaultStatus: 200, denyStyle: false, stage: stage, prefix: prefix).map { .reply($0) }
        case "reject", "silent-drop":
            return .reject
        case "auth":
            if args.isEmpty { return .auth(realm: nil) }
            if args == ["realm"] {
                parsingAlert(prefix + "missing realm value.")
                return nil
            }
            guard args.count == 2, args[0] == "realm" else {
                parsingAlert(prefix + "expects 'realm' for 'auth', but got '\(args[0])'.")
                return nil
            }
            return .auth(realm: args[1])
        case "redirect":
            return parseRedirect(args, stage: stage, prefix: prefix).map { .redirect($0) }
        case "set-header", "add-header":
            guard exactly(2), let value = format(args[1]) else { return nil }
            // Header names are written lowercase, as HAProxy's HTTP/1 output does.
            let name = args[0].lowercased()
            return verb == "set-header" ? .setHeader(name, value) : .addHeader(name, value)
        case "early-hint":
            guard exactly(2), let value = format(args[1]) else { return nil }
            return .earlyHint(args[0], value)
        case "del-header":
            guard args.count == 1 || (args.count == 3 && args[1] == "-m") else {
                parsingAlert(prefix + "expects exactly 1 argument or 3 arguments with '-m'.")
                return nil
            }
            var match = HeaderNameMatch.exact
            if args.count == 3 {
                switch args[2] {
                case "str": match = .exact
                case "beg": match = .prefix
                case "end": match = .suffix
                case "sub": match = .substring
                case "reg":
                    guard let r = regex(args[0]) else { return nil }
                    match = .regex(r)
                default:
                    parsingAlert(prefix + "-m: unsupported matching method '\(args[2])'.")
                    return nil
                }
            }
            return .delHeader(match.isExact ? args[0].lowercased() : args[0], match)
        case "replace-header", "replace-value":
            guard exactly(3), let r = regex(args[1]), let value = format(args[2]) else { return nil }
            return .replaceHeader(args[0], r, value, eachValue: verb == "replace-value")
        case "set-path", "set-pathq", "set-query", "set-uri", "set-method":
            guard exactly(1), let value = format(args[0]) else { return nil }
            let part: RequestLinePart = verb == "set-path" ? .path : verb == "set-pathq" ? .pathq : verb == "set-query" ? .query
                : verb == "set-uri" ? .uri : .method
            return .setRequestLine(part, value)
        case "replace-path", "replace-pathq", "replace-uri":
            guard exactly(2), let r = regex(args[0]), let value = format(args[1]) else { return nil }
            let part: RequestLinePart = verb == "replace-path" ? .path : verb == "replace-pathq" ? .pathq : .uri
            return .replaceRequestLine(part, r, value)
        case "set-status":
            guard !args.isEmpty, let code = Int(args[0]), (100...999).contains(code) else {
                parsingAlert(prefix + "expects an HTTP status code between 100 and 999.")
                return nil
            }
            var reason: String? = nil
            if args.count >= 3, args[1] == "reason" { reason = args[2] }
            return .setStatus(code, reason: reason)
        case "set-log-level":
            let levels = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "silent"]
            guard args.count == 1, levels.contains(args[0]) else {
                parsingAlert(prefix + "expects exactly 1 argument (a log level).")
                return nil
            }
            return .setLogLevel(args[0])
        case "capture":
            guard args.count >= 3, args[1] == "len" || args[1] == "id", let n = Int(args[2]), n >= 0 else {
                parsingAlert(prefix + "expects <expression> [ 'len' <length> | id <idx> ].")
                return nil
            }
            guard let e = compileSample(args[0], stage: stage, context: prefix) else { return nil }
            return args[1] == "len" ? .capture(e, length: n, slot: nil) : .capture(e, length: 0, slot: n)
        case "wait-for-body":
            guard args.count >= 2, args[0] == "time" else {
                parsingAlert(prefix + "'wait-for-body' expects a 'time' argument.")
                return nil
            }
            guard let ms = try? Units.milliseconds(args[1]) else {
                parsingAlert(prefix + "'wait-for-body' : invalid time '\(args[1])'.")
                return nil
            }
            var atLeast: Int? = nil
            if args.count >= 4, args[2] == "at-least" { atLeast = Units.size(args[3]) }
            return .waitForBody(milliseconds: ms, atLeast: atLeast)
        case "set-timeout":
            guard args.count == 2, args[0] == "server" || args[0] == "tunnel" else {
                parsingAlert(prefix + "'set-timeout' expects 'server' or 'tunnel' and a time.")
                return nil
            }
            let text = (try? Units.milliseconds(args[1])).map { "int(\($0))" } ?? args[1]
            guard let e = compileSample(text, stage: stage, context: prefix) else { return nil }
            return .setTimeout(server: args[0] == "server", e)
        case "set-src", "set-dst":
            guard exactly(1), let e = compileSample(args[0], stage: stage, context: prefix) else { return nil }
            return verb == "set-src" ? .setSource(e) : .setDestination(e)
        case "normalize-uri":
            let known = ["fragment-encode", "fragment-strip", "path-merge-slashes", "path-strip-dot", "path-strip-dotdot",
                         "percent-decode-unreserved", "percent-to-uppercase", "query-sort-by-name"]
            guard let kind = args.first, known.contains(kind) else {
                parsingAlert(prefix + "unknown normalizer '\(args.first ?? "")'.")
                return nil
            }
            // `path-strip-dotdot full`, `percent-to-uppercase strict`, `percent-decode-unreserved strict`.
            let option = args.count > 1 ? args[1] : nil
            if let option {
                let allowed = kind == "path-strip-dotdot" ? "full" : kind.hasPrefix("percent-") ? "strict" : nil
                guard option == allowed, args.count == 2 else {
                    parsingAlert(prefix + "unknown argument '\(option == allowed ? args[2] : option)' for '\(kind)' normalizer.")
                    return nil
                }
            }
            return .normalizeURI(kind, option: option)
        case "set-nice", "set-mark", "set-tos", "set-src-port", "set-dst-port", "disable-l7-retry", "strict-mode",
             "wait-for-handshake":
            return .ignored(verb)
        case "use-service":
            guard let name = args.first else {
                parsingAlert(prefix + "'use-service' expects a service name..")
                return nil
            }
            guard let service = HTTPService(rawValue: name) else {
                parsingAlert(prefix + "'\(name)' unknown service name..")
                return nil
            }
            return .useService(service)
        default:
            parsingAlert(prefix + "'\(verb)' is not supported by Hasp yet.")
            return nil
        }
    }

    // MARK: - tcp-request / tcp-response

    mutating func parseTCPRule(_ w: [String], _ p: inout ProxySettings, response: Bool) {
        let keyword = w[0]
        guard w.count >= 2 else {
            parsingAlert("'\(keyword)' requires an action.")
            return
        }
        if w[1] == "inspect-delay" {
            guard w.count == 3, let ms = try? Units.milliseconds(w[2]) else {
                parsingAlert("'\(keyword) inspect-delay' expects a positive delay in milliseconds, in proxy '\(p.name)'")
                return
            }
            if response { p.rules.responseInspectDelay = ms } else { p.rules.inspectDelay = ms }
            return
        }
        let phases: [String] = response ? ["content"] : ["connection", "session", "content"]
        guard let phase = TCPRule.Phase(rawValue: w[1]), phases.contains(w[1]) else {
            parsingAlert("'\(keyword)' expects \(phases.map { "'\($0)'" }.joined(separator: ", ")) or 'inspect-delay', got '\(w[1])' in \(p.kind.rawValue) '\(p.name)'")
            return
        }
        if p.kind == .defaults && p.name.isEmpty {
            parsingAlert("\(keyword) \(phase.rawValue) is not allowed in anonymous 'defaults' sections")
            return
        }
        if response, !p.capabilities.contains(.backend) {
            parsingAlert("\(keyword) \(phase.rawValue) is only allowed in 'backend' sections or 'defaults' section with a name")
            return
        }
        if !response, phase != .content, !p.capabilities.contains(.frontend) {
            parsingAlert("\(keyword) \(phase.rawValue) is not allowed because \(p.kind.rawValue) \(p.name) is not a frontend")
            return
        }
        guard w.count >= 3 else {
            parsingAlert("'\(keyword) \(phase.rawValue)' expects an action.")
            return
        }
        let stage: RuleStage = response ? .tcpResponseContent
            : phase == .connection ? .tcpConnection : phase == .session ? .tcpSession : .tcpRequestContent
        let (actionWords, conditionWords) = Self.splitCondition(w, from: 2)
        let verb = actionWords[0]
        let args = Array(actionWords.dropFirst())
        let prefix = "error detected in \(p.kind == .listen ? "proxy" : p.kind.rawValue) '\(p.name)' while parsing '\(keyword) \(phase.rawValue) \(verb)' rule : "
        let action: TCPAction
        if verb.hasPrefix("set-var(") || verb.hasPrefix("set-var-fmt(") || verb.hasPrefix("unset-var(") {
            guard let open = verb.firstIndex(of: "("), verb.hasSuffix(")") else {
                parsingAlert(prefix + "missing closing ')' in variable name.")
                return
            }
            let name: VariableName
            do { name = try VariableName.parse(String(verb[verb.index(after: open)..<verb.index(before: verb.endIndex)])) } catch {
                parsingAlert(prefix + error.message + ".")
                return
            }
            if verb.hasPrefix("unset-var(") {
                action = .unsetVar(name)
            } else {
                guard let text = args.first else { parsingAlert(prefix + "expects a sample expression."); return }
                if verb.hasPrefix("set-var-fmt(") {
                    guard let f = compileFormat(text, stage: stage, context: prefix) else { return }
                    action = .setVarFormat(name, f)
                } else {
                    guard let e = compileSample(text, stage: stage, context: prefix) else { return }
                    action = .setVar(name, e)
                }
            }
        } else if verb.hasPrefix("track-sc") || verb.hasPrefix("sc-") {
            switch parseStickAction(verb, args, stage: stage, prefix: prefix, p) {
            case (_, .track(let t)?): action = .track(t)
            case (_, .counter(let c)?): action = .stickCounter(c)
            case (true, nil): return
            case (false, _):
                alert("parsing [\(file):\(lineNumber)] : '\(keyword) \(phase.rawValue)' expects \(Self.tcpActionNames.map { "'\($0)'" }.joined(separator: ", ")), but got '\(verb)'")
                return
            }
        } else {
            switch verb {
            case "accept": action = .accept
            case "reject", "silent-drop", "close": action = .reject
            case "expect-proxy":
                guard args.first == "layer4", phase == .connection else {
                    parsingAlert(prefix + "'expect-proxy' only supports 'layer4', in 'tcp-request connection' rules.")
                    return
                }
                action = .expectProxy
            case "capture":
                guard args.count == 3, args[1] == "len", let n = Int(args[2]), n > 0 else {
                    parsingAlert(prefix + "'capture' expects <expression> 'len' <length>.")
                    return
                }
                guard let e = compileSample(args[0], stage: stage, context: prefix) else { return }
                action = .capture(e, length: n)
            case "set-src", "set-dst":
                guard let text = args.first, let e = compileSample(text, stage: stage, context: prefix) else {
                    if args.isEmpty { parsingAlert(prefix + "expects a sample expression.") }
                    return
                }
                action = verb == "set-src" ? .setSource(e) : .setDestination(e)
            case "set-log-level":
                guard let level = args.first else { parsingAlert(prefix + "expects a log level."); return }
                action = .setLogLevel(level)
            case "switch-mode":
                guard args.first == "http" else {
                    parsingAlert(prefix + "'switch-mode' only supports 'http'.")
                    return
                }
                action = .switchToHTTP
            case "set-mark", "set-tos", "set-nice", "set-src-port", "set-dst-port":
                action = .ignored(verb)
            case "use-service":
                guard let name = args.first else {
                    parsingAlert(prefix + "'use-service' expects a service name..")
                    return
                }
                if HTTPService(rawValue: name) == .prometheusExporter {
                    parsingAlert("Prometheus exporter service only available on 'http-request' rulesets")
                } else {
                    parsingAlert(prefix + "'\(name)' unknown service name..")
                }
                return
            default:
                var text = "parsing [\(file):\(lineNumber)] : '\(keyword) \(phase.rawValue)' expects \(Self.tcpActionNames.map { "'\($0)'" }.joined(separator: ", ")), but got '\(verb)'"
                if let s = Suggestion.closest(to: verb, in: Self.tcpActionNames) { text += " Did you mean '\(s)' maybe ?" }
                alert(text)
                return
            }
        }
        if !response {
            noteRuleKind(phase == .connection ? .tcpConnection : phase == .session ? .tcpSession : .tcpContent, keyword: keyword, &p)
        }
        guard let condition = compileCondition(conditionWords, p, stage: stage, what: "'\(keyword) \(phase.rawValue) \(verb)' condition",
                                               check: .warnTCPRule("\(keyword) \(phase.rawValue)")) else { return }
        let rule = TCPRule(phase: phase, action: action, condition: condition, location: here)
        if response { p.rules.tcpResponse.append(rule) } else { p.rules.tcpRequest.append(rule) }
    }

    // MARK: - Routing

    mutating func parseUseBackend(_ w: [String], _ p: inout ProxySettings) {
        guard p.kind != .defaults else {
            parsingAlert("'use_backend' not allowed in 'defaults' section.")
            return
        }
        guard hasCapability(.frontend, for: "use_backend", in: p) else { return }
        guard let (target, condition) = parseSwitchingRule(w, p, stage: .backendSwitching, object: "backend",
                                                           what: "switching rule") else { return }
        p.rules.useBackends.append(BackendSwitchRule(target: target, condition: condition, location: here))
        noteRuleKind(.useBackend, keyword: w[0], &p)
    }

    mutating func parseUseServer(_ w: [String], _ p: inout ProxySettings) {
        guard p.capabilities.contains(.backend), p.kind != .defaults else {
            parsingAlert("'use-server' not allowed in '\(p.kind.rawValue)' section.")
            return
        }
        guard let (server, condition) = parseSwitchingRule(w, p, stage: .serverSwitching, object: "server",
                                                           what: "server switching rule") else { return }
        p.rules.useServers.append(ServerSwitchRule(server: server, condition: condition, location: here))
        noteRuleKind(.useServer, keyword: w[0], &p)
    }

    /// `<keyword> <name|fmt> [if|unless <condition>]`: the target and the condition.
    mutating func parseSwitchingRule(_ w: [String], _ p: ProxySettings, stage: RuleStage, object: String,
                                     what: String) -> (LogFormatString, RuleCondition?)? {
        let keyword = w[0]
        guard w.count >= 2 else { parsingAlert("'\(keyword)' requires a \(object) name."); return nil }
        let (words, conditionWords) = Self.splitCondition(w, from: 1)
        guard words.count == 1 else {
            parsingAlert("'\(keyword)' : expects 'if' or 'unless' followed by a condition, got '\(words[1])'.")
            return nil
        }
        guard let target = compileFormat(words[0], stage: stage, context: "'\(keyword)' : ") else { return nil }
        guard let condition = compileCondition(conditionWords, p, stage: stage, what: what) else { return nil }
        return (target, condition)
    }

    /// `redirect ...` as a proxy keyword: an `http-request redirect` rule.
    mutating func parseProxyRedirect(_ w: [String], _ p: inout ProxySettings) {
        guard p.kind != .defaults else {
            parsingAlert("'redirect' not allowed in 'defaults' section.")
            return
        }
        let (words, conditionWords) = Self.splitCondition(w, from: 1)
        let prefix = "error detected in \(p.kind == .listen ? "proxy" : p.kind.rawValue) '\(p.name)' while parsing redirect rule : "
        guard let rule = parseRedirect(words, stage: .httpRequest, prefix: prefix) else { return }
        noteRuleKind(.redirect, keyword: "redirect", &p)
        guard let condition = compileCondition(conditionWords, p, stage: .httpRequest, what: "a redirect rule condition") else { return }
        p.rules.httpRequest.append(HTTPRule(action: .redirect(rule), condition: condition, location: here))
    }

    mutating func parseMonitor(_ w: [String], _ p: inout ProxySettings) {
        guard w.count >= 3, w[1] == "fail", w[2] == "if" || w[2] == "unless" else {
            parsingAlert("'monitor' expects 'fail' followed by 'if' or 'unless' and a condition.")
            return
        }
        guard let condition = compileCondition(w[2...], p, stage: .httpRequest, what: "a 'monitor fail' condition",
                                               check: .none) else { return }
        if let condition { p.rules.monitorFail.append(condition) }
        noteRuleKind(.monitorFail, keyword: "monitor fail", &p)
    }

    /// `capture request header <name> len <n>`, `capture response header <name> len <n>`,
    /// `capture cookie` (accepted).
    mutating func parseCapture(_ w: [String], _ p: inout ProxySettings) {
        guard w.count >= 2 else {
            parsingAlert("'capture' expects 'cookie', 'request header' or 'response header'.")
            return
        }
        if w[1] == "cookie" { return }
        guard w.count == 6, w[1] == "request" || w[1] == "response", w[2] == "header", w[4] == "len",
              let n = Int(w[5]), n > 0 else {
            parsingAlert("'capture \(w[1]) header' expects <header> 'len' <len>.")
            return
        }
        if w[1] == "request" {
            p.rules.requestCaptures.append((w[3], n))
        } else {
            p.rules.responseCaptures.append((w[3], n))
        }
    }
}
