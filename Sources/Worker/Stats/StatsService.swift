import Shared

#if canImport(Glibc)
import Glibc
#endif

/// Serves the statistics page of one proxy (`stats enable`): the HTML page, its CSV, JSON and
/// typed exports, and the admin form's posts. Runs off the event loops (it reads counters
/// that live on every loop and may list thousands of servers); the answer goes back to the
/// session that asked.
struct StatsService {
    let runtime: WorkerRuntime
    let api: RuntimeAPI
    let settings: StatsSettings
    /// The proxy whose page this is (`stats scope .`).
    let proxyName: String

    struct Query {
        var method: String
        var target: String
        var body: [UInt8]
        /// The body fitted in what the proxy buffers.
        var bodyComplete: Bool
        /// Whether a `stats admin` condition held for this request.
        var admin: Bool
    }

    func answer(_ query: Query) -> LocalAnswer {
        let request = StatsRequest.parse(target: query.target, uri: settings.uri)
        if query.method == "POST" {
            let outcome: StatsAdminOutcome
            if !query.admin {
                outcome = .denied
            } else if !query.bodyComplete {
                outcome = .exceeded
            } else {
                outcome = StatsAdmin(runtime: runtime).apply(StatsAdminForm.parse(query.body))
            }
            // The browser comes back to the page (with its display options), which reports the
            // outcome.
            let location = settings.uri + ";st=" + outcome.rawValue + request.suffix()
            return LocalAnswer.make(status: 303, headers: [("cache-control", "no-cache"), ("content-type", "text/plain"),
                                                             ("content-length", "0"), ("location", location)],
                                    body: [], cause: ("P", "R"))
        }
        var headers: [(String, String)] = [("cache-control", "no-cache")]
        let body: String
        switch request.format {
        case .html:
            headers.append(("content-type", "text/html; charset=utf-8"))
            body = StatsHTML.render(snapshot(request, admin: query.admin))
        case .csv, .json, .typed:
            // The `show stat` formats, over the same rows.
            let style: ReportFormat.Style = request.format == .csv ? .plain : request.format == .json ? .json : .typed
            headers.append(("content-type", style == .json ? "application/json" : "text/plain"))
            let report = StatReport(api: api)
            body = report.render(rows(request, report), style: style)
        case .jsonSchema:
            headers.append(("content-type", "application/json"))
            body = StatReport.jsonSchema
        }
        if let refresh = settings.refreshSeconds, refresh > 0, !request.noRefresh {
            headers.append(("refresh", String(refresh)))
        }
        headers.append(("content-length", String(body.utf8.count)))
        return LocalAnswer.make(status: 200, headers: headers, body: Array(body.utf8), cause: ("P", "R"))
    }

    /// `;up` leaves out servers that are down or in maintenance, and the backend's status
    /// says how many of its servers are usable (`UP (1/3)`).
    private func hidden(_ server: Server) -> Bool {
        server.adminState.inMaintenance || server.operationalState == .stopped
    }

    private func upSummary(_ row: inout StatReport.Row, _ backend: Backend) {
        let usable = backend.servers.filter { $0.isUsable }.count
        row["status"] += " (\(usable)/\(backend.servers.count))"
    }

    /// Whether the page lists `proxy`: `stats scope` lines, then the page's scope box.
    private func lists(_ proxy: ProxySettings, _ request: StatsRequest) -> Bool {
        guard proxy.kind != .defaults else { return false }
        if !settings.scopes.isEmpty {
            guard settings.scopes.contains(where: { $0 == proxy.name || ($0 == "." && proxy.name == proxyName) }) else { return false }
        }
        return request.scopeIncludes(proxy.name)
    }

    private func rows(_ request: StatsRequest, _ report: StatReport) -> [StatReport.Row] {
        var rows: [StatReport.Row] = []
        for proxy in runtime.configuration.proxies where lists(proxy, request) {
            let block = proxyRows(proxy, request, report)
            if let f = block.frontend { rows.append(f) }
            rows += block.servers.map(\.row)
            if let b = block.backend { rows.append(b) }
        }
        return rows
    }

    /// One proxy's rows, with the page's filters applied.
    private func proxyRows(_ proxy: ProxySettings, _ request: StatsRequest, _ report: StatReport) -> StatsSnapshot.ProxyBlock {
        var block = StatsSnapshot.ProxyBlock(name: proxy.name, id: proxy.id, mode: proxy.mode.rawValue,
                                             description: proxy.proxyDescription)
        if let frontend = runtime.frontends.first(where: { $0.settings.id == proxy.id }) {
            block.frontend = report.frontendRow(frontend)
        }
        guard let backend = runtime.backends[proxy.name], backend.settings.id == proxy.id else { return block }
        for server in backend.servers {
            if request.noMaintenance && server.adminState.inMaintenance { continue }
            if request.upOnly && hidden(server) { continue }
            let row = report.serverRow(server, backend)
            var details = "address \(row["addr"]), id \(server.id)"
            if !row["check_desc"].isEmpty { details += ", check: \(row["check_desc"])" }
            if !row["last_chk"].isEmpty { details += " (\(row["last_chk"]))" }
            block.servers.append(StatsSnapshot.ServerLine(row: row, isBackup: server.isBackup, details: details))
        }
        var row = report.backendRow(backend)
        if request.upOnly { upSummary(&row, backend) }
        block.backend = row
        return block
    }

    func snapshot(_ request: StatsRequest, admin: Bool) -> StatsSnapshot {
        let report = StatReport(api: api)
        let blocks = runtime.configuration.proxies.filter { lists($0, request) && !$0.disabled }.map {
            proxyRows($0, request, report)
        }
        var info: [String: String] = [:]
        for field in api.infoFields() { info[field.name] = field.text }
        return StatsSnapshot(
            version: settings.hideVersion ? nil : HaspVersion.version,
            node: settings.showNode.map { $0 ?? info["node"] ?? "" },
            description: settings.showDescription.map { $0 ?? info["description"] ?? "" },
            pid: Int(getpid()),
            uptime: info["Uptime"] ?? "",
            info: info,
            proxies: blocks,
            uri: settings.uri,
            request: request,
            refreshSeconds: settings.refreshSeconds,
            admin: admin,
            showLegends: settings.showLegends)
    }
}
