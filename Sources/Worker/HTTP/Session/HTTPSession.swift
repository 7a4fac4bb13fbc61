import NIOCore
import NIOPosix
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// The handler of one HTTP/1 client connection: the H1 mux of the client side (bytes to heads
/// and body slices, and back) and the executor of its `HTTPExchange`. Every decision about the
/// exchange (phases, keep-alive, reuse, timeouts, failures) is the exchange's; this class feeds
/// it events and carries out what it answers: parse, write, connect (through `ServerDialer`),
/// schedule, close.
///
/// Messages travel as raw bytes: heads are parsed into byte ranges and written by
/// `H1Serializer`; bodies are forwarded in their original framing while `BodyReader` tracks
/// where they end. Everything here runs on the client channel's event loop; the server
/// connection always lives on the same loop.
final class HTTPSession: ChannelInboundHandler, ServerConnectionDelegate, StoppableSession {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let runtime: WorkerRuntime
    let frontend: Frontend
    let clock: ExchangeClock
    let createdAtMs = MonotonicClock.milliseconds()
    var context: ChannelHandlerContext!
    var loopIndex = 0
    let headLimit: Int
    var exchange: HTTPExchange
    var dialer: ServerDialer!
    /// What rules read and write (variables, captures, the heads being edited).
    let streams: StreamContext

    // Client side: what it sent and not yet used, and the request being served.
    var clientIn = H1Reader()
    /// The request being served. The stream context holds it (`heldRequest`): rules read and
    /// edit the same head, which is never copied between them and the session.
    var request: MessageHead? {
        _read { yield streams.heldRequest }
        _modify { yield &streams.heldRequest }
    }

    // Server side of the current exchange.
    var connection: ServerConnection?
    var serverIn = H1Reader()
    var response: MessageHead?
    var serverNeedsFlush = false
    var clientNeedsFlush = false
    /// The idle server connection this client's next request will try first (HAProxy's private
    /// idle connection); counted on its server for `show servers conn` (`idle_sess`).
    var ownIdle: ServerConnection? {
        didSet {
            guard oldValue !== ownIdle else { return }
            oldValue?.server.sessionIdleConnections.wrappingDecrement(ordering: .relaxed)
            ownIdle?.server.sessionIdleConnections.wrappingIncrement(ordering: .relaxed)
        }
    }

    /// The server slot held for the current request.
    var slot: (backend: Backend, server: Server)? { dialer?.slot }

    // The scheduled task behind the exchange's single deadline (moved lazily).
    var timerTask: Scheduled<Void>?
    var timerScheduledFor: ExchangeTime?

    // Traffic logging (only when the frontend has `log` targets).
    let logger: ProxyLogger?
    let logFormat: TrafficLogFormat
    var exchangeLog: ExchangeLog?
    var firstByteMono = -1
    /// Since when the connection waits for its next request (`%Ti`).
    var idleSinceMono = MonotonicClock.milliseconds()
    /// The current stream's number in the process (`%rt`).
    var streamID = 0
    /// The current request's `unique-id-format` value.
    var uniqueID: String?
    /// What persistence decided for the current request.
    var persistence = ExchangePersistence()
    /// The termination flags of the local response being written.
    var localCause: (Character, Character)?

    /// The listener's own `maxconn` gate, if its `bind` line has one.
    let listenerGate: AcceptGate?
    /// `bind ... accept-proxy`: a PROXY protocol header comes first, announcing the client.
    let acceptsProxy: Bool
    var awaitingProxyHeader: Bool
    var announcedClient: SocketAddress?
    /// The client as the proxy reports it: the one a PROXY header announced, else the peer.
    /// (`set-src` changes what the rules hold, and so what logs and `forwardfor` report.)
    var clientAddress: SocketAddress? { streams.clientSocket ?? announcedClient ?? context?.channel.remoteAddress }
    /// Where an idle connection goes when this worker drains (set by a soft stop).
    var drainHandover: (SocketTable, HandoverSink)?
    /// Reading from the client is on (it is switched off only for back-pressure).
    var clientReading = true
    /// The TLS layer below this session (`bind ... ssl`).
    var clientTLS: TLSHandler?

    init(runtime: WorkerRuntime, frontend: Frontend, listenerGate: AcceptGate? = nil, acceptProxy: Bool = false) {
        self.runtime = runtime
        self.frontend = frontend
        self.listenerGate = listenerGate
        clock = runtime.clock
        acceptsProxy = acceptProxy
        awaitingProxyHeader = acceptProxy
        headLimit = max(1024, runtime.bufferSize - runtime.configuration.global.maxRewrite)
        logger = frontend.logger
        streams = StreamContext(runtime: runtime, frontend: frontend)
        logFormat = TrafficLogFormat(frontend.settings)
        let options = frontend.settings.options
        let backendMode = frontend.backend?.settings.options.connectionMode ?? .keepAlive
        exchange = HTTPExchange(
            timeouts: ExchangeTimeouts(frontend: frontend.settings.timeouts, backend: frontend.backend?.settings.timeouts),
            policy: HTTPExchange.Policy(frontendCloses: options.connectionMode == .close,
                                        frontendKeepsServer: options.connectionMode == .keepAlive,
                                        backendKeepsServer: backendMode == .keepAlive,
                                        idleCloseOnResponse: options.idleCloseOnResponse))
    }

    // MARK: - Channel lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        loopIndex = runtime.loopIndex(of: context.eventLoop)
        dialer = ServerDialer(runtime: runtime, loop: context.eventLoop, kind: .http, connector: runtime.connectors[loopIndex],
                              client: self)
        if let tls = try? context.pipeline.syncOperations.handler(type: TLSHandler.self) {
            clientTLS = tls
            streams.clientTLS = tls.facts
        }
    }

    /// The context holds this handler for good: keeping it past removal is a cycle that leaks
    /// the session (and its last receive buffer) for every connection. NIO removes handlers
    /// a tick after `channelInactive`, so `teardown` has run and nothing touches it again
    /// (a channel that never became active opened nothing that needs undoing).
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        dialer?.detach()
    }

    func channelActive(context: ChannelHandlerContext) {
        runtime.sessions(on: context.eventLoop).add(self)
        frontend.sessionOpened()
        listenerGate?.opened()
        // As in HAProxy, a connection's first stream exists from the accept; the next ones
        // start with each request after it.
        streamID = runtime.nextStreamID()
        if logger != nil, logFormat.format == nil { logConnect(context.channel, mode: "HTTP") }
        let closeAfterFirst = runtime.isStopping
            && (!runtime.handingOver.load(ordering: .relaxed) || runtime.sessions(on: context.eventLoop).draining)
        exchange.opened(now: clock.now(), closeAfterFirst: closeAfterFirst)
        streams.clientSocket = context.channel.remoteAddress
        streams.localSocket = context.channel.localAddress
        syncTimer()
        context.fireChannelActive()
        if frontend.hasConnectionRules {
            switch frontend.acceptsConnection(streams) {
            case .reject:
                exchange.terminationCause = "P"
                closeClient()
            case .accept(let expectProxy):
                // `tcp-request connection expect-proxy layer4`: a PROXY header comes first.
                if expectProxy { awaitingProxyHeader = true }
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        teardown()
        context.fireChannelInactive()
    }

    func teardown() {
        guard !exchange.isClosed else { return }
        if exchangeLog == nil, exchange.phase == .idle, exchange.clientInputClosed { noteAbandonedRequest() }
        if exchangeLog != nil {
            // A tunnel that ends is a normal end; otherwise the client left (or was killed).
            logExchange(exchange.terminationCause ?? (exchange.phase == .tunnel ? "-" : "C"))
        }
        streams.endStickSession()
        exchange.closed()
        stopTimerTask()
        if let c = connection {
            connection = nil
            c.delegate = nil
            c.pool.noteReleased()
            c.close()
        }
        dialer.detach()
        if let own = ownIdle {
            ownIdle = nil
            offerToPool(own)
        }
        runtime.sessions(on: context.eventLoop).remove(self)
        frontend.sessionClosed()
        listenerGate?.closed()
    }

    func closeClient() {
        guard !exchange.isClosed else { return }
        // Counters and stick-table trackers first, as in haproxy: whoever sees the connection
        // close (the client, then `show table` on the CLI) sees them released.
        teardown()
        context.close(promise: nil)
    }

    /// Closes once everything written so far has left, without a reset for bytes the client
    /// may still be sending (see `LingeringClose`).
    func closeClientLingering() {
        let sent = writesLeft()
        let timeout = TimeAmount.milliseconds(exchange.timeouts.lingering)
        do {
            try context.pipeline.syncOperations.addHandler(LingeringClose(after: sent, timeout: timeout), position: .first)
        } catch {
            let channel = context.channel
            sent.whenComplete { _ in channel.close(promise: nil) }
        }
        teardown()
    }

    /// Completes once everything written to the client so far has left (an empty write queued
    /// behind it, flushed).
    func writesLeft() -> EventLoopFuture<Void> {
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)), promise: done)
        return done.futureResult
    }

    /// Closes once everything written so far has left.
    func closeClientAfterWrites() {
        let channel = context.channel
        writesLeft().whenComplete { _ in channel.close(promise: nil) }
        teardown()
    }

    // MARK: - Soft stop

    /// Soft stop of a session that can move to the next worker: at once when idle, else once
    /// its exchange is over.
    func beginSoftStop(handingOverTo handover: (SocketTable, HandoverSink)) {
        if exchange.isBusy {
            _ = exchange.softStop(handOver: true, nothingBuffered: clientIn.isEmpty)
            drainHandover = handover
            return
        }
        beginSoftStop()
    }

    func beginSoftStop() {
        if exchange.softStop(handOver: false, nothingBuffered: clientIn.isEmpty) { closeClient() }
    }

    /// `shutdown sessions server` (logged with `K`).
    func abort() {
        exchange.terminationCause = "K"
        closeClient()
    }

    func isAttached(to server: Server) -> Bool { slot?.server === server }

    func dropIdleConnection(to server: Server) {
        guard let own = ownIdle, own.server === server else { return }
        ownIdle = nil
        own.close()
    }

    /// Passes an idle plain-HTTP/1 connection to the next worker: nothing of a request has been
    /// read, so the kernel's socket buffer holds everything the client sends next. Reading
    /// stops first; once everything written to the client has left (a response still queued
    /// would be lost with this side's close), a duplicate of the descriptor goes to `sink`, then
    /// this side closes its copy. Returns false when the connection cannot move at all; if the
    /// sink refuses it later, the connection stays and its next answer closes it.
    func handOver(_ table: SocketTable, to sink: @escaping HandoverSink) -> Bool {
        // The next worker would wait for a PROXY header the client will not send again.
        guard !acceptsProxy, clientTLS == nil, exchange.phase == .idle, !exchange.clientInputClosed, clientIn.isEmpty else { return false }
        let channel = context.channel
        guard let fd = table.descriptor(local: channel.localAddress, remote: channel.remoteAddress) else { return false }
        _ = try? channel.syncOptions?.setOption(.autoRead, value: false)
        clientReading = false
        exchange.handingOver()
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        writesLeft().whenComplete { result in
            let session = bound.value
            guard case .success = result, session.exchange.phase == .idle, !session.exchange.clientInputClosed else { return }
            let copy = dup(fd)
            if copy >= 0 {
                _ = fcntl(copy, F_SETFD, FD_CLOEXEC)
                if sink(copy, session.frontend.name, false) {
                    session.closeClient()
                    return
                }
            }
            session.keepAfterFailedHandover()
        }
        return true
    }

    /// The connection could not move: it is answered here once more, with `Connection: close`.
    private func keepAfterFailedHandover() {
        exchange.handOverFailed(now: clock.now())
        clientReading = true
        _ = try? context.channel.syncOptions?.setOption(.autoRead, value: true)
        syncTimer()
    }

    // MARK: - Client input

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        frontend.counters.bytesIn.wrappingIncrement(by: bytes.readableBytes, ordering: .relaxed)
        if logger != nil, exchange.phase == .idle, firstByteMono < 0 { firstByteMono = MonotonicClock.milliseconds() }
        if exchange.phase == .tunnel {
            exchange.clientTunnelActivity(now: clock.now())
            connection?.channel.write(bytes, promise: nil)
            serverNeedsFlush = true
            return
        }
        clientIn.append(bytes)
        processClient()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushServerIfNeeded()
        readClientIfWanted()
    }

    func flushServerIfNeeded() {
        if serverNeedsFlush, let c = connection {
            serverNeedsFlush = false
            c.channel.flush()
        }
    }

    func flushClientIfNeeded() {
        if clientNeedsFlush {
            clientNeedsFlush = false
            context.flush()
        }
    }

    /// Parses and forwards what the client sent, as far as the exchange's phase allows.
    func processClient() {
        while true {
            switch exchange.phase {
            case .idle:
                if awaitingProxyHeader {
                    switch clientIn.readProxyHeader() {
                    case .incomplete:
                        return
                    case .invalid:
                        // HAProxy drops such a connection without an answer.
                        closeClient()
                        return
                    case .announced(let source, let destination):
                        awaitingProxyHeader = false
                        announcedClient = source
                        if let source { streams.clientSocket = source }
                        if let destination { streams.localSocket = destination }
                        firstByteMono = -1
                        continue
                    }
                }
                switch clientIn.readRequestHead(limit: headLimit, maxHeaders: runtime.maxHeaders) {
                case .incomplete:
                    return
                case .invalid(let refused):
                    captureInvalidRequest(refused)
                    frontend.counters.requestErrors.wrappingIncrement(ordering: .relaxed)
                    exchange.requestRejected()
                    sendBuiltIn(.badRequest)
                    return
                case .head(let head):
                    startRequest(head)
                }
            case .exchanging, .responding:
                guard !exchange.requestEnded, !clientIn.isEmpty else { return }
                let forwarding = exchange.phase == .exchanging
                if forwarding, let c = connection, !c.channel.isWritable { return }
                let slice: ByteBuffer?
                do {
                    slice = try clientIn.readBody()
                } catch {
                    requestBodyFailed()
                    return
                }
                if let slice {
                    streams.streamBytesIn &+= Int64(slice.readableBytes)
                    if exchangeLog != nil { exchangeLog!.bytesIn += slice.readableBytes }
                }
                if let slice, forwarding, let c = connection {
                    countRequestBytes(slice.readableBytes)
                    c.channel.write(slice, promise: nil)
                    serverNeedsFlush = true
                    exchange.requestBodyForwarded(now: clock.now())
                }
                if clientIn.bodyEnded {
                    let next = exchange.requestBodyEnded()
                    flushServerIfNeeded()
                    if next == .nextRequest { nextRequest() }
                    return
                }
            case .bufferingBody:
                guard bufferedBodyComplete else { return }
                resumeBufferedRequest()
            case .connecting, .answering, .tunnel, .closed:
                return
            }
        }
    }

    /// Turns reading from the client on or off. Reading stays on (no system call per request)
    /// and is only switched off for back-pressure: the server cannot take more, or enough is
    /// already buffered.
    func readClientIfWanted() {
        guard !exchange.clientInputClosed, !exchange.isClosed else { return }
        let buffered = clientIn.bufferedBytes
        var wanted = buffered < headLimit
        switch exchange.phase {
        case .exchanging:
            if !exchange.requestEnded, buffered > 0 || !(connection?.channel.isWritable ?? true) { wanted = false }
        case .responding:
            if !exchange.requestEnded, buffered > 0 { wanted = false }
        case .tunnel:
            wanted = connection?.channel.isWritable ?? false
        default:
            break
        }
        if wanted != clientReading {
            clientReading = wanted
            _ = try? context.channel.syncOptions?.setOption(.autoRead, value: wanted)
        }
    }

    /// The same for the server connection: it reads while the client can take the bytes.
    func readServerIfWanted(_ c: ServerConnection) {
        c.setReading(context.channel.isWritable)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if let c = connection, exchange.phase == .exchanging || exchange.phase == .tunnel {
            readServerIfWanted(c)
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        closeClient()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let announced = event as? ProxyHeaderReceived {
            announcedClient = announced.source
            if let source = announced.source { streams.clientSocket = source }
            if let destination = announced.destination { streams.localSocket = destination }
            return
        }
        guard let event = event as? ChannelEvent, event == .inputClosed else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        switch exchange.clientInputEnded(nothingBuffered: clientIn.isEmpty) {
        case .none: break
        case .shutServerOutput: connection?.channel.close(mode: .output, promise: nil)
        case .close: closeClient()
        case .abort: abortExchange()
        case .refuseIncompleteHead:
            exchange.requestRejected()
            frontend.counters.requestErrors.wrappingIncrement(ordering: .relaxed)
            sendBuiltIn(.badRequest, cause: ("C", "R"))
        }
    }

    func requestBodyFailed() {
        switch exchange.requestBodyFailed() {
        case .closeAfterWrites:
            abortExchange()
        case .respond(let answer):
            detachServer(close: true)
            dialer.release()
            sendBuiltIn(answer)
        }
    }

    // MARK: - Starting a request

    /// Takes the head (consuming: it becomes `request` without a copy once the facts the
    /// exchange needs are read from it).
    func startRequest(_ head: consuming MessageHead) {
        clientIn.expectBody(HeadParser.requestFraming(head), lineLimit: runtime.bufferSize)
        response = nil
        let handingOver = runtime.handingOver.load(ordering: .relaxed)
        exchange.requestStarted(
            HTTPExchange.RequestFacts(keepAlive: head.isKeepAlive, isUpgrade: head.hasUpgrade && head.connectionUpgrade,
                                      bodiless: clientIn.bodyEnded, versionMinor: head.versionMinor),
            stoppingWithoutHandOver: runtime.isStopping && drainHandover == nil && !handingOver)
        frontend.counters.requests.wrappingIncrement(ordering: .relaxed)
        frontend.counters.requestRate.tick()
        if logger != nil, logFormat.format != nil { beginExchangeLog(head) }
        uniqueID = nil
        // (Not `??`: its autoclosure would capture, and so copy, the head.)
        var bodyWait = frontend.bodyWait
        if bodyWait == nil { bodyWait = statsBodyWait(head) }
        streams.requestReplaced(by: consume head)
        // `option http-buffer-request` / `wait-for-body`: the body is read first.
        if let wait = bodyWait, !clientIn.bodyEnded, !bufferedBodyComplete {
            exchange.bodyWanted(now: clock.now(), milliseconds: wait.milliseconds, continuesAtDeadline: wait.continues)
            syncTimer()
            return
        }
        serveRequest()
    }

    /// Rules, routing, then a server for `request`.
    func serveRequest() {
        var chosen = frontend.backend
        var forcedServer: Server? = nil
        let uniqueIDFormat = frontend.settings.logging.uniqueIDFormat
        if frontend.routesRequests {
            streams.beginTransaction()
            streams.streamBytesIn = Int64(request?.bytes.readableBytes ?? 0)
            if let format = uniqueIDFormat {
                makeUniqueID(format)
                streams.uniqueID = uniqueID
            }
            if frontend.bodyWait != nil { streams.body = peekedBody.payload }
            switch routeRequest() {
            case .handled:
                return
            case .backend(let backend):
                chosen = backend
            }
        } else if let format = uniqueIDFormat {
            makeUniqueID(format)
        }
        if let backend = chosen, backend.persists {
            if !frontend.routesRequests { streams.beginTransaction() }
            forcedServer = persistentServer(backend)
        }
        if let name = frontend.settings.logging.uniqueIDHeader, let id = uniqueID { streams.editHeader(.add, name, id, response: false) }
        guard let backend = chosen else {
            sendBuiltIn(.serviceUnavailable)
            return
        }
        backend.counters.requests.wrappingIncrement(ordering: .relaxed)
        exchangeLog?.backend = backend.name
        exchange.serverWanted(backend: backend.settings.timeouts, frontend: frontend.settings.timeouts,
                              backendKeepsServer: backend.settings.options.connectionMode == .keepAlive)
        if frontend.routesRequests, let (server, ms) = streams.timeoutOverride { exchange.overrideTimeout(server: server, milliseconds: ms) }
        let key = balanceKey(backend)
        let acquisition = forcedServer.map { dialer.acquire(backend, forcing: $0, key: key) } ?? dialer.acquire(backend, key: key)
        switch acquisition {
        case .server(let server):
            obtainConnection(to: server)
        case .queued:
            if exchangeLog != nil { exchangeLog!.queuedMono = MonotonicClock.milliseconds() }
            exchange.queued(now: clock.now())
            syncTimer()
        case .unavailable:
            sendBuiltIn(.serviceUnavailable)
        }
    }

    /// What the backend's algorithm hashes, from the request as rules left it. (Read in place,
    /// and only for the algorithms that hash it: a copy of the head costs a retain and a
    /// release of each of its references.)
    func balanceKey(_ backend: Backend) -> BalanceKey {
        switch backend.settings.balance {
        case .source:
            return BalanceKey(sourceAddress: BalanceKey.addressBytes(clientAddress))
        case .uri:
            return BalanceKey(uri: request?.target ?? "")
        case .header(let name, _):
            return BalanceKey(headerValue: request?.value(named: name).map { Substring($0) })
        default:
            return BalanceKey()
        }
    }
}
