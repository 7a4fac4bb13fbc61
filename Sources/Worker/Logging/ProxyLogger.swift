import Shared
#if canImport(Glibc)
import Glibc
#endif

/// Syslog levels, most severe first (`emerg` is 0).
enum LogLevel: Int, Sendable {
    case emerg = 0, alert, crit, err, warning, notice, info, debug
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
        let priority = "<\(route.facility * 8 + level)>"
        switch route.format {
        case "raw": return message + "\n"
        case "short": return priority + message + "\n"
        case "priority": return priority + message + "\n"
        case "iso": return LogDate.iso8601(now) + " " + message + "\n"
        case "timed": return priority + LogDate.rfc3164(now) + " " + message + "\n"
        case "rfc5424":
            return "\(priority)1 \(LogDate.iso8601(now)) \(LogDate.hostname) \(tag) \(pid) - - \(message)\n"
        case "local": return priority + LogDate.rfc3164(now) + " \(tag)[\(pid)]: " + message + "\n"
        default: return priority + LogDate.rfc3164(now) + " \(tag)[\(pid)]: " + message + "\n"
        }
    }
}

/// The dates of log lines, in local time.
enum LogDate {
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func local(_ micros: Int) -> tm {
        var seconds = time_t(micros / 1_000_000)
        var t = tm()
        localtime_r(&seconds, &t)
        return t
    }

    static func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }

    /// `Nov 25 16:30:40` (day padded with a space).
    static func rfc3164(_ micros: Int) -> String {
        let t = local(micros)
        let day = t.tm_mday < 10 ? " \(t.tm_mday)" : "\(t.tm_mday)"
        return "\(months[Int(t.tm_mon)]) \(day) \(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec))"
    }

    /// `25/Nov/2026:16:30:40.123`, the accept and request dates of traffic logs.
    static func haproxy(_ micros: Int) -> String {
        let t = local(micros)
        let ms = (micros / 1000) % 1000
        let msText = ms < 10 ? "00\(ms)" : (ms < 100 ? "0\(ms)" : "\(ms)")
        return "\(two(t.tm_mday))/\(months[Int(t.tm_mon)])/\(1900 + Int(t.tm_year)):\(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec)).\(msText)"
    }

    /// `2026-11-25T16:30:40.123456+00:00`.
    static func iso8601(_ micros: Int) -> String {
        let t = local(micros)
        let us = String(micros % 1_000_000)
        let offset = Int(t.tm_gmtoff) / 60
        let sign = offset < 0 ? "-" : "+"
        let zone = "\(sign)\(two(Int32(abs(offset) / 60))):\(two(Int32(abs(offset) % 60)))"
        return "\(1900 + Int(t.tm_year))-\(two(t.tm_mon + 1))-\(two(t.tm_mday))T\(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec))."
            + String(repeating: "0", count: 6 - us.count) + us + zone
    }

    static let hostname: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()
}
