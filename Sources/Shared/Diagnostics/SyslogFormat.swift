#if canImport(Glibc)
import Glibc
#endif

/// Log lines as syslog daemons and HAProxy's users expect them, for every `log ... format`.
public enum SyslogFormat {
    /// `message` for `format`, with the priority `facility * 8 + level`, ending with a line feed.
    /// `structuredData` is the RFC 5424 part (`log-format-sd`).
    /// `hostname` goes into RFC 3164 lines (`log-send-hostname`).
    public static func line(_ message: String, facility: Int, level: Int, format: String, tag: String, pid: Int, now: Int,
                            structuredData: String? = nil, hostname: String? = nil) -> String {
        let priority = "<\(facility * 8 + level)>"
        switch format {
        case "raw": return message + "\n"
        case "short", "priority": return priority + message + "\n"
        case "iso": return LogDate.iso8601(now) + " " + message + "\n"
        case "timed": return priority + LogDate.rfc3164(now) + " " + message + "\n"
        case "rfc5424":
            let sd = structuredData.flatMap { $0.isEmpty ? nil : $0 } ?? "-"
            return "\(priority)1 \(LogDate.iso8601(now)) \(hostname ?? LogDate.hostname) \(tag) \(pid) - \(sd) \(message)\n"
        default: return priority + LogDate.rfc3164(now) + (hostname.map { " " + $0 } ?? "") + " \(tag)[\(pid)]: " + message + "\n"
        }
    }
}

/// The dates of log lines, in local time.
public enum LogDate {
    public static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    public static func local(_ micros: Int) -> tm {
        var seconds = time_t(micros / 1_000_000)
        var t = tm()
        localtime_r(&seconds, &t)
        return t
    }

    public static func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }

    /// `Nov 25 16:30:40` (day padded with a space).
    public static func rfc3164(_ micros: Int) -> String {
        let t = local(micros)
        let day = t.tm_mday < 10 ? " \(t.tm_mday)" : "\(t.tm_mday)"
        return "\(months[Int(t.tm_mon)]) \(day) \(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec))"
    }

    /// `25/Nov/2026:16:30:40.123`, the accept and request dates of traffic logs.
    public static func haproxy(_ micros: Int) -> String {
        let t = local(micros)
        let ms = (micros / 1000) % 1000
        let msText = ms < 10 ? "00\(ms)" : (ms < 100 ? "0\(ms)" : "\(ms)")
        return "\(two(t.tm_mday))/\(months[Int(t.tm_mon)])/\(1900 + Int(t.tm_year)):\(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec)).\(msText)"
    }

    /// `25/Nov/2026:16:30:40 +0000` in UTC (`%T`, `%trg`) or local time (`%Tl`, `%trl`).
    public static func clf(_ micros: Int, utc: Bool) -> String {
        var seconds = time_t(micros / 1_000_000)
        var t = tm()
        if utc { gmtime_r(&seconds, &t) } else { localtime_r(&seconds, &t) }
        let offset = utc ? 0 : Int(t.tm_gmtoff) / 60
        let zone = (offset < 0 ? "-" : "+") + two(Int32(abs(offset) / 60)) + two(Int32(abs(offset) % 60))
        return "\(two(t.tm_mday))/\(months[Int(t.tm_mon)])/\(1900 + Int(t.tm_year)):\(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec)) \(zone)"
    }

    /// `2026-11-25T16:30:40.123456+00:00`.
    public static func iso8601(_ micros: Int) -> String {
        let t = local(micros)
        let us = String(micros % 1_000_000)
        let offset = Int(t.tm_gmtoff) / 60
        let sign = offset < 0 ? "-" : "+"
        let zone = "\(sign)\(two(Int32(abs(offset) / 60))):\(two(Int32(abs(offset) % 60)))"
        return "\(1900 + Int(t.tm_year))-\(two(t.tm_mon + 1))-\(two(t.tm_mday))T\(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec))."
            + String(repeating: "0", count: 6 - us.count) + us + zone
    }

    public static let hostname: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()
}
