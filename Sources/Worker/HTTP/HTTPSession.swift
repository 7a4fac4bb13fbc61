import NIOCore
import NIOPosix
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// One client connection in `mode http`: parses requests, picks a server, forwards the exchange
/// with back-pressure both ways, and keeps both sides alive between requests.
///
/// Messages travel as raw bytes: heads are parsed into byte ranges and rewritten only where the
/// proxy must (hop-by-hop headers, `Connection`, `X-Forwarded-For`); bodies are forwarded in their
/// original framing while `BodyReader` tracks where they end. Everything here runs on the client
/// channel's event loop; the server connection always lives on the same loop.
final class HTTPSession: ChannelInboundHandler, ServerConnectionDelegate, StoppableSession {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Phase {
        /// Between requests (or before the first one).
        case idle
        /// A request head arrived; waiting for a server slot or a connection.
        case connecting
        /// The request is being sent and/or the response received.
        case exchanging
        /// A local response (built-in or `http-request return`) went out; the body is discarded.
        case responding
        /// Upgrade accepted: bytes flow both ways untouched.
        case tunnel
        case closed
    }

    let runtime: WorkerRuntime
    let frontend: Frontend
    let createdAtMs = MonotonicClock.milliseconds()
    var context: ChannelHandlerContext!
    var phase: Phase = .idle
    var loopIndex = 0
    var headLimit: Int

    // Client side.
    var clientBuffer: ByteBuffer?
    var clientInputClosed = false
    var request: MessageHead?
    var requestBody = BodyReader(.none)
    var requestEnded = true
    var isUpgradeRequest = false
    var clientKeepAlive = true
    var closeAfterResponse = false
    var requestsDone = 0

    // Server side of the current exchange.
    var connection: ServerConnection?
    var slot: (backend: Backend, server: Server)?
    var queueTicket: UInt64?
    var connectAttempts = 0
    var usedReusedConnection = false
    var serverBuffer: ByteBuffer?
    var response: MessageHead?
    var responseBody = BodyReader(.none)
    var responseStarted = false
    var responseEnded = false
    var serverNeedsFlush = false
    var clientNeedsFlush = false
    /// The session's own server connection, kept for its next request.
    /// The idle server connection this client's next request will try first (HAProxy's private
    /// idle connection); counted on its server for `show servers conn` (`idle_sess`).
    var ownIdle: ServerConnection? {
        didSet {
            guard oldValue !== ownIdle else { return }
            oldValue?.server.sessionIdleConnections.wrappingDecrement(ordering: .relaxed)
            ownIdle?.server.sessionIdleConnections.wrappingIncrement(ordering: .relaxed)
        }
    }

    // One deadline, one scheduled task (moved lazily).
    var timer: Scheduled<Void>?
    var timerDeadline: NIODeadline?
    var timerScheduledFor: NIODeadline?
    var timerReason: TimerReason = .none
    var lastServerActivity = NIODeadline.now()
    var lastTunnelActivity = NIODeadline.now()

    enum TimerReason { case none, request, keepAlive, queue, server, tunnel }

    // Traffic logging (only when the frontend has `log` targets).
    let logger: ProxyLogger?
    let logFormat: TrafficLogFormat
    var exchangeLog: ExchangeLog?
    var firstByteMono = -1
    /// Why the exchange is ending, when it is not the client's doing (`K`, `S`, `s`...).
    var terminationCause: Character?
    /// The termination flags of the local response being written.
    var localCause: (Character, Character)?

    /// The listener's own `maxconn` gate, if its `bind` line has one.
    let listenerGate: AcceptGate?
    /// `bind ... accept-proxy`: a PROXY protocol header comes first, announcing the client.
    let acceptsProxy: Bool
    var awaitingProxyHeader: Bool
    var announcedClient: SocketAddress?
    /// The client as the proxy reports it: the one a PROXY header announced, else the peer.
    var clientAddress: SocketAddress? { announcedClient ?? context?.channel.remoteAddress }

    init(runtime: WorkerRuntime, frontend: Frontend, listenerGate: AcceptGate? = nil, acceptProxy: Bool = false) {
        self.runtime = runtime
        self.frontend = frontend
        self.listenerGate = listenerGate
        acceptsProxy = acceptProxy
        awaitingProxyHeader = acceptProxy
        headLimit = max(1024, runtime.bufferSize - runtime.configuration.global.maxRewrite)
        logger = frontend.logger
        logFormat = TrafficLogFormat(frontend.settings.options)
    }

    var timeouts: Timeouts { frontend.settings.timeouts }
    var backendTimeouts: Timeouts { slot?.backend.settings.timeouts ?? frontend.backend?.settings.timeouts ?? timeouts }

    // MARK: - Channel lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        loopIndex = runtime.loopIndex(of: context.eventLoop)
    }

    /// The context holds this handler for good: keeping it past removal is a cycle that leaks
    /// the session (and its last receive buffer) for every connection. NIO removes handlers
    /// a tick after `channelInactive`, so `teardown` has run and nothing touches it again
    /// (a channel that never became active opened nothing that needs undoing).
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        runtime.sessions(on: context.eventLoop).add(self)
        frontend.sessionOpened()
        listenerGate?.opened()
        if logger != nil, logFormat == .connect { logConnect(context.channel, mode: "HTTP") }
        if runtime.isStopping && (!runtime.handingOver.load(ordering: .relaxed) || runtime.sessions(on: context.eventLoop).draining) {
            closeAfterResponse = true
        }
        armRequestTimer(first: true)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        teardown()
        context.fireChannelInactive()
    }

    func teardown() {
        guard phase != .closed else { return }
        if exchangeLog != nil {
            // A tunnel that ends is a normal end; otherwise the client left (or was killed).
            logExchange(terminationCause ?? (phase == .tunnel ? "-" : "C"))
        }
        phase = .closed
        stopTimerTask()
        if let ticket = queueTicket, let backend = frontend.backend {
            _ = backend.cancel(ticket: ticket)
            queueTicket = nil
        }
        if let c = connection {
            connection = nil
            c.delegate = nil
            c.pool.noteReleased()
            c.close()
        }
        releaseSlot()
        if let own = ownIdle {
            ownIdle = nil
            offerToPool(own)
        }
        runtime.sessions(on: context.eventLoop).remove(self)
        frontend.sessionClosed()
        listenerGate?.closed()
    }

    func closeClient() {
        guard phase != .closed else { return }
        context.close(promise: nil)
        teardown()
    }

    /// Closes once everything written so far has left, without a reset for bytes the client
    /// may still be sending (see `LingeringClose`).
    func closeClientLingering() {
        let sent = writesLeft()
        let timeout = TimeAmount.milliseconds(timeouts.client ?? 5_000)
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

    /// Soft-stop of a busy session that can move once its exchange is over: its response keeps
    /// the connection open, and the idle connection then goes to the next worker.
    func beginSoftStop(handingOverTo handover: (SocketTable, HandoverSink)) {
        guard phase == .connecting || phase == .exchanging || phase == .responding else {
            beginSoftStop()
            return
        }
        drainHandover = handover
    }

    var drainHandover: (SocketTable, HandoverSink)?

    func beginSoftStop() {
        closeAfterResponse = true
        // Idle keep-alive connections close now. A connection that has not sent its first
        // request yet is kept (as HAProxy does): it was accepted from the shared socket just
        // before the stop, and its client is about to send a request it expects answered.
        // With `option idle-close-on-response` they stay until their next response, which carries
        // `Connection: close` (hard-stop-after still bounds them).
        if frontend.settings.options.idleCloseOnResponse { return }
        if phase == .idle, requestsDone > 0, (clientBuffer?.readableBytes ?? 0) == 0 { closeClient() }
    }

    /// `shutdown sessions server` (logged with `K`).
    func abort() {
        terminationCause = "K"
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
        guard !acceptsProxy, phase == .idle, !clientInputClosed, (clientBuffer?.readableBytes ?? 0) == 0 else { return false }
        let channel = context.channel
        guard let fd = table.descriptor(local: channel.localAddress, remote: channel.remoteAddress) else { return false }
        _ = try? channel.syncOptions?.setOption(.autoRead, value: false)
        clientReading = false
        cancelTimer()
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        writesLeft().whenComplete { result in
            let session = bound.value
            guard case .success = result, session.phase == .idle, !session.clientInputClosed else { return }
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
        closeAfterResponse = true
        clientReading = true
        _ = try? context.channel.syncOptions?.setOption(.autoRead, value: true)
        armRequestTimer(first: false)
    }

    // MARK: - Client input

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        frontend.counters.bytesIn.wrappingIncrement(by: bytes.readableBytes, ordering: .relaxed)
        if logger != nil, phase == .idle, firstByteMono < 0 { firstByteMono = MonotonicClock.milliseconds() }
        if phase == .tunnel {
            lastTunnelActivity = .now()
            connection?.channel.write(bytes, promise: nil)
            serverNeedsFlush = true
            return
        }
        if clientBuffer == nil || clientBuffer!.readableBytes == 0 {
            clientBuffer = bytes
        } else {
            clientBuffer!.writeBuffer(&bytes)
        }
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

    /// Parses and forwards what the client sent, as far as the current state allows.
    func processClient() {
        while true {
            switch phase {
            case .idle:
                guard let buffer = clientBuffer, buffer.readableBytes > 0 else { return }
                if awaitingProxyHeader {
                    switch ProxyProtocolHeader.parse(buffer) {
                    case .incomplete:
                        return
                    case .invalid:
                        // HAProxy drops such a connection without an answer.
                        clientBuffer = nil
                        closeClient()
                        return
                    case .complete(let source, let length):
                        awaitingProxyHeader = false
                        announcedClient = source
                        clientBuffer!.moveReaderIndex(forwardBy: length)
                        firstByteMono = -1
                        continue
                    }
                }
                switch HeadParser.parseRequest(buffer, limit: headLimit, maxHeaders: runtime.maxHeaders) {
                case .incomplete:
                    return
                case .invalid:
                    captureInvalidRequest(buffer)
                    clientBuffer = nil
                    frontend.counters.requestErrors.wrappingIncrement(ordering: .relaxed)
                    requestEnded = false
                    sendBuiltIn(.badRequest)
                    return
                case .complete(let head, let length):
                    clientBuffer!.moveReaderIndex(forwardBy: length)
                    startRequest(head)
                }
            case .exchanging, .responding:
                guard !requestEnded else { return }
                guard var buffer = clientBuffer, buffer.readableBytes > 0 else { return }
                if phase == .exchanging, let c = connection, !c.channel.isWritable { return }
                let slice: ByteBuffer?
                do {
                    slice = try requestBody.consume(&buffer)
                } catch {
                    clientBuffer = nil
                    requestBodyFailed()
                    return
                }
                clientBuffer = buffer
                if let slice, phase == .exchanging, let c = connection {
                    countRequestBytes(slice.readableBytes)
                    c.channel.write(slice, promise: nil)
                    serverNeedsFlush = true
                    // `timeout server` is inactivity on the server side, and sending it the
                    // request body is activity: a slow upload is not a silent server.
                    lastServerActivity = .now()
                }
                if requestBody.isDone {
                    requestEnded = true
                    flushServerIfNeeded()
                    if phase == .responding, responseEnded { localResponseFinished() }
                    return
                }
            case .connecting, .tunnel, .closed:
                return
            }
        }
    }

    /// Turns reading from the client on or off. Reading stays on (no system call per request)
    /// and is only switched off for back-pressure: the server cannot take more, or enough is
    /// already buffered.
    var clientReading = true
    func readClientIfWanted() {
        guard !clientInputClosed, phase != .closed else { return }
        let buffered = clientBuffer?.readableBytes ?? 0
        var wanted = buffered < headLimit
        switch phase {
        case .exchanging:
            if !requestEnded, buffered > 0 || !(connection?.channel.isWritable ?? true) { wanted = false }
        case .responding:
            if !requestEnded, buffered > 0 { wanted = false }
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
        if let c = connection, phase == .exchanging || phase == .tunnel {
            readServerIfWanted(c)
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        closeClient()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            // The client finished sending: answer what it asked, then close.
            clientInputClosed = true
            if phase == .tunnel {
                connection?.channel.close(mode: .output, promise: nil)
                return
            }
            if phase == .idle, (clientBuffer?.readableBytes ?? 0) == 0 { closeClient() }
            if (phase == .exchanging || phase == .connecting), !requestEnded {
                // The request will never be complete.
                abortExchange()
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func requestBodyFailed() {
        if responseStarted {
            abortExchange()
        } else {
            detachServer(close: true)
            releaseSlot()
            sendBuiltIn(.badRequest)
        }
    }

    // MARK: - Starting a request

    func startRequest(_ head: MessageHead) {
        cancelTimer()
        request = head
        requestBody = BodyReader(HeadParser.requestFraming(head), lineLimit: runtime.bufferSize)
        requestEnded = requestBody.isDone
        response = nil
        responseStarted = false
        responseEnded = false
        connectAttempts = 0
        usedReusedConnection = false
        clientKeepAlive = head.isKeepAlive && frontend.settings.options.connectionMode != .close
        if runtime.isStopping && drainHandover == nil && !runtime.handingOver.load(ordering: .relaxed) { closeAfterResponse = true }
        isUpgradeRequest = head.hasUpgrade && head.connectionUpgrade
        frontend.counters.requests.wrappingIncrement(ordering: .relaxed)
        frontend.counters.requestRate.tick()
        if logger != nil, logFormat != .connect { beginExchangeLog(head) }
        if let rule = frontend.returnRule {
            sendReturn(rule)
            return
        }
        guard let backend = frontend.backend else {
            sendBuiltIn(.serviceUnavailable)
            return
        }
        backend.counters.requests.wrappingIncrement(ordering: .relaxed)
        exchangeLog?.backend = backend.name
        phase = .connecting
        acquireServer(backend)
    }

    func balanceKey(_ backend: Backend) -> BalanceKey {
        guard let head = request else { return BalanceKey() }
        switch backend.settings.balance {
        case .source:
            return BalanceKey(sourceAddress: BalanceKey.addressBytes(clientAddress))
        case .uri:
            return BalanceKey(uri: head.target)
        case .header(let name, _):
            return BalanceKey(headerValue: head.value(named: name).map { Substring($0) })
        default:
            return BalanceKey()
        }
    }

    func acquireServer(_ backend: Backend) {
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        switch backend.acquire(key: balanceKey(backend), eventLoop: loop, grant: { server in
            bound.value.queueGranted(backend: backend, server: server)
        }) {
        case .server(let server):
            slot = (backend, server)
            backend.currentSessions.wrappingIncrement(ordering: .relaxed)
            backend.totalSessions.wrappingIncrement(ordering: .relaxed)
            obtainConnection(to: server)
        case .queued(let ticket):
            queueTicket = ticket
            if exchangeLog != nil { exchangeLog!.queuedMono = MonotonicClock.milliseconds() }
            let wait = backend.settings.timeouts.queue ?? backend.settings.timeouts.connect ?? 0
            if wait > 0 { armTimer(.queue, after: wait) }
        case .unavailable:
            sendBuiltIn(.serviceUnavailable)
        }
    }

    func queueGranted(backend: Backend, server: Server) {
        guard phase == .connecting, queueTicket != nil else {
            // The session went away or timed out meanwhile: give the slot back.
            backend.release(server)
            return
        }
        queueTicket = nil
        cancelTimer()
        if let queued = exchangeLog?.queuedMono, queued >= 0 { exchangeLog!.queueMs = MonotonicClock.milliseconds() - queued }
        slot = (backend, server)
        backend.currentSessions.wrappingIncrement(ordering: .relaxed)
        backend.totalSessions.wrappingIncrement(ordering: .relaxed)
        obtainConnection(to: server)
    }

    func releaseSlot() {
        if let (backend, server) = slot {
            slot = nil
            backend.currentSessions.wrappingDecrement(ordering: .relaxed)
            backend.release(server)
        }
    }
}
