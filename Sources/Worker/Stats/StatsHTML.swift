import Shared

/// What the HTML page shows, gathered off the event loops and then rendered by `StatsHTML`
/// (a pure function of it, so that tests render pages without a running proxy).
struct StatsSnapshot {
    struct ProxyBlock {
        var name: String
        var id: Int
        var mode: String
        var description: String?
        var frontend: StatReport.Row?
        var servers: [ServerLine] = []
        var backend: StatReport.Row?
    }

    struct ServerLine {
        var row: StatReport.Row
        var isBackup: Bool
        /// Address and check details for the tooltip (`stats show-legends`).
        var details: String
    }

    var productName = "Hasp"
    var version: String?
    var node: String?
    var description: String?
    var pid: Int
    var uptime: String
    var info: [String: String]
    var proxies: [ProxyBlock]
    /// The page's own address (the `stats uri`), for its links and form.
    var uri: String
    var request: StatsRequest
    var refreshSeconds: Int?
    var admin: Bool
    var showLegends: Bool
}

/// The statistics page as one self-contained HTML document (no external assets): a summary of
/// the process, the colour legend, and one table per proxy with its frontend, servers and
/// backend rows: HAProxy's columns and status colours, laid out for reading at a glance.
enum StatsHTML {
    static func render(_ s: StatsSnapshot) -> String {
        var out = ""
        out.reserveCapacity(8_192 + s.proxies.count * 4_096)
        let title = "Statistics Report for \(s.productName)" + (s.node.map { " on \($0)" } ?? "")
        out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        out += "<link rel=\"icon\" href=\"data:,\">\n<title>\(escape(title))</title>\n<style>\n\(style)</style></head>\n<body>\n"
        out += header(s)
        if let outcome = s.request.outcome { out += banner(outcome, s) }
        out += "<main>\n"
        if s.proxies.isEmpty { out += "<p class=\"none\">No proxy matches this scope.</p>\n" }
        for proxy in s.proxies { out += table(proxy, s) }
        out += "</main>\n</body></html>\n"
        return out
    }

    // MARK: - Head of the page

    private static func header(_ s: StatsSnapshot) -> String {
        var out = "<header>\n<h1>\(escape(s.productName))"
        if let version = s.version { out += " <span class=\"version\">version \(escape(version))</span>" }
        out += "</h1>\n"
        var subtitle = "Statistics report for pid \(s.pid)"
        if let node = s.node { subtitle += " on " + escape(node) }
        out += "<p class=\"subtitle\">\(subtitle)</p>\n"
        if let description = s.description { out += "<p class=\"desc\">\(escape(description))</p>\n" }
        out += "<div class=\"panels\">\n<section class=\"panel\"><h2>General process information</h2>\n<dl>\n"
        let i = s.info
        let facts: [(String, String)] = [
            ("pid", "\(s.pid) (process #1, nbthread = \(i["Nbthread"] ?? "1"))"),
            ("uptime", s.uptime),
            ("system limits", "memmax = \(i["Memmax_MB"].map { $0 == "0" ? "unlimited" : $0 + " MB" } ?? "unlimited"); ulimit-n = \(i["Ulimit-n"] ?? "-")"),
            ("maxsock", "\(i["Maxsock"] ?? "-"); maxconn = \(i["Maxconn"] ?? "-"); maxpipes = \(i["Maxpipes"] ?? "0")"),
            ("current conns", "\(i["CurrConns"] ?? "0"); current pipes = \(i["PipesUsed"] ?? "0")/\(i["Maxpipes"] ?? "0"); conn rate = \(i["ConnRate"] ?? "0")/sec; bit rate = \(bitRate(i["BytesOutRate"]))"),
            ("running tasks", "\(i["Run_queue"] ?? "0")/\(i["Tasks"] ?? "0"); idle = \(i["Idle_pct"] ?? "100") %"),
        ]
        for (name, value) in facts { out += "<dt>\(name)</dt><dd>\(escape(value))</dd>\n" }
        out += "</dl></section>\n"
        out += legend()
        out += controls(s)
        out += "</div>\n</header>\n"
        return out
    }

    /// The meaning of each row colour, as HAProxy's page gives it.
    static let legendEntries: [(css: String, text: String)] = [
        ("active_up", "active UP"), ("backup_up", "backup UP"),
        ("active_going_down", "active UP, going down"), ("backup_going_down", "backup UP, going down"),
        ("active_going_up", "active DOWN, going up"), ("backup_going_up", "backup DOWN, going up"),
        ("active_down", "active or backup DOWN"), ("active_no_check", "not checked"),
        ("maintain", "active or backup DOWN for maintenance (MAINT)"),
        ("active_draining", "active or backup SOFT STOPPED for maintenance"),
    ]

    private static func legend() -> String {
        var out = "<section class=\"panel\"><h2>Legend</h2>\n<ul class=\"legend\">\n"
        for entry in legendEntries {
            out += "<li><span class=\"swatch \(entry.css)\"></span>\(escape(entry.text))</li>\n"
        }
        out += "</ul>\n<p class=\"note\">Note: \"NOLB\"/\"DRAIN\" = UP with load-balancing disabled.</p></section>\n"
        return out
    }

    private static func controls(_ s: StatsSnapshot) -> String {
        let r = s.request
        let base = escape(s.uri)
        var out = "<section class=\"panel\"><h2>Display option</h2>\n<form method=\"GET\" action=\"\(base)\" class=\"scope\">"
        out += "<label>Scope: <input name=\"scope\" value=\"\(escape(r.scope ?? ""))\" size=\"12\" maxlength=\"31\"></label>"
        out += "<button type=\"submit\">Apply</button></form>\n<ul class=\"links\">\n"
        out += "<li><a href=\"\(base)\(escape(r.suffix(upOnly: !r.upOnly)))\">\(r.upOnly ? "Show all servers" : "Hide 'DOWN' servers")</a></li>\n"
        if s.refreshSeconds != nil {
            out += "<li><a href=\"\(base)\(escape(r.suffix(noRefresh: !r.noRefresh)))\">\(r.noRefresh ? "Enable refresh" : "Disable refresh")</a></li>\n"
        }
        out += "<li><a href=\"\(base)\(escape(r.suffix()))\">Refresh now</a></li>\n"
        out += "<li><a href=\"\(base)\(escape(r.suffix(format: .csv)))\">CSV export</a></li>\n"
        out += "<li><a href=\"\(base)\(escape(r.suffix(format: .json)))\">JSON export</a> "
        out += "(<a href=\"\(base);json-schema\">schema</a>)</li>\n"
        out += "</ul></section>\n"
        return out
    }

    private static func banner(_ outcome: StatsAdminOutcome, _ s: StatsSnapshot) -> String {
        let (kind, text): (String, String)
        switch outcome {
        case .done: (kind, text) = ("ok", "Action processed successfully.")
        case .partial: (kind, text) = ("warn", "Action partially processed: some server names are unknown, or the action does not apply to some servers.")
        case .none: (kind, text) = ("warn", "Nothing has changed.")
        case .denied: (kind, text) = ("error", "Action denied.")
        case .parseError: (kind, text) = ("error", "Action not processed: the action, the backend or the server names are unknown.")
        case .exceeded: (kind, text) = ("error", "Action not processed: the form was too large; choose fewer servers at a time.")
        case .invalid: (kind, text) = ("error", "The request was refused: unsupported method.")
        case .unknown: (kind, text) = ("neutral", "Unexpected result.")
        }
        return "<p class=\"banner \(kind)\" role=\"status\">[<a href=\"\(escape(s.uri + s.request.suffix()))\">X</a>] \(text)</p>\n"
    }

    // MARK: - Proxy tables

    private static let groups: [(title: String, columns: [String])] = [
        ("Queue", ["Cur", "Max", "Limit"]), ("Session rate", ["Cur", "Max", "Limit"]),
        ("Sessions", ["Cur", "Max", "Limit", "Total", "LbTot", "Last"]), ("Bytes", ["In", "Out"]),
        ("Denied", ["Req", "Resp"]), ("Errors", ["Req", "Conn", "Resp"]), ("Warnings", ["Retr", "Redis"]),
        ("Server", ["Status", "LastChk", "Wght", "Act", "Bck", "Chk", "Dwn", "Dwntme", "Thrtle"]),
    ]

    private static func table(_ p: StatsSnapshot.ProxyBlock, _ s: StatsSnapshot) -> String {
        let admin = s.admin && !p.servers.isEmpty
        var out = "<section class=\"proxy\" id=\"\(escape(p.name))\">\n"
        if admin { out += "<form method=\"post\" action=\"\(escape(s.uri))\">\n" }
        out += "<table class=\"tbl\">\n<caption><a href=\"#\(escape(p.name))\">\(escape(p.name))</a>"
        out += " <span class=\"mode\">\(escape(p.mode))</span>"
        if let d = p.description { out += " <span class=\"pdesc\">\(escape(d))</span>" }
        out += "</caption>\n<thead><tr>"
        if admin {
            out += "<th rowspan=\"2\" class=\"pick\"><input type=\"checkbox\" title=\"Select every server\" "
            out += "onclick=\"for (const c of this.form.querySelectorAll('input[name=s]')) c.checked = this.checked\"></th>"
        }
        out += "<th rowspan=\"2\" class=\"name\"></th>"
        for g in groups { out += "<th colspan=\"\(g.columns.count)\">\(g.title)</th>" }
        out += "</tr>\n<tr>"
        for g in groups { for c in g.columns { out += "<th>\(c)</th>" } }
        out += "</tr></thead>\n<tbody>\n"
        if let f = p.frontend { out += frontendRow(f, admin: admin) }
        for server in p.servers { out += serverRow(server, s, admin: admin) }
        if let b = p.backend { out += backendRow(b, admin: admin) }
        out += "</tbody></table>\n"
        if admin {
            out += "<div class=\"actions\"><label>Choose the action to perform on the checked servers: "
            out += "<select name=\"action\"><option value=\"\"></option>"
            for action in StatsAdminAction.allCases { out += "<option value=\"\(action.rawValue)\">\(action.label)</option>" }
            out += "</select></label><input type=\"hidden\" name=\"b\" value=\"#\(p.id)\">"
            out += "<button type=\"submit\">Apply</button></div>\n</form>\n"
        }
        out += "</section>\n"
        return out
    }

    private static func cells(_ values: [String]) -> String {
        values.map { "<td>\($0.isEmpty ? "" : escape($0))</td>" }.joined()
    }

    private static func frontendRow(_ r: StatReport.Row, admin: Bool) -> String {
        var out = "<tr class=\"frontend\">" + (admin ? "<td></td>" : "") + "<th class=\"name\">Frontend</th>"
        out += cells(["", "", ""])
        out += cells([r["rate"], r["rate_max"], limit(r["rate_lim"])])
        out += cells([r["scur"], r["smax"], limit(r["slim"]), r["stot"], "", ""])
        out += cells([bytes(r["bin"]), bytes(r["bout"])])
        out += cells([r["dreq"], r["dresp"]])
        out += cells([r["ereq"], "", ""])
        out += cells(["", ""])
        out += "<td class=\"status\">\(escape(r["status"]))</td>" + cells(["", "", "", "", "", "", "", ""])
        return out + "</tr>\n"
    }

    private static func serverRow(_ line: StatsSnapshot.ServerLine, _ s: StatsSnapshot, admin: Bool) -> String {
        let r = line.row
        let css = statusClass(r["status"], backup: line.isBackup)
        let name = escape(r["svname"])
        var out = "<tr class=\"\(css)\">"
        if admin { out += "<td class=\"pick\"><input type=\"checkbox\" name=\"s\" value=\"\(name)\"></td>" }
        out += "<th class=\"name\"" + (s.showLegends ? " title=\"\(escape(line.details))\"" : "") + ">\(name)</th>"
        out += cells([r["qcur"], r["qmax"], limit(r["qlimit"])])
        out += cells([r["rate"], r["rate_max"], ""])
        out += cells([r["scur"], r["smax"], limit(r["slim"]), r["stot"], r["lbtot"], lastSession(r["lastsess"])])
        out += cells([bytes(r["bin"]), bytes(r["bout"])])
        out += cells(["", r["dresp"]])
        out += cells(["", r["econ"], r["eresp"]])
        out += cells([r["wretr"], r["wredis"]])
        let since = r["lastchg"].isEmpty ? "" : Uptime(seconds: Int(r["lastchg"]) ?? 0).compact + " "
        out += "<td class=\"status\">\(escape(since + r["status"]))</td>"
        out += "<td class=\"check\" title=\"\(escape(r["last_chk"]))\">\(escape(lastCheck(r)))</td>"
        out += cells([r["weight"] == "" ? "" : "\(r["weight"])/\(r["uweight"])", r["act"] == "1" ? "Y" : "-", r["bck"] == "1" ? "Y" : "-"])
        out += cells([r["chkfail"], r["chkdown"], r["downtime"].isEmpty ? "" : Uptime(seconds: Int(r["downtime"]) ?? 0).compact])
        out += cells([r["throttle"].isEmpty ? "-" : r["throttle"] + " %"])
        return out + "</tr>\n"
    }

    private static func backendRow(_ r: StatReport.Row, admin: Bool) -> String {
        let css = r["status"] == "UP" ? "backend" : "backend down"
        var out = "<tr class=\"\(css)\">" + (admin ? "<td></td>" : "") + "<th class=\"name\">Backend</th>"
        out += cells([r["qcur"], r["qmax"], ""])
        out += cells([r["rate"], r["rate_max"], ""])
        out += cells([r["scur"], r["smax"], limit(r["slim"]), r["stot"], r["lbtot"], lastSession(r["lastsess"])])
        out += cells([bytes(r["bin"]), bytes(r["bout"])])
        out += cells([r["dreq"], r["dresp"]])
        out += cells(["", r["econ"], r["eresp"]])
        out += cells([r["wretr"], r["wredis"]])
        let since = Uptime(seconds: Int(r["lastchg"]) ?? 0).compact + " "
        out += "<td class=\"status\">\(escape(since + r["status"]))</td><td></td>"
        out += cells([r["weight"] == "" ? "" : "\(r["weight"])/\(r["uweight"])", r["act"], r["bck"], "", r["chkdown"], ""])
        out += cells([""])
        return out + "</tr>\n"
    }

    /// The row colour of a server from its status words (HAProxy's classes).
    static func statusClass(_ status: String, backup: Bool) -> String {
        let side = backup ? "backup" : "active"
        if status.hasPrefix("MAINT") { return "maintain" }
        if status.hasPrefix("DRAIN") || status.hasPrefix("NOLB") { return "\(side)_draining" }
        if status == "no check" { return "\(side)_no_check" }
        if status.hasPrefix("UP ") { return "\(side)_going_down" }
        if status.hasPrefix("UP") { return "\(side)_up" }
        if status.hasPrefix("DOWN ") && status.contains("/") { return "\(side)_going_up" }
        return "\(side)_down"
    }

    private static func lastCheck(_ r: StatReport.Row) -> String {
        let status = r["check_status"]
        guard !status.isEmpty else { return "" }
        var text = status
        if !r["check_code"].isEmpty { text += "/" + r["check_code"] }
        if !r["check_duration"].isEmpty { text += " in \(r["check_duration"])ms" }
        return text
    }

    private static func lastSession(_ seconds: String) -> String {
        guard let n = Int(seconds) else { return "" }
        return n < 0 ? "never" : Uptime(seconds: n).compact
    }

    private static func limit(_ value: String) -> String { value == "0" ? "" : value }

    /// Bytes with a unit once they are many.
    static func bytes(_ value: String) -> String {
        guard let n = Int64(value) else { return value }
        let units = ["", "k", "M", "G", "T"]
        var v = Double(n)
        var unit = 0
        while v >= 10_000, unit < units.count - 1 { v /= 1_000; unit += 1 }
        return unit == 0 ? value : "\(Int(v.rounded()))\(units[unit])"
    }

    private static func bitRate(_ bytesPerSecond: String?) -> String {
        let bits = (Int64(bytesPerSecond ?? "0") ?? 0) * 8
        return bits >= 1_000_000 ? "\(bits / 1_000_000) Mbps" : bits >= 1_000 ? "\(bits / 1_000) kbps" : "\(bits) bps"
    }

    // MARK: - Text

    static func escape(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 == 38 || $0 == 60 || $0 == 62 || $0 == 34 || $0 == 39 }) else { return s }
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    // MARK: - Style

    private static let style = """
    :root { --fg: #1d2125; --bg: #f6f7f9; --panel: #ffffff; --line: #d5d9de; --head: #2c3e50; --head-fg: #ffffff;
      --muted: #5f6b76; --accent: #1f6feb; --proxy: #e8e8d0; }
    @media (prefers-color-scheme: dark) {
      :root { --fg: #e6e8ea; --bg: #14171a; --panel: #1d2126; --line: #39404a; --head: #26323f; --muted: #9aa6b2;
        --accent: #58a6ff; --proxy: #2f3437; }
      .active_up { background: #1f5c2a !important; } .backup_up { background: #23406b !important; }
      .active_going_down { background: #5e5a13 !important; } .backup_going_down { background: #4d2a6e !important; }
      .active_going_up { background: #7a5d00 !important; } .backup_going_up { background: #6a236a !important; }
      .active_down, .backup_down { background: #6e1f1f !important; }
      .active_no_check, .backup_no_check { background: #2a2d2f !important; }
      .maintain { background: #7d4e17 !important; }
      .active_draining, .backup_draining { background: #0d4f80 !important; }
    }
    * { box-sizing: border-box; }
    body { margin: 0; padding: 16px 20px 40px; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
      color: var(--fg); background: var(--bg); }
    h1 { margin: 0; font-size: 22px; } h1 .version { font-size: 13px; font-weight: normal; color: var(--muted); }
    .subtitle, .desc { margin: 2px 0 0; color: var(--muted); }
    .panels { display: flex; flex-wrap: wrap; gap: 12px; margin: 14px 0 18px; }
    .panel { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; min-width: 250px; }
    .panel h2 { margin: 0 0 6px; font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
    dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; margin: 0; }
    dt { font-weight: 600; } dd { margin: 0; font-variant-numeric: tabular-nums; }
    .legend { list-style: none; margin: 0; padding: 0; columns: 2; column-gap: 18px; }
    .legend li { margin: 1px 0; white-space: nowrap; }
    .swatch { display: inline-block; width: 14px; height: 11px; margin-right: 6px; border: 1px solid var(--line); vertical-align: -1px; }
    .note { margin: 6px 0 0; color: var(--muted); font-size: 12px; }
    .links { margin: 8px 0 0; padding-left: 18px; } a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
    .banner { padding: 8px 12px; border-radius: 6px; font-weight: 600; }
    .banner.ok { background: #c0ffc0; color: #0b3d0b; } .banner.warn { background: #ffffa0; color: #4d4300; }
    .banner.error { background: #ff9090; color: #4d0000; } .banner.neutral { background: #e0e0e0; color: #1d2125; }
    .banner a { color: inherit; }
    .proxy { margin: 0 0 22px; overflow-x: auto; }
    table.tbl { border-collapse: collapse; background: var(--panel); font-variant-numeric: tabular-nums; }
    table.tbl caption { text-align: left; padding: 4px 8px; font-weight: 700; font-size: 14px; color: var(--head-fg);
      background: #b00040; border-radius: 6px 6px 0 0; width: max-content; }
    table.tbl caption a { color: #ffff40; } .mode, .pdesc { font-weight: normal; font-size: 12px; margin-left: 8px; }
    table.tbl { font-size: 12px; }
    table.tbl th, table.tbl td { border: 1px solid var(--line); padding: 1px 4px; }
    table.tbl thead th { background: var(--head); color: var(--head-fg); font-weight: 600; white-space: nowrap; }
    table.tbl td { text-align: right; white-space: nowrap; }
    table.tbl th.name { text-align: left; font-weight: 600; white-space: nowrap; }
    table.tbl td.status, table.tbl td.check { text-align: center; }
    table.tbl tr.frontend, table.tbl tr.backend { background: var(--proxy); font-weight: 600; }
    table.tbl tr.backend.down td.status { background: #ff9090; color: #4d0000; }
    .actions { padding: 6px 0; } .scope { margin: 0; }
    .active_up { background: #c0ffc0; } .backup_up { background: #b0d0ff; }
    .active_going_down { background: #ffffa0; } .backup_going_down { background: #c060ff; }
    .active_going_up { background: #ffd020; } .backup_going_up { background: #ff80ff; }
    .active_down, .backup_down { background: #ff9090; }
    .active_no_check, .backup_no_check { background: #e0e0e0; }
    .active_draining { background: #20a0ff; } .backup_draining { background: #cc9900; }
    .maintain { background: #c07820; }
    @media (prefers-color-scheme: dark) { table.tbl tr[class^="active"], table.tbl tr[class^="backup"], table.tbl tr.maintain { color: #f2f2f2; } }

    """
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}

extension Uptime {
    /// The page's short durations: `12s`, `5m3s`, `2h5m`, `3d4h`.
    var compact: String {
        let d = seconds / 86_400, h = (seconds / 3_600) % 24, m = (seconds / 60) % 60, s = seconds % 60
        if d > 0 { return "\(d)d\(h)h" }
        if h > 0 { return "\(h)h\(m)m" }
        if m > 0 { return "\(m)m\(s)s" }
        return "\(s)s"
    }
}
