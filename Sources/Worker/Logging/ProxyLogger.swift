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
        /// `len`: the longest line this target gets (the message is cut to fit).
        var maxLength = 1024
    }

    private let routes: [Route]
    private let tag: String
    private let hostname: String?
    private let pid = Int(getpid())

    init(routes: [Route], tag: String, hostname: String? = nil) {
        self.routes = routes
        self.tag = tag
        self.hostname = hostname
    }

    /// The logger of `proxy`, or nil when it logs nowhere.
    static func make(for proxy: ProxySettings, global: [LogTarget], sinks: inout [String: LogSink], tag: String,
                     hostname: String? = nil, rings: [String: EventRing] = [:]) -> ProxyLogger? {
        let targets = (proxy.logGlobal ? global : []) + proxy.logTargets
        var routes: [Route] = []
        for target in targets {
            let sink: LogSink
            if let existing = sinks[target.address] {
                sink = existing
            } else if let opened = LogSink.open(target.address, rings: rings) {
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
                                format: sink.ring?.settings.format ?? target.format ?? "rfc3164",
                                maxLength: target.length ?? sink.ring?.settings.maxLength ?? 1024))
        }
        return routes.isEmpty ? nil : ProxyLogger(routes: routes, tag: proxy.logging.tag ?? tag, hostname: hostname)
    }

    /// `structuredData`: the `log-format-sd` part, for RFC 5424 targets.
    func emit(_ level: LogLevel, _ message: String, structuredData: String? = nil) {
        let now = WallClock.microseconds()
        for route in routes where level.rawValue <= route.maxLevel {
            let effective = max(level.rawValue, route.minLevel)
            route.sink.send(Array(line(message, route: route, level: effective, now: now, structuredData: structuredData).utf8))
        }
    }

    /// The line as the route's format wants it, cut to the route's `len`, ending with a line
    /// feed.
    func line(_ message: String, route: Route, level: Int, now: Int, structuredData: String? = nil) -> String {
        let text = SyslogFormat.line(message, facility: route.facility, level: level, format: route.format, tag: tag,
                                     pid: pid, now: now, structuredData: structuredData,
                                     hostname: hostname ?? (route.sink.ring != nil ? "localhost" : nil))
        guard text.utf8.count > route.maxLength else { return text }
        return String(decoding: text.utf8.prefix(route.maxLength - 1), as: UTF8.self) + "\n"
    }
}
