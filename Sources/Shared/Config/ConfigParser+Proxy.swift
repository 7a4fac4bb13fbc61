#if canImport(Glibc)
import Glibc
#endif

/// `defaults`, `frontend`, `backend` and `listen` keywords.
extension ConfigParser {
    // MARK: - proxies

    /// The status codes `errorfile` may replace.
    static let errorFileCodes: Set<Int> = [200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504]

    /// A proxy keyword: its names, how many arguments it takes at most, where it is valid, and
    /// its parser. One table gives dispatch, "did you mean" hints and the argument check.
    struct ProxyKeyword: Sendable {
        let names: [String]
        let maximumArguments: Int?
        let parse: @Sendable (inout ConfigParser, [String], inout ProxySettings) -> Void
    }

    static let proxyKeywordTable: [ProxyKeyword] = [
        ProxyKeyword(names: ["mode"], maximumArguments: 1) { parser, w, p in
            guard w.count >= 2, let mode = ProxyMode(rawValue: w[1]) else {
                parser.parsingAlert("unknown proxy mode '\(w.count > 1 ? w[1] : "")'.")
                return
            }
            p.mode = mode
        },
        ProxyKeyword(names: ["bind"], maximumArguments: nil) { parser, w, p in
            let caps = p.capabilities
            guard caps.contains(.frontend), p.kind != .defaults else {
                parser.parsingAlert("'bind' not allowed in '\(p.kind.rawValue)' section.")
                return
            }
            parser.parseBind(w, &p)
        },
        ProxyKeyword(names: ["default_backend"], maximumArguments: 1) { parser, w, p in
            guard parser.hasCapability(.frontend, for: "default_backend", in: p) else { return }
            guard w.count >= 2 else { parser.parsingAlert("'default_backend' expects a backend name."); return }
            p.defaultBackend = w[1]
            p.defaultBackendLocation = parser.here
        },
        ProxyKeyword(names: ["use_backend"], maximumArguments: nil) { parser, w, p in
            parser.parseUseBackend(w, &p)
        },
        ProxyKeyword(names: ["use-server"], maximumArguments: nil) { parser, w, p in
            parser.parseUseServer(w, &p)
        },
        ProxyKeyword(names: ["acl"], maximumArguments: nil) { parser, w, p in
            parser.parseACL(w, &p)
        },
        ProxyKeyword(names: ["http-request"], maximumArguments: nil) { parser, w, p in
            parser.parseHTTPRule(w, &p, stage: .httpRequest)
        },
        ProxyKeyword(names: ["http-response"], maximumArguments: nil) { parser, w, p in
            parser.parseHTTPRule(w, &p, stage: .httpResponse)
        },
        ProxyKeyword(names: ["http-after-response"], maximumArguments: nil) { parser, w, p in
            parser.parseHTTPRule(w, &p, stage: .httpAfterResponse)
        },
        ProxyKeyword(names: ["tcp-request"], maximumArguments: nil) { parser, w, p in
            parser.parseTCPRule(w, &p, response: false)
        },
        ProxyKeyword(names: ["tcp-response"], maximumArguments: nil) { parser, w, p in
            parser.parseTCPRule(w, &p, response: true)
        },
        ProxyKeyword(names: ["redirect"], maximumArguments: nil) { parser, w, p in
            parser.parseProxyRedirect(w, &p)
        },
        ProxyKeyword(names: ["monitor"], maximumArguments: nil) { parser, w, p in
            parser.parseMonitor(w, &p)
        },
        ProxyKeyword(names: ["monitor-uri"], maximumArguments: 1) { parser, w, p in
            guard w.count >= 2 else { parser.parsingAlert("'monitor-uri' expects an URI."); return }
            p.rules.monitorURI = w[1]
        },
        ProxyKeyword(names: ["capture"], maximumArguments: nil) { parser, w, p in
            parser.parseCapture(w, &p)
        },
        ProxyKeyword(names: ["force-persist", "ignore-persist"], maximumArguments: nil) { parser, w, p in
            parser.parsePersistRule(w, &p)
        },
        ProxyKeyword(names: ["cookie"], maximumArguments: nil) { parser, w, p in
            parser.parseCookie(w, &p)
        },
        ProxyKeyword(names: ["dynamic-cookie-key"], maximumArguments: 1) { parser, w, p in
            parser.parseDynamicCookieKey(w, &p)
        },
        ProxyKeyword(names: ["server"], maximumArguments: nil) { parser, w, p in
            let caps = p.capabilities
            guard caps.contains(.backend), p.kind != .defaults else {
                parser.parsingAlert("'server' not allowed in '\(p.kind.rawValue)' section.")
                return
            }
            parser.parseServer(w, &p)
        },
        ProxyKeyword(names: ["server-template"], maximumArguments: nil) { parser, w, p in
            guard p.capabilities.contains(.backend), p.kind != .defaults else {
                parser.alert("[\(parser.file):\(parser.lineNumber)] : parsing [\(parser.file):\(parser.lineNumber)] : 'server-template' not allowed because \(p.kind.rawValue) '\(p.name)' has no backend capability.")
                return
            }
            parser.parseServerTemplate(w, &p)
        },
        ProxyKeyword(names: ["default-server"], maximumArguments: nil) { parser, w, p in
            let caps = p.capabilities
            guard caps.contains(.backend) else {
                parser.parsingAlert("'default-server' not allowed in '\(p.kind.rawValue)' section.")
                return
            }
            parser.parseDefaultServer(w, &p)
        },
        ProxyKeyword(names: ["balance"], maximumArguments: nil) { parser, w, p in
            parser.parseBalance(w, &p)
        },
        ProxyKeyword(names: ["hash-type"], maximumArguments: nil) { parser, w, p in
            guard w.count >= 2 else {
                parser.parsingAlert("'hash-type' only supports 'consistent' and 'map-based'.")
                return
            }
            switch w[1] {
            case "map-based": p.hashType = .mapBased
            case "consistent": p.hashType = .consistent
            default: parser.parsingAlert("'hash-type' only supports 'consistent' and 'map-based'.")
            }
        },
        ProxyKeyword(names: ["hash-balance-factor"], maximumArguments: nil) { parser, w, p in
            guard w.count >= 2, !w[1].isEmpty else {
                parser.parsingAlert("'hash-balance-factor' expects an integer argument.")
                return
            }
            // HAProxy reads the leading digits (atol).
            let factor = Int(w[1].prefix { $0.isASCII && $0.isNumber }.prefix(9)) ?? 0
            guard factor == 0 || factor > 100 else {
                parser.parsingAlert("'hash-balance-factor' must be 0 or greater than 100.")
                return
            }
            p.hashBalanceFactor = factor
        },
        ProxyKeyword(names: ["timeout"], maximumArguments: nil) { parser, w, p in
            parser.parseTimeout(w, &p)
        },
        ProxyKeyword(names: ["contimeout", "clitimeout", "srvtimeout"], maximumArguments: nil) { parser, w, p in
            let k = w[0]
            parser.parsingAlert("the '\(k)' directive is not supported anymore since HAProxy 2.1. Use 'timeout \(["contimeout": "connect", "clitimeout": "client", "srvtimeout": "server"][k]!)'.")
        },
        ProxyKeyword(names: ["maxconn"], maximumArguments: 1) { parser, w, p in
            guard w.count >= 2, let n = Int(w[1]), n >= 0 else {
                parser.parsingAlert("'maxconn' expects an integer argument.")
                return
            }
            guard parser.hasCapability(.frontend, for: "maxconn", in: p, hint: " Maybe you want 'fullconn' instead ?") else { return }
            p.maxconn = n
        },
        ProxyKeyword(names: ["retries"], maximumArguments: 1) { parser, w, p in
            guard w.count >= 2, let n = Int(w[1]), n >= 0 else {
                parser.parsingAlert("'retries' expects an integer argument (dispatch counts for one).")
                return
            }
            p.retries = n
        },
        ProxyKeyword(names: ["option"], maximumArguments: nil) { parser, w, p in
            parser.parseOption(w, from: 1, negated: false, &p)
        },
        ProxyKeyword(names: ["no"], maximumArguments: nil) { parser, w, p in
            if w.count == 2, w[1] == "log" {
                p.logGlobal = false
                p.logTargets = []
                return
            }
            guard w.count >= 3, w[1] == "option" else {
                parser.parsingAlert("'no' only supports 'option'.")
                return
            }
            parser.parseOption(w, from: 2, negated: true, &p)
        },
        ProxyKeyword(names: ["http-reuse"], maximumArguments: 1) { parser, w, p in
            guard w.count >= 2, let reuse = HTTPReuse(rawValue: w[1]) else {
                parser.parsingAlert("'http-reuse' only supports 'never', 'safe', 'aggressive', 'always'.")
                return
            }
            p.httpReuse = reuse
        },
        ProxyKeyword(names: ["log"], maximumArguments: nil) { parser, w, p in
            guard w.count >= 2 else {
                parser.parsingAlert("'log' expects either <address[:port]> and <facility> or 'global' as arguments.")
                return
            }
            if w[1] == "global" {
                p.logGlobal = true
            } else if let target = parser.parseLogTarget(w) {
                p.logTargets.append(target)
            }
        },
        ProxyKeyword(names: ["errorfile"], maximumArguments: nil) { parser, w, p in
            if let (code, bytes) = parser.parseErrorFile(w) { p.errorFiles[code] = bytes }
        },
        ProxyKeyword(names: ["errorfiles"], maximumArguments: nil) { parser, w, p in
            guard w.count >= 2 else {
                parser.parsingAlert("'errorfiles' expects <name> as argument.")
                return
            }
            var codes: [Int] = []
            for word in w.dropFirst(2) {
                guard let code = Int(word), ConfigParser.errorFileCodes.contains(code) else {
                    parser.parsingAlert("'errorfiles' : status code '\(word)' not handled.")
                    return
                }
                codes.append(code)
            }
            p.errorFileSections.append(ErrorFileImport(section: w[1], codes: codes, location: parser.here))
        },
        ProxyKeyword(names: ["http-error"], maximumArguments: nil) { parser, w, p in
            parser.parseHTTPError(w, &p)
        },
        ProxyKeyword(names: ["disabled"], maximumArguments: 0) { parser, w, p in
            p.disabled = true
        },
        ProxyKeyword(names: ["enabled"], maximumArguments: 0) { parser, w, p in
            p.disabled = false
        },
        ProxyKeyword(names: ["id"], maximumArguments: 1) { parser, w, p in
            guard w.count >= 2, let n = Int(w[1]), n > 0 else {
                parser.parsingAlert("'id' expects a positive integer argument.")
                return
            }
            p.id = n
        },
        // Accepted; Hasp has no use for them.
        ProxyKeyword(names: ["description"], maximumArguments: nil) { _, w, p in
            p.proxyDescription = w.dropFirst().joined(separator: " ")
        },
        ProxyKeyword(names: ["fullconn"], maximumArguments: nil) { _, _, _ in },
        ProxyKeyword(names: ["stats"], maximumArguments: nil) { parser, w, p in parser.parseStats(w, &p) },
        ProxyKeyword(names: ["load-server-state-from-file"], maximumArguments: 1) { parser, w, p in
            guard w.count >= 2, let source = ServerStateSource(rawValue: w[1]) else {
                parser.parsingAlert("'load-server-state-from-file' expects 'global', 'local' or 'none'. Got '\(w.count >= 2 ? w[1] : "")'")
                return
            }
            p.loadServerState = source
        },
        ProxyKeyword(names: ["server-state-file-name"], maximumArguments: 1) { parser, w, p in
            p.serverStateFileName = w.count >= 2 && w[1] != "use-backend-name" ? w[1] : nil
        },
        ProxyKeyword(names: ["http-check", "tcp-check"], maximumArguments: nil) { parser, w, p in
            let k = w[0]
            guard parser.hasCapability(.backend, for: k, in: p) else { return }
            parser.parseCheckRule(w, &p)
        },
        ProxyKeyword(names: ["stick-table"], maximumArguments: nil) { parser, w, p in
            parser.parseProxyStickTable(w, &p)
        },
        ProxyKeyword(names: ["stick"], maximumArguments: nil) { parser, w, p in
            parser.parseStickRule(w, &p)
        },
        ProxyKeyword(names: ["source"], maximumArguments: nil) { parser, w, p in
            _ = parser.hasCapability(.backend, for: w[0], in: p)
            guard let source = parser.parseConnectionSource(w, from: 1, label: nil) else { return }
            p.source = source
        },
        ProxyKeyword(names: ["usesrc"], maximumArguments: nil) { parser, _, _ in
            parser.parsingAlert("'usesrc' only allowed after a 'source' statement.")
        },
        ProxyKeyword(names: ["compression", "errorloc", "errorloc302", "errorloc303"],
                     maximumArguments: nil) { parser, w, _ in
            parser.parsingAlert("'\(w[0])' is not supported by Hasp yet.")
        },
    ]

    static let proxyKeywordsByName: [String: ProxyKeyword] = {
        var table: [String: ProxyKeyword] = [:]
        for keyword in proxyKeywordTable + loggingKeywordTable { for name in keyword.names { table[name] = keyword } }
        return table
    }()

    /// Every proxy keyword (for "did you mean").
    static var proxyKeywords: [String] { (proxyKeywordTable + loggingKeywordTable).flatMap(\.names) }

    mutating func parseProxy(_ w: [String], _ p: inout ProxySettings) {
        let k = w[0]
        guard let keyword = Self.proxyKeywordsByName[k] else {
            unknownKeyword(k, section: p.kind.rawValue, candidates: Self.proxyKeywords)
            return
        }
        if let maximum = keyword.maximumArguments, w.count - 1 > maximum {
            parsingAlert("'\(k)' cannot handle unexpected argument '\(w[maximum + 1])'.")
            return
        }
        keyword.parse(&self, w, &p)
    }

    mutating func parseBind(_ w: [String], _ p: inout ProxySettings) {
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
        bind.text = w[1]
        let bindKeywords = ["name", "maxconn", "backlog", "accept-proxy", "mode", "user", "group", "uid", "gid",
                            "v4v6", "v6only", "transparent", "freebind", "defer-accept", "tfo", "process", "thread", "id",
                            "nice", "alpn", "ssl", "crt", "crt-list", "strict-sni", "ciphers", "ciphersuites", "curves", "ecdhe",
                            "verify", "ca-file", "crl-file", "ca-verify-file", "ca-ignore-err", "crt-ignore-err",
                            "ssl-min-ver", "ssl-max-ver", "no-tls-tickets", "prefer-client-ciphers", "allow-0rtt", "npn",
                            "no-alpn", "no-sslv3", "no-tlsv10", "no-tlsv11", "no-tlsv12", "no-tlsv13", "interface", "namespace", "level", "severity-output",
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
            case "transparent": bind.transparent = true; i += 1
            case "freebind": bind.freebind = true; i += 1
            case "v4v6", "v6only", "defer-accept", "tfo":
                i += 1
            case "process", "thread", "id", "nice", "interface", "namespace":
                guard needValue() != nil else { return }
                i += 2
            default:
                switch parseBindTLSKeyword(w, at: i, into: &bind) {
                case .took(let n):
                    i += n
                    continue
                case .failed(let message):
                    parsingAlert("'bind \(w[1])' in section '\(p.kind.rawValue)' : \(message)")
                    return
                case .unknown:
                    break
                }
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

    mutating func parseBalance(_ w: [String], _ p: inout ProxySettings) {
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

    mutating func parseTimeout(_ w: [String], _ p: inout ProxySettings) {
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
        case "tarpit": keyPath = \.tarpit
        default:
            parsingAlert("'timeout' supports \(names) (got '\(name)')")
            return
        }
        guard w.count >= 3 else {
            parsingAlert("'timeout \(name)' expects an integer value (in milliseconds)")
            return
        }
        if w.count > 3 {
            // `timeout connect 5 s`: the unit must be attached to the value.
            parsingAlert("'timeout \(name)' : unexpected extra argument '\(w[3])' after value '\(w[2])'.")
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
        "redispatch", "httplog", "httpslog", "tcplog", "dontlog-normal", "forwardfor", "http-keep-alive", "http-server-close", "httpclose",
        "dontlognull", "idle-close-on-response", "log-health-checks", "log-separate-errors", "allbackups", "httpchk", "tcp-check",
        "http-buffer-request", "originalto", "persist", "http-restrict-req-hdr-names",
    ]
    /// Options an ordinary configuration uses that Hasp accepts without acting on them yet.
    static let acceptedOptions: Set<String> = [
        "abortonclose", "splice-auto", "splice-request", "splice-response",
        "tcpka", "clitcpka", "srvtcpka", "allbackups",
        "prefer-last-server", "nolinger", "independent-streams", "http-pretend-keepalive",
        "http-no-delay", "logasap", "contstats", "socket-stats", "checkcache", "http-ignore-probes",
        "tcp-smart-accept", "tcp-smart-connect", "accept-invalid-http-request", "accept-invalid-http-response",
        "h1-case-adjust-bogus-client", "h1-case-adjust-bogus-server", "disable-h2-upgrade", "http-use-htx",
        "transparent", "http_proxy", "http-use-proxy-header",
    ]

    mutating func parseOption(_ w: [String], from i: Int, negated: Bool, _ p: inout ProxySettings) {
        guard i < w.count else { parsingAlert("'option' expects an option name."); return }
        let name = w[i]
        switch name {
        case "redispatch": p.options.redispatch = !negated
        case "persist": p.options.persist = !negated
        case "httplog", "httpslog", "tcplog":
            parseLogOption(name, arguments: w[(i + 1)...], negated: negated, &p)
        case "dontlognull": p.options.dontLogNull = !negated
        case "dontlog-normal": p.options.dontLogNormal = !negated
        case "idle-close-on-response": p.options.idleCloseOnResponse = !negated
        case "log-health-checks": p.options.logHealthChecks = !negated
        case "log-separate-errors": p.options.logSeparateErrors = !negated
        case "allbackups": p.options.allBackups = !negated
        case "http-buffer-request": p.options.bufferRequest = !negated
        case "http-restrict-req-hdr-names":
            guard i + 1 < w.count else {
                parsingAlert("missing parameter. option '\(name)' expects 'preserve', 'reject' or 'delete' option.")
                return
            }
            guard let policy = HeaderNamePolicy(rawValue: w[i + 1]) else {
                parsingAlert("invalid parameter '\(w[i + 1])'. option '\(name)' expects 'preserve', 'reject' or 'delete' option.")
                return
            }
            p.options.requestHeaderNames = policy
        case "originalto":
            p.options.originalTo = !negated
            guard let o = parseAddressHeaderOption(w, from: i + 1, option: "originalto", allowsIfNone: false) else { return }
            p.options.originalToExcept = o.except ?? p.options.originalToExcept
            p.options.originalToHeader = o.header ?? p.options.originalToHeader
        case "httpchk":
            if negated { p.checks.kind = .connect } else { parseHTTPCheckOption(w, from: i, &p) }
        case "tcp-check":
            p.checks.kind = negated ? .connect : .tcpCheck
        case "ssl-hello-chk", "mysql-check", "pgsql-check", "redis-check", "smtpchk", "ldap-check", "spop-check",
             "external-check":
            parsingWarning("'option \(name)' is not supported by Hasp yet; servers are checked with a TCP connection instead.")
            p.checks.kind = .connect
        case "http-keep-alive": p.options.connectionMode = negated ? .close : .keepAlive
        case "http-server-close": p.options.connectionMode = negated ? .keepAlive : .serverClose
        case "httpclose": p.options.connectionMode = negated ? .keepAlive : .close
        case "forwardfor":
            p.options.forwardFor = !negated
            guard let o = parseAddressHeaderOption(w, from: i + 1, option: "forwardfor", allowsIfNone: true) else { return }
            p.options.forwardForExcept = o.except ?? p.options.forwardForExcept
            p.options.forwardForHeader = o.header ?? p.options.forwardForHeader
            if o.ifNone { p.options.forwardForIfNone = true }
        default:
            if Self.acceptedOptions.contains(name) { return }
            parsingAlert("unknown option '\(name)'.")
        }
    }

    /// The arguments of `option forwardfor` and `option originalto`: `except <network>`,
    /// `header <name>` and (forwardfor) `if-none`; nil after an error (reported).
    mutating func parseAddressHeaderOption(_ w: [String], from start: Int, option: String, allowsIfNone: Bool)
        -> (except: IPNetwork?, header: String?, ifNone: Bool)?
    {
        var result: (except: IPNetwork?, header: String?, ifNone: Bool) = (nil, nil, false)
        var j = start
        while j < w.count {
            switch w[j] {
            case "except" where j + 1 < w.count:
                guard let network = IPNetwork.parse(w[j + 1]) else {
                    parsingAlert("invalid address '\(w[j + 1])' for 'except' in 'option \(option)'.")
                    return nil
                }
                result.except = network
                j += 2
            case "header" where j + 1 < w.count:
                result.header = w[j + 1]
                j += 2
            case "if-none" where allowsIfNone:
                result.ifNone = true
                j += 1
            default:
                parsingAlert(allowsIfNone ? "'option \(option)' only supports optional values 'except', 'header' and 'if-none'."
                             : "'option \(option)' only supports optional values 'except' and 'header'.")
                return nil
            }
        }
        return result
    }
}
