import Shared

/// HAProxy's Prometheus exporter (`http-request use-service prometheus-exporter`): the same
/// metric names, types, labels and order, so that dashboards built for HAProxy work unchanged.
/// The values are those of `show info` and `show stat`; the help texts are Hasp's own.
enum PrometheusScope: String, CaseIterable, Comparable {
    case global, frontend, listener, backend, server, sticktable

    static func < (a: PrometheusScope, b: PrometheusScope) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// The query string of a scrape: `scope=<name>` (repeatable; empty clears, `*` is all) and
/// `no-maint`. Nil when HAProxy would answer 400.
struct PrometheusQuery: Equatable {
    var scopes = Set(PrometheusScope.allCases)
    var noMaintenance = false

    static func parse(_ query: Substring?) -> PrometheusQuery? {
        var result = PrometheusQuery()
        guard var query else { return result }
        if let hash = query.firstIndex(of: "#") { query = query[..<hash] }
        var explicit = false
        for item in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = item.split(separator: "=", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { return nil }
            let key = URLDecode.decode(String(parts[0]), plusAsSpace: true) ?? String(parts[0])
            let value = parts.count == 2 ? (URLDecode.decode(String(parts[1]), plusAsSpace: true) ?? String(parts[1])) : nil
            switch key {
            case "scope":
                guard let value else { return nil }
                if !explicit { result.scopes = []; explicit = true }
                if value.isEmpty {
                    result.scopes = []
                } else if value.hasPrefix("*") {
                    result.scopes = Set(PrometheusScope.allCases)
                } else if let scope = PrometheusScope(rawValue: value) {
                    result.scopes.insert(scope)
                } else {
                    return nil
                }
            case "no-maint":
                result.noMaintenance = true
            default:
                continue
            }
        }
        return result
    }
}

/// One metric family: where its samples come from.
struct MetricFamily {
    enum Kind: String { case gauge, counter }
    enum Source {
        /// A `show info` field.
        case info(String)
        /// A `show info` field in megabytes, exported in bytes.
        case infoMegabytes(String)
        /// No value in Hasp (HAProxy's empty field): `NaN`.
        case none
        /// The process's version, as a label.
        case buildInfo
        /// A `show stat` column of each object.
        case column(String)
        /// A `show stat` column in milliseconds, exported in seconds.
        case milliseconds(String)
        /// One sample per state, 1 for the object's state.
        case status([String])
        /// One sample per class of status code (`hrsp_1xx`...).
        case responseCodes
        /// Per backend, how many servers are in each state.
        case serverStates
        /// Per backend, how many servers' last check had each result.
        case checkResults
        /// The last check's result, one sample per result.
        case checkStatus
        /// The last check's code, while the check runs.
        case checkCode
        /// The last check's duration, once a check completed.
        case checkDuration
    }

    let name: String
    let kind: Kind
    let help: String
    let source: Source
    /// Only for objects of HTTP proxies.
    var httpOnly = false
}

/// Writes the exposition text of one scrape, a piece at a time: the caller asks for the next
/// piece once the previous one is sent, so that a configuration with thousands of servers is
/// never held as one string. Used from one thread at a time (the background thread).
final class PrometheusExposition: @unchecked Sendable {
    private struct Object {
        var labels: String
        var row: StatReport.Row
        var isHTTP: Bool
        /// Servers: the check runs (not paused by maintenance, not disabled).
        var checkRuns = false
        var hasCheckResult = false
        /// Backends: the rows of their servers.
        var servers: [StatReport.Row] = []
    }

    private let info: [String: String]
    private let version: String
    private var pending: [(family: MetricFamily, scope: PrometheusScope)]
    private var objects: [PrometheusScope: [Object]] = [:]

    init(api: RuntimeAPI, query: PrometheusQuery) {
        var info: [String: String] = [:]
        if query.scopes.contains(.global) {
            for field in api.infoFields() { info[field.name] = field.text }
        }
        self.info = info
        version = HaspVersion.version
        pending = PrometheusScope.allCases.filter { query.scopes.contains($0) }.flatMap { scope in
            Self.families[scope, default: []].map { ($0, scope) }
        }
        objects = Self.collect(api: api, query: query)
    }

    private static func collect(api: RuntimeAPI, query: PrometheusQuery) -> [PrometheusScope: [Object]] {
        let runtime = api.runtime
        let report = StatReport(api: api, withServers: query.scopes.contains(.backend) || query.scopes.contains(.server))
        var result: [PrometheusScope: [Object]] = [:]
        for proxy in runtime.configuration.proxies where proxy.kind != .defaults && !proxy.disabled {
            let http = proxy.mode == .http
            if query.scopes.contains(.frontend), let f = runtime.frontends.first(where: { $0.settings.id == proxy.id }) {
                result[.frontend, default: []].append(Object(labels: "proxy=\"\(proxy.name)\"", row: report.frontendRow(f), isHTTP: http))
            }
            guard query.scopes.contains(.backend) || query.scopes.contains(.server),
                  let b = runtime.backends[proxy.name], b.settings.id == proxy.id else { continue }
            var serverRows: [StatReport.Row] = []
            for s in b.servers {
                let row = report.serverRow(s, b)
                serverRows.append(row)
                if query.scopes.contains(.server), !(query.noMaintenance && s.adminState.inMaintenance) {
                    let check = s.healthCheck.flatMap { $0.isEnabled ? $0.snapshot : nil }
                    var object = Object(labels: "proxy=\"\(proxy.name)\",server=\"\(s.name)\"", row: row, isHTTP: http)
                    object.checkRuns = check.map { !$0.paused } ?? false
                    object.hasCheckResult = !row["check_status"].isEmpty || !row["check_duration"].isEmpty
                    result[.server, default: []].append(object)
                }
            }
            if query.scopes.contains(.backend) {
                var object = Object(labels: "proxy=\"\(proxy.name)\"", row: report.backendRow(b), isHTTP: http)
                object.servers = serverRows
                result[.backend, default: []].append(object)
            }
        }
        return result
    }

    /// The next piece of text (at least `size` bytes unless it is the last), nil at the end.
    func next(size: Int = 32_768) -> String? {
        guard !pending.isEmpty else { return nil }
        var out = ""
        out.reserveCapacity(size + 1_024)
        while out.utf8.count < size, !pending.isEmpty {
            let (family, scope) = pending.removeFirst()
            write(family, scope, into: &out)
        }
        return out
    }

    private func write(_ family: MetricFamily, _ scope: PrometheusScope, into out: inout String) {
        var samples = ""
        switch scope {
        case .global:
            switch family.source {
            case .info(let name): samples = "\(family.name) \(info[name] ?? "0")\n"
            case .infoMegabytes(let name): samples = "\(family.name) \((Int64(info[name] ?? "0") ?? 0) << 20)\n"
            case .none: samples = "\(family.name) NaN\n"
            case .buildInfo: samples = "\(family.name){version=\"\(version)\"} 1\n"
            default: break
            }
        case .listener, .sticktable:
            break
        case .frontend, .backend, .server:
            let list = (objects[scope] ?? []).filter { !family.httpOnly || $0.isHTTP }
            samples = write(family, list)
        }
        guard !samples.isEmpty else { return }
        out += "# HELP \(family.name) \(family.help)\n# TYPE \(family.name) \(family.kind.rawValue)\n"
        out += samples
    }

    private func write(_ family: MetricFamily, _ list: [Object]) -> String {
        var out = ""
        switch family.source {
        case .column(let column):
            for o in list { out += "\(family.name){\(o.labels)} \(Self.number(o.row[column]))\n" }
        case .milliseconds(let column):
            for o in list { out += "\(family.name){\(o.labels)} \(Self.seconds(o.row[column]))\n" }
        case .status(let states):
            for o in list {
                let current = Self.state(o.row)
                for state in states { out += "\(family.name){\(o.labels),state=\"\(state)\"} \(state == current ? 1 : 0)\n" }
            }
        case .responseCodes:
            // Code by code, every object for each.
            for code in ["1xx", "2xx", "3xx", "4xx", "5xx", "other"] {
                for o in list { out += "\(family.name){\(o.labels),code=\"\(code)\"} \(Self.number(o.row["hrsp_\(code)"]))\n" }
            }
        case .serverStates:
            for o in list where !o.servers.isEmpty {
                let counts = Dictionary(grouping: o.servers.map(Self.state), by: { $0 }).mapValues(\.count)
                for state in Self.serverStates { out += "\(family.name){\(o.labels),state=\"\(state)\"} \(counts[state] ?? 0)\n" }
            }
        case .checkResults:
            for o in list where !o.servers.isEmpty {
                let counts = Dictionary(grouping: o.servers.map { Self.checkResult($0["check_status"]) }, by: { $0 }).mapValues(\.count)
                for state in Self.checkStates { out += "\(family.name){\(o.labels),state=\"\(state)\"} \(counts[state] ?? 0)\n" }
            }
        case .checkStatus:
            for o in list where o.checkRuns && !o.row["check_status"].isEmpty {
                let current = Self.checkResult(o.row["check_status"])
                for state in Self.checkStates { out += "\(family.name){\(o.labels),state=\"\(state)\"} \(state == current ? 1 : 0)\n" }
            }
        case .checkCode:
            for o in list where o.checkRuns && !o.row["check_status"].isEmpty {
                out += "\(family.name){\(o.labels)} \(o.row["check_code"].isEmpty ? "0" : o.row["check_code"])\n"
            }
        case .checkDuration:
            for o in list where !o.row["check_duration"].isEmpty {
                out += "\(family.name){\(o.labels)} \(Self.seconds(o.row["check_duration"]))\n"
            }
        case .info, .infoMegabytes, .none, .buildInfo:
            break
        }
        return out
    }

    static let serverStates = ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"]
    static let checkStates = ["HANA", "SOCKERR", "L4OK", "L4TOUT", "L4CON", "L6OK", "L6TOUT", "L6RSP", "L7TOUT", "L7RSP",
                              "L7OK", "L7OKC", "L7STS", "PROCERR", "PROCTOUT", "PROCOK"]

    /// The state label of an object from its `status` column.
    static func state(_ row: StatReport.Row) -> String {
        let status = row["status"]
        switch row.object {
        case .frontend: return status == "STOP" ? "DOWN" : "UP"
        case .backend: return status == "UP" ? "UP" : "DOWN"
        case .server:
            if status.hasPrefix("MAINT") { return "MAINT" }
            if status.hasPrefix("DRAIN") { return "DRAIN" }
            if status.hasPrefix("NOLB") { return "NOLB" }
            if status.hasPrefix("UP") || status == "no check" { return "UP" }
            return "DOWN"
        }
    }

    /// `L4CON` from `check_status` (which may carry a `* ` prefix while a check runs).
    static func checkResult(_ status: String) -> String {
        status.hasPrefix("* ") ? String(status.dropFirst(2)) : status
    }

    static func number(_ text: String) -> String { text.isEmpty ? "NaN" : text }

    static func seconds(_ milliseconds: String) -> String {
        guard let ms = Int64(milliseconds) else { return "NaN" }
        let fraction = String(abs(ms % 1000) * 1000)
        return "\(ms / 1000).\(fraction.leftPadded(to: 6))"
    }
}
