import NIOCore
import NIOHTTP1
import NIOPosix
import Shared

/// One client connection in `mode http`: reads requests, picks a server, forwards the exchange
/// with back-pressure both ways, and keeps both sides alive between requests.
///
/// Everything here runs on the client channel's event loop; the server connection is always
/// on the same loop, so the two sides call each other directly.
final class HTTPSession: ChannelInboundHandler, RemovableChannelHandler, ServerConnectionDelegate, StoppableSession {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum Phase {
        /// Between requests (or before the first one).
        case idle
        /// A request head arrived; waiting for a server slot or a connection.
        case connecting
        /// The request is being sent and/or the response received.
        case exchanging
        /// A built-in or `http-request return` response is being sent; the request body is discarded.
        case responding
        /// The connection became a tunnel (Upgrade); this handler is gone from the pipeline.
        case tunnel
        case closed
    }

    private let runtime: WorkerRuntime
    private let frontend: Frontend
    private var context: ChannelHandlerContext!
    private var phase: Phase = .idle
    private var loopIndex = 0

    // Current exchange.
    private var requestHead: HTTPRequestHead?
    private var pendingParts: [HTTPServerRequestPart] = []
    private var requestEnded = false
    private var responseStarted = false
    private var responseEnded = false
    private var responseKeepAlive = false
    private var requestHasBody = false
    private var isUpgradeRequest = false
    private var clientKeepAlive = true
    private var closeAfterResponse = false
    private var connection: ServerConnection?
    private var slot: (backend: Backend, server: Server)?
    private var queueTicket: UInt64?
    private var connectAttempts = 0
    private var usedReusedConnection = false
    private var serverNeedsFlush = false
    private var inbox: [HTTPServerRequestPart] = []
    private var tunnelResponse: HTTPResponseHead?
    private var clientInputClosed = false
    private var clientNeedsFlush = false

    // Between exchanges: the session's own server connection, kept for its next request.
    private var ownIdle: ServerConnection?
    private var requestsDone = 0

    // Timers: one deadline per direction, checked by one scheduled task.
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?
    private var timerReason: TimerReason = .none
    private var timerScheduledFor: NIODeadline?
    private var lastServerActivity = NIODeadline.now()

    private enum TimerReason { case none, request, keepAlive, queue, server, client }

    init(runtime: WorkerRuntime, frontend: Frontend) {
        self.runtime = runtime
        self.frontend = frontend
    }

    private var timeouts: Timeouts { frontend.settings.timeouts }
    private var backendTimeouts: Timeouts { slot?.backend.settings.timeouts ?? frontend.backend?.settings.timeouts ?? timeouts }

    // MARK: - Channel lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        loopIndex = runtime.loopIndex(of: context.eventLoop)
    }

    func channelActive(context: ChannelHandlerContext) {
        runtime.sessions(on: context.eventLoop).add(self)
        frontend.currentSessions.wrappingIncrement(ordering: .relaxed)
        frontend.totalSessions.wrappingIncrement(ordering: .relaxed)
        if runtime.isStopping { closeAfterResponse = true }
        armRequestTimer(first: true)
        context.read()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        teardown()
        context.fireChannelInactive()
    }

    private func teardown() {
        guard phase != .closed else { return }
        let wasTunnel = phase == .tunnel
        phase = .closed
        stopTimerTask()
        if let ticket = queueTicket, let backend = frontend.backend ?? slot?.backend {
            _ = backend.cancel(ticket: ticket)
            queueTicket = nil
        }
        if let c = connection {
            connection = nil
            c.delegate = nil
            if !wasTunnel { c.close() }
        }
        releaseSlot()
        if let own = ownIdle {
            ownIdle = nil
            offerToPool(own)
        }
        runtime.sessions(on: context.eventLoop).remove(self)
        frontend.currentSessions.wrappingDecrement(ordering: .relaxed)
    }

    // MARK: - Soft stop

    func beginSoftStop() {
        closeAfterResponse = true
        if phase == .idle { context.close(promise: nil) }
    }

    func abort() {
        context.close(promise: nil)
    }

    // MARK: - Reading the client

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        // Pipelined requests wait their turn: responses must leave in request order.
        if !inbox.isEmpty || (phase != .idle && part.isHead) {
            inbox.append(part)
            return
        }
        handle(part)
    }

    /// Replays pipelined parts once the previous exchange is over.
    private func drainInbox() {
        while let first = inbox.first {
            if first.isHead && phase != .idle { return }
            inbox.removeFirst()
            handle(first)
            if phase == .closed { return }
        }
    }

    private func handle(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head):
            startRequest(head)
        case .body, .end:
            if case .end = part { requestEnded = true }
            switch phase {
            case .connecting:
                pendingParts.append(part)
            case .exchanging:
                guard let c = connection else { pendingParts.append(part); return }
                c.channel.write(forwardedPart(part), promise: nil)
                serverNeedsFlush = true
            case .responding:
                if requestEnded, responseEnded { finishLocalResponse() }
            default:
                break
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if serverNeedsFlush, let c = connection {
            serverNeedsFlush = false
            c.channel.flush()
        }
        readClientIfWanted()
    }

    /// Asks for more client bytes when there is room for them.
    private func readClientIfWanted() {
        guard inbox.isEmpty, !clientInputClosed else { return }
        switch phase {
        case .idle:
            context.read()
        case .exchanging:
            if !requestEnded, let c = connection, c.channel.isWritable { context.read() }
        case .responding:
            if !requestEnded { context.read() }
        default:
            break
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, phase == .exchanging, !responseEnded, let c = connection {
            c.channel.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is HTTPParserError {
            // Malformed request: HAProxy answers 400 when nothing was sent yet, then closes.
            if !responseStarted, phase != .exchanging || !responseStarted {
                if let c = connection { connection = nil; c.delegate = nil; c.close() }
                releaseSlot()
                sendBuiltIn(.badRequest, thenClose: true)
            } else {
                context.close(promise: nil)
            }
            return
        }
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            // The client finished sending: answer what it asked, then close.
            clientInputClosed = true
            if phase == .idle, inbox.isEmpty { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    // MARK: - Starting a request

    private func startRequest(_ head: HTTPRequestHead) {
        cancelTimer()
        requestHead = head
        pendingParts.removeAll(keepingCapacity: true)
        requestEnded = false
        responseStarted = false
        responseEnded = false
        responseKeepAlive = false
        connectAttempts = 0
        usedReusedConnection = false
        requestHasBody = head.headers.contains(name: "content-length") || head.headers.contains(name: "transfer-encoding")
        clientKeepAlive = head.isKeepAlive && frontend.settings.options.connectionMode != .close
        if runtime.isStopping { closeAfterResponse = true }

        let headerBytes = head.uri.utf8.count + head.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }
        if headerBytes > runtime.bufferSize - runtime.configuration.global.maxRewrite || !isValidRequest(head) {
            sendBuiltIn(.badRequest, thenClose: true)
            return
        }
        if let rule = frontend.returnRule {
            sendReturn(rule)
            return
        }
        guard let backend = frontend.backend else {
            sendBuiltIn(.serviceUnavailable, thenClose: false)
            return
        }
        isUpgradeRequest = head.headers.contains(name: "upgrade")
            && head.headers["connection"].contains { $0.lowercased().contains("upgrade") }
        phase = .connecting
        acquireServer(backend)
    }

    private func isValidRequest(_ head: HTTPRequestHead) -> Bool {
        // HTTP/1.1 requires exactly one Host header.
        if head.version.major == 1, head.version.minor >= 1 {
            let hosts = head.headers["host"]
            if hosts.count != 1 { return false }
        }
        // Conflicting framing is a smuggling vector: refuse rather than guess.
        if head.headers.contains(name: "content-length"), head.headers.contains(name: "transfer-encoding") {
            return false
        }
        let lengths = head.headers["content-length"]
        if lengths.count > 1, Set(lengths).count > 1 { return false }
        return true
    }

    private func balanceKey(_ backend: Backend) -> BalanceKey {
        guard let head = requestHead else { return BalanceKey() }
        switch backend.settings.balance {
        case .source:
            var bytes: [UInt8]? = nil
            if let address = context.channel.remoteAddress {
                switch address {
                case .v4(let a): bytes = withUnsafeBytes(of: a.address.sin_addr) { Array($0) }
                case .v6(let a): bytes = withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }
                default: break
                }
            }
            return BalanceKey(sourceAddress: bytes)
        case .uri:
            return BalanceKey(uri: Substring(head.uri))
        case .header(let name, _):
            return BalanceKey(headerValue: head.headers.first(name: name).map { Substring($0) })
        default:
            return BalanceKey()
        }
    }

    private func acquireServer(_ backend: Backend) {
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
            let wait = backend.settings.timeouts.queue ?? backend.settings.timeouts.connect ?? 0
            if wait > 0 { armTimer(.queue, after: wait) }
        case .unavailable:
            sendBuiltIn(.serviceUnavailable, thenClose: false)
        }
    }

    private func queueGranted(backend: Backend, server: Server) {
        guard phase == .connecting, queueTicket != nil else {
            // The session went away or timed out meanwhile: give the slot back.
            backend.release(server)
            return
        }
        queueTicket = nil
        cancelTimer()
        slot = (backend, server)
        backend.currentSessions.wrappingIncrement(ordering: .relaxed)
        backend.totalSessions.wrappingIncrement(ordering: .relaxed)
        obtainConnection(to: server)
    }

    private func releaseSlot() {
        if let (backend, server) = slot {
            slot = nil
            backend.currentSessions.wrappingDecrement(ordering: .relaxed)
            backend.release(server)
        }
    }

    // MARK: - Server connections

    private func obtainConnection(to server: Server) {
        let reuse = slot?.backend.settings.httpReuse ?? .safe
        if let own = ownIdle {
            ownIdle = nil
            if own.server === server, !own.isClosed {
                usedReusedConnection = true
                server.reuses.wrappingIncrement(ordering: .relaxed)
                attach(own)
                return
            }
            offerToPool(own)
        }
        let pool = server.pools[loopIndex]
        while let pooled = pool.take(isFirstRequest: requestsDone == 0, reuse: reuse) {
            pool.noteTaken(server: server)
            pooled.isPooled = false
            if pooled.isClosed { continue }
            usedReusedConnection = true
            server.reuses.wrappingIncrement(ordering: .relaxed)
            attach(pooled)
            return
        }
        connectNew(to: server)
    }

    private func connectNew(to server: Server) {
        guard let address = server.socketAddress else {
            connectFailed(server: server)
            return
        }
        connectAttempts += 1
        server.connectAttempts.wrappingIncrement(ordering: .relaxed)
        let pool = server.pools[loopIndex]
        let connectTimeout = backendTimeouts.connect ?? 0
        var bootstrap = ClientBootstrap(group: context.eventLoop)
            .channelOption(.autoRead, value: false)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                do {
                    let ops = channel.pipeline.syncOperations
                    try ops.addHandler(HTTPRequestEncoder(), name: "hasp.encoder")
                    try ops.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes,
                                                                                informationalResponseStrategy: .forward)),
                                       name: "hasp.decoder")
                    try ops.addHandler(ServerConnectionHandler(), name: "hasp.server")
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        if connectTimeout > 0 { bootstrap = bootstrap.connectTimeout(.milliseconds(connectTimeout)) }
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        bootstrap.connect(to: address).whenComplete { result in
            let session = bound.value
            switch result {
            case .success(let channel):
                let handler = try! channel.pipeline.syncOperations.handler(type: ServerConnectionHandler.self)
                let connection = ServerConnection(channel: channel, server: server, pool: pool)
                handler.connection = connection
                server.usedConnections.wrappingIncrement(ordering: .relaxed)
                guard session.phase == .connecting, session.slot?.server === server else {
                    // The client left while we were connecting: keep the connection for others.
                    session.offerToPool(connection)
                    return
                }
                session.attach(connection)
            case .failure:
                server.connectionErrors.wrappingIncrement(ordering: .relaxed)
                guard session.phase == .connecting, session.slot?.server === server else { return }
                session.connectFailed(server: server)
            }
        }
    }

    /// Connection refused or timed out: retry, possibly on another server, then give up with 503.
    private func connectFailed(server: Server) {
        guard let (backend, _) = slot else { return }
        let retries = backend.settings.retries
        if connectAttempts <= retries {
            if backend.settings.options.redispatch, connectAttempts == retries || server.socketAddress == nil {
                releaseSlot()
                if let other = backend.redispatch(excluding: server, key: balanceKey(backend)) {
                    slot = (backend, other)
                    backend.currentSessions.wrappingIncrement(ordering: .relaxed)
                    connectNew(to: other)
                    return
                }
                sendBuiltIn(.serviceUnavailable, thenClose: false)
                return
            }
            connectNew(to: server)
            return
        }
        releaseSlot()
        sendBuiltIn(.serviceUnavailable, thenClose: false)
    }

    private func attach(_ c: ServerConnection) {
        guard let head = requestHead else { return }
        connection = c
        c.delegate = self
        c.requestCount += 1
        c.pool.noteUsed()
        phase = .exchanging
        lastServerActivity = .now()
        c.channel.write(HTTPClientRequestPart.head(forwardedHead(head)), promise: nil)
        for part in pendingParts { c.channel.write(forwardedPart(part), promise: nil) }
        pendingParts.removeAll(keepingCapacity: true)
        c.channel.flush()
        let serverTimeout = backendTimeouts.server ?? 0
        if serverTimeout > 0 { armTimer(.server, after: serverTimeout) }
        c.channel.read()
        readClientIfWanted()
    }

    private func forwardedPart(_ part: HTTPServerRequestPart) -> HTTPClientRequestPart {
        switch part {
        case .head(let h): return .head(forwardedHead(h))
        case .body(let b): return .body(.byteBuffer(b))
        case .end(let t): return .end(t)
        }
    }

    private static let hopByHop = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"]

    private func forwardedHead(_ head: HTTPRequestHead) -> HTTPRequestHead {
        var out = head
        var connectionTokens: [String] = []
        for value in head.headers["connection"] {
            for token in value.split(separator: ",") { connectionTokens.append(token.trimmingSpaces().lowercased()) }
        }
        let upgrade = isUpgradeRequest ? head.headers["upgrade"] : []
        for name in Self.hopByHop { out.headers.remove(name: name) }
        for token in connectionTokens where token != "close" && token != "keep-alive" && token != "upgrade" {
            out.headers.remove(name: token)
        }
        out.version = .http1_1
        if isUpgradeRequest {
            for value in upgrade { out.headers.add(name: "upgrade", value: value) }
            out.headers.add(name: "connection", value: "upgrade")
        } else if frontend.settings.options.connectionMode != .keepAlive || slot?.backend.settings.options.connectionMode == .serverClose
                    || slot?.backend.settings.options.connectionMode == .close {
            out.headers.add(name: "connection", value: "close")
        }
        if frontend.settings.options.forwardFor || (slot?.backend.settings.options.forwardFor ?? false),
           let ip = context.channel.remoteAddress?.ipAddress {
            let name = frontend.settings.options.forwardFor ? frontend.settings.options.forwardForHeader
                : slot!.backend.settings.options.forwardForHeader
            out.headers.add(name: name, value: ip)
        }
        return out
    }

    // MARK: - Server events

    func server(_ c: ServerConnection, received part: HTTPClientResponsePart) {
        guard c === connection else { return }
        lastServerActivity = .now()
        switch part {
        case .head(let head):
            if head.status.code >= 100, head.status.code < 200, head.status != .switchingProtocols {
                // Interim responses (100 Continue) pass through; the final one follows.
                context.write(wrapOutboundOut(.head(head)), promise: nil)
                clientNeedsFlush = true
                return
            }
            responseStarted = true
            if head.status == .switchingProtocols, isUpgradeRequest {
                // The switch happens once the decoder has finished this message (its `.end`).
                tunnelResponse = head
                return
            }
            if isUpgradeRequest { closeAfterResponse = true }
            responseKeepAlive = head.isKeepAlive && requestHead?.method != .CONNECT
            context.write(wrapOutboundOut(.head(clientResponseHead(head))), promise: nil)
            clientNeedsFlush = true
        case .body(let buffer):
            c.server.bytesOut.wrappingIncrement(by: buffer.readableBytes, ordering: .relaxed)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            clientNeedsFlush = true
        case .end(let trailers):
            if let head = tunnelResponse {
                tunnelResponse = nil
                startTunnel(head)
                return
            }
            responseEnded = true
            cancelTimer()
            // Settle the server side first: the write below may complete synchronously and
            // start the next pipelined request at once.
            finishServerSide()
            clientNeedsFlush = false
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(trailers))).whenComplete { _ in
                bound.value.responseWritten()
            }
        }
    }

    func serverReadComplete(_ c: ServerConnection) {
        guard c === connection else { return }
        if clientNeedsFlush {
            clientNeedsFlush = false
            context.flush()
        }
        if !responseEnded, context.channel.isWritable { c.channel.read() }
    }

    func serverWritabilityChanged(_ c: ServerConnection) {
        guard c === connection, c.channel.isWritable, phase == .exchanging, !requestEnded else { return }
        context.read()
    }

    func serverClosed(_ c: ServerConnection) {
        guard c === connection else { return }
        connection = nil
        c.delegate = nil
        c.pool.noteReleased()
        if responseEnded { return }
        if !responseStarted {
            // A reused connection may have been closed by the server just as we sent the request:
            // a bodiless request is safe to send again on a fresh connection.
            if usedReusedConnection, !requestHasBody, let server = slot?.server {
                usedReusedConnection = false
                phase = .connecting
                connectNew(to: server)
                return
            }
            releaseSlot()
            sendBuiltIn(.badGateway, thenClose: !requestEnded)
            return
        }
        // The response was cut: nothing sensible can follow on this client connection.
        releaseSlot()
        context.close(promise: nil)
    }

    func server(_ c: ServerConnection, failed error: Error) {
        guard c === connection else { return }
        // A malformed response: 502 if the client has not seen anything yet.
        connection = nil
        c.delegate = nil
        c.pool.noteReleased()
        c.close()
        releaseSlot()
        if !responseStarted {
            sendBuiltIn(.badGateway, thenClose: !requestEnded)
        } else {
            context.close(promise: nil)
        }
    }

    private func clientResponseHead(_ head: HTTPResponseHead) -> HTTPResponseHead {
        var out = head
        for name in Self.hopByHop { out.headers.remove(name: name) }
        let clientVersion = requestHead?.version ?? .http1_1
        out.version = clientVersion.minor == 0 ? .http1_0 : .http1_1
        let framed = head.headers.contains(name: "content-length") || head.headers.contains(name: "transfer-encoding")
            || requestHead?.method == .HEAD || head.status == .noContent || head.status == .notModified
        if clientVersion.minor == 0, head.headers.contains(name: "transfer-encoding") {
            // HTTP/1.0 clients cannot read chunks: send the body close-delimited.
            out.headers.remove(name: "transfer-encoding")
            closeAfterResponse = true
        }
        if !framed && clientVersion.minor == 0 { closeAfterResponse = true }
        if !requestEnded { closeAfterResponse = true }
        if !clientKeepAlive || closeAfterResponse {
            out.headers.add(name: "connection", value: "close")
            closeAfterResponse = true
        } else if clientVersion.minor == 0 {
            out.headers.add(name: "connection", value: "keep-alive")
        }
        return out
    }

    /// The response has been fully received: decide the server connection's fate.
    private func finishServerSide() {
        guard let c = connection else { return }
        connection = nil
        c.pool.noteReleased()
        let backend = slot?.backend
        let maxReuse = c.server.settings.maxReuse
        let reusable = responseKeepAlive && requestEnded && !c.isClosed
            && (maxReuse < 0 || c.requestCount < maxReuse)
            && frontend.settings.options.connectionMode == .keepAlive
            && (backend?.settings.options.connectionMode ?? .keepAlive) == .keepAlive
        releaseSlot()
        guard reusable else {
            c.delegate = nil
            c.close()
            return
        }
        if clientKeepAlive, !closeAfterResponse, backend?.settings.httpReuse != nil {
            // Keep it for this client's next request; others may still get it if we close.
            ownIdle = c
            c.park()
        } else {
            offerToPool(c)
        }
    }

    fileprivate func offerToPool(_ c: ServerConnection) {
        c.delegate = nil
        guard !c.isClosed else { return }
        let reuse = runtime.backends[c.server.backendName]?.settings.httpReuse ?? .safe
        if reuse != .never, c.pool.add(c, server: c.server, eventLoop: c.channel.eventLoop, inMaintenance: !c.server.isUsable) {
            c.isPooled = true
            c.park()
        } else {
            c.close()
        }
    }

    /// The final response bytes were handed to the socket.
    private func responseWritten() {
        guard phase == .exchanging || phase == .responding else { return }
        requestsDone += 1
        if closeAfterResponse || !clientKeepAlive {
            phase = .closed
            context.close(promise: nil)
            teardownAfterClose()
            return
        }
        if !requestEnded {
            // Keep discarding the rest of the request body before the next request.
            phase = .responding
            drainInbox()
            readClientIfWanted()
            return
        }
        phase = .idle
        armRequestTimer(first: false)
        drainInbox()
        flushServerIfNeeded()
        if phase == .idle, inbox.isEmpty, clientInputClosed {
            context.close(promise: nil)
            return
        }
        if phase == .idle { readClientIfWanted() }
    }

    private func flushServerIfNeeded() {
        if serverNeedsFlush, let c = connection {
            serverNeedsFlush = false
            c.channel.flush()
        }
    }

    private func teardownAfterClose() {
        // channelInactive will run teardown(); phase is already .closed, so do its work here.
        stopTimerTask()
        releaseSlot()
        if let own = ownIdle {
            ownIdle = nil
            offerToPool(own)
        }
        runtime.sessions(on: context.eventLoop).remove(self)
        frontend.currentSessions.wrappingDecrement(ordering: .relaxed)
    }

    // MARK: - Local responses

    private func sendBuiltIn(_ response: BuiltInResponse, thenClose: Bool) {
        guard phase != .closed else { return }
        var close = thenClose || response.closesConnection || closeAfterResponse || !clientKeepAlive || !requestEnded
        if phase == .idle { close = true }
        var head = response.head()
        if close, !response.closesConnection { head.headers.add(name: "connection", value: "close") }
        closeAfterResponse = close
        writeLocal(head, body: Array(response.body.utf8))
    }

    private func sendReturn(_ rule: HTTPReturnRule) {
        var headers = HTTPHeaders()
        headers.add(name: "content-length", value: String(rule.body.count))
        if let type = rule.contentType { headers.add(name: "content-type", value: type) }
        if !clientKeepAlive || closeAfterResponse {
            headers.add(name: "connection", value: "close")
            closeAfterResponse = true
        } else if requestHead?.version.minor == 0 {
            headers.add(name: "connection", value: "keep-alive")
        }
        let version: HTTPVersion = requestHead?.version.minor == 0 ? .http1_0 : .http1_1
        let head = HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: rule.status), headers: headers)
        writeLocal(head, body: requestHead?.method == .HEAD ? [] : rule.body)
    }

    private func writeLocal(_ head: HTTPResponseHead, body: [UInt8]) {
        cancelTimer()
        responseStarted = true
        responseEnded = true
        phase = .responding
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !body.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: body.count)
            buffer.writeBytes(body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            bound.value.responseWritten()
        }
    }

    private func finishLocalResponse() {
        // A discarded body finished after the response: move to the next request.
        guard phase == .responding else { return }
        phase = .idle
        armRequestTimer(first: false)
        drainInbox()
        if phase == .idle { readClientIfWanted() }
    }

    // MARK: - Tunnel (Upgrade)

    private func startTunnel(_ head: HTTPResponseHead) {
        guard let c = connection else { return }
        phase = .tunnel
        stopTimerTask()
        connection = nil
        c.delegate = nil
        c.pool.noteReleased()
        releaseSlot()
        var out = head
        out.headers.remove(name: "connection")
        out.headers.add(name: "connection", value: "upgrade")
        let clientChannel = context.channel
        let serverChannel = c.channel
        let tunnelTimeout = backendTimeouts.tunnel ?? max(timeouts.client ?? 0, backendTimeouts.server ?? 0)
        context.writeAndFlush(wrapOutboundOut(.head(out)), promise: nil)
        // Leave the decoders' current callbacks before swapping the pipelines.
        clientChannel.eventLoop.execute {
            do {
                try HTTPSession.convertToTunnel(client: clientChannel, server: serverChannel, timeoutMs: tunnelTimeout)
            } catch {
                clientChannel.close(promise: nil)
                serverChannel.close(promise: nil)
            }
        }
    }

    private static func convertToTunnel(client: Channel, server: Channel, timeoutMs: Int64) throws {
        let clientOps = client.pipeline.syncOperations
        let serverOps = server.pipeline.syncOperations
        let (clientGlue, serverGlue) = RelayHandler.matchedPair(timeoutMs: timeoutMs)
        // Relays go in first so that bytes the HTTP decoders still hold flow into them on removal.
        try clientOps.addHandler(clientGlue)
        try serverOps.addHandler(serverGlue)
        let serverHandler = try serverOps.handler(type: ServerConnectionHandler.self)
        serverHandler.connection = nil
        _ = serverOps.removeHandler(serverHandler)
        _ = client.pipeline.removeHandler(name: "hasp.session")
        // Encoders first (they hold nothing), then the server's decoder (its leftovers are written
        // to the client, which must no longer encode HTTP), then the client's decoder.
        _ = client.pipeline.removeHandler(name: "hasp.encoder")
        _ = server.pipeline.removeHandler(name: "hasp.encoder")
        server.pipeline.removeHandler(name: "hasp.decoder").flatMap {
            client.pipeline.removeHandler(name: "hasp.decoder")
        }.whenComplete { result in
            if case .failure = result {
                client.close(promise: nil)
                server.close(promise: nil)
                return
            }
            client.read()
            server.read()
        }
    }

    // MARK: - Timers

    private func armRequestTimer(first: Bool) {
        let t = timeouts
        let ms = first ? (t.httpRequest ?? t.client ?? 0) : (t.httpKeepAlive ?? t.httpRequest ?? t.client ?? 0)
        if ms > 0 { armTimer(first ? .request : .keepAlive, after: ms) }
    }

    /// Sets the session's single deadline. The scheduled task is only replaced when the new
    /// deadline is earlier than the one already scheduled: moving a deadline later (the common
    /// case, once per request) costs nothing, and the task re-arms itself when it fires early.
    private func armTimer(_ reason: TimerReason, after ms: Int64) {
        timerReason = reason
        let deadline = NIODeadline.now() + .milliseconds(ms)
        timerDeadline = deadline
        if let scheduledFor = timerScheduledFor, timer != nil, scheduledFor <= deadline { return }
        timer?.cancel()
        scheduleTimer(at: deadline)
    }

    private func scheduleTimer(at deadline: NIODeadline) {
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timerScheduledFor = deadline
        timer = context.eventLoop.scheduleTask(deadline: deadline) { bound.value.timerTaskRan() }
    }

    private func cancelTimer() {
        // The task stays scheduled; with no reason it does nothing and is not re-armed.
        timerReason = .none
    }

    private func stopTimerTask() {
        timer?.cancel()
        timer = nil
        timerReason = .none
    }

    private func timerTaskRan() {
        timer = nil
        timerScheduledFor = nil
        guard timerReason != .none, let deadline = timerDeadline else { return }
        if deadline > .now() {
            scheduleTimer(at: deadline)
            return
        }
        timerFired()
    }

    private func timerFired() {
        switch timerReason {
        case .none:
            return
        case .request:
            sendBuiltIn(.requestTimeout, thenClose: true)
        case .keepAlive:
            context.close(promise: nil)
        case .queue:
            if let ticket = queueTicket, let backend = frontend.backend, backend.cancel(ticket: ticket) {
                queueTicket = nil
                sendBuiltIn(.serviceUnavailable, thenClose: false)
            }
        case .server:
            // Inactivity timer: re-arm if the server spoke since it was set.
            let timeout = backendTimeouts.server ?? 0
            let due = lastServerActivity + .milliseconds(timeout)
            if due > .now() {
                timerReason = .server
                timerDeadline = due
                scheduleTimer(at: due)
                return
            }
            if let c = connection {
                connection = nil
                c.delegate = nil
                c.pool.noteReleased()
                c.close()
            }
            releaseSlot()
            if !responseStarted {
                sendBuiltIn(.gatewayTimeout, thenClose: !requestEnded)
            } else {
                context.close(promise: nil)
            }
        case .client:
            context.close(promise: nil)
        }
    }
}

extension HTTPServerRequestPart {
    var isHead: Bool {
        if case .head = self { return true }
        return false
    }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return s
    }
}
