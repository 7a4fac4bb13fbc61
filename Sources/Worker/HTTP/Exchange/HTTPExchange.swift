import Shared

/// The life of one client connection's HTTP exchanges, as a value: which phase it is in, what
/// each event means for it, and which single deadline is armed. It holds no I/O object and
/// reads no clock; the connection handler (`HTTPSession`) feeds it events and carries out the
/// actions they return (write, connect, close, schedule).
///
/// One exchange at a time: a pipelined request waits in the client buffer until the response
/// before it is complete, as HAProxy's HTTP/1 side does.
struct HTTPExchange {
    enum Phase: Equatable {
        /// Between requests (or before the first one).
        case idle
        /// A request head arrived and its body is being read, not forwarded, before rules and
        /// routing run (`option http-buffer-request`, `wait-for-body`).
        case bufferingBody
        /// The proxy makes the answer itself away from the event loop (the statistics page)
        /// or streams it (the Prometheus exporter); a half-close from the client does not stop
        /// it, but closes the connection after it.
        case answering
        /// A request head arrived; waiting for a server slot or a connection.
        case connecting
        /// The request is being sent and/or the response received.
        case exchanging
        /// A local response went out; the rest of the request is read and discarded.
        case responding
        /// An upgrade was accepted: bytes flow both ways untouched.
        case tunnel
        case closed
    }

    /// What the frontend's and backend's HTTP options say about connections.
    struct Policy: Equatable {
        /// `option httpclose` on the frontend: every response closes the client connection.
        var frontendCloses = false
        /// The frontend keeps server connections alive (`http-keep-alive`, the default).
        var frontendKeepsServer = true
        /// The backend keeps server connections alive.
        var backendKeepsServer = true
        /// `option idle-close-on-response`: a soft stop leaves idle connections to their next
        /// response instead of closing them.
        var idleCloseOnResponse = false
    }

    /// What the handler knows of a request head when it starts an exchange.
    struct RequestFacts: Equatable {
        var keepAlive: Bool
        var isUpgrade: Bool
        /// No body follows the head (nothing to read, and safe to resend).
        var bodiless: Bool
        var versionMinor: Int
    }

    private(set) var phase: Phase = .idle
    private(set) var timeouts: ExchangeTimeouts
    /// Set per request: the backend's connection mode is known once it is chosen.
    var policy: Policy

    // The current request.
    private(set) var requestEnded = true
    private(set) var requestBodiless = true
    private(set) var isUpgrade = false
    private(set) var clientKeepAlive = true
    private(set) var clientVersionMinor = 1
    /// The connection closes after the current response (soft stop, HTTP/1.0, a cut request...).
    private(set) var closeAfterResponse = false
    private(set) var clientInputClosed = false
    private(set) var requestsDone = 0

    // The current response.
    private(set) var responseStarted = false
    private(set) var responseEnded = false

    // The server side.
    private(set) var usedReusedConnection = false
    private(set) var isQueued = false
    private(set) var lastServerActivity: ExchangeTime = 0
    private(set) var lastTunnelActivity: ExchangeTime = 0
    /// A soft stop asked for the connection to move to the next worker once this exchange ends.
    private(set) var handOverWhenIdle = false

    /// The single deadline: what it waits for and when it passes (meaningless when `timer` is nil).
    private(set) var timer: ExchangeTimer?
    private(set) var deadline: ExchangeTime = 0

    /// Why the exchange is ending when it is not the client's doing (`K`, `S`, `s`...), for logs.
    var terminationCause: Character?

    init(timeouts: ExchangeTimeouts, policy: Policy) {
        self.timeouts = timeouts
        self.policy = policy
    }

    var isClosed: Bool { phase == .closed }

    /// An exchange is under way: a soft stop waits for its end before moving the connection.
    var isBusy: Bool {
        phase == .connecting || phase == .exchanging || phase == .responding || phase == .bufferingBody || phase == .answering
    }

    /// The answer will be the proxy's own, made or sent over several turns of the loop.
    mutating func answerDeferred() {
        phase = .answering
    }

    /// When the body wait ends before the body is whole: `true` for `wait-for-body` (the
    /// request goes on with what came), `false` for `option http-buffer-request` (408).
    private(set) var bodyWaitContinues = false

    /// Reads the request's body (any framing) before going on, for at most `milliseconds`
    /// (0: no limit).
    mutating func bodyWanted(now: ExchangeTime, milliseconds: Int64, continuesAtDeadline: Bool) {
        phase = .bufferingBody
        bodyWaitContinues = continuesAtDeadline
        arm(.request, after: milliseconds, now: now)
    }

    /// The body is whole (or as much as the buffer holds): rules and routing go on.
    mutating func bodyBuffered() {
        phase = .idle
        timer = nil
    }

    // MARK: - Timer

    private mutating func arm(_ which: ExchangeTimer, after ms: Int64, now: ExchangeTime) {
        guard ms > 0 else { return }
        timer = which
        deadline = now + ms
    }

    private mutating func armRequestTimer(first: Bool, now: ExchangeTime) {
        arm(first ? .request : .keepAlive, after: first ? timeouts.firstRequest : timeouts.keepAlive, now: now)
    }

    // MARK: - Connection

    /// The client connected. `closeAfterFirst`: the process is stopping and this connection will
    /// not be handed over, so its first response closes it.
    mutating func opened(now: ExchangeTime, closeAfterFirst: Bool) {
        if closeAfterFirst { closeAfterResponse = true }
        armRequestTimer(first: true, now: now)
    }

    mutating func closed() {
        phase = .closed
        timer = nil
        isQueued = false
    }

    // MARK: - Requests

    /// A request head arrived whole. `stoppingWithoutHandOver`: the process is stopping and
    /// this connection will not move, so it closes after this response.
    mutating func requestStarted(_ request: RequestFacts, stoppingWithoutHandOver: Bool) {
        timer = nil
        requestEnded = request.bodiless
        requestBodiless = request.bodiless
        responseStarted = false
        responseEnded = false
        usedReusedConnection = false
        clientVersionMinor = request.versionMinor
        clientKeepAlive = request.keepAlive && !policy.frontendCloses
        if stoppingWithoutHandOver && !handOverWhenIdle { closeAfterResponse = true }
        isUpgrade = request.isUpgrade
        terminationCause = nil
    }

    /// The head could not be parsed, or never came whole: what is left of it may still be
    /// arriving, so the answer closes with a lingering close.
    mutating func requestRejected() {
        requestEnded = false
    }

    /// The request is to be served by a backend whose timeouts are these.
    mutating func serverWanted(backend: Timeouts, frontend: Timeouts, backendKeepsServer: Bool? = nil) {
        timeouts.useBackend(backend, frontend: frontend)
        if let backendKeepsServer { policy.backendKeepsServer = backendKeepsServer }
        phase = .connecting
    }

    /// `http-request set-timeout server|tunnel`: for this request only.
    mutating func overrideTimeout(server: Bool, milliseconds: Int64) {
        if server { timeouts.server = milliseconds } else { timeouts.tunnel = milliseconds }
    }

    mutating func requestBodyForwarded(now: ExchangeTime) {
        // `timeout server` is inactivity on the server side, and sending it the request body
        // is activity: a slow upload is not a silent server.
        lastServerActivity = now
    }

    enum RequestEndAction: Equatable {
        case none
        /// A local response had already gone out: the next request may start.
        case nextRequest
    }

    mutating func requestBodyEnded() -> RequestEndAction {
        requestEnded = true
        return phase == .responding && responseEnded ? .nextRequest : .none
    }

    enum FailureAction: Equatable {
        /// Answer locally (the server side, if any, is dropped first).
        case respond(BuiltInResponse)
        /// Nothing sensible can follow: close once what was written has left.
        case closeAfterWrites
    }

    /// The request body's framing is broken.
    func requestBodyFailed() -> FailureAction {
        responseStarted ? .closeAfterWrites : .respond(.badRequest)
    }

    // MARK: - Server slot and connection

    mutating func queued(now: ExchangeTime) {
        isQueued = true
        arm(.queue, after: timeouts.queue, now: now)
    }

    mutating func slotGranted() {
        isQueued = false
        timer = nil
    }

    /// A server connection is ready and the request head goes out on it.
    mutating func serverAttached(now: ExchangeTime, reused: Bool) {
        if reused { usedReusedConnection = true }
        phase = .exchanging
        lastServerActivity = now
        arm(.server, after: timeouts.server, now: now)
    }

    mutating func serverActivity(now: ExchangeTime) {
        lastServerActivity = now
        if phase == .tunnel { lastTunnelActivity = now }
    }

    mutating func clientTunnelActivity(now: ExchangeTime) {
        lastTunnelActivity = now
    }

    // MARK: - Responses

    enum ResponseHeadAction: Equatable {
        /// A 1xx interim response: forwarded as it is; the final one follows.
        case forwardInterim
        /// The switch to a tunnel (`101` to an upgrade request).
        case startTunnel
        /// A `101` nobody asked for: the exchange ends.
        case abort
        /// Forward the head; `connection` says which `Connection` header the client gets.
        case forward(connection: ClientConnectionHeader, dechunk: Bool)
    }

    enum ClientConnectionHeader: Equatable {
        case none
        case close
        /// An HTTP/1.0 client kept alive is told so.
        case keepAlive
    }

    /// A response head arrived. `untilClose`: its body ends with the connection; `chunked`: it
    /// is chunked (an HTTP/1.0 client gets it de-chunked, and the connection then closes).
    mutating func responseHead(status: Int, chunked: Bool, untilClose: Bool, now: ExchangeTime) -> ResponseHeadAction {
        if status >= 100, status < 200, status != 101 { return .forwardInterim }
        responseStarted = true
        if status == 101 {
            guard isUpgrade else { return .abort }
            phase = .tunnel
            timer = nil
            lastTunnelActivity = now
            arm(.tunnel, after: timeouts.tunnel, now: now)
            return .startTunnel
        }
        if isUpgrade { closeAfterResponse = true }
        let dechunk = clientVersionMinor == 0 && chunked
        if dechunk || untilClose || !requestEnded { closeAfterResponse = true }
        if !clientKeepAlive || closeAfterResponse {
            closeAfterResponse = true
            return .forward(connection: .close, dechunk: dechunk)
        }
        return .forward(connection: clientVersionMinor == 0 ? .keepAlive : .none, dechunk: dechunk)
    }

    /// What becomes of the server connection once its response is complete.
    enum ServerDisposition: Equatable {
        case close
        /// Kept for this client's next request (it returns to the pool if the client leaves).
        case keepForClient
        case pool
    }

    /// What becomes of the client connection once a response is complete.
    enum ClientDisposition: Equatable {
        case closeAfterWrites
        case nextRequest
    }

    /// The response is complete. `connectionUsable`: the server connection is open, has nothing
    /// unread, is under `max-reuse`, and its response did not ask to close; `serverKeepsIdle`:
    /// its server is not in maintenance. Nil for `server` when there is no server connection.
    mutating func responseEnded(connectionUsable: Bool?, responseUntilClose: Bool, serverKeepsIdle: Bool)
        -> (server: ServerDisposition?, client: ClientDisposition) {
        responseEnded = true
        timer = nil
        var server: ServerDisposition? = nil
        if let usable = connectionUsable {
            let reusable = usable && requestEnded && !responseUntilClose
                && policy.frontendKeepsServer && policy.backendKeepsServer
            if !reusable {
                server = .close
            } else if clientKeepAlive, !closeAfterResponse, serverKeepsIdle {
                server = .keepForClient
            } else {
                server = .pool
            }
        }
        requestsDone += 1
        // The server may answer before the whole request arrived; HAProxy closes in that case.
        if closeAfterResponse || !clientKeepAlive || !requestEnded { return (server, .closeAfterWrites) }
        return (server, .nextRequest)
    }

    /// The connection waits for its next request.
    mutating func waitNextRequest(now: ExchangeTime) {
        phase = .idle
        armRequestTimer(first: false, now: now)
    }

    // MARK: - Local responses

    /// Whether a built-in response closes the connection.
    func builtInCloses(_ response: BuiltInResponse) -> Bool {
        response.closesConnection || closeAfterResponse || !clientKeepAlive || !requestEnded || phase == .idle
    }

    /// Whether a `return` response closes the connection.
    var returnCloses: Bool { closeAfterResponse || !clientKeepAlive }

    enum LocalResponseAction: Equatable {
        /// Close once the answer has left, reading and dropping what the client still sends.
        case closeLingering
        case closeAfterWrites
        /// The request is complete: take the next one.
        case nextRequest
        /// Read and drop the rest of the request body, then take the next request.
        case discardRequestBody
    }

    /// A local response is written.
    mutating func localResponse(closes: Bool) -> LocalResponseAction {
        // A request not read to its end (or refused before its head was whole) may still be
        // arriving.
        let inputPending = !clientInputClosed && !requestEnded
        timer = nil
        isQueued = false
        responseStarted = true
        responseEnded = true
        phase = .responding
        requestsDone += 1
        if closes {
            closeAfterResponse = true
            return inputPending ? .closeLingering : .closeAfterWrites
        }
        return requestEnded ? .nextRequest : .discardRequestBody
    }

    // MARK: - Server failures

    enum ServerCloseAction: Equatable {
        case none
        /// A close-delimited body ends with the connection.
        case finishResponse
        /// A reused connection closed as the bodiless request went out: send it again on a
        /// fresh connection to the same server.
        case resend
        case respond(BuiltInResponse)
        /// The response was cut, or the tunnel ended: close once written bytes have left.
        case closeAfterWrites
    }

    /// The server connection of the current exchange closed.
    mutating func serverClosed(responseHeadSeen: Bool, untilClose: Bool) -> ServerCloseAction {
        if phase == .tunnel { return .closeAfterWrites }
        if responseEnded { return .none }
        if responseHeadSeen, untilClose { return .finishResponse }
        if !responseStarted {
            if usedReusedConnection, requestBodiless {
                usedReusedConnection = false
                phase = .connecting
                return .resend
            }
            return .respond(.badGateway)
        }
        terminationCause = "S"
        return .closeAfterWrites
    }

    /// A malformed or broken response: 502 if the client has seen nothing yet.
    mutating func serverFailed() -> FailureAction {
        if !responseStarted { return .respond(.badGateway) }
        terminationCause = "S"
        return .closeAfterWrites
    }

    // MARK: - Client events

    enum InputClosedAction: Equatable {
        case none
        /// Half-close the server side of the tunnel.
        case shutServerOutput
        case close
        /// The request can never be complete.
        case abort
        /// A head that stopped halfway will not be completed: answer 400 (the client may still
        /// read), as HAProxy does.
        case refuseIncompleteHead
    }

    /// The client finished sending: answer what it asked, then close.
    mutating func clientInputEnded(nothingBuffered: Bool) -> InputClosedAction {
        clientInputClosed = true
        switch phase {
        case .tunnel: return .shutServerOutput
        case .idle: return nothingBuffered ? .close : .refuseIncompleteHead
        case .bufferingBody: return .abort
        case .answering:
            closeAfterResponse = true
            return .none
        case .exchanging, .connecting: return requestEnded ? .none : .abort
        default: return .none
        }
    }

    // MARK: - Timer events

    enum TimerAction: Equatable {
        case none
        case respond(BuiltInResponse)
        case close
        /// Withdraw from the queue; if still queued, answer 503.
        case leaveQueue
        /// The server went silent: drop it and answer 504, or close if the response started.
        case serverTimeout
        /// The tunnel went silent in both directions.
        case closeTunnel
        /// `wait-for-body` waited long enough: go on with the body as it is.
        case bodyWaitOver
    }

    /// The deadline's task ran at `now`. It may have run early (the deadline moved later, or
    /// activity pushed an inactivity timeout): then the deadline is moved and nothing happens.
    mutating func timerFired(now: ExchangeTime, clientBuffered: Bool) -> TimerAction {
        guard let which = timer, phase != .closed else { return .none }
        switch which {
        case .server:
            let due = lastServerActivity + timeouts.server
            if due > now {
                deadline = due
                return .none
            }
        case .tunnel:
            let due = lastTunnelActivity + timeouts.tunnel
            if due > now {
                deadline = due
                return .none
            }
        default:
            if deadline > now { return .none }
        }
        timer = nil
        switch which {
        case .request:
            if phase == .bufferingBody, bodyWaitContinues {
                phase = .idle
                return .bodyWaitOver
            }
            requestEnded = false
            return .respond(.requestTimeout)
        case .keepAlive:
            guard clientBuffered else { return .close }
            requestEnded = false
            return .respond(.requestTimeout)
        case .queue:
            return .leaveQueue
        case .server:
            if responseStarted { terminationCause = "s" }
            return .serverTimeout
        case .tunnel:
            return .closeTunnel
        }
    }

    /// The request left the queue (its deadline passed, or the client went away).
    mutating func leftQueue() {
        isQueued = false
    }

    // MARK: - Soft stop

    /// A soft stop reached this connection. With `handOver`, a busy exchange moves the
    /// connection to the next worker once it ends; otherwise the next response closes it.
    /// Returns true when the connection should close now (idle, and not a first request).
    mutating func softStop(handOver: Bool, nothingBuffered: Bool) -> Bool {
        if handOver && isBusy {
            handOverWhenIdle = true
            return false
        }
        closeAfterResponse = true
        // A connection that has not sent its first request is kept (as HAProxy does): it was
        // accepted just before the stop, and its client is about to send a request it expects
        // answered. With `option idle-close-on-response` idle connections stay until their
        // next response, which carries `Connection: close`.
        if policy.idleCloseOnResponse { return false }
        return phase == .idle && requestsDone > 0 && nothingBuffered
    }

    /// The exchange ended and the connection is about to move: consumes the request.
    mutating func takeHandOver() -> Bool {
        defer { handOverWhenIdle = false }
        return handOverWhenIdle
    }

    /// The connection could not move: it is answered here once more, and that answer closes it.
    mutating func handOverFailed(now: ExchangeTime) {
        closeAfterResponse = true
        armRequestTimer(first: false, now: now)
    }

    /// The hand-over is under way: no deadline while its writes drain.
    mutating func handingOver() {
        timer = nil
    }

    // MARK: - Logs

    /// Where the exchange was when it ended (`%ts` second letter): `R`equest, `Q`ueue,
    /// `C`onnect, `H`eaders, `D`ata.
    var stateCharacter: Character {
        if isQueued { return "Q" }
        switch phase {
        case .idle, .bufferingBody, .answering: return "R"
        case .connecting: return "C"
        case .exchanging: return responseStarted ? "D" : (requestEnded ? "H" : "D")
        case .responding: return "R"
        case .tunnel: return "D"
        case .closed: return "-"
        }
    }
}
