import Shared
import Testing
@testable import Worker

/// The exchange state machine on its own: events in, actions out, time as a plain number.
/// Each timeout is proven at its exact millisecond instead of by a wall-clock window.
@Suite struct ExchangeTests {
    static func timeouts(request: Int64 = 5_000, keepAlive: Int64 = 2_000, client: Int64 = 30_000,
                         server: Int64 = 10_000, queue: Int64 = 3_000, tunnel: Int64? = nil) -> ExchangeTimeouts {
        var front = Timeouts()
        front.httpRequest = request
        front.httpKeepAlive = keepAlive
        front.client = client
        var back = Timeouts()
        back.server = server
        back.queue = queue
        back.connect = 4_000
        back.tunnel = tunnel
        return ExchangeTimeouts(frontend: front, backend: back)
    }

    static func request(keepAlive: Bool = true, upgrade: Bool = false, bodiless: Bool = true, minor: Int = 1) -> HTTPExchange.RequestFacts {
        HTTPExchange.RequestFacts(keepAlive: keepAlive, isUpgrade: upgrade, bodiless: bodiless, versionMinor: minor)
    }

    /// An exchange whose request went to a server attached at `now`.
    static func exchanging(_ t: ExchangeTimeouts = timeouts(), request r: HTTPExchange.RequestFacts = request(),
                           policy: HTTPExchange.Policy = .init(), now: ExchangeTime = 0, reused: Bool = false) -> HTTPExchange {
        var x = HTTPExchange(timeouts: t, policy: policy)
        x.opened(now: now, closeAfterFirst: false)
        x.requestStarted(r, stoppingWithoutHandOver: false)
        x.forceConnecting()
        x.serverAttached(now: now, reused: reused)
        return x
    }

    // MARK: - Request timeouts

    @Test func theFirstRequestHasHTTPRequestTimeout() {
        var x = HTTPExchange(timeouts: Self.timeouts(), policy: .init())
        x.opened(now: 1_000, closeAfterFirst: false)
        #expect(x.timer == .request && x.deadline == 6_000)
        // The task may run early (a deadline moved later): nothing happens.
        do { let r = x.timerFired(now: 5_999, clientBuffered: false); #expect(r == .none) }
        #expect(x.timer == .request)
        do { let r = x.timerFired(now: 6_000, clientBuffered: true); #expect(r == .respond(.requestTimeout)) }
        // The head was not whole: the answer closes with a lingering close.
        #expect(!x.requestEnded)
        do { let r = x.localResponse(closes: x.builtInCloses(.requestTimeout)); #expect(r == .closeLingering) }
    }

    @Test func withoutHTTPRequestTheClientTimeoutApplies() {
        var front = Timeouts()
        front.client = 7_000
        let t = ExchangeTimeouts(frontend: front, backend: nil)
        #expect(t.firstRequest == 7_000 && t.keepAlive == 7_000)
        var none = HTTPExchange(timeouts: ExchangeTimeouts(frontend: Timeouts(), backend: nil), policy: .init())
        none.opened(now: 0, closeAfterFirst: false)
        #expect(none.timer == nil)
    }

    @Test func keepAliveTimeoutClosesAnIdleConnectionOr408sAPartialHead() {
        var x = Self.exchanging()
        _ = x.responseHead(status: 200, chunked: false, untilClose: false, now: 10)
        let ends = x.responseEnded(connectionUsable: true, responseUntilClose: false, serverKeepsIdle: true)
        #expect(ends.server == .keepForClient && ends.client == .nextRequest)
        x.waitNextRequest(now: 100)
        #expect(x.phase == .idle && x.timer == .keepAlive && x.deadline == 2_100)
        var partial = x
        do { let r = x.timerFired(now: 2_100, clientBuffered: false); #expect(r == .close) }
        do { let r = partial.timerFired(now: 2_100, clientBuffered: true); #expect(r == .respond(.requestTimeout)) }
    }

    // MARK: - Server side

    @Test func serverTimeoutIsInactivityAndMovesWithEachSignOfLife() {
        var x = Self.exchanging(now: 0)
        #expect(x.timer == .server && x.deadline == 10_000)
        x.serverActivity(now: 8_000)
        do { let r = x.timerFired(now: 10_000, clientBuffered: false); #expect(r == .none) }
        #expect(x.deadline == 18_000)
        // Request body sent to the server counts as activity too (slow uploads).
        x.requestBodyForwarded(now: 17_000)
        do { let r = x.timerFired(now: 18_000, clientBuffered: false); #expect(r == .none) }
        do { let r = x.timerFired(now: 27_000, clientBuffered: false); #expect(r == .serverTimeout) }
        #expect(x.terminationCause == nil)   // nothing sent yet: the session answers 504
    }

    @Test func serverTimeoutAfterTheResponseStartedIsLoggedAsServerSide() {
        var x = Self.exchanging()
        _ = x.responseHead(status: 200, chunked: true, untilClose: false, now: 0)
        do { let r = x.timerFired(now: 10_000, clientBuffered: false); #expect(r == .serverTimeout) }
        #expect(x.terminationCause == "s")
    }

    @Test func queueTimeoutLeavesTheQueue() {
        var x = HTTPExchange(timeouts: Self.timeouts(), policy: .init())
        x.opened(now: 0, closeAfterFirst: false)
        x.requestStarted(Self.request(), stoppingWithoutHandOver: false)
        x.forceConnecting()
        x.queued(now: 500)
        #expect(x.stateCharacter == "Q")
        #expect(x.timer == .queue && x.deadline == 3_500)
        do { let r = x.timerFired(now: 3_499, clientBuffered: false); #expect(r == .none) }
        do { let r = x.timerFired(now: 3_500, clientBuffered: false); #expect(r == .leaveQueue) }
        x.leftQueue()
        #expect(x.stateCharacter == "C")
    }

    @Test func queueTimeoutFallsBackToConnectTimeout() {
        var back = Timeouts()
        back.connect = 1_234
        #expect(ExchangeTimeouts(frontend: Timeouts(), backend: back).queue == 1_234)
        #expect(back.retryPauseMs == 1_000)
        back.connect = 300
        #expect(back.retryPauseMs == 300)
    }

    @Test func aGrantedSlotDisarmsTheQueueTimer() {
        var x = HTTPExchange(timeouts: Self.timeouts(), policy: .init())
        x.opened(now: 0, closeAfterFirst: false)
        x.requestStarted(Self.request(), stoppingWithoutHandOver: false)
        x.forceConnecting()
        x.queued(now: 0)
        x.slotGranted()
        #expect(x.timer == nil && !x.isQueued)
    }

    // MARK: - Tunnel

    @Test func upgradeBecomesATunnelWithItsOwnInactivityTimeout() {
        var x = Self.exchanging(Self.timeouts(tunnel: 60_000), request: Self.request(upgrade: true))
        do { let r = x.responseHead(status: 101, chunked: false, untilClose: false, now: 1_000); #expect(r == .startTunnel) }
        #expect(x.phase == .tunnel && x.timer == .tunnel && x.deadline == 61_000)
        x.clientTunnelActivity(now: 50_000)
        do { let r = x.timerFired(now: 61_000, clientBuffered: false); #expect(r == .none) }
        x.serverActivity(now: 100_000)
        do { let r = x.timerFired(now: 110_000, clientBuffered: false); #expect(r == .none) }
        do { let r = x.timerFired(now: 160_000, clientBuffered: false); #expect(r == .closeTunnel) }
        // Without `timeout tunnel`: the larger of client and server.
        #expect(Self.timeouts(client: 30_000, server: 10_000).tunnel == 30_000)
    }

    @Test func anUnrequested101EndsTheExchange() {
        var x = Self.exchanging()
        do { let r = x.responseHead(status: 101, chunked: false, untilClose: false, now: 0); #expect(r == .abort) }
    }

    @Test func interimResponsesPassThrough() {
        var x = Self.exchanging()
        do { let r = x.responseHead(status: 100, chunked: false, untilClose: false, now: 0); #expect(r == .forwardInterim) }
        #expect(!x.responseStarted)
        do { let r = x.responseHead(status: 200, chunked: false, untilClose: false, now: 0); #expect(r == .forward(connection: .none, dechunk: false)) }
    }

    // MARK: - Keep-alive and reuse

    @Test func anHTTP10ClientIsToldKeepAliveOrGetsTheBodyDechunkedAndClosed() {
        var kept = Self.exchanging(request: Self.request(minor: 0))
        do { let r = kept.responseHead(status: 200, chunked: false, untilClose: false, now: 0); #expect(r == .forward(connection: .keepAlive, dechunk: false)) }
        var chunked = Self.exchanging(request: Self.request(minor: 0))
        do { let r = chunked.responseHead(status: 200, chunked: true, untilClose: false, now: 0); #expect(r == .forward(connection: .close, dechunk: true)) }
        do { let r = chunked.responseEnded(connectionUsable: true, responseUntilClose: false, serverKeepsIdle: true); #expect(r.client == .closeAfterWrites) }
    }

    @Test func serverConnectionReuseDecisions() {
        // Usable, client stays: kept for this client's next request.
        var x = Self.exchanging()
        _ = x.responseHead(status: 200, chunked: false, untilClose: false, now: 0)
        do { let r = x.responseEnded(connectionUsable: true, responseUntilClose: false, serverKeepsIdle: true); #expect(r.server == .keepForClient) }
        // The client closes: the connection goes to the pool for others.
        var closing = Self.exchanging(request: Self.request(keepAlive: false))
        _ = closing.responseHead(status: 200, chunked: false, untilClose: false, now: 0)
        let c = closing.responseEnded(connectionUsable: true, responseUntilClose: false, serverKeepsIdle: true)
        #expect(c.server == .pool && c.client == .closeAfterWrites)
        // A server in maintenance keeps no idle connection for the client.
        var maint = Self.exchanging()
        _ = maint.responseHead(status: 200, chunked: false, untilClose: false, now: 0)
        do { let r = maint.responseEnded(connectionUsable: true, responseUntilClose: false, serverKeepsIdle: false); #expect(r.server == .pool) }
        // Unusable (server said close, bytes left over, max-reuse), or a body ending at close.
        var unusable = Self.exchanging()
        _ = unusable.responseHead(status: 200, chunked: false, untilClose: false, now: 0)
        do { let r = unusable.responseEnded(connectionUsable: false, responseUntilClose: false, serverKeepsIdle: true); #expect(r.server == .close) }
        var untilClose = Self.exchanging()
        _ = untilClose.responseHead(status: 200, chunked: false, untilClose: true, now: 0)
        do { let r = untilClose.responseEnded(connectionUsable: true, responseUntilClose: true, serverKeepsIdle: true); #expect(r.server == .close) }
        // `option http-server-close`: server connections never stay.
        var serverClose = Self.exchanging(policy: .init(frontendKeepsServer: false))
        _ = serverClose.responseHead(status: 200, chunked: false, untilClose: false, now: 0)
        let sc = serverClose.responseEnded(connectionUsable: true, responseUntilClose: false, serverKeepsIdle: true)
        #expect(sc.server == .close && sc.client == .nextRequest)
    }

    @Test func httpcloseClosesTheClientAfterEachResponse() {
        var x = Self.exchanging(policy: .init(frontendCloses: true, frontendKeepsServer: false))
        do { let r = x.responseHead(status: 200, chunked: false, untilClose: false, now: 0); #expect(r == .forward(connection: .close, dechunk: false)) }
    }

    @Test func aResponseBeforeTheWholeRequestClosesTheConnection() {
        var x = Self.exchanging(request: Self.request(bodiless: false))
        do { let r = x.responseHead(status: 413, chunked: false, untilClose: false, now: 0); #expect(r == .forward(connection: .close, dechunk: false)) }
        let ends = x.responseEnded(connectionUsable: true, responseUntilClose: false, serverKeepsIdle: true)
        #expect(ends.server == .close && ends.client == .closeAfterWrites)
    }

    @Test func pipelinedRequestsFollowEachOther() {
        var x = Self.exchanging()
        for n in 1...3 {
            _ = x.responseHead(status: 200, chunked: false, untilClose: false, now: 0)
            do { let r = x.responseEnded(connectionUsable: true, responseUntilClose: false, serverKeepsIdle: true); #expect(r.client == .nextRequest) }
            #expect(x.requestsDone == n)
            x.waitNextRequest(now: 0)
            x.requestStarted(Self.request(), stoppingWithoutHandOver: false)
            x.forceConnecting()
            x.serverAttached(now: 0, reused: true)
        }
    }

    // MARK: - Failures

    @Test func aReusedConnectionClosedUnderABodilessRequestIsResentOnce() {
        var x = Self.exchanging(reused: true)
        do { let r = x.serverClosed(responseHeadSeen: false, untilClose: false); #expect(r == .resend) }
        #expect(x.phase == .connecting)
        x.serverAttached(now: 0, reused: false)
        do { let r = x.serverClosed(responseHeadSeen: false, untilClose: false); #expect(r == .respond(.badGateway)) }
        var withBody = Self.exchanging(request: Self.request(bodiless: false), reused: true)
        do { let r = withBody.serverClosed(responseHeadSeen: false, untilClose: false); #expect(r == .respond(.badGateway)) }
    }

    @Test func aCutResponseClosesTheClientAndABodyUntilCloseEnds() {
        var cut = Self.exchanging()
        _ = cut.responseHead(status: 200, chunked: false, untilClose: false, now: 0)
        do { let r = cut.serverClosed(responseHeadSeen: true, untilClose: false); #expect(r == .closeAfterWrites) }
        #expect(cut.terminationCause == "S")
        var untilClose = Self.exchanging()
        _ = untilClose.responseHead(status: 200, chunked: false, untilClose: true, now: 0)
        do { let r = untilClose.serverClosed(responseHeadSeen: true, untilClose: true); #expect(r == .finishResponse) }
        var broken = Self.exchanging()
        do { let r = broken.serverFailed(); #expect(r == .respond(.badGateway)) }
    }

    @Test func theClientLeavingMidRequestAbortsIt() {
        var x = Self.exchanging(request: Self.request(bodiless: false))
        do { let r = x.clientInputEnded(nothingBuffered: true); #expect(r == .abort) }
        var idle = HTTPExchange(timeouts: Self.timeouts(), policy: .init())
        idle.opened(now: 0, closeAfterFirst: false)
        do { let r = idle.clientInputEnded(nothingBuffered: true); #expect(r == .close) }
        var pending = HTTPExchange(timeouts: Self.timeouts(), policy: .init())
        pending.opened(now: 0, closeAfterFirst: false)
        do { let r = pending.clientInputEnded(nothingBuffered: false); #expect(r == .refuseIncompleteHead) }
    }

    @Test func retriesThenRedispatchAsHAProxyDoes() {
        typealias D = ServerDialer
        #expect(D.retryDecision(attempts: 1, retries: 3, redispatch: false, serverHasAddress: true, pauseMs: 1_000) == .sameServer(afterMs: 1_000))
        #expect(D.retryDecision(attempts: 4, retries: 3, redispatch: false, serverHasAddress: true, pauseMs: 1_000) == .giveUp)
        #expect(D.retryDecision(attempts: 3, retries: 3, redispatch: true, serverHasAddress: true, pauseMs: 1_000) == .redispatch)
        #expect(D.retryDecision(attempts: 1, retries: 3, redispatch: true, serverHasAddress: true, pauseMs: 1_000) == .sameServer(afterMs: 1_000))
        // A server without an address is left at once with redispatch.
        #expect(D.retryDecision(attempts: 1, retries: 3, redispatch: true, serverHasAddress: false, pauseMs: 1_000) == .redispatch)
        #expect(D.retryDecision(attempts: 1, retries: 0, redispatch: true, serverHasAddress: true, pauseMs: 1_000) == .giveUp)
    }

    // MARK: - Local responses

    @Test func localResponsesCloseOrKeepAsTheRequestAllows() {
        var x = HTTPExchange(timeouts: Self.timeouts(), policy: .init())
        x.opened(now: 0, closeAfterFirst: false)
        x.requestStarted(Self.request(), stoppingWithoutHandOver: false)
        // Before a backend is chosen (no backend at all), a 503 closes, as HAProxy's does.
        #expect(x.builtInCloses(.serviceUnavailable))
        x.forceConnecting()
        #expect(!x.builtInCloses(.serviceUnavailable))
        #expect(x.builtInCloses(.badRequest))
        do { let r = x.localResponse(closes: false); #expect(r == .nextRequest) }
        var body = HTTPExchange(timeouts: Self.timeouts(), policy: .init())
        body.opened(now: 0, closeAfterFirst: false)
        body.requestStarted(Self.request(bodiless: false), stoppingWithoutHandOver: false)
        // A body still coming: the 503 closes, lingering for what the client still sends.
        #expect(body.builtInCloses(.serviceUnavailable))
        do { let r = body.localResponse(closes: true); #expect(r == .closeLingering) }
        var discard = HTTPExchange(timeouts: Self.timeouts(), policy: .init())
        discard.opened(now: 0, closeAfterFirst: false)
        discard.requestStarted(Self.request(bodiless: false), stoppingWithoutHandOver: false)
        do { let r = discard.localResponse(closes: false); #expect(r == .discardRequestBody) }
        do { let r = discard.requestBodyEnded(); #expect(r == .nextRequest) }
    }

    // MARK: - Soft stop

    @Test func softStopClosesIdleConnectionsButNotOneAwaitingItsFirstRequest() {
        var fresh = HTTPExchange(timeouts: Self.timeouts(), policy: .init())
        fresh.opened(now: 0, closeAfterFirst: false)
        do { let r = fresh.softStop(handOver: false, nothingBuffered: true); #expect(!r) }
        #expect(fresh.closeAfterResponse)
        var used = Self.exchanging()
        _ = used.responseHead(status: 200, chunked: false, untilClose: false, now: 0)
        _ = used.responseEnded(connectionUsable: true, responseUntilClose: false, serverKeepsIdle: true)
        used.waitNextRequest(now: 0)
        var lenient = HTTPExchange(timeouts: Self.timeouts(), policy: .init(idleCloseOnResponse: true))
        lenient.opened(now: 0, closeAfterFirst: false)
        do { let r = used.softStop(handOver: false, nothingBuffered: true); #expect(r) }
        do { let r = used.softStop(handOver: false, nothingBuffered: false); #expect(!r) }
        do { let r = lenient.softStop(handOver: false, nothingBuffered: true); #expect(!r) }
    }

    @Test func softStopWithHandOverWaitsForTheExchangeToEnd() {
        var x = Self.exchanging()
        do { let r = x.softStop(handOver: true, nothingBuffered: true); #expect(!r) }
        #expect(!x.closeAfterResponse)
        do { let r = x.responseHead(status: 200, chunked: false, untilClose: false, now: 0); #expect(r == .forward(connection: .none, dechunk: false)) }
        _ = x.responseEnded(connectionUsable: true, responseUntilClose: false, serverKeepsIdle: true)
        x.waitNextRequest(now: 0)
        do { let r = x.takeHandOver(); #expect(r) }
        do { let r = x.takeHandOver(); #expect(!r) }
        x.handOverFailed(now: 0)
        #expect(x.closeAfterResponse && x.timer == .keepAlive)
    }

    @Test func aConnectionOpenedDuringAStopClosesAfterItsFirstResponse() {
        var x = HTTPExchange(timeouts: Self.timeouts(), policy: .init())
        x.opened(now: 0, closeAfterFirst: true)
        x.requestStarted(Self.request(), stoppingWithoutHandOver: false)
        x.forceConnecting()
        x.serverAttached(now: 0, reused: false)
        do { let r = x.responseHead(status: 200, chunked: false, untilClose: false, now: 0); #expect(r == .forward(connection: .close, dechunk: false)) }
    }
}

extension HTTPExchange {
    /// Moves to `connecting` keeping the test's timeouts (what `serverWanted` does, minus the
    /// backend's timeouts).
    mutating func forceConnecting() {
        let kept = timeouts
        var back = Timeouts()
        back.server = kept.server
        back.queue = kept.queue
        back.tunnel = kept.tunnel
        var front = Timeouts()
        front.client = kept.client
        serverWanted(backend: back, frontend: front)
    }
}
