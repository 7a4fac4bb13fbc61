import NIOCore
import Shared

/// Where the rules of `Sources/Worker/Rules` meet the exchange: request rules and routing
/// between `requestStarted` and `serverWanted`, response rules on the response head,
/// `http-after-response` rules on every answer, and the local answers rules produce.
extension HTTPSession {
    enum Routing {
        case backend(Backend?)
        /// The request was answered (or the connection closed) by a rule.
        case handled
    }

    /// `monitor-uri`, `tcp-request content` and `http-request` rules of the frontend, the
    /// switching rules, then the backend's rules. The request head in `streams` may be
    /// edited on the way.
    func routeRequest() -> Routing {
        let rules = frontend.rules
        let c = streams
        rules.captureHeaders(c, response: false)
        if let uri = rules.monitorURI, let target = c.requestTarget, URLParts.path(target).map(String.init) == uri {
            let failing = rules.monitorFail.contains { $0.matches(c) }
            sendAnswer(LocalAnswer.errorPage(failing ? 503 : 200, errorFiles: [:], cause: ("-", "-")))
            return .handled
        }
        if !rules.tcpContent.isEmpty, !runContentRules(rules.tcpContent) { return .handled }
        // A new request for the entries the connection (or its content rules) tracks.
        c.stickCounters?.countHTTPRequest()
        if !runRequestRules(rules) { return .handled }
        if serveStatsIfAsked(rules) { return .handled }
        let chosen = rules.useBackends.withUnsafeBufferPointer { switches -> Backend? in
            // Walked without counting references: every request tests every rule until one
            // names a backend.
            for rule in switches {
                let name = Unmanaged.passUnretained(rule)._withUnsafeGuaranteedRef { $0.backendName(c) }
                if let name, let backend = runtime.backends[name] { return backend }
            }
            return frontend.backend
        }
        c.backend = chosen
        if let backend = chosen, backend.rules !== rules {
            if !runContentRules(backend.rules.tcpContent) { return .handled }
            if !runRequestRules(backend.rules) { return .handled }
            if serveStatsIfAsked(backend.rules) { return .handled }
        }
        return .backend(chosen)
    }

    /// `tcp-request content` rules in an HTTP stream: false when one closed the connection.
    func runContentRules(_ rules: [TCPRule]) -> Bool {
        for rule in rules {
            if let condition = rule.condition, !condition.matches(streams) { continue }
            switch TCPRuleRunner.apply(rule, streams) {
            case .next, .expectProxy: continue
            case .accept: return true
            case .reject:
                closeByRule()
                return false
            }
        }
        return true
    }

    /// A rule rejected the request: the connection closes without an answer (logged `P`).
    func closeByRule() {
        countDenied()
        exchange.terminationCause = "P"
        clientIn.discard()
        closeClient()
    }

    /// `use-server` rules of the backend: the first that matches and names one of its servers.
    func chooseServer(_ backend: Backend) -> Server? {
        let rules = backend.rules.useServers
        guard !rules.isEmpty else { return nil }
        for rule in rules {
            if let condition = rule.condition, !condition.matches(streams) { continue }
            // A server that is down is skipped, unless persistence is forced.
            if let server = backend.server(named: rule.server.evaluate(streams)), persistenceAccepts(server, backend) { return server }
        }
        return nil
    }

    /// One proxy's `http-request` rules (from rule `start` on); false when they answered or
    /// closed.
    func runRequestRules(_ proxy: ProxyRuleSet, from start: Int = 0) -> Bool {
        let rules = proxy.httpRequest
        guard start < rules.count else { return restrictHeaderNames(proxy) }
        switch HTTPRuleRunner.run(rules, from: start, stage: .httpRequest, context: streams, errorFiles: proxy.errorFiles,
                                  defaultRealm: proxy.name) {
        case .proceed:
            return restrictHeaderNames(proxy)
        case .waitForBody(_, _, let resume):
            // A backend's `wait-for-body` (the frontend's buffers before any rule): what came.
            if streams.body == nil { streams.body = peekedBody.payload }
            return runRequestRules(proxy, from: resume + 1)
        case .answer(let answer):
            if answer.denied { countDenied() }
            sendAnswer(answer)
            return false
        case .service(let service):
            serve(service)
            return false
        case .tarpit(let answer):
            countDenied()
            tarpit(answer, proxy: proxy)
            return false
        case .reject:
            closeByRule()
            return false
        }
    }

    /// `option http-restrict-req-hdr-names delete|reject` of `proxy`, after its request rules:
    /// headers whose name has a character outside `[A-Za-z0-9-]` are removed, or the request is
    /// denied with a 403; false when it was.
    func restrictHeaderNames(_ proxy: ProxyRuleSet) -> Bool {
        guard proxy.headerNames != .preserve, streams.requestHeaderLines.contains(where: { !HeaderNamePolicy.isPlain($0.name) }) else {
            return true
        }
        if proxy.headerNames == .reject {
            countDenied()
            sendAnswer(LocalAnswer.errorPage(403, errorFiles: proxy.errorFiles, cause: ("P", "R")))
            return false
        }
        streams.editRequest { $0.removeHeaders { !HeaderNamePolicy.isPlain($0) } }
        return true
    }

    func countDenied() {
        frontend.counters.deniedRequests.wrappingIncrement(ordering: .relaxed)
    }

    /// `tarpit`: nothing happens for `timeout tarpit` (else `timeout connect`), then the answer.
    func tarpit(_ answer: LocalAnswer, proxy: ProxyRuleSet) {
        let delay = proxy.timeouts.tarpit ?? proxy.timeouts.connect ?? 0
        holdClientReading()
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        _ = context.eventLoop.scheduleTask(in: .milliseconds(delay)) {
            let session = bound.value
            guard !session.exchange.isClosed else { return }
            session.resumeClientReading()
            session.sendAnswer(answer)
        }
    }

    /// The client is not read while an answer waits (tarpit, one made off the loop): a
    /// pipelined request stays in the socket until this one is answered.
    func holdClientReading() {
        _ = try? context.channel.syncOptions?.setOption(.autoRead, value: false)
        clientReading = false
    }

    func resumeClientReading() {
        clientReading = true
        _ = try? context.channel.syncOptions?.setOption(.autoRead, value: true)
    }

    // MARK: - Responses

    /// `http-response` rules of the backend then the frontend, then `http-after-response`, over
    /// the head in `streams.response`; false when a rule answered (the answer is sent) or closed
    /// instead.
    func applyResponseRules() -> Bool {
        let c = streams
        frontend.rules.captureHeaders(c, response: true)
        // The backend's rules, then the frontend's (once when they are the same proxy).
        let backendRules = (slot?.backend ?? c.backend)?.rules
        for step in 0..<2 {
            let proxy: ProxyRuleSet
            if step == 0 {
                guard let backendRules, backendRules !== frontend.rules else { continue }
                proxy = backendRules
            } else {
                proxy = frontend.rules
            }
            if proxy.httpResponse.isEmpty { continue }
            switch HTTPRuleRunner.run(proxy.httpResponse, stage: .httpResponse, context: c, errorFiles: proxy.errorFiles,
                                      defaultRealm: proxy.name) {
            case .proceed, .waitForBody, .service:
                continue
            case .answer(var answer), .tarpit(var answer):
                if answer.denied {
                    // A denied response becomes a 502 for the client.
                    answer = LocalAnswer.errorPage(502, errorFiles: proxy.errorFiles, cause: ("P", "H"))
                    frontend.counters.deniedRequests.wrappingIncrement(ordering: .relaxed)
                }
                replaceResponse(with: answer)
                return false
            case .reject:
                detachServer(close: true)
                dialer.release()
                exchange.terminationCause = "P"
                closeClient()
                return false
            }
        }
        runAfterResponseRules()
        return true
    }

    /// The server's response is dropped and a local answer goes instead.
    func replaceResponse(with answer: LocalAnswer) {
        detachServer(close: true)
        dialer.release()
        serverIn.discard()
        sendAnswer(answer)
    }

    /// `http-after-response` rules (backend's, then frontend's) on `streams.response`.
    func runAfterResponseRules() {
        let c = streams
        if let backend = (slot?.backend ?? c.backend)?.rules, backend !== frontend.rules, !backend.httpAfterResponse.isEmpty {
            _ = HTTPRuleRunner.run(backend.httpAfterResponse, stage: .httpAfterResponse, context: c, errorFiles: [:], defaultRealm: backend.name)
        }
        if !frontend.rules.httpAfterResponse.isEmpty {
            _ = HTTPRuleRunner.run(frontend.rules.httpAfterResponse, stage: .httpAfterResponse, context: c,
                                   errorFiles: [:], defaultRealm: frontend.name)
        }
    }

    /// Writes an answer of the proxy's own (after `http-after-response` rules).
    func sendAnswer(_ answer: LocalAnswer) {
        guard !exchange.isClosed else { return }
        let head = answerHead(answer)
        let close = exchange.returnCloses
        let connection: HTTPExchange.ClientConnectionHeader = close ? .close : (exchange.clientVersionMinor == 0 ? .keepAlive : .none)
        var out = H1Serializer.responseHead(head, clientMinor: exchange.clientVersionMinor, connection: connection, dechunk: false,
                                            extraCapacity: answer.body.count, allocator: context.channel.allocator)
        if request?.method != "HEAD" { out.writeBytes(answer.body) }
        writeLocal(Array(out.readableBytesView), closes: close)
    }

    /// The head of a proxy's own answer once `http-after-response` rules saw it; the answer is
    /// counted and noted for the log.
    func answerHead(_ answer: LocalAnswer) -> MessageHead {
        streams.response = answer.head
        if hasAfterResponseRules { runAfterResponseRules() }
        let head = streams.response ?? answer.head
        countResponse(status: head.status)
        if exchangeLog != nil { noteLocalResponse(head.status, cause: answer.cause) }
        return head
    }

    var hasAfterResponseRules: Bool {
        !frontend.rules.httpAfterResponse.isEmpty || !((slot?.backend ?? streams.backend)?.rules.httpAfterResponse.isEmpty ?? true)
    }
}
