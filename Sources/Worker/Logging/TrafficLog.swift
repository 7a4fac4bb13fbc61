import NIOCore
import Shared

/// Which line a frontend logs for its traffic: HAProxy's `option httplog`, `option tcplog`, or
/// without either the one-line "Connect from" notice at accept time.
enum TrafficLogFormat {
    case http, tcp, connect

    init(_ options: ProxyOptions) {
        self = options.httpLog ? .http : (options.tcpLog ? .tcp : .connect)
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
    var requestLine = "<BADREQ>"
    var backend: String
    var server = "<NOSRV>"

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

    /// `%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %{+Q}r`
    func httpLine(client: String, frontend: String, termination: String, counts: String, endMono: Int) -> String {
        let received = headersMono >= 0 ? headersMono - startedMono : -1
        let total = endMono - startedMono
        let retriesText = redispatched ? "+\(retries)" : "\(retries)"
        return "\(client) [\(LogDate.haproxy(startedWall))] \(frontend) \(backend)/\(server) "
            + "\(received)/\(connectStartMono >= 0 || queuedMono >= 0 ? queueMs : -1)/\(connectMs)/\(responseMs)/\(total) "
            + "\(status) \(bytesOut) - - \(termination)-- \(counts)/\(retriesText) 0/0 \"\(requestLine)\""
    }

    /// `%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq`
    func tcpLine(client: String, frontend: String, termination: String, counts: String, endMono: Int) -> String {
        let retriesText = redispatched ? "+\(retries)" : "\(retries)"
        return "\(client) [\(LogDate.haproxy(startedWall))] \(frontend) \(backend)/\(server) "
            + "\(connectStartMono >= 0 || queuedMono >= 0 ? queueMs : -1)/\(connectMs)/\(endMono - startedMono) "
            + "\(bytesOut) \(termination) \(counts)/\(retriesText) 0/0"
    }
}

extension WorkerRuntime {
    /// `%ac/%fc/%bc/%sc` (without the retries). HAProxy logs once the stream has left its
    /// backend and server, so they do not count the stream being logged.
    func connectionCounts(_ frontend: Frontend, _ slot: (backend: Backend, server: Server)?, backend: Backend?) -> String {
        let active = frontends.reduce(0) { $0 + $1.currentSessions.load(ordering: .relaxed) }
        let own = slot == nil ? 0 : 1
        let be = max(0, ((slot?.backend ?? backend)?.currentSessions.load(ordering: .relaxed) ?? 0) - own)
        let srv = max(0, (slot?.server.currentServed ?? 0) - own)
        return "\(active)/\(frontend.currentSessions.load(ordering: .relaxed))/\(be)/\(srv)"
    }
}
