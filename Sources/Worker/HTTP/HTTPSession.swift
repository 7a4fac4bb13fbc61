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

    private enum Phase {
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

    private let runtime: WorkerRuntime
    private let frontend: Frontend
    private var context: ChannelHandlerContext!
    private var phase: Phase = .idle
    private var loopIndex = 0
    private var headLimit: Int

    // Client side.
    private var clientBuffer: ByteBuffer?
    private var clientInputClosed = false
    private var request: MessageHead?
    private var requestBody = BodyReader(.none)
    private var requestEnded = true
    private var isUpgradeRequest = false
    private var clientKeepAlive = true
    private var closeAfterResponse = false
    private var requestsDone = 0

    // Server side of the current exchange.
    private var connection: ServerConnection?
    private var slot: (backend: Backend, server: Server)?
    private var queueTicket: UInt64?
    private var connectAttempts = 0
    private var usedReusedConnection = false
    private var serverBuffer: ByteBuffer?
    private var response: MessageHead?
    private var responseBody = BodyReader(.none)
    private var responseStarted = false
    private var responseEnded = false
    private var serverNeedsFlush = false
    private var clientNeedsFlush = false
    /// The session's own server connection, kept for its next request.
    private var ownIdle: ServerConnection?

    // One deadline, one scheduled task (moved lazily).
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?
    private var timerScheduledFor: NIODeadline?
    private var timerReason: TimerReason = .none
    private var lastServerActivity = NIODeadline.now()
    private var lastTunnelActivity = NIODeadline.now()

    private enum TimerReason { case none, request, keepAlive, queue, server, tunnel }

    init(runtime: WorkerRuntime, frontend: Frontend) {
        self.runtime = runtime
        self.frontend = frontend
        headLimit = max(1024, runtime.bufferSize - runtime.configuration.global.maxRewrite)
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
        frontend.sessionOpened()
        if runtime.isStopping && !runtime.handingOver.load(ordering: .relaxed) { closeAfterResponse = true }
        armRequestTimer(first: true)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        teardown()
        context.fireChannelInactive()
    }

    private func teardown() {
        guard phase != .closed else { return }
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
    }

    private func closeClient() {
        guard phase != .closed else { return }
        context.close(promise: nil)
        teardown()
    }

    /// Closes once everything written so far has left.
    private func closeClientAfterWrites() {
        let channel = context.channel
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(capacity: 0)), promise: done)
        done.futureResult.whenComplete { _ in channel.close(promise: nil) }
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

    private var drainHandover: (SocketTable, HandoverSink)?

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

    func abort() {
        closeClient()
    }

    /// Passes an idle plain-HTTP/1 connection to the next worker: nothing of a request has been
    /// read, so the kernel's socket buffer holds everything the client sends next. Reading stops
    /// first, then a duplicate of the descriptor goes to `sink`, then this side closes its copy.
    func handOver(_ table: SocketTable, to sink: HandoverSink) -> Bool {
        guard phase == .idle, !clientInputClosed, (clientBuffer?.readableBytes ?? 0) == 0 else { return false }
        let channel = context.channel
        guard let fd = table.descriptor(local: channel.localAddress, remote: channel.remoteAddress) else { return false }
        _ = try? channel.syncOptions?.setOption(.autoRead, value: false)
        clientReading = false
        let copy = dup(fd)
        guard copy >= 0 else { return false }
        _ = fcntl(copy, F_SETFD, FD_CLOEXEC)
        guard sink(copy, frontend.name) else {
            _ = try? channel.syncOptions?.setOption(.autoRead, value: true)
            clientReading = true
            return false
        }
        closeClient()
        return true
    }

    // MARK: - Client input

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
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

    private func flushServerIfNeeded() {
        if serverNeedsFlush, let c = connection {
            serverNeedsFlush = false
            c.channel.flush()
        }
    }

    private func flushClientIfNeeded() {
        if clientNeedsFlush {
            clientNeedsFlush = false
            context.flush()
        }
    }

    /// Parses and forwards what the client sent, as far as the current state allows.
    private func processClient() {
        while true {
            switch phase {
            case .idle:
                guard let buffer = clientBuffer, buffer.readableBytes > 0 else { return }
                switch HeadParser.parseRequest(buffer, limit: headLimit) {
                case .incomplete:
                    return
                case .invalid:
                    clientBuffer = nil
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
                    c.channel.write(slice, promise: nil)
                    serverNeedsFlush = true
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
    private var clientReading = true
    private func readClientIfWanted() {
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
    private func readServerIfWanted(_ c: ServerConnection) {
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

    private func requestBodyFailed() {
        if responseStarted {
            abortExchange()
        } else {
            detachServer(close: true)
            releaseSlot()
            sendBuiltIn(.badRequest)
        }
    }

    // MARK: - Starting a request

    private func startRequest(_ head: MessageHead) {
        cancelTimer()
        request = head
        requestBody = BodyReader(HeadParser.requestFraming(head))
        requestEnded = requestBody.isDone
        response = nil
        responseStarted = false
        responseEnded = false
        connectAttempts = 0
        usedReusedConnection = false
        clientKeepAlive = head.isKeepAlive && frontend.settings.options.connectionMode != .close
        if runtime.isStopping && drainHandover == nil && !runtime.handingOver.load(ordering: .relaxed) { closeAfterResponse = true }
        isUpgradeRequest = head.hasUpgrade && head.connectionUpgrade
        if let rule = frontend.returnRule {
            sendReturn(rule)
            return
        }
        guard let backend = frontend.backend else {
            sendBuiltIn(.serviceUnavailable)
            return
        }
        phase = .connecting
        acquireServer(backend)
    }

    private func balanceKey(_ backend: Backend) -> BalanceKey {
        guard let head = request else { return BalanceKey() }
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
            return BalanceKey(uri: head.target)
        case .header(let name, _):
            return BalanceKey(headerValue: head.value(named: name).map { Substring($0) })
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
            sendBuiltIn(.serviceUnavailable)
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
        let bootstrap = runtime.connectors[loopIndex].bootstrap(for: slot?.backend, loop: context.eventLoop,
                                                                timeoutMs: backendTimeouts.connect ?? 0)
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        bootstrap.connect(to: address).whenComplete { result in
            let session = bound.value
            switch result {
            case .success(let channel):
                guard let handler = try? channel.pipeline.syncOperations.handler(type: ServerConnectionHandler.self) else {
                    channel.close(promise: nil)
                    if session.phase == .connecting, session.slot?.server === server { session.connectFailed(server: server) }
                    return
                }
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
                sendBuiltIn(.serviceUnavailable)
                return
            }
            connectNew(to: server)
            return
        }
        releaseSlot()
        sendBuiltIn(.serviceUnavailable)
    }

    private func attach(_ c: ServerConnection) {
        guard let head = request else { return }
        connection = c
        c.delegate = self
        c.requestCount += 1
        c.pool.noteUsed()
        phase = .exchanging
        serverBuffer = nil
        lastServerActivity = .now()
        c.channel.write(serverRequestHead(head, allocator: c.channel.allocator), promise: nil)
        serverNeedsFlush = true
        processClient()
        flushServerIfNeeded()
        let serverTimeout = backendTimeouts.server ?? 0
        if serverTimeout > 0 { armTimer(.server, after: serverTimeout) }
        readServerIfWanted(c)
        readClientIfWanted()
    }

    private func detachServer(close: Bool) {
        guard let c = connection else { return }
        connection = nil
        c.delegate = nil
        c.pool.noteReleased()
        if close { c.close() }
    }

    // MARK: - Head rewriting

    private static let crlf: StaticString = "\r\n"

    /// The request head as the server gets it: HTTP/1.1, hop-by-hop headers removed.
    private func serverRequestHead(_ head: MessageHead, allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: head.bytes.readableBytes + 96)
        out.writeString(String(head.method))
        out.writeStaticString(" ")
        out.writeString(String(head.target))
        out.writeStaticString(" HTTP/1.1\r\n")
        copyHeaders(head, into: &out, keepUpgrade: isUpgradeRequest)
        let backendOptions = slot?.backend.settings.options
        if isUpgradeRequest {
            out.writeStaticString("connection: upgrade\r\n")
        } else if frontend.settings.options.connectionMode != .keepAlive
                    || (backendOptions?.connectionMode ?? .keepAlive) != .keepAlive {
            out.writeStaticString("connection: close\r\n")
        }
        if frontend.settings.options.forwardFor || (backendOptions?.forwardFor ?? false),
           let ip = context.channel.remoteAddress?.ipAddress {
            let name = frontend.settings.options.forwardFor ? frontend.settings.options.forwardForHeader
                : backendOptions!.forwardForHeader
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(ip)
            out.writeStaticString(Self.crlf)
        }
        out.writeStaticString(Self.crlf)
        return out
    }

    /// The response head as the client gets it, in the client's HTTP version.
    private func clientResponseHead(_ head: MessageHead, framing: BodyFraming) -> ByteBuffer {
        let minor = request?.versionMinor ?? 1
        var out = context.channel.allocator.buffer(capacity: head.bytes.readableBytes + 48)
        out.writeStaticString(minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        out.writeString(String(head.status))
        head.bytes.withUnsafeReadableBytes { p in
            if head.reasonEnd > head.reasonStart {
                out.writeStaticString(" ")
                out.writeBytes(UnsafeRawBufferPointer(rebasing: p[head.reasonStart..<head.reasonEnd]))
            }
        }
        out.writeStaticString(Self.crlf)
        let dechunk = minor == 0 && head.chunked
        copyHeaders(head, into: &out, keepUpgrade: false, dropTransferEncoding: dechunk)
        if dechunk || framing == .untilClose || !requestEnded { closeAfterResponse = true }
        if !clientKeepAlive || closeAfterResponse {
            out.writeStaticString("connection: close\r\n")
            closeAfterResponse = true
        } else if minor == 0 {
            out.writeStaticString("connection: keep-alive\r\n")
        }
        out.writeStaticString(Self.crlf)
        return out
    }

    private func copyHeaders(_ head: MessageHead, into out: inout ByteBuffer, keepUpgrade: Bool, dropTransferEncoding: Bool = false) {
        let extraHopByHop = head.connectionNames
        head.bytes.withUnsafeReadableBytes { p in
            for f in head.fields {
                if f.kind.isHopByHop && !(keepUpgrade && f.kind == .upgrade) { continue }
                if dropTransferEncoding && f.kind == .transferEncoding { continue }
                if !extraHopByHop.isEmpty, f.kind == .other {
                    let name = String(decoding: UnsafeRawBufferPointer(rebasing: p[f.nameStart..<f.nameEnd]), as: UTF8.self).lowercased()
                    if extraHopByHop.contains(name) { continue }
                }
                out.writeBytes(UnsafeRawBufferPointer(rebasing: p[f.nameStart..<f.nameEnd]))
                out.writeStaticString(": ")
                out.writeBytes(UnsafeRawBufferPointer(rebasing: p[f.valueStart..<f.valueEnd]))
                out.writeStaticString(Self.crlf)
            }
        }
    }

    private func upgradeResponseHead(_ head: MessageHead) -> ByteBuffer {
        var out = context.channel.allocator.buffer(capacity: head.bytes.readableBytes + 32)
        out.writeStaticString("HTTP/1.1 101")
        head.bytes.withUnsafeReadableBytes { p in
            if head.reasonEnd > head.reasonStart {
                out.writeStaticString(" ")
                out.writeBytes(UnsafeRawBufferPointer(rebasing: p[head.reasonStart..<head.reasonEnd]))
            }
        }
        out.writeStaticString(Self.crlf)
        copyHeaders(head, into: &out, keepUpgrade: true)
        out.writeStaticString("connection: upgrade\r\n\r\n")
        return out
    }

    // MARK: - Server events

    func server(_ c: ServerConnection, received bytes: ByteBuffer) {
        guard c === connection else { return }
        lastServerActivity = .now()
        if phase == .tunnel {
            lastTunnelActivity = lastServerActivity
            context.write(wrapOutboundOut(bytes), promise: nil)
            clientNeedsFlush = true
            return
        }
        var bytes = bytes
        if serverBuffer == nil || serverBuffer!.readableBytes == 0 {
            serverBuffer = bytes
        } else {
            serverBuffer!.writeBuffer(&bytes)
        }
        processServer(c)
    }

    private func processServer(_ c: ServerConnection) {
        while connection === c, var buffer = serverBuffer, buffer.readableBytes > 0 {
            guard let head = response else {
                switch HeadParser.parseResponse(buffer, limit: runtime.bufferSize) {
                case .incomplete:
                    return
                case .invalid:
                    serverBuffer = nil
                    serverFailed()
                    return
                case .complete(let head, let length):
                    buffer.moveReaderIndex(forwardBy: length)
                    serverBuffer = buffer
                    startResponse(head)
                }
                continue
            }
            _ = head
            let slice: ByteBuffer?
            do {
                slice = try responseBody.consume(&buffer)
            } catch {
                serverBuffer = nil
                abortExchange()
                return
            }
            serverBuffer = buffer
            if let slice {
                c.server.bytesOut.wrappingIncrement(by: slice.readableBytes, ordering: .relaxed)
                context.write(wrapOutboundOut(slice), promise: nil)
                clientNeedsFlush = true
            }
            if responseBody.isDone {
                finishResponse()
                return
            }
        }
    }

    private func startResponse(_ head: MessageHead) {
        if head.status >= 100, head.status < 200, head.status != 101 {
            // Interim responses (100 Continue) pass through; the final one follows.
            context.write(wrapOutboundOut(head.bytes), promise: nil)
            clientNeedsFlush = true
            return
        }
        responseStarted = true
        if head.status == 101 {
            guard isUpgradeRequest else {
                abortExchange()
                return
            }
            startTunnel(head)
            return
        }
        if isUpgradeRequest { closeAfterResponse = true }
        response = head
        let framing = HeadParser.responseFraming(head, requestMethod: request?.method ?? "GET")
        let dechunk = (request?.versionMinor ?? 1) == 0 && head.chunked
        responseBody = BodyReader(framing, dechunk: dechunk)
        context.write(wrapOutboundOut(clientResponseHead(head, framing: framing)), promise: nil)
        clientNeedsFlush = true
        if responseBody.isDone { finishResponse() }
    }

    func serverReadComplete(_ c: ServerConnection) {
        guard c === connection || phase == .tunnel else { return }
        flushClientIfNeeded()
        if phase == .tunnel || !responseEnded { readServerIfWanted(c) }
    }

    func serverWritabilityChanged(_ c: ServerConnection) {
        guard c === connection, c.channel.isWritable else { return }
        if phase == .exchanging, !requestEnded {
            processClient()
            flushServerIfNeeded()
            readClientIfWanted()
        } else if phase == .tunnel {
            readClientIfWanted()
        }
    }

    func serverClosed(_ c: ServerConnection) {
        guard c === connection else { return }
        connection = nil
        c.delegate = nil
        c.pool.noteReleased()
        if phase == .tunnel {
            flushClientIfNeeded()
            closeClientAfterWrites()
            return
        }
        if responseEnded { return }
        if response != nil, responseBody.isUntilClose {
            // A close-delimited body ends with the connection.
            finishResponse()
            return
        }
        if !responseStarted {
            // A reused connection may have been closed by the server as we sent the request:
            // a bodiless request is safe to send again on a fresh connection.
            if usedReusedConnection, request.map({ HeadParser.requestFraming($0) == .none }) ?? false, let server = slot?.server {
                usedReusedConnection = false
                phase = .connecting
                connectNew(to: server)
                return
            }
            releaseSlot()
            sendBuiltIn(.badGateway)
            return
        }
        // The response was cut: nothing sensible can follow on this client connection.
        releaseSlot()
        flushClientIfNeeded()
        closeClientAfterWrites()
    }

    func server(_ c: ServerConnection, failed error: Error) {
        guard c === connection else { return }
        serverFailed()
    }

    /// A malformed or broken response: 502 if the client has seen nothing yet.
    private func serverFailed() {
        detachServer(close: true)
        releaseSlot()
        if !responseStarted {
            sendBuiltIn(.badGateway)
        } else {
            flushClientIfNeeded()
            closeClientAfterWrites()
        }
    }

    /// Ends the exchange abruptly (bad framing, client gone mid-request).
    private func abortExchange() {
        detachServer(close: true)
        releaseSlot()
        flushClientIfNeeded()
        closeClientAfterWrites()
    }

    /// The response is complete: settle the server connection, then the client side.
    private func finishResponse() {
        responseEnded = true
        cancelTimer()
        if let c = connection {
            connection = nil
            c.pool.noteReleased()
            let backend = slot?.backend
            let maxReuse = c.server.settings.maxReuse
            let reusable = (response?.isKeepAlive ?? false) && requestEnded && !c.isClosed
                && !responseBody.isUntilClose && (serverBuffer?.readableBytes ?? 0) == 0
                && (maxReuse < 0 || c.requestCount < maxReuse)
                && frontend.settings.options.connectionMode == .keepAlive
                && (backend?.settings.options.connectionMode ?? .keepAlive) == .keepAlive
            releaseSlot()
            serverBuffer = nil
            if !reusable {
                c.delegate = nil
                c.close()
            } else if clientKeepAlive, !closeAfterResponse {
                // Kept for this client's next request; it returns to the pool if the client leaves.
                ownIdle = c
                c.park()
            } else {
                offerToPool(c)
            }
        } else {
            releaseSlot()
        }
        requestsDone += 1
        if closeAfterResponse || !clientKeepAlive {
            closeClientAfterWrites()
            return
        }
        flushClientIfNeeded()
        if !requestEnded {
            // The server answered before the whole request arrived; HAProxy closes in that case.
            closeClientAfterWrites()
            return
        }
        nextRequest()
    }

    private func nextRequest() {
        phase = .idle
        request = nil
        response = nil
        if let (table, sink) = drainHandover {
            drainHandover = nil
            if handOver(table, to: sink) { return }
            // Could not move (a pipelined request is already buffered...): finish here.
            closeAfterResponse = true
            if (clientBuffer?.readableBytes ?? 0) == 0 {
                closeClient()
                return
            }
        }
        armRequestTimer(first: false)
        processClient()
        flushServerIfNeeded()
        if phase == .idle, clientInputClosed, (clientBuffer?.readableBytes ?? 0) == 0 {
            closeClient()
            return
        }
        readClientIfWanted()
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

    // MARK: - Local responses

    private func sendBuiltIn(_ response: BuiltInResponse) {
        guard phase != .closed else { return }
        let close = response.closesConnection || closeAfterResponse || !clientKeepAlive || !requestEnded || phase == .idle
        var text = "HTTP/1.1 \(response.rawValue) \(response.reason)\r\n"
        for (name, value) in response.head().headers { text += "\(name): \(value)\r\n" }
        if close, !response.closesConnection { text += "connection: close\r\n" }
        text += "\r\n" + response.body
        writeLocal(text, close: close)
    }

    private func sendReturn(_ rule: HTTPReturnRule) {
        let minor = request?.versionMinor ?? 1
        var text = "HTTP/1.\(minor) \(rule.status) \(HTTPStatusText.reason(rule.status))\r\ncontent-length: \(rule.body.count)\r\n"
        if let type = rule.contentType { text += "content-type: \(type)\r\n" }
        var close = closeAfterResponse || !clientKeepAlive
        if close {
            text += "connection: close\r\n"
        } else if minor == 0 {
            text += "connection: keep-alive\r\n"
        }
        text += "\r\n"
        var bytes = Array(text.utf8)
        if request?.method != "HEAD" { bytes.append(contentsOf: rule.body) }
        if !requestEnded && close { close = true }
        writeLocal(bytes, close: close)
    }

    private func writeLocal(_ text: String, close: Bool) {
        writeLocal(Array(text.utf8), close: close)
    }

    private func writeLocal(_ bytes: [UInt8], close: Bool) {
        cancelTimer()
        responseStarted = true
        responseEnded = true
        phase = .responding
        var buffer = context.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        context.write(wrapOutboundOut(buffer), promise: nil)
        requestsDone += 1
        if close {
            closeAfterResponse = true
            clientBuffer = nil
            closeClientAfterWrites()
            return
        }
        context.flush()
        if requestEnded {
            localResponseFinished()
        } else {
            // Discard the rest of the request body, then take the next request.
            processClient()
            readClientIfWanted()
        }
    }

    private func localResponseFinished() {
        guard phase == .responding else { return }
        nextRequest()
    }

    // MARK: - Tunnel (Upgrade)

    private func startTunnel(_ head: MessageHead) {
        guard let c = connection else { return }
        phase = .tunnel
        stopTimerTask()
        releaseSlot()
        lastTunnelActivity = .now()
        context.write(wrapOutboundOut(upgradeResponseHead(head)), promise: nil)
        if var rest = serverBuffer, rest.readableBytes > 0, let slice = rest.readSlice(length: rest.readableBytes) {
            context.write(wrapOutboundOut(slice), promise: nil)
        }
        serverBuffer = nil
        context.flush()
        if var rest = clientBuffer, rest.readableBytes > 0, let slice = rest.readSlice(length: rest.readableBytes) {
            c.channel.writeAndFlush(slice, promise: nil)
        }
        clientBuffer = nil
        let timeout = backendTimeouts.tunnel ?? max(timeouts.client ?? 0, backendTimeouts.server ?? 0)
        if timeout > 0 { armTimer(.tunnel, after: timeout) }
        readServerIfWanted(c)
        readClientIfWanted()
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
        timerScheduledFor = nil
        timerReason = .none
    }

    private func timerTaskRan() {
        timer = nil
        timerScheduledFor = nil
        guard phase != .closed, timerReason != .none, let deadline = timerDeadline else { return }
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
            sendBuiltIn(.requestTimeout)
        case .keepAlive:
            if (clientBuffer?.readableBytes ?? 0) > 0 {
                sendBuiltIn(.requestTimeout)
            } else {
                closeClient()
            }
        case .queue:
            if let ticket = queueTicket, let backend = frontend.backend, backend.cancel(ticket: ticket) {
                queueTicket = nil
                sendBuiltIn(.serviceUnavailable)
            }
        case .server:
            // Inactivity timer: re-arm if the server spoke since it was set.
            let timeout = backendTimeouts.server ?? 0
            let due = lastServerActivity + .milliseconds(timeout)
            if due > .now() {
                timerDeadline = due
                scheduleTimer(at: due)
                return
            }
            detachServer(close: true)
            releaseSlot()
            if !responseStarted {
                sendBuiltIn(.gatewayTimeout)
            } else {
                flushClientIfNeeded()
                closeClientAfterWrites()
            }
        case .tunnel:
            let timeout = backendTimeouts.tunnel ?? max(timeouts.client ?? 0, backendTimeouts.server ?? 0)
            let due = lastTunnelActivity + .milliseconds(timeout)
            if due > .now() {
                timerDeadline = due
                scheduleTimer(at: due)
                return
            }
            connection?.close()
            closeClient()
        }
    }
}

/// Reason phrases for locally generated responses.
enum HTTPStatusText {
    static func reason(_ code: Int) -> String {
        switch code {
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 303: return "See Other"
        case 304: return "Not Modified"
        case 307: return "Temporary Redirect"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 410: return "Gone"
        case 413: return "Payload Too Large"
        case 429: return "Too Many Requests"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        default: return "Unknown"
        }
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
