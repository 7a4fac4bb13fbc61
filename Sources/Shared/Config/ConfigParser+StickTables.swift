/// `stick-table`, `peers` sections with their `table` lines, the `track-sc*`/`sc-*` actions,
/// and the checks of table references once every table is declared.
extension ConfigParser {
    // MARK: - stick-table

    /// `stick-table type ... size ... [expire <t>] [nopurge] [peers <p>] [srvkey name|addr]
    /// [store <data>,...]`: the arguments from `w[start]`, HAProxy's messages.
    mutating func parseStickTable(_ w: [String], from start: Int, name: String, peersSection: String?) -> StickTableDefinition? {
        let keyword = w[0]
        var keyType: StickKeyType?
        var size: Int?
        var table = StickTableDefinition(name: name, keyType: .ipv4, size: 0, location: here)
        var seen: Set<StickDataKind> = []
        var i = start
        func argument() -> String? { i + 1 < w.count ? w[i + 1] : nil }
        while i < w.count {
            let word = w[i]
            switch word {
            case "size":
                guard let text = argument() else { parsingAlert("\(keyword): missing argument after 'size'."); return nil }
                guard let n = Units.size(text) else {
                    let bad = text.first { !$0.isNumber } ?? text.first ?? " "
                    parsingAlert("\(keyword): unexpected character '\(bad)' in argument of 'size'.")
                    return nil
                }
                size = n
                i += 2
            case "peers" where peersSection == nil:
                guard let text = argument() else { parsingAlert("\(keyword): missing argument after 'peers'."); return nil }
                table.peers = text
                i += 2
            case "expire":
                guard let text = argument() else { parsingAlert("\(keyword): missing argument after 'expire'."); return nil }
                do {
                    table.expire = try Units.milliseconds(text)
                } catch .overflow {
                    alert("parsing [\(file):\(lineNumber)]: \(keyword): timer overflow in argument <\(text)> to <expire>, maximum value is 2147483647 ms (~24.8 days).")
                    return nil
                } catch {
                    let bad: Character
                    if case .unexpectedCharacter(let c) = error { bad = c } else { bad = " " }
                    parsingAlert("\(keyword): unexpected character '\(bad)' in argument of 'expire'.")
                    return nil
                }
                i += 2
            case "nopurge":
                table.noPurge = true
                i += 1
            case "type":
                guard let text = argument() else { parsingAlert("\(keyword): missing argument after 'type'."); return nil }
                i += 2
                switch text {
                case "ip", "ipv4": keyType = .ipv4
                case "ipv6": keyType = .ipv6
                case "integer": keyType = .integer
                case "string", "binary":
                    // HAProxy's default key area is 32 bytes; a string needs one for its NUL.
                    var length = text == "string" ? 31 : 32
                    if i < w.count, w[i] == "len" {
                        guard i + 1 < w.count, let n = Int(w[i + 1]), n > 0 else {
                            parsingAlert("\(keyword): unknown type '\(i + 1 < w.count ? w[i + 1] : "")'.")
                            return nil
                        }
                        length = n
                        i += 2
                    }
                    keyType = text == "string" ? .string(length: length) : .binary(length: length)
                default:
                    parsingAlert("\(keyword): unknown type '\(text)'.")
                    return nil
                }
            case "store":
                guard let text = argument() else { parsingAlert("\(keyword): missing argument after 'store'."); return nil }
                i += 2
                for item in Self.splitStoreList(text) {
                    guard let stored = parseStoredData(item, keyword: keyword) else { return nil }
                    if seen.contains(stored.kind) {
                        warn("parsing [\(file):\(lineNumber)]: \(keyword): store option '\(stored.kind.name)' already enabled, ignored.")
                        continue
                    }
                    seen.insert(stored.kind)
                    table.stored.append(stored)
                }
                if seen.contains(.gpt), seen.contains(.gpt0) {
                    parsingAlert("\(keyword): simultaneous usage of 'gpt' and 'gpt0' in a same table is not permitted as 'gpt' overrides 'gpt0'.")
                    return nil
                }
                if seen.contains(.gpc), seen.contains(.gpc0) || seen.contains(.gpc1) {
                    parsingAlert("\(keyword): simultaneous usage of 'gpc' and 'gpc[0/1]' in a same table is not permitted as 'gpc' overrides 'gpc[0/1]'.")
                    return nil
                }
                if seen.contains(.gpcRate), seen.contains(.gpc0Rate) || seen.contains(.gpc1Rate) {
                    parsingAlert("\(keyword): simultaneous usage of 'gpc_rate' and 'gpc[0/1]_rate' in a same table is not permitted as 'gpc_rate' overrides 'gpc[0/1]_rate'.")
                    return nil
                }
            case "srvkey":
                guard let text = argument() else { parsingAlert("\(keyword): missing argument after 'srvkey'."); return nil }
                guard text == "name" || text == "addr" else {
                    parsingAlert("\(keyword) : unknown server key type '\(text)'.")
                    return nil
                }
                table.serverKeyByAddress = text == "addr"
                i += 2
            default:
                parsingAlert("\(keyword): unknown argument '\(word)'.")
                return nil
            }
        }
        guard let size, size > 0 else { parsingAlert("\(keyword): missing size."); return nil }
        guard let keyType else { parsingAlert("\(keyword): missing type."); return nil }
        table.size = size
        table.keyType = keyType
        table.stored.sort { $0.kind < $1.kind }
        return table
    }

    /// `a,b(10s),gpc(3)`: commas inside parentheses do not split.
    static func splitStoreList(_ text: String) -> [String] {
        var items: [String] = []
        var current = ""
        var depth = 0
        for c in text {
            if c == "(" { depth += 1 } else if c == ")" { depth -= 1 }
            if c == ",", depth == 0 {
                items.append(current)
                current = ""
            } else {
                current.append(c)
            }
        }
        items.append(current)
        return items
    }

    /// One `store` item: `name`, `name(period)`, `name(count)` or `name(count,period)`.
    mutating func parseStoredData(_ item: String, keyword: String) -> StickStoredData? {
        var name = item
        var arguments: [String]? = nil
        if let open = item.firstIndex(of: "(") {
            name = String(item[..<open])
            guard item.hasSuffix(")") else {
                parsingAlert("\(keyword): missing closing parenthesis after store option '\(name)'.")
                return nil
            }
            arguments = item[item.index(after: open)..<item.index(before: item.endIndex)]
                .split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        }
        guard let kind = StickDataKind(name: name) else {
            parsingAlert("\(keyword): unknown store option '\(name)'.")
            return nil
        }
        var stored = StickStoredData(kind: kind)
        var args = arguments ?? []
        if kind.isArray {
            guard let first = args.first else {
                parsingAlert("\(keyword): missing argument to store option '\(name)'.")
                return nil
            }
            guard let n = Int(first), n >= 1, n <= 100 else {
                parsingAlert("\(keyword): array size is out of allowed range (1-100) for store option '\(name)'.")
                return nil
            }
            stored.count = n
            args.removeFirst()
        }
        if kind.isRate {
            guard args.count == 1, let period = try? Units.milliseconds(args[0]), period > 0 else {
                parsingAlert("\(keyword): missing argument to store option '\(name)'.")
                return nil
            }
            stored.period = period
        } else if !args.isEmpty {
            parsingAlert("\(keyword): unexpected argument to store option '\(name)'.")
            return nil
        }
        return stored
    }

    /// `stick-table` in a frontend, backend or listen section (one per proxy, named after it).
    mutating func parseProxyStickTable(_ w: [String], _ p: inout ProxySettings) {
        guard p.kind != .defaults else {
            parsingAlert("'stick-table' is not supported in 'defaults' section.")
            return
        }
        if let existing = p.stickTable {
            parsingAlert("stick-table name '\(p.name)' conflicts with table declared in \(p.kind == .listen ? "proxy" : p.kind.rawValue) '\(p.name)' at \(existing.location).")
            return
        }
        guard let table = parseStickTable(w, from: 1, name: p.name, peersSection: nil) else { return }
        p.stickTable = table
    }

    // MARK: - peers sections

    mutating func parsePeersLine(_ w: [String], _ section: inout PeersSettings) {
        let keyword = w[0]
        switch keyword {
        case "peer", "server":
            guard w.count >= 2 else {
                parsingAlert("'\(keyword)' expects <name> and <addr>[:<port>] as arguments.")
                return
            }
            let isLocal = w[1] == config.localPeer
            if keyword == "peer", section.bind != nil {
                parsingAlert("mixing \"peer\" and \"bind\" line is forbidden")
                return
            }
            if keyword == "server", isLocal, w.count >= 3 {
                alert("[\(file):\(lineNumber)] : 'server \(section.name)/\(w[1])' : unknown keyword '\(w[2])'. Hint: no address was expected for this server.")
                return
            }
            if isLocal, let existing = section.peers.first(where: { $0.name == w[1] }) {
                parsingAlert("'\(keyword) \(w[1])' : local peer name already referenced at \(existing.location). \(w[1])")
                return
            }
            var peer = PeerSettings(name: w[1], address: w.count >= 3 ? w[2] : nil, location: here)
            peer.viaServerKeyword = keyword == "server"
            section.hasLocalPeer = section.hasLocalPeer || isLocal
            section.peers.append(peer)
        case "bind":
            guard w.count >= 2 else { parsingAlert("'bind' expects <addr>:<port> as argument."); return }
            if section.peers.contains(where: { !$0.viaServerKeyword }) {
                parsingAlert("mixing \"peer\" and \"bind\" line is forbidden")
                return
            }
            section.bind = w[1]
        case "table":
            guard w.count >= 2 else { parsingAlert("table: ID not provided."); return }
            let name = section.name + "/" + w[1]
            if let existing = section.tables.first(where: { $0.name == name }) {
                parsingAlert("stick-table name '\(w[1])' conflicts with table declared in peers '\(section.name)' at \(existing.location).")
                return
            }
            guard var table = parseStickTable(w, from: 2, name: name, peersSection: section.name) else { return }
            table.peers = section.name
            section.tables.append(table)
        case "disabled":
            section.disabled = true
        case "enabled":
            section.disabled = false
        case "shards":
            guard w.count >= 2, let n = Int(w[1]), n >= 0 else { parsingAlert("'shards' expects a positive integer argument."); return }
            section.shards = n
        case "default-server", "default-bind", "log":
            // Accepted: Hasp's peers use plain TCP with defaults of their own.
            break
        default:
            parsingAlert("unknown keyword '\(keyword)' in 'peers' section")
        }
    }

    // MARK: - Actions

    /// `track-sc<N> <key> [table <t>]` and the `sc-*` actions; nil (after an alert) when
    /// malformed, or when `verb` is not one of them (`handled` false).
    mutating func parseStickAction(_ verb: String, _ args: [String], stage: RuleStage, prefix: String,
                                   _ p: ProxySettings) -> (handled: Bool, action: StickRuleAction?) {
        if verb.hasPrefix("track-sc") {
            let digits = verb.dropFirst("track-sc".count)
            guard let number = Int(digits), number >= 0 else {
                parsingAlert(prefix + "unknown track-sc number '\(digits)'.")
                return (true, nil)
            }
            guard number < StickCounters.defaultCount else {
                parsingAlert(prefix + "\(number) track-sc number exceeding \(StickCounters.defaultCount - 1) (MAX_SESS_STKCTR-1) value.")
                return (true, nil)
            }
            guard let keyText = args.first else {
                parsingAlert(prefix + "missing key.")
                return (true, nil)
            }
            guard let key = compileSample(keyText, stage: stage, context: prefix) else { return (true, nil) }
            var table = p.name
            if args.count > 1 {
                guard args[1] == "table", args.count == 3 else {
                    parsingAlert(prefix + (args[1] == "table" ? "missing table name after 'table'." : "unexpected argument '\(args[1])'."))
                    return (true, nil)
                }
                table = args[2]
            }
            tableReferences.add(.init(table: table, proxy: p.name, location: here, user: "", trackCounter: number))
            return (true, .track(StickTrackAction(counter: number, key: key, table: table)))
        }
        guard verb.hasPrefix("sc-") else { return (false, nil) }
        // sc-inc-gpc0(N), sc-inc-gpc1(N), sc-inc-gpc(idx,N), sc-add-gpc(idx,N), sc-set-gpt0(N), sc-set-gpt(idx,N)
        guard let open = verb.firstIndex(of: "("), verb.hasSuffix(")") else {
            parsingAlert(prefix + "missing stick counter number in '\(verb)'.")
            return (true, nil)
        }
        let name = String(verb[..<open])
        let inner = verb[verb.index(after: open)..<verb.index(before: verb.endIndex)].split(separator: ",").map(String.init)
        let kinds: [String: (StickDataKind, indexed: Bool)] = [
            "sc-inc-gpc0": (.gpc0, false), "sc-inc-gpc1": (.gpc1, false), "sc-inc-gpc": (.gpc, true),
            "sc-add-gpc": (.gpc, true), "sc-set-gpt0": (.gpt0, false), "sc-set-gpt": (.gpt, true),
        ]
        guard let (kind, indexed) = kinds[name] else { return (false, nil) }
        guard inner.count == (indexed ? 2 : 1), let counter = Int(inner.last!), inner.allSatisfy({ Int($0) != nil }) else {
            parsingAlert(prefix + "invalid stick counter reference in '\(verb)'.")
            return (true, nil)
        }
        guard counter >= 0, counter < StickCounters.defaultCount else {
            parsingAlert(prefix + "invalid stick table track ID '\(counter)'. The max allowed ID is \(StickCounters.defaultCount - 1).")
            return (true, nil)
        }
        let index = indexed ? Int(inner[0])! : 0
        if indexed, index < 0 || index >= 100 {
            parsingAlert(prefix + "invalid array index '\(index)'. The max allowed index is 99.")
            return (true, nil)
        }
        let operation: StickCounterAction.Operation
        if name.hasPrefix("sc-inc-") {
            guard args.isEmpty else { parsingAlert(prefix + "unexpected argument '\(args[0])'."); return (true, nil) }
            operation = .increment
        } else {
            guard let text = args.first else { parsingAlert(prefix + "expects an integer or a sample expression."); return (true, nil) }
            let e: SampleExpression?
            if let n = Int64(text) {
                e = try? SampleExpressionParser.parse("int(\(n))", context: ruleContext)
            } else {
                e = compileSample(text, stage: stage, context: prefix)
            }
            guard let e else { return (true, nil) }
            operation = name.hasPrefix("sc-add-") ? .add(e) : .set(e)
        }
        return (true, .counter(StickCounterAction(counter: counter, kind: kind, index: index, operation: operation)))
    }

    // MARK: - stick rules

    /// `stick match|on|store-request|store-response <pattern> [table <t>] [if|unless <cond>]`.
    mutating func parseStickRule(_ w: [String], _ p: inout ProxySettings) {
        guard p.kind != .defaults else {
            parsingAlert("'stick' not allowed in 'defaults' section.")
            return
        }
        guard hasCapability(.backend, for: "stick", in: p) else { return }
        guard w.count >= 2, let kind = StickRule.Kind(rawValue: w[1]) else {
            parsingAlert("'stick' expects 'on', 'match', or 'store'.")
            return
        }
        let (words, conditionWords) = Self.splitCondition(w, from: 2)
        guard let patternText = words.first else {
            parsingAlert("'stick \(kind.rawValue)' expects a fetch method.")
            return
        }
        var table = p.name
        if words.count > 1 {
            guard words[1] == "table", words.count == 3 else {
                parsingAlert("'stick \(kind.rawValue)' : unknown argument '\(words[1])'.")
                return
            }
            table = words[2]
        }
        let stage: RuleStage = kind == .storeResponse ? .httpResponse : .httpRequest
        let prefix = "'stick \(kind.rawValue)' : "
        guard let pattern = compileSample(patternText, stage: stage, context: prefix) else { return }
        guard let condition = compileCondition(conditionWords, p, stage: stage, what: "'stick \(kind.rawValue)' condition",
                                               check: .warnNaming(place: kind == .storeResponse ? "backend stick-store rule"
                                                   : "backend use-server, balance or stick-match rule")) else { return }
        p.rules.stickRules.append(StickRule(kind: kind, pattern: pattern, table: table, condition: condition, location: here))
    }

    // MARK: - Checks

    /// Every table a rule names exists, every `peers` a table names too.
    mutating func checkStickTables() {
        var known: Set<String> = []
        for proxy in config.proxies { if let t = proxy.stickTable { known.insert(t.name) } }
        for section in config.peers.values { for t in section.tables { known.insert(t.name) } }
        for reference in tableReferences.all where !known.contains(reference.table) {
            if let number = reference.trackCounter {
                alert("Proxy '\(reference.proxy)': unable to find table '\(reference.table)' referenced by track-sc\(number).")
            } else {
                let at = reference.location.map { "parsing [\($0)]: " } ?? ""
                alert("\(at)unable to find table '\(reference.table)' referenced in \(reference.user) in proxy '\(reference.proxy)'.")
            }
        }
        // Tables that stick rules use store the server (`server_id`, `server_key`), as in HAProxy.
        var persistenceTables: Set<String> = []
        for proxy in config.proxies {
            for rule in proxy.rules.stickRules {
                guard known.contains(rule.table) else {
                    alert("Proxy '\(proxy.name)': unable to find stick-table '\(rule.table)'.")
                    continue
                }
                persistenceTables.insert(rule.table)
            }
        }
        func addServerData(_ table: inout StickTableDefinition) {
            guard persistenceTables.contains(table.name) else { return }
            for kind in [StickDataKind.serverID, .serverKey] where table.stored(kind) == nil {
                table.stored.append(StickStoredData(kind: kind))
            }
            table.stored.sort { $0.kind < $1.kind }
        }
        for index in config.proxies.indices where config.proxies[index].stickTable != nil {
            addServerData(&config.proxies[index].stickTable!)
        }
        for name in config.peers.keys {
            for index in config.peers[name]!.tables.indices { addServerData(&config.peers[name]!.tables[index]) }
        }
        for section in config.peers.values.sorted(by: { $0.location.line < $1.location.line }) where !section.hasLocalPeer {
            warn("Removing incomplete section 'peers \(section.name)' (no peer named '\(config.localPeer)').")
        }
        for proxy in config.proxies {
            if let peers = proxy.stickTable?.peers, config.peers[peers] == nil {
                alert("Proxy '\(proxy.name)': unable to find sync peers '\(peers)'.")
            }
        }
    }
}

/// What a `track-sc`/`sc-*` word parses to.
public enum StickRuleAction: Sendable {
    case track(StickTrackAction)
    case counter(StickCounterAction)
}
