/// `stats ...` in a proxy section: the statistics page.
extension ConfigParser {
    static let statsExpectation = "expects 'admin', 'uri', 'realm', 'auth', 'scope', 'enable', 'hide-version', 'show-node', 'show-desc' or 'show-legends'."

    mutating func parseStats(_ w: [String], _ p: inout ProxySettings) {
        guard w.count >= 2 else {
            alert("parsing [\(file):\(lineNumber)]: missing keyword in 'stats', \(Self.statsExpectation)")
            return
        }
        let sub = w[1]
        let isDefaults = p.kind == .defaults
        if isDefaults, sub == "admin" || sub == "http-request" {
            alert("parsing [\(file):\(lineNumber)]: '\(sub == "admin" ? "stats admin" : "stats")' not allowed in 'defaults' section.")
            return
        }
        // A proxy's first own `stats` line starts from fresh settings (HAProxy detaches the
        // proxy from its defaults' page rather than amending it).
        var stats = p.statsDeclaredHere ? (p.stats ?? StatsSettings()) : StatsSettings()
        let argument = w.count > 2 ? w[2] : nil
        switch sub {
        case "enable":
            break
        case "uri":
            guard let argument, !argument.isEmpty else { return parsingAlert("'uri' needs an URI prefix.") }
            stats.uri = argument
        case "realm":
            guard let argument, !argument.isEmpty else { return parsingAlert("'realm' needs an realm name.") }
            stats.realm = argument
        case "auth":
            guard let argument, !argument.isEmpty else { return parsingAlert("'auth' needs a user:password account.") }
            let parts = argument.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            let user = String(parts[0])
            let password = parts.count > 1 ? String(parts[1]) : ""
            stats.users.users[user] = Userlist.User(name: user, password: password, isHashed: false, groups: [])
        case "refresh":
            guard let argument, !argument.isEmpty else {
                return alert("parsing [\(file):\(lineNumber)]: 'refresh' needs a positive interval in seconds.")
            }
            guard let ms = try? Units.milliseconds(argument) else {
                let bad = argument.first { !$0.isNumber } ?? " "
                return alert("parsing [\(file):\(lineNumber)]: unexpected character '\(bad)' in argument to stats refresh interval.")
            }
            stats.refreshSeconds = Int(ms / 1000)
        case "scope":
            guard let argument, !argument.isEmpty else { return parsingAlert("'scope' needs a proxy name.") }
            stats.scopes.append(argument)
        case "hide-version":
            stats.hideVersion = true
        case "show-legends":
            stats.showLegends = true
        case "show-modules":
            stats.showModules = true
        case "show-node":
            stats.showNode = .some(argument)
        case "show-desc":
            stats.showDescription = .some(w.count > 2 ? w[2...].joined(separator: " ") : nil)
        case "admin":
            guard w.count >= 4, w[2] == "if" || w[2] == "unless" else {
                return parsingAlert("'stats admin' requires either 'if' or 'unless' followed by a condition.")
            }
            guard let parsed = compileCondition(w[2...], p, stage: .httpRequest, what: "a 'stats admin' condition"),
                  let condition = parsed else { return }
            stats.adminConditions.append(condition)
        case "http-request":
            guard let rule = parseStatsRule(w, p) else { return }
            stats.httpRequest.append(rule)
        default:
            alert("parsing [\(file):\(lineNumber)]: unknown stats parameter '\(sub)', \(Self.statsExpectation)")
            return
        }
        p.stats = stats
        p.statsDeclaredHere = true
    }

    /// `stats http-request <action> [if|unless <cond>]`: HAProxy takes every `http-request`
    /// action there (`allow`, `deny` and `auth` are the ones documented).
    private mutating func parseStatsRule(_ w: [String], _ p: ProxySettings) -> HTTPRule? {
        let names = Self.httpActionNames.filter { $0.stages.contains(.httpRequest) }.map(\.name)
        let verb = w.count > 2 ? w[2] : ""
        let base = verb.firstIndex(of: "(").map { String(verb[..<$0]) + "(*)" } ?? verb
        guard names.contains(base) else {
            let expected = names.map { "'\($0)'" }.joined(separator: ", ")
            alert("parsing [\(file):\(lineNumber)]: 'http-request' expects \(expected), but got '\(verb)'\(verb.isEmpty ? " (missing argument)" : "").")
            return nil
        }
        let (actionWords, conditionWords) = Self.splitCondition(w, from: 2)
        let prefix = "error detected in \(p.kind == .listen ? "proxy" : p.kind.rawValue) '\(p.name)' while parsing 'http-request \(verb)' rule : "
        guard let action = parseHTTPAction(actionWords, stage: .httpRequest, prefix: prefix, p) else { return nil }
        guard let condition = compileCondition(conditionWords, p, stage: .httpRequest, what: "an 'http-request \(verb)' condition") else {
            return nil
        }
        return HTTPRule(action: action, condition: condition, location: here)
    }

    /// Checks made once the sections are read.
    mutating func checkStatsPages() {
        for proxy in config.proxies where proxy.kind != .defaults {
            guard let stats = proxy.stats else { continue }
            if proxy.mode != .http {
                warn("'stats' statement ignored for proxy '\(proxy.name)' as it requires HTTP mode.")
                continue
            }
            if proxy.statsDeclaredHere, !stats.httpRequest.isEmpty, stats.requiresAuthentication || stats.realm != nil {
                alert("\(proxy.kind == .listen ? "proxy" : proxy.kind.rawValue) '\(proxy.name)': stats 'auth'/'realm' and 'http-request' can't be used at the same time.")
            }
        }
    }
}
