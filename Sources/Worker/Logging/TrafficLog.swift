import NIOCore
#if canImport(Glibc)
import Glibc
#endif
import Shared

/// What a proxy logs for its traffic: a line per exchange or session in its log format
/// (`option httplog|tcplog`, `log-format`), or HAProxy's "Connect from" line at accept.
enum TrafficLogFormat {
    case connect
    case formatted(LogFormatString)

    init(_ settings: ProxySettings) {
        self = settings.logging.format.map { .formatted($0) } ?? .connect
    }

    var format: LogFormatString? {
        if case .formatted(let f) = self { return f }
        return nil
    }
}

/// What the log line of one HTTP exchange (or one TCP session) needs, gathered as it runs.
/// Times are monotonic milliseconds; -1 means "did not happen" as in HAProxy's timers.
struct ExchangeLog {
    /// Wall-clock microseconds when the request (or connection) began: `%tr` / `%t`.
    var startedWall: Int
    var startedMono: Int
    /// End of the request headers.
    var headersMono = -1
    var queuedMono = -1
    var queueMs = 0
    var connectStartMono = -1
    var connectMs = -1
    var connectedMono = -1
    var responseMs = -1
    var status = -1
    var bytesOut = 0
    /// Bytes from the client (for `option dontlognull`).
    var bytesIn = 0
    var retries = 0
    var redispatched = false
    /// The persistence cookie's two `%tsc` characters (`--` without `cookie`).
    var cookieFlags = "--"
    var requestLine = "<BADREQ>"
    var backend: String
    var server = "<NOSRV>"
    /// How long the connection was idle before the request (`%Ti`).
    var idleMs = 0
    /// The stream's number in the process (`%rt`).
    var streamID = 0
    var uniqueID: String?
    /// The server connection's two ends (`%si:%sp`, `%bi:%bp`).
    var serverAddress: SocketAddress?
    var sourceAddress: SocketAddress?

    init(frontend: String, startedMono: Int) {
        startedWall = WallClock.microseconds()
        self.startedMono = startedMono
        backend = frontend
    }

    /// A connection attempt to `server` starts (the first one starts `%Tc`).
    mutating func noteConnectAttempt(server: String, attempt: Int, redispatched: Bool) {
        if connectStartMono < 0 { connectStartMono = MonotonicClock.milliseconds() }
        retries = attempt - 1
        self.server = server
        if redispatched { self.redispatched = true }
    }

    /// Nothing went wrong: no termination flag, no 5xx, no retry or redispatch (what
    /// `option dontlog-normal` leaves out).
    func isNormal(termination: String) -> Bool { level(termination: termination, separateErrors: true) == .info }

    /// `option log-separate-errors`: errors, timeouts, retries, redispatches and 5xx go out at
    /// `err` instead of `info`.
    func level(termination: String, separateErrors: Bool) -> LogLevel {
        guard separateErrors else { return .info }
        let troubled = termination.first.map { $0 != "-" } ?? false
        return troubled || status >= 500 || retries > 0 || redispatched ? .err : .info
    }

    /// The client address as `%ci:%cp`.
    static func client(_ address: SocketAddress?) -> String {
        guard let address else { return "-:-" }
        switch address {
        case .v4, .v6: return "\(address.ipAddress ?? "-"):\(address.port ?? 0)"
        case .unixDomainSocket: return "unix:1"
        }
    }

    /// `Connect from <ci>:<cp> to <fi>:<fp> (<frontend>/<mode>)`, the line without a log option.
    static func connectLine(client: SocketAddress?, listener: SocketAddress?, frontend: String, mode: String) -> String {
        "Connect from \(Self.client(client)) to \(Self.client(listener)) (\(frontend)/\(mode))"
    }

}

extension WorkerRuntime {
    /// `%ac/%fc/%bc/%sc`. HAProxy logs once the stream has left its backend and server, so they
    /// do not count the stream being logged.
    func connectionCounts(_ frontend: Frontend, _ slot: (backend: Backend, server: Server)?,
                          backend: Backend?) -> TrafficLogRecord.Counts {
        let active = frontends.reduce(0) { $0 + $1.currentSessions.load(ordering: .relaxed) }
        let own = slot == nil ? 0 : 1
        let be = max(0, ((slot?.backend ?? backend)?.currentSessions.load(ordering: .relaxed) ?? 0) - own)
        let srv = max(0, (slot?.server.currentServed ?? 0) - own)
        return TrafficLogRecord.Counts(active: active, frontend: frontend.currentSessions.load(ordering: .relaxed),
                                       backend: be, server: srv)
    }
}

/// One log line's facts, gathered when the exchange (or session) ends: the `%` variables of
/// its log format read them.
struct TrafficLogRecord: LogRecord {
    struct Counts {
        var active = 0, frontend = 0, backend = 0, server = 0
    }

    var log: ExchangeLog
    /// `%ts`: two characters, `--` for a normal end.
    var termination: String
    var counts: Counts
    var client: SocketAddress?
    var listener: SocketAddress?
    /// The server's address (`%si:%sp`) and the proxy's end of that connection (`%bi:%bp`).
    var serverAddress: SocketAddress?
    var sourceAddress: SocketAddress?
    var frontendName: String
    var endMono: Int
    /// `%lc`: lines this frontend logged before this one.
    var lineNumber = 0
    var requestCaptures: [String?]? = nil
    var responseCaptures: [String?]? = nil
    /// TCP sessions: `%t` is the accept date and there is no request.
    var isTCP = false
    /// The client connection's TLS (`%ft` ends with `~`, `%sslv`, `%sslc`).
    var tls: TLSSessionFacts? = nil

    func captures(response: Bool) -> [String?]? { response ? responseCaptures : requestCaptures }

    /// The request line's parts (`%HM`, `%HU`, `%HV`).
    private var requestParts: [Substring]? {
        let parts = log.requestLine.split(separator: " ", omittingEmptySubsequences: false)
        return parts.count == 3 ? parts : nil
    }

    private var requestReceived: Int { log.headersMono >= 0 ? log.headersMono - log.startedMono : -1 }
    private var active: Int { endMono - log.startedMono }
    private var total: Int { active + (isTCP ? 0 : log.idleMs) }
    private var queue: Int { log.connectStartMono >= 0 || log.queuedMono >= 0 ? log.queueMs : -1 }
    /// The accept date: the request date less the idle time before it.
    private var acceptWall: Int { log.startedWall - (isTCP ? 0 : log.idleMs * 1000) }

    func value(_ v: LogFormatString.Variable) -> LogFormatString.Value? {
        func n(_ x: Int) -> LogFormatString.Value { .number(Int64(x)) }
        switch v {
        case .ci: return Self.ip(client)
        case .cp: return Self.port(client)
        case .fi: return Self.ip(listener)
        case .fp: return Self.port(listener)
        case .si: return Self.ip(serverAddress)
        case .sp: return Self.port(serverAddress)
        case .bi: return Self.ip(sourceAddress)
        case .bp: return Self.port(sourceAddress)
        case .f: return .text(frontendName)
        case .ft: return .text(tls == nil ? frontendName : frontendName + "~")
        case .b: return .text(log.backend)
        case .s: return .text(log.server)
        case .t: return .text(LogDate.haproxy(acceptWall))
        case .tr: return .text(LogDate.haproxy(log.startedWall))
        case .trg: return .text(LogDate.clf(log.startedWall, utc: true))
        case .trl: return .text(LogDate.clf(log.startedWall, utc: false))
        case .T: return .text(LogDate.clf(acceptWall, utc: true))
        case .Tl: return .text(LogDate.clf(acceptWall, utc: false))
        case .Ts: return n(acceptWall / 1_000_000)
        case .ms:
            let ms = (acceptWall / 1000) % 1000
            return .text(ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)")
        case .Th: return n(0)
        case .Ti: return n(isTCP ? 0 : log.idleMs)
        case .TR: return n(requestReceived)
        case .Tq: return n(requestReceived >= 0 ? log.idleMs + requestReceived : -1)
        case .Tw: return n(queue)
        case .Tc: return n(log.connectMs)
        case .Tr: return n(log.responseMs)
        case .Ta: return n(active)
        case .Tt: return n(total)
        case .Tu: return n(active)
        case .Td:
            let q = requestReceived >= 0 ? log.idleMs + requestReceived : -1
            guard q >= 0, queue >= 0, log.connectMs >= 0, log.responseMs >= 0 else { return n(-1) }
            return n(total - q - queue - log.connectMs - log.responseMs)
        case .ST: return n(log.status)
        case .B: return n(log.bytesOut)
        case .U: return n(log.bytesIn)
        case .CC, .CS: return nil
        case .ts: return .text(termination)
        case .tsc: return .text(termination + log.cookieFlags)
        case .ac: return n(counts.active)
        case .fc: return n(counts.frontend)
        case .bc: return n(counts.backend)
        case .sc: return n(counts.server)
        case .rc: return log.redispatched ? .text("+\(log.retries)") : n(log.retries)
        case .sq, .bq: return n(0)
        case .r: return isTCP ? nil : .text(log.requestLine)
        case .HM: return requestParts.map { .text(String($0[0])) }
        case .HU: return requestParts.map { .text(String($0[1])) }
        case .HP: return requestParts.map { .text(String(URLParts.path(String($0[1])) ?? $0[1])) }
        case .HQ: return requestParts.map { .text(URLParts.query(String($0[1])).map { "?" + $0 } ?? "") }
        case .HV: return requestParts.map { .text(String($0[2])) }
        case .ID: return log.uniqueID.map { .text($0) }
        case .H: return .text(LogDate.hostname)
        case .pid: return n(Int(getpid()))
        case .lc: return n(lineNumber)
        case .rt: return n(log.streamID)
        case .sslc: return tls?.cipher.map { .text($0) }
        case .sslv: return tls?.protocolName.map { .text($0) }
        case .hr, .hrl, .hs, .hsl, .o: return nil
        }
    }

    private static func ip(_ address: SocketAddress?) -> LogFormatString.Value? {
        switch address {
        case .v4(let a)?:
            return .ipv4(UInt32(bigEndian: a.address.sin_addr.s_addr), address?.ipAddress ?? "-")
        case .v6?:
            return address?.ipAddress.map { .text($0) }
        case .unixDomainSocket?:
            return .text("unix")
        case nil:
            return nil
        }
    }

    private static func port(_ address: SocketAddress?) -> LogFormatString.Value? {
        switch address {
        case .v4?, .v6?: return address?.port.map { .number(Int64($0)) }
        case .unixDomainSocket?: return .number(1)
        case nil: return nil
        }
    }
}
