import NIOCore
import Shared

/// Traffic logs: HAProxy's `option httplog` / `option tcplog` line for each exchange, with its
/// timers and termination flags, or the "Connect from" line without either option.
extension HTTPSession {
    func beginExchangeLog(_ head: MessageHead) {
        let now = MonotonicClock.milliseconds()
        let started = firstByteMono >= 0 ? firstByteMono : now
        var log = ExchangeLog(frontend: frontend.name, startedMono: started)
        log.headersMono = now
        log.requestLine = Self.requestLine(head)
        log.idleMs = max(0, started - idleSinceMono)
        log.streamID = streamID
        // `%U`: the request as it came (its body is added as it is read).
        log.bytesIn = head.bytes.readableBytes
        exchangeLog = log
        firstByteMono = -1
    }

    func noteConnected(_ c: ServerConnection) {
        let now = MonotonicClock.milliseconds()
        exchangeLog!.server = c.server.name
        exchangeLog!.connectedMono = now
        exchangeLog!.serverAddress = c.channel.remoteAddress
        exchangeLog!.sourceAddress = c.channel.localAddress
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
        // `option dontlognull`: a connection that never sent a byte is not logged, even when
        // its wait ends in a 408.
        if exchangeLog == nil, firstByteMono < 0, exchange.requestsDone == 0, frontend.settings.options.dontLogNull { return }
        if exchangeLog == nil {
            // A request that could not even be parsed (or never came).
            let started = firstByteMono >= 0 ? firstByteMono : createdAtMs
            exchangeLog = ExchangeLog(frontend: frontend.name, startedMono: started)
            exchangeLog!.idleMs = max(0, started - idleSinceMono)
            exchangeLog!.streamID = streamID
            firstByteMono = -1
        }
        exchangeLog!.status = status
        localCause = cause
    }

    /// The client closed before its request was whole: HAProxy counts and logs a `<BADREQ>` 400
    /// (`CR`), for a connection that sent nothing too unless `option dontlognull` (a probe).
    func noteAbandonedRequest() {
        let sentSomething = firstByteMono >= 0
        guard sentSomething || (exchange.requestsDone == 0 && !frontend.settings.options.dontLogNull) else { return }
        // HAProxy counts it as a request (and a client error) for the tracked entries too.
        streams.stickCounters?.countHTTPRequest()
        countResponse(status: 400)
        guard logger != nil, logFormat.format != nil else { return }
        let started = firstByteMono >= 0 ? firstByteMono : (exchange.requestsDone == 0 ? createdAtMs : idleSinceMono)
        exchangeLog = ExchangeLog(frontend: frontend.name, startedMono: started)
        exchangeLog!.startedWall -= (MonotonicClock.milliseconds() - started) * 1000
        exchangeLog!.status = 400
        exchangeLog!.streamID = streamID
        exchange.terminationCause = "C"
        firstByteMono = -1
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
        guard let log = exchangeLog, let logger, let format = logFormat.format else { return }
        exchangeLog = nil
        let termination = cause == "-" ? "--" : "\(cause)\(state ?? exchange.stateCharacter)"
        let options = frontend.settings.options
        // `option dontlog-normal`: only what shows a problem.
        if options.dontLogNormal, log.isNormal(termination: termination) { return }
        // `set-log-level`: a rule may silence the line or change its level.
        var level = log.level(termination: termination, separateErrors: options.logSeparateErrors)
        if let wanted = streams.logLevel {
            guard let chosen = LogLevel(name: wanted) else { return }
            level = chosen
        }
        var record = TrafficLogRecord(log: log, termination: termination,
                                      counts: runtime.connectionCounts(frontend, slot, backend: frontend.backend),
                                      client: clientAddress, listener: streams.localSocket ?? context.channel.localAddress,
                                      serverAddress: log.serverAddress, sourceAddress: log.sourceAddress,
                                      frontendName: frontend.name, endMono: MonotonicClock.milliseconds(),
                                      lineNumber: frontend.nextLogLine())
        record.tls = streams.clientTLS
        streams.noteForLog(method: log.requestLine == "<BADREQ>" ? nil : log.requestLine.split(separator: " ", maxSplits: 1).first,
                           status: log.status >= 0 ? log.status : nil)
        let rules = frontend.rules
        if rules.requestCaptureCount > 0 { record.requestCaptures = Self.slots(streams.requestCaptures, rules.requestCaptureCount) }
        if rules.responseCaptureCount > 0 { record.responseCaptures = Self.slots(streams.responseCaptures, rules.responseCaptureCount) }
        let sd = frontend.settings.logging.structuredData.map { $0.render(record, context: streams) }
        logger.emit(level, format.render(record, context: streams), structuredData: sd)
    }

    /// `unique-id-format`: the request's ID, made when its head arrives (so that rules, the
    /// `unique-id-header` and the log line see the same one).
    /// `%r`'s request line.
    static func requestLine(_ head: MessageHead) -> String {
        "\(head.method) \(head.target) HTTP/1.\(head.versionMinor)"
    }

    func makeUniqueID(_ format: LogFormatString) {
        var log = exchangeLog ?? ExchangeLog(frontend: frontend.name, startedMono: MonotonicClock.milliseconds())
        log.streamID = streamID
        log.requestLine = request.map(Self.requestLine) ?? ""
        let record = TrafficLogRecord(log: log, termination: "--", counts: TrafficLogRecord.Counts(), client: clientAddress,
                                      listener: streams.localSocket ?? context.channel.localAddress, serverAddress: nil,
                                      sourceAddress: nil, frontendName: frontend.name, endMono: MonotonicClock.milliseconds())
        let id = format.render(record, context: streams)
        uniqueID = id
        exchangeLog?.uniqueID = id
    }

    /// The captured values of `count` declared slots.
    static func slots(_ values: [String?], _ count: Int) -> [String?] {
        (0..<count).map { $0 < values.count ? values[$0] : nil }
    }

    /// `Connect from <ci>:<cp> to <fi>:<fp> (<frontend>/<mode>)`.
    func logConnect(_ channel: Channel, mode: String) {
        logger?.emit(.info, ExchangeLog.connectLine(client: channel.remoteAddress, listener: channel.localAddress,
                                                    frontend: frontend.name, mode: mode))
    }
}
