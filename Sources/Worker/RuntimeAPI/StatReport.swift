import NIOCore
import Shared

/// Which objects `show stat [<proxy> <type> <sid>]` covers.
struct StatScope {
    var proxy: String? = nil
    /// Bit mask: 1 frontends, 2 backends, 4 servers.
    var types = 7
    var serverID = -1

    static func parse(_ words: [String], runtime: WorkerRuntime) -> StatScope? {
        var words = words
        if words.first == "domain" {
            guard words.count >= 2, words[1] == "proxy" else { return nil }
            words.removeFirst(2)
        }
        var scope = StatScope()
        guard !words.isEmpty else { return scope }
        guard words.count >= 3, let types = Int(words[1]), let sid = Int(words[2]) else { return nil }
        scope.types = types < 0 ? 7 : types
        scope.serverID = sid
        if words[0] != "-1" {
            let exists = runtime.configuration.proxies.contains { p in
                p.name == words[0] || (Int(words[0]).map { $0 == p.id } ?? false)
            }
            guard exists else { return nil }
            scope.proxy = words[0]
        }
        return scope
    }

    func includes(_ proxy: ProxySettings) -> Bool {
        guard let name = self.proxy else { return true }
        return proxy.name == name || Int(name) == proxy.id
    }
}

/// `show stat`: one row per frontend, server and backend, HAProxy's 119 columns in CSV, typed
/// or JSON form. Columns Hasp has no value for stay empty, never shifted.
struct StatReport {
    let api: RuntimeAPI
    /// Every server's per-loop pool counts, read with one hop per event loop rather than one
    /// per server and loop (thousands of servers would otherwise take seconds).
    private let pools: [ObjectIdentifier: [ServerConnectionPool.Snapshot]]

    /// `withServers`: whether server rows will be asked for (their pool counts are read first).
    init(api: RuntimeAPI, withServers: Bool = true) {
        self.api = api
        pools = withServers ? api.poolSnapshots(of: api.runtime.backends.values.flatMap(\.servers)) : [:]
    }

    static let columns: [(name: String, tags: String, kind: TypedValue.Kind)] = [
        ("pxname", "KNS", .str), ("svname", "KNS", .str), ("qcur", "MGP", .u32), ("qmax", "MMP", .u32),
        ("scur", "MGP", .u32), ("smax", "MMP", .u32), ("slim", "CLP", .u32), ("stot", "MCP", .u64),
        ("bin", "MCP", .u64), ("bout", "MCP", .u64), ("dreq", "MCP", .u64), ("dresp", "MCP", .u64),
        ("ereq", "MCP", .u64), ("econ", "MCP", .u64), ("eresp", "MCP", .u64), ("wretr", "MCP", .u64),
        ("wredis", "MCP", .u64), ("status", "SGP", .str), ("weight", "MaP", .u32), ("act", "MGP", .u32),
        ("bck", "MGP", .u32), ("chkfail", "MCP", .u64), ("chkdown", "MCP", .u64), ("lastchg", "MAP", .u32),
        ("downtime", "MCP", .u32), ("qlimit", "CLP", .u32), ("pid", "KGP", .u32), ("iid", "KGS", .u32),
        ("sid", "KGS", .u32), ("throttle", "MGP", .u32), ("lbtot", "MCP", .u64), ("tracked", "CGS", .str),
        ("type", "CGS", .u32), ("rate", "MRP", .u32), ("rate_lim", "CLP", .u32), ("rate_max", "MMP", .u32),
        ("check_status", "MOP", .str), ("check_code", "MOP", .u32), ("check_duration", "MDP", .u64),
        ("hrsp_1xx", "MCP", .u64), ("hrsp_2xx", "MCP", .u64), ("hrsp_3xx", "MCP", .u64), ("hrsp_4xx", "MCP", .u64),
        ("hrsp_5xx", "MCP", .u64), ("hrsp_other", "MCP", .u64), ("hanafail", "MCP", .u64), ("req_rate", "MRP", .u32),
        ("req_rate_max", "MMP", .u32), ("req_tot", "MCP", .u64), ("cli_abrt", "MCP", .u64), ("srv_abrt", "MCP", .u64),
        ("comp_in", "MCP", .u64), ("comp_out", "MCP", .u64), ("comp_byp", "MCP", .u64), ("comp_rsp", "MCP", .u64),
        ("lastsess", "MAP", .s32), ("last_chk", "MOP", .str), ("last_agt", "MOP", .str), ("qtime", "MaP", .u32),
        ("ctime", "MaP", .u32), ("rtime", "MaP", .u32), ("ttime", "MaP", .u32), ("agent_status", "MOP", .str),
        ("agent_code", "MOP", .u32), ("agent_duration", "MDP", .u64), ("check_desc", "MOP", .str), ("agent_desc", "MOP", .str),
        ("check_rise", "CGS", .u32), ("check_fall", "CGS", .u32), ("check_health", "CGS", .u32), ("agent_rise", "MaS", .u32),
        ("agent_fall", "MaS", .u32), ("agent_health", "MaS", .u32), ("addr", "CGS", .str), ("cookie", "CGS", .str),
        ("mode", "CGS", .str), ("algo", "CGS", .str), ("conn_rate", "MRP", .u32), ("conn_rate_max", "MMP", .u32),
        ("conn_tot", "MCP", .u64), ("intercepted", "MCP", .u64), ("dcon", "MCP", .u64), ("dses", "MCP", .u64),
        ("wrew", "MCP", .u64), ("connect", "MCP", .u64), ("reuse", "MCP", .u64), ("cache_lookups", "MCP", .u64),
        ("cache_hits", "MCP", .u64), ("srv_icur", "MGP", .u32), ("src_ilim", "MGP", .u32), ("qtime_max", "MMP", .u32),
        ("ctime_max", "MMP", .u32), ("rtime_max", "MMP", .u32), ("ttime_max", "MMP", .u32), ("eint", "MCP", .u64),
        ("idle_conn_cur", "MGP", .u32), ("safe_conn_cur", "MGP", .u32), ("used_conn_cur", "MGP", .u32),
        ("need_conn_est", "MGP", .u32), ("uweight", "MaP", .u32), ("agg_server_status", "MGP", .u32),
        ("agg_server_check_status", "MGP", .u32), ("agg_check_status", "MGP", .u32), ("srid", "MGP", .u32),
        ("sess_other", "MCP", .u64), ("h1sess", "MCP", .u64), ("h2sess", "MCP", .u64), ("h3sess", "MCP", .u64),
        ("req_other", "MCP", .u64), ("h1req", "MCP", .u64), ("h2req", "MCP", .u64), ("h3req", "MCP", .u64),
        ("proto", "CGS", .str), ("priv_idle_cur", "MGP", .u32), ("reqbin", "MCP", .u64), ("reqbout", "MCP", .u64),
        ("resbin", "MCP", .u64), ("resbout", "MCP", .u64), ("cache_hint_hits", "MCP", .u64),
    ]

    static let index: [String: Int] = Dictionary(uniqueKeysWithValues: columns.enumerated().map { ($1.name, $0) })

    static var csvHeader: String {
        "# " + columns.map { $0.name + "," }.joined() + "-,\n"
    }

    /// One object's values by column name.
    struct Row {
        enum Object: String { case frontend = "F", backend = "B", server = "S" }
        var object: Object
        var proxyID: Int
        var id: Int
        var values: [String] = Array(repeating: "", count: StatReport.columns.count)

        subscript(_ name: String) -> String {
            get { values[StatReport.index[name]!] }
            set { values[StatReport.index[name]!] = newValue }
        }

        mutating func set(_ pairs: [(String, Int)]) {
            for (name, value) in pairs { self[name] = String(value) }
        }
    }

    func render(_ scope: StatScope, _ format: ReportFormat) -> String {
        render(collect(scope, format), style: format.style)
    }

    /// `show stat`: the report and its rows, the servers' pool counts read only when server
    /// rows are asked for.
    static func show(_ api: RuntimeAPI, _ scope: StatScope, _ format: ReportFormat) -> String {
        StatReport(api: api, withServers: scope.types & 4 != 0).render(scope, format)
    }

    func render(_ rows: [Row], style: ReportFormat.Style) -> String {
        switch style {
        case .plain:
            var out = Self.csvHeader
            out.reserveCapacity(out.utf8.count + rows.count * 320)
            for row in rows {
                for value in row.values {
                    out += Self.csvField(value)
                    out += ","
                }
                out += "-,\n"
            }
            return out
        case .typed:
            return rows.map { row in
                row.values.enumerated().compactMap { pos, value -> String? in
                    guard !value.isEmpty else { return nil }
                    let c = Self.columns[pos]
                    let field = TypedValue(position: pos, name: c.name, tags: c.tags, kind: c.kind, text: value)
                    return "\(row.object.rawValue).\(row.proxyID).\(row.id).\(pos).\(c.name).1:\(field.typedTags):\(field.typedValue)\n"
                }.joined() + "\n"
            }.joined()
        case .json:
            let objects = rows.map { row -> String in
                let type = ["F": "Frontend", "B": "Backend", "S": "Server"][row.object.rawValue]!
                let prefix = "\"objType\":\"\(type)\",\"proxyId\":\(row.proxyID),\"id\":\(row.id),"
                let fields = row.values.enumerated().compactMap { pos, value -> String? in
                    guard !value.isEmpty else { return nil }
                    let c = Self.columns[pos]
                    return TypedValue(position: pos, name: c.name, tags: c.tags, kind: c.kind, text: value).json(prefix: prefix)
                }
                return "[" + fields.joined(separator: ",") + "]"
            }
            return "[" + objects.joined(separator: ",") + "]\n"
        }
    }

    /// A JSON Schema of the `json` output (`;json-schema` on the statistics page).
    static let jsonSchema = """
    {"$schema":"http://json-schema.org/draft-04/schema#","title":"Hasp statistics","description":"The statistics of \
    show stat json: an array of objects (frontends, backends, servers), each an array of typed fields.","type":"array",\
    "items":{"type":"array","items":{"type":"object","required":["objType","proxyId","id","field","processNum","tags","value"],\
    "properties":{"objType":{"enum":["Frontend","Backend","Server","Listener"]},"proxyId":{"type":"integer","minimum":0},\
    "id":{"type":"integer","minimum":0},"field":{"type":"object","required":["pos","name"],"properties":{"pos":\
    {"type":"integer","minimum":0},"name":{"type":"string"}}},"processNum":{"type":"integer","minimum":1},"tags":{"type":\
    "object","required":["origin","nature","scope"],"properties":{"origin":{"enum":["Metric","Status","Key","Config",\
    "Product","Unknown"]},"nature":{"enum":["Gauge","Limit","Min","Max","Rate","Counter","Duration","Age","Time","Name",\
    "Output","Avg","Unknown"]},"scope":{"enum":["Cluster","Process","Service","System","Unknown"]}}},"value":{"type":\
    "object","required":["type","value"],"properties":{"type":{"enum":["s32","s64","u32","u64","str"]},"value":{}}}}}}}

    """

    /// Quoted only when it holds a comma or a double quote.
    static func csvField(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 == 44 || $0 == 34 }) else { return s }
        return "\"" + s.replacingAll("\"", with: "\"\"") + "\""
    }

    /// The rows of the proxies in `scope`, in configuration order.
    func collect(_ scope: StatScope, _ format: ReportFormat) -> [Row] {
        let runtime = api.runtime
        var rows: [Row] = []
        for proxy in runtime.configuration.proxies where scope.includes(proxy) {
            if scope.types & 1 != 0, let frontend = runtime.frontends.first(where: { $0.settings.id == proxy.id }) {
                rows.append(frontendRow(frontend))
            }
            guard let backend = runtime.backends[proxy.name], backend.settings.id == proxy.id else { continue }
            if scope.types & 4 != 0 {
                for server in backend.servers where scope.serverID < 0 || scope.serverID == server.id {
                    if format.noMaint && server.adminState.inMaintenance { continue }
                    if format.upOnly && !server.isUsable { continue }
                    rows.append(serverRow(server, backend))
                }
            }
            if scope.types & 2 != 0 { rows.append(backendRow(backend)) }
        }
        return rows
    }

    private func common(_ row: inout Row, _ counters: ProxyCounters, mode: ProxyMode) {
        row.set([("bin", counters.bytesIn.load(ordering: .relaxed)), ("bout", counters.bytesOut.load(ordering: .relaxed)),
                 ("pid", 1)])
        row["mode"] = mode.rawValue
        if mode == .http {
            row.set([("hrsp_1xx", counters.response(0)), ("hrsp_2xx", counters.response(1)), ("hrsp_3xx", counters.response(2)),
                     ("hrsp_4xx", counters.response(3)), ("hrsp_5xx", counters.response(4)), ("hrsp_other", counters.response(5))])
        }
    }

    func frontendRow(_ f: Frontend) -> Row {
        var row = Row(object: .frontend, proxyID: f.settings.id, id: 0)
        let c = f.counters
        row["pxname"] = f.name
        row["svname"] = "FRONTEND"
        common(&row, c, mode: f.settings.mode)
        let limit = f.gate.limit > 0 ? f.gate.limit : (api.runtime.globalGate.limit > 0 ? api.runtime.globalGate.limit : 0)
        row.set([("scur", f.currentSessions.load(ordering: .relaxed)), ("smax", c.maxSessions.load(ordering: .relaxed)),
                 ("slim", limit), ("stot", f.totalSessions.load(ordering: .relaxed)),
                 ("dreq", c.deniedRequests.load(ordering: .relaxed)), ("dresp", 0), ("ereq", c.requestErrors.load(ordering: .relaxed)),
                 ("iid", f.settings.id), ("sid", 0), ("type", 0),
                 ("rate", c.sessionRate.perSecond()), ("rate_lim", 0), ("rate_max", c.sessionRate.maximum()),
                 ("comp_in", 0), ("comp_out", 0), ("comp_byp", 0), ("comp_rsp", 0),
                 ("conn_rate", c.sessionRate.perSecond()), ("conn_rate_max", c.sessionRate.maximum()),
                 ("conn_tot", f.totalSessions.load(ordering: .relaxed)), ("intercepted", 0), ("dcon", 0), ("dses", 0),
                 ("wrew", 0), ("cache_lookups", 0), ("cache_hits", 0), ("eint", 0)])
        row["status"] = f.isShutDown || api.runtime.isStopping ? "STOP" : (f.gate.isDisabled ? "PAUSED" : "OPEN")
        if f.settings.mode == .http {
            row.set([("req_rate", c.requestRate.perSecond()), ("req_rate_max", c.requestRate.maximum()),
                     ("req_tot", c.requests.load(ordering: .relaxed)), ("h1sess", f.totalSessions.load(ordering: .relaxed)),
                     ("h1req", c.requests.load(ordering: .relaxed)), ("sess_other", 0), ("h2sess", 0), ("h3sess", 0),
                     ("req_other", 0), ("h2req", 0), ("h3req", 0)])
        }
        row["proto"] = ""
        return row
    }

    func serverRow(_ s: Server, _ b: Backend) -> Row {
        // Per-loop pool counts, read on each loop.
        let pools = self.pools[ObjectIdentifier(s)] ?? api.poolSnapshots(s)
        var row = Row(object: .server, proxyID: b.settings.id, id: s.id)
        let c = s.counters
        row["pxname"] = b.name
        row["svname"] = s.name
        common(&row, c, mode: b.settings.mode)
        let last = c.lastSession.load(ordering: .relaxed)
        row.set([("qcur", 0), ("qmax", 0), ("scur", s.currentServed), ("smax", s.maxServed.load(ordering: .relaxed)),
                 ("stot", s.totalSessions.load(ordering: .relaxed)), ("dresp", 0),
                 ("econ", s.connectionErrors.load(ordering: .relaxed)), ("eresp", c.responseErrors.load(ordering: .relaxed)),
                 ("wretr", c.retries.load(ordering: .relaxed)), ("wredis", c.redispatches.load(ordering: .relaxed)),
                 ("weight", s.effectiveWeight), ("act", s.isBackup ? 0 : 1), ("bck", s.isBackup ? 1 : 0),
                 ("lastchg", max(0, WallClock.seconds() - s.lastChange.load(ordering: .relaxed))), ("iid", b.settings.id), ("sid", s.id),
                 ("lbtot", s.totalSessions.load(ordering: .relaxed)), ("type", 2),
                 ("rate", c.sessionRate.perSecond()), ("rate_max", c.sessionRate.maximum()),
                 ("cli_abrt", c.clientAborts.load(ordering: .relaxed)), ("srv_abrt", c.serverAborts.load(ordering: .relaxed)),
                 ("lastsess", last == 0 ? -1 : max(0, WallClock.seconds() - last)),
                 ("qtime", 0), ("ctime", 0), ("rtime", 0), ("ttime", 0),
                 ("wrew", 0), ("connect", s.connectAttempts.load(ordering: .relaxed)), ("reuse", s.reuses.load(ordering: .relaxed)),
                 ("srv_icur", s.currentIdle), ("qtime_max", 0), ("ctime_max", 0), ("rtime_max", 0), ("ttime_max", 0), ("eint", 0),
                 ("idle_conn_cur", pools.reduce(0) { $0 + $1.unsafe }), ("safe_conn_cur", pools.reduce(0) { $0 + $1.safe }),
                 ("used_conn_cur", pools.reduce(0) { $0 + $1.used }), ("need_conn_est", pools.reduce(0) { $0 + $1.needEstimate }),
                 ("uweight", s.weight), ("agg_server_status", 0), ("agg_server_check_status", 0),
                 ("agg_check_status", 0), ("srid", 0),
                 ("priv_idle_cur", s.sessionIdleConnections.load(ordering: .relaxed))])
        if s.settings.poolMaxConn >= 0 { row["src_ilim"] = String(s.settings.poolMaxConn) }
        if s.maxconn > 0 { row["slim"] = String(s.maxconn) }
        if s.settings.maxqueue > 0 { row["qlimit"] = String(s.settings.maxqueue) }
        if b.settings.mode == .http { row["req_tot"] = String(c.requests.load(ordering: .relaxed)) }
        row["status"] = Self.status(s)
        checkFields(&row, s)
        row["addr"] = Self.statAddress(s)
        if let value = b.settings.cookie != nil ? s.persistenceCookie(dynamicKey: b.dynamicCookieKey) : s.settings.cookie {
            row["cookie"] = value
        }
        return row
    }

    /// HAProxy's server status words: maintenance first, then what the checks (of the server,
    /// or of the end of its `track` chain) say.
    /// The server's address as HAProxy shows it: what a name resolved to, empty without one.
    static func statAddress(_ s: Server) -> String {
        let configured = s.configuredAddress
        guard case .inet(let host, let port) = configured else { return configured.description }
        guard let resolved = s.socketAddress else { return "" }
        if (try? SocketAddress(ipAddress: host, port: 0)) != nil { return configured.description }
        guard let ip = resolved.ipAddress else { return configured.description }
        let text = port.map { "\(ip):\($0)" } ?? ip
        return resolved.protocol == .inet6 ? "[\(ip)]" + (port.map { ":\($0)" } ?? "") : text
    }

    static func status(_ s: Server) -> String {
        let admin = s.adminState
        if admin.contains(.resolutionMaint) { return "MAINT (resolution)" }
        if admin.inMaintenance {
            if !admin.contains(.forcedMaint), admin.contains(.inheritedMaint), let t = s.tracked { return "MAINT (via \(t.backendName)/\(t.name))" }
            return "MAINT"
        }
        var reference = s
        var hops = 0
        while let next = reference.tracked, hops < 16 { reference = next; hops += 1 }
        let check = reference.healthCheck.flatMap { $0.isEnabled ? $0.snapshot.health : nil }
        let agent = reference.agentCheck.flatMap { $0.isEnabled ? $0.snapshot.health : nil }
        switch s.operationalState {
        case .starting, .running:
            // `UP 2/3`: up, but going down.
            let goingDown = check.flatMap { $0.health < $0.top ? " \($0.health - $0.rise + 1)/\($0.fall)" : nil }
            if admin.draining { return agent != nil ? "DRAIN (agent)" : "DRAIN" + (goingDown ?? "") }
            if check == nil { return "no check" }
            return "UP" + (goingDown ?? "")
        case .stopping:
            if check == nil && s.tracked == nil { return "NOLB" }
            if let check, check.health < check.top { return "NOLB \(check.health - check.rise + 1)/\(check.fall)" }
            return "NOLB"
        case .stopped:
            if let agent, agent.health == 0 { return "DOWN (agent)" }
            if let check, check.health == 0 { return "DOWN" }
            if let check { return "DOWN \(check.health)/\(check.rise)" }
            return "DOWN"
        }
    }

    /// The check columns of a server row.
    private func checkFields(_ row: inout Row, _ s: Server) {
        if let tracked = s.tracked { row["tracked"] = "\(tracked.backendName)/\(tracked.name)" }
        if let percent = s.throttlePercent { row["throttle"] = String(percent) }
        if s.settings.checks.observe != nil { row["hanafail"] = String(s.counters.failedAnalyses.load(ordering: .relaxed)) }
        if s.isChecked {
            row["downtime"] = String(s.downtime)
        }
        if let check = s.healthCheck, check.isEnabled {
            let st = check.snapshot
            row["chkfail"] = String(st.failures)
            row["chkdown"] = String(st.downs)
            Self.checkResult(&row, st, prefix: "check", last: "last_chk")
        }
        if let agent = s.agentCheck, agent.isEnabled {
            Self.checkResult(&row, agent.snapshot, prefix: "agent", last: "last_agt")
        }
    }

    /// `<prefix>_status/_code/_duration/_desc/_rise/_fall/_health` and the last description;
    /// a paused check (maintenance) shows no result, as in HAProxy.
    private static func checkResult(_ row: inout Row, _ st: ServerCheck.State, prefix: String, last: String) {
        guard !st.paused else { return }
        row["\(prefix)_status"] = st.last.status.info
        if st.last.status.carriesCode { row["\(prefix)_code"] = String(st.last.code) }
        if st.last.durationMs >= 0, st.last.status >= .healthAnalyze { row["\(prefix)_duration"] = String(st.last.durationMs) }
        row[last] = st.last.description
        row["\(prefix)_desc"] = st.last.status.description
        row.set([("\(prefix)_rise", st.health.rise), ("\(prefix)_fall", st.health.fall), ("\(prefix)_health", st.health.health)])
    }

    func backendRow(_ b: Backend) -> Row {
        var row = Row(object: .backend, proxyID: b.settings.id, id: 0)
        let c = b.counters
        row["pxname"] = b.name
        row["svname"] = "BACKEND"
        common(&row, c, mode: b.settings.mode)
        let active = b.servers.filter { $0.isUsable && !$0.isBackup }
        let backup = b.servers.filter { $0.isUsable && $0.isBackup }
        let econ = b.servers.reduce(0) { $0 + $1.connectionErrors.load(ordering: .relaxed) }
        let last = b.servers.map { $0.counters.lastSession.load(ordering: .relaxed) }.max() ?? 0
        row.set([("qcur", b.queued.load(ordering: .relaxed)), ("qmax", c.maxQueue.load(ordering: .relaxed)),
                 ("scur", b.currentSessions.load(ordering: .relaxed)), ("smax", c.maxSessions.load(ordering: .relaxed)),
                 ("slim", b.settings.maxconn ?? 0), ("stot", b.totalSessions.load(ordering: .relaxed)),
                 ("dreq", 0), ("dresp", 0), ("econ", econ), ("eresp", c.responseErrors.load(ordering: .relaxed)),
                 ("wretr", c.retries.load(ordering: .relaxed)), ("wredis", c.redispatches.load(ordering: .relaxed)),
                 ("weight", active.reduce(0) { $0 + $1.weight }), ("act", active.count), ("bck", backup.count),
                 ("chkdown", b.downTransitions.load(ordering: .relaxed)),
                 ("lastchg", max(0, WallClock.seconds() - api.startedAt)), ("downtime", 0),
                 ("iid", b.settings.id), ("sid", 0), ("lbtot", b.totalSessions.load(ordering: .relaxed)), ("type", 1),
                 ("rate", c.sessionRate.perSecond()), ("rate_max", c.sessionRate.maximum()),
                 ("cli_abrt", c.clientAborts.load(ordering: .relaxed)), ("srv_abrt", c.serverAborts.load(ordering: .relaxed)),
                 ("comp_in", 0), ("comp_out", 0), ("comp_byp", 0), ("comp_rsp", 0),
                 ("lastsess", last == 0 ? -1 : max(0, WallClock.seconds() - last)),
                 ("qtime", 0), ("ctime", 0), ("rtime", 0), ("ttime", 0),
                 ("wrew", 0), ("connect", b.servers.reduce(0) { $0 + $1.connectAttempts.load(ordering: .relaxed) }),
                 ("reuse", b.servers.reduce(0) { $0 + $1.reuses.load(ordering: .relaxed) }),
                 ("cache_lookups", 0), ("cache_hits", 0),
                 ("qtime_max", 0), ("ctime_max", 0), ("rtime_max", 0), ("ttime_max", 0), ("eint", 0),
                 ("uweight", active.reduce(0) { $0 + $1.weight }),
                 ("agg_server_status", 0), ("agg_server_check_status", 0), ("agg_check_status", 0)])
        if b.settings.mode == .http {
            row["req_tot"] = String(c.requests.load(ordering: .relaxed))
            row.set([("h1req", c.requests.load(ordering: .relaxed)), ("sess_other", 0), ("h1sess", b.totalSessions.load(ordering: .relaxed)),
                     ("h2sess", 0), ("h3sess", 0), ("req_other", 0), ("h2req", 0), ("h3req", 0)])
        }
        // A backend without servers is UP, as in HAProxy (it may answer by itself: the stats
        // page, `http-request return`...).
        row["status"] = active.isEmpty && backup.isEmpty && !b.servers.isEmpty ? "DOWN" : "UP"
        row["algo"] = b.settings.balance.name
        if let cookie = b.settings.cookie { row["cookie"] = cookie.name }
        return row
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
