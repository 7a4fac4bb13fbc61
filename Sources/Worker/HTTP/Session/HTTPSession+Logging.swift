import NIOCore
import Shared

/// Traffic logs: HAProxy's `option httplog` / `option tcplog` line for each exchange, with its
/// timers and termination flags, or the "Connect from" line without either option.
extension HTTPSession {
    func beginExchangeLog(_ head: MessageHead) {
        let now = MonotonicClock.milliseconds()
        var log = ExchangeLog(frontend: frontend.name, startedMono: firstByteMono >= 0 ? firstByteMono : now)
        log.headersMono = now
        log.requestLine = "\(head.method) \(head.target) HTTP/1.\(head.versionMinor)"
        exchangeLog = log
        firstByteMono = -1
    }

    func noteConnected(_ c: ServerConnection) {
        let now = MonotonicClock.milliseconds()
        exchangeLog!.server = c.server.name
        exchangeLog!.connectedMono = now
        // A reused connection took no time to establish.
        exchangeLog!.connectMs = exchangeLog!.connectStartMono >= 0 && !exchange.usedReusedConnection
            ? now - exchangeLog!.connectStartMono : 0
        if exchangeLog!.connectStartMono < 0 { exchangeLog!.connectStartMono = now }
    }

    func noteResponse(_ status: Int) {
        exchangeLog!.status = status
        if exchangeLog!.connectedMono >= 0 { exchangeLog!.responseMs = MonotonicClock.milliseconds() - exchangeLog!.connectedMono }
    }

    /// A response the proxy writes itself; the log goes out in `writeLocal`.
    func noteLocalResponse(_ status: Int, cause: (Character, Character)) {
        if exchangeLog == nil {
            // A request that could not even be parsed (or never came).
            exchangeLog = ExchangeLog(frontend: frontend.name, startedMono: firstByteMono >= 0 ? firstByteMono : createdAtMs)
            firstByteMono = -1
        }
        exchangeLog!.status = status
        localCause = cause
    }

    /// HAProxy's termination flags for the built-in responses.
    static func termination(of response: BuiltInResponse) -> (Character, Character) {
        switch response {
        case .badRequest, .forbidden: return ("P", "R")
        case .requestTimeout: return ("c", "R")
        case .gatewayTimeout: return ("s", "H")
        case .badGateway: return ("S", "H")
        case .serviceUnavailable: return ("S", "C")
        default: return ("I", "R")
        }
    }

    /// Sends the exchange's line; `cause` `-` is a normal end (state `-` too).
    func logExchange(_ cause: Character, state: Character? = nil) {
        guard let log = exchangeLog, let logger else { return }
        exchangeLog = nil
        let termination = cause == "-" ? "--" : "\(cause)\(state ?? exchange.stateCharacter)"
        let client = ExchangeLog.client(clientAddress)
        let counts = runtime.connectionCounts(frontend, slot, backend: frontend.backend)
        let now = MonotonicClock.milliseconds()
        // `set-log-level`: a rule may silence the line or change its level.
        var level = log.level(termination: termination, separateErrors: frontend.settings.options.logSeparateErrors)
        if let wanted = streams.logLevel {
            guard let chosen = LogLevel(name: wanted) else { return }
            level = chosen
        }
        let line = logFormat == .tcp
            ? log.tcpLine(client: client, frontend: frontend.name, termination: termination, counts: counts, endMono: now)
            : log.httpLine(client: client, frontend: frontend.name, termination: termination, counts: counts, endMono: now)
        logger.emit(level, line)
    }

    /// `Connect from <ci>:<cp> to <fi>:<fp> (<frontend>/<mode>)`.
    func logConnect(_ channel: Channel, mode: String) {
        logger?.emit(.info, ExchangeLog.connectLine(client: channel.remoteAddress, listener: channel.localAddress,
                                                    frontend: frontend.name, mode: mode))
    }
}
