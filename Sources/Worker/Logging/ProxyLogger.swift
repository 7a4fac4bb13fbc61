import Shared
#if canImport(Glibc)
import Glibc
#endif

/// Syslog levels, most severe first (`emerg` is 0).
enum LogLevel: Int, Sendable {
    case emerg = 0, alert, crit, err, warning, notice, info, debug

    /// A level by its syslog name; nil for `silent` (and unknown names).
    init?(name: String) {
        let names = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]
        guard let index = names.firstIndex(of: name) else { return nil }
        self.init(rawValue: index)
    }
}

/// The `log` targets of one proxy (its own and, with `log global`, the global ones), and the
/// formatting of each line for each target.
final class ProxyLogger: Sendable {
    struct Route: Sendable {
        let sink: LogSink
        let facility: Int
        let maxLevel: Int
        let minLevel: Int
        let format: String
    }

    private let routes: [Route]
    private let tag: String
    private let pid = Int(getpid())

    init(routes: [Route], tag: String) {
        self.routes = routes
        self.tag = tag
    }

    /// The logger of `proxy`, or nil when it logs nowhere.
    static func make(for proxy: ProxySettings, global: [LogTarget], sinks: inout [String: LogSink], tag: String) -> ProxyLogger? {
        let targets = (proxy.logGlobal ? global : []) + proxy.logTargets
        var routes: [Route] = []
        for target in targets {
            let sink: LogSink
            if let existing = sinks[target.address] {
                sink = existing
            } else if let opened = LogSink.open(target.address) {
                sinks[target.address] = opened
                sink = opened
            } else {
                DiagnosticPrinter.shared.warning("log: cannot send logs to '\(target.address)'.")
                continue
            }
            routes.append(Route(sink: sink,
                                facility: target.facility.flatMap { LogTarget.facilities.firstIndex(of: $0) } ?? 16,
                                maxLevel: target.level.flatMap { LogTarget.levels.firstIndex(of: $0) } ?? 7,
                                minLevel: target.minLevel.flatMap { LogTarget.levels.firstIndex(of: $0) } ?? 0,
                                format: target.format ?? "rfc3164"))
        }
        return routes.isEmpty ? nil : ProxyLogger(routes: routes, tag: tag)
    }

    func emit(_ level: LogLevel, _ message: String) {
        let now = WallClock.microseconds()
        for route in routes where level.rawValue <= route.maxLevel {
            let effective = max(level.rawValue, route.minLevel)
            route.sink.send(Array(line(message, route: route, level: effective, now: now).utf8))
        }
    }

    /// The line as the route's format wants it, ending with a line feed.
    func line(_ message: String, route: Route, level: Int, now: Int) -> String {
        SyslogFormat.line(message, facility: route.facility, level: level, format: route.format, tag: tag, pid: pid, now: now)
    }
}
