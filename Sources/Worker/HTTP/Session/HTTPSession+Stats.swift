import NIOConcurrencyHelpers
import NIOCore
import Shared

/// The statistics page (`stats enable`): checked after each proxy's `http-request` rules, as
/// HAProxy does, then guarded by `stats http-request` rules or `stats auth`, then rendered
/// off the event loop.
extension HTTPSession {
    /// Serves the page when the request asks for it; true when it is taken care of.
    func serveStatsIfAsked(_ proxy: ProxyRuleSet) -> Bool {
        guard proxy.servesStats, let stats = proxy.stats else { return false }
        let c = streams
        guard let method = c.requestMethod, let target = c.requestTarget,
              StatsRequest.matches(method: Substring(method), target: target, uri: stats.uri) else { return false }
        if !stats.httpRequest.isEmpty {
            switch HTTPRuleRunner.run(stats.httpRequest, stage: .httpRequest, context: c, errorFiles: proxy.errorFiles,
                                      defaultRealm: StatsSettings.defaultRealm) {
            case .proceed, .waitForBody, .service:
                break
            case .answer(let answer), .tarpit(let answer):
                if answer.denied { countDenied() }
                sendAnswer(answer)
                return true
            case .reject:
                closeByRule()
                return true
            }
        } else if stats.requiresAuthentication,
                  BasicAuth.authenticate(c.headerValues("authorization", response: false), in: stats.users) == nil {
            sendAnswer(HTTPRuleRunner.authChallenge(realm: stats.effectiveRealm, errorFiles: proxy.errorFiles))
            return true
        }
        guard let api = runtime.runtimeAPI.withLockedValue({ $0 }) else { return false }
        let admin = stats.adminConditions.contains { $0.matches(c) }
        let body: (payload: [UInt8], complete: Bool) = method == "POST" ? peekedBody : ([], true)
        let limit = runtime.bufferSize - runtime.configuration.global.maxRewrite
        let query = StatsService.Query(method: method, target: target, body: body.payload,
                                       bodyComplete: body.complete && body.payload.count < limit, admin: admin)
        let service = StatsService(runtime: runtime, api: api, settings: stats, proxyName: proxy.name)
        answerOffLoop { service.answer(query) }
        return true
    }

    /// Sends an answer computed off the event loop; the client is not read meanwhile.
    func answerOffLoop(_ make: @escaping @Sendable () -> LocalAnswer) {
        exchange.answerDeferred()
        holdClientReading()
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        runtime.offLoop(on: context.eventLoop, make).whenComplete { result in
            let session = bound.value
            guard !session.exchange.isClosed else { return }
            session.resumeClientReading()
            switch result {
            case .success(let answer): session.sendAnswer(answer)
            case .failure: session.sendAnswer(LocalAnswer.errorPage(500, errorFiles: [:], cause: ("P", "R")))
            }
        }
    }

    /// A POST to a statistics page reads its body (the admin form) before the rules run.
    func statsBodyWanted(_ head: MessageHead) -> Bool {
        guard !frontend.statsURIs.isEmpty, head.method == "POST" else { return false }
        let target = String(head.target)
        return frontend.statsURIs.contains { StatsRequest.matches(method: "POST", target: target, uri: $0) }
    }
}

/// Services (`http-request use-service`) and answers streamed piece by piece.
extension HTTPSession {
    func serve(_ service: HTTPService) {
        switch service {
        case .prometheusExporter:
            guard let api = runtime.runtimeAPI.withLockedValue({ $0 }),
                  let query = PrometheusQuery.parse(streams.requestTarget.flatMap { URLParts.query($0) }) else {
                sendBuiltIn(.badRequest, cause: ("P", "R"))
                return
            }
            var headers = [("cache-control", "no-cache"), ("content-type", "text/plain; version=0.0.4")]
            if exchange.clientVersionMinor > 0 { headers.append(("transfer-encoding", "chunked")) }
            let answer = LocalAnswer.make(status: 200, headers: headers, body: [], cause: ("P", "R"))
            let box = NIOLockedValueBox<PrometheusExposition?>(nil)
            streamAnswer(answer) {
                box.withLockedValue { exposition in
                    if exposition == nil { exposition = PrometheusExposition(api: api, query: query) }
                    return exposition!.next()
                }
            }
        }
    }

    /// Sends `answer`'s head, then the pieces `next` makes off the event loop (nil: the end),
    /// each once the previous one is written: chunked for HTTP/1.1 clients (the head says so),
    /// up to the close for HTTP/1.0 ones. A HEAD request gets the head alone.
    func streamAnswer(_ answer: LocalAnswer, next: @escaping @Sendable () -> String?) {
        guard !exchange.isClosed else { return }
        if request?.method == "HEAD" {
            sendAnswer(answer)
            return
        }
        let head = answerHead(answer)
        let chunked = exchange.clientVersionMinor > 0
        let close = exchange.returnCloses || !chunked
        let connection: HTTPExchange.ClientConnectionHeader = close ? .close : .none
        let out = H1Serializer.responseHead(head, clientMinor: 1, connection: connection, dechunk: false,
                                            allocator: context.channel.allocator)
        exchange.answerDeferred()
        holdClientReading()
        writeStreamed(out)
        streamPiece(next, chunked: chunked, closes: close)
    }

    private func streamPiece(_ next: @escaping @Sendable () -> String?, chunked: Bool, closes: Bool) {
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        runtime.offLoop(on: context.eventLoop, next).whenComplete { result in
            let session = bound.value
            guard !session.exchange.isClosed else { return }
            guard case .success(let piece?) = result else {
                // The end (or a failure, which ends the answer where it stands).
                session.resumeClientReading()
                session.writeLocal(chunked ? Array("0\r\n\r\n".utf8) : [], closes: closes)
                return
            }
            if piece.isEmpty {
                session.streamPiece(next, chunked: chunked, closes: closes)
                return
            }
            let size = piece.utf8.count
            var buffer = session.context.channel.allocator.buffer(capacity: size + 16)
            if chunked { buffer.writeString(String(size, radix: 16) + "\r\n") }
            buffer.writeString(piece)
            if chunked { buffer.writeString("\r\n") }
            // The next piece is made once this one left: a slow client holds the exporter back
            // instead of letting the text pile up in memory.
            session.writeStreamed(buffer).whenSuccess { _ in
                let session = bound.value
                guard !session.exchange.isClosed else { return }
                session.streamPiece(next, chunked: chunked, closes: closes)
            }
        }
    }

    @discardableResult
    private func writeStreamed(_ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        frontend.counters.bytesOut.wrappingIncrement(by: buffer.readableBytes, ordering: .relaxed)
        if exchangeLog != nil { exchangeLog!.bytesOut += buffer.readableBytes }
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: promise)
        return promise.futureResult
    }
}
