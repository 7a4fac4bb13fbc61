/// `server` and `default-server` lines and their keywords.
extension ConfigParser {
    mutating func parseServer(_ w: [String], _ p: inout ProxySettings) {
        guard w.count >= 3 else {
            alert("[\(file):\(lineNumber)] : 'server' expects <name> and <addr>[:<port>] as arguments.")
            return
        }
        let name = w[1]
        if name.isEmpty {
            alert("[\(file):\(lineNumber)] : 'server' : an empty server name is not permitted.")
            return
        }
        if let bad = name.first(where: { !Self.isNameCharacter($0) }) {
            alert("[\(file):\(lineNumber)] : character '\(bad)' is not permitted in server name '\(name)'.")
            return
        }
        if let existing = p.servers.first(where: { $0.name == name }) {
            alert("parsing [\(file):\(lineNumber)] : backend '\(p.name)' : server name '\(name)' is already used at \(existing.location).")
            return
        }
        let address: ServerAddress
        do { address = try AddressParser.serverAddress(w[2]) } catch {
            alert("[\(file):\(lineNumber)] : 'server \(p.name)/\(name)' : could not resolve address '\(w[2])'.")
            return
        }
        let proxies = config.proxies
        let template: ServerSettings
        let first: Int
        switch Self.originArgument(w, at: 3, current: p, fallback: p.defaultServer.template,
                                   backend: { n in proxies.first { $0.name == n && $0.kind != .defaults && $0.capabilities.contains(.backend) } }) {
        case .failure(let refusal):
            alert("parsing [\(file):\(lineNumber)] : 'server \(p.name)/\(name)' : \(refusal.message)")
            return
        case .success(let (origin, next)):
            (template, first) = (origin, next)
        }
        var server = Self.instantiate(template, name: name, address: address, location: here)
        if parseServerKeywords(w, from: first, into: &server, proxy: p, label: "server \(p.name)/\(name)") {
            if server.checks.agent, server.checks.agentPort == nil {
                alert("parsing [\(file):\(lineNumber)] : '\(p.kind.rawValue) \(p.name)' : server '\(name)' : agent-check enabled but no agent-port configured.")
                return
            }
            if server.check, server.track == nil, server.checks.port == nil, case .inet(_, nil) = server.address {
                warn("config : \(p.kind.rawValue) '\(p.name)' : server '\(name)' has neither service port nor check port. Check has been disabled.")
                server.check = false
            }
            guard checkServerTLS(server, proxy: p.name) else { return }
            p.servers.append(server)
        }
    }

    /// `default-server [name <n>] [from <origin>] [settings]`: each line completes the
    /// instance it names (the unnamed one by default).
    mutating func parseDefaultServer(_ w: [String], _ p: inout ProxySettings) {
        var index = 1
        var name: String? = nil
        if w.count > 1, w[1] == "name" {
            guard w.count > 2, !w[2].isEmpty else {
                parsingAlert("default-server name: missing value.")
                return
            }
            if let other = p.servers.first(where: { $0.name == w[2] }) {
                parsingAlert("default-server name '\(w[2])' conflicts with server defined at line \(other.location.line).")
                return
            }
            name = w[2]
            index = 3
        }
        let current = name.map { p.defaultServer.named[$0] ?? DefaultServerSettings.fresh } ?? p.defaultServer.template
        let proxies = config.proxies
        switch Self.originArgument(w, at: index, current: p, fallback: current,
                                   backend: { n in proxies.first { $0.name == n && $0.kind != .defaults && $0.capabilities.contains(.backend) } }) {
        case .failure(let refusal):
            parsingAlert(refusal.message)
        case .success(let (origin, next)):
            var template = origin
            guard parseServerKeywords(w, from: next, into: &template, proxy: p, label: "default-server") else { return }
            if let name {
                template.name = name
                p.defaultServer.named[name] = template
            } else {
                p.defaultServer.template = template
                p.defaultServer.isDeclared = true
            }
        }
    }

    static let serverKeywords = [
        "weight", "maxconn", "maxqueue", "backup", "disabled", "enabled", "check", "no-check", "inter", "fastinter",
        "downinter", "rise", "fall", "pool-max-conn", "pool-purge-delay", "pool-low-conn", "max-reuse", "id",
        "port", "addr", "slowstart", "on-error", "on-marked-down", "on-marked-up", "observe", "error-limit",
        "agent-check", "agent-port", "agent-inter", "agent-addr", "agent-send", "track", "cookie", "send-proxy",
        "send-proxy-v2", "ssl", "verify", "sni", "alpn", "ca-file", "crl-file", "crt", "check-ssl", "check-sni",
        "verifyhost", "no-ssl-reuse", "ssl-min-ver", "ssl-max-ver", "ciphers", "ciphersuites", "no-ssl", "minconn", "resolvers", "init-addr", "resolve-prefer",
        "resolve-net", "resolve-opts",
        "check-send-proxy", "no-backup", "proto", "tfo", "namespace", "no-agent-check", "source", "usesrc", "no-send-proxy", "no-send-proxy-v2",
    ]

    /// Applies `server`/`default-server` keywords from index `from`. Returns false after an error.
    mutating func parseServerKeywords(_ w: [String], from start: Int, into s: inout ServerSettings,
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
            case "source":
                // `source <addr> [usesrc <what>] [interface <name>]`: its options end where the
                // next server keyword begins.
                var end = i + 2
                while end + 1 < w.count, ["usesrc", "interface"].contains(w[end]) { end += 2 }
                guard let source = parseConnectionSource(Array(w[i..<min(end, w.count)]), from: 1, label: label) else { return false }
                s.source = source
                i = end
            case "usesrc":
                alert(prefix() + "'usesrc' only allowed after a 'source' statement.")
                return false
            case "maxconn": guard let n = integer(0...Int(Int32.max)) else { return false }; s.maxconn = n; i += 2
            case "maxqueue": guard let n = integer(0...Int(Int32.max)) else { return false }; s.maxqueue = n; i += 2
            case "backup": s.backup = true; i += 1
            case "no-backup": s.backup = false; i += 1
            case "disabled": s.disabled = true; i += 1
            case "enabled": s.disabled = false; i += 1
            case "check": s.check = true; i += 1
            case "no-check": s.check = false; i += 1
            case "inter": guard let t = time() else { return false }; s.interMs = t; i += 2
            case "fastinter": guard let t = time() else { return false }; s.checks.fastinterMs = t; i += 2
            case "downinter": guard let t = time() else { return false }; s.checks.downinterMs = t; i += 2
            case "slowstart": guard let t = time() else { return false }; s.checks.slowstartMs = t; i += 2
            case "agent-inter": guard let t = time() else { return false }; s.checks.agentInterMs = t; i += 2
            case "rise": guard let n = integer(1...Int(Int32.max)) else { return false }; s.rise = n; i += 2
            case "fall": guard let n = integer(1...Int(Int32.max)) else { return false }; s.fall = n; i += 2
            case "pool-max-conn": guard let n = integer(-1...Int(Int32.max)) else { return false }; s.poolMaxConn = n; i += 2
            case "pool-purge-delay": guard let t = time() else { return false }; s.poolPurgeDelayMs = t; i += 2
            case "pool-low-conn": guard let n = integer(0...Int(Int32.max)) else { return false }; s.poolLowConn = n; i += 2
            case "max-reuse": guard let n = integer(-1...Int(Int32.max)) else { return false }; s.maxReuse = n; i += 2
            case "id": guard let n = integer(1...Int(Int32.max)) else { return false }; s.id = n; i += 2
            case "track", "proto":
                guard let value else {
                    alert(prefix() + "'\(k)' expects an argument.")
                    return false
                }
                if k == "track" { s.track = value } else { s.proto = value }
                i += 2
            case "port", "agent-port":
                guard let n = integer(0...65535) else { return false }
                if k == "port" { s.checks.port = n } else { s.checks.agentPort = n }
                i += 2
            case "addr", "agent-addr", "agent-send":
                guard let value else {
                    alert(prefix() + "'\(k)' expects an argument.")
                    return false
                }
                switch k {
                case "addr": s.checks.address = value
                case "agent-addr": s.checks.agentAddress = value
                default: s.checks.agentSend = value
                }
                i += 2
            case "observe", "on-error", "on-marked-down", "on-marked-up":
                let choices = ["observe": "'none', 'layer4', 'layer7'",
                               "on-error": "'fastinter', 'fail-check', 'sudden-death' or 'mark-down'",
                               "on-marked-down": "'shutdown-sessions'", "on-marked-up": "'shutdown-backup-sessions'"][k]!
                let given = value ?? ""
                switch (k, given) {
                case ("observe", "none"): s.checks.observe = nil
                case ("observe", _) where ObservedLayer(rawValue: given) != nil: s.checks.observe = ObservedLayer(rawValue: given)
                case ("on-error", _) where ObservedErrorAction(rawValue: given) != nil: s.checks.onError = ObservedErrorAction(rawValue: given)!
                case ("on-marked-down", "shutdown-sessions"): s.checks.shutdownSessionsOnDown = true
                case ("on-marked-up", "shutdown-backup-sessions"): s.checks.shutdownBackupSessionsOnUp = true
                default:
                    alert(prefix() + "'\(k)' expects one of \(choices) but got '\(given)'.")
                    return false
                }
                i += 2
            case "error-limit":
                guard let n = integer(1...Int(Int32.max)) else { return false }
                s.checks.errorLimit = n
                i += 2
            case "cookie":
                guard let value else {
                    alert(prefix() + "'\(k)' expects <value> as argument..")
                    return false
                }
                s.cookie = value
                i += 2
            case "minconn", "resolvers", "init-addr", "resolve-prefer", "namespace", "resolve-net", "resolve-opts":
                // HAProxy reads a missing option list as an empty one.
                guard let value = value ?? (k == "resolve-opts" ? "" : nil) else {
                    alert(prefix() + "'\(k)' expects an argument.")
                    return false
                }
                switch k {
                case "resolvers": s.resolvers = value
                case "init-addr": s.initAddr = value.split(separator: ",").map(String.init)
                case "resolve-prefer": s.resolvePrefer = value
                case "resolve-net":
                    // HAProxy ends these two messages with two periods.
                    for text in value.split(separator: ",") {
                        guard let net = IPNetwork.parse(String(text)) else {
                            alert(prefix() + "'resolve-net' invalid network '\(text)'..")
                            return false
                        }
                        s.resolveNets.append(net)
                    }
                case "resolve-opts":
                    for option in value.split(separator: ",") {
                        switch option {
                        case "allow-dup-ip": s.resolveAllowDuplicateIP = true
                        case "prevent-dup-ip": s.resolveAllowDuplicateIP = false
                        case "ignore-weight": s.resolveIgnoreWeight = true
                        default:
                            alert(prefix() + "'resolve-opts' : unknown resolve-opts option '\(option)', supported methods are 'allow-dup-ip', 'ignore-weight', and 'prevent-dup-ip'..")
                            return false
                        }
                    }
                default: break
                }
                i += 2
            case "agent-check": s.checks.agent = true; i += 1
            case "no-agent-check": s.checks.agent = false; i += 1
            case "check-send-proxy": s.checks.sendProxy = true; i += 1
            case "send-proxy": s.sendProxy = .v1; i += 1
            case "send-proxy-v2": s.sendProxy = .v2; i += 1
            case "no-send-proxy", "no-send-proxy-v2": s.sendProxy = nil; i += 1
            case "tfo":
                i += 1
            default:
                switch parseServerTLSKeyword(w, at: i, into: &s.tls) {
                case .took(let n):
                    i += n
                    continue
                case .failed(let message):
                    alert(prefix() + message + (message.hasSuffix(".") ? "" : "."))
                    for line in alertsAfterKeywordFailure { diagnostics.append(Diagnostic(.alert, line)) }
                    alertsAfterKeywordFailure = []
                    return false
                case .unknown:
                    break
                }
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
}
