import NIOCore
import NIOPosix
import Shared

/// A client connection in `mode tcp`: picks a server, connects (with retries and redispatch),
/// then replaces itself by a pair of `RelayHandler`s.
final class TCPSession: ChannelInboundHandler, RemovableChannelHandler, StoppableSession {
    typealias InboundIn = ByteBuffer

    private let runtime: WorkerRuntime
    private let frontend: Frontend
    private var context: ChannelHandlerContext!
    private let createdAtMs = MonotonicClock.milliseconds()
    private var slot: (backend: Backend, server: Server)?
    private var queueTicket: UInt64?
    private var attempts = 0
    private var finished = false
    private var queueTimer: Scheduled<Void>?
    // Traffic logging (only when the frontend has `log` targets).
    private let logger: ProxyLogger?
    private var log: ExchangeLog?
    private var terminationCause: (Character, Character)?
    private var connected = false

    private let listenerGate: AcceptGate?
    /// `bind ... accept-proxy`: the PROXY header is read before anything is forwarded.
    private var awaitingProxyHeader: Bool
    private var received: ByteBuffer?
    private var announcedClient: SocketAddress?
    private var clientAddress: SocketAddress? { announcedClient ?? context?.channel.remoteAddress }

    init(runtime: WorkerRuntime, frontend: Frontend, listenerGate: AcceptGate? = nil, acceptProxy: Bool = false) {
        self.runtime = runtime
        self.frontend = frontend
        self.listenerGate = listenerGate
        awaitingProxyHeader = acceptProxy
        logger = frontend.logger
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelActive(context: ChannelHandlerContext) {
        runtime.sessions(on: context.eventLoop).add(self)
        frontend.sessionOpened()
        listenerGate?.opened()
        context.fireChannelActive()
        if awaitingProxyHeader {
            // Reading stays manual: one read at a time until the header is complete.
            context.read()
            return
        }
        dispatch(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard awaitingProxyHeader else {
            context.fireChannelRead(data)
            return
        }
        var bytes = unwrapInboundIn(data)
        if received == nil { received = bytes } else { received!.writeBuffer(&bytes) }
        switch ProxyProtocolHeader.parse(received!) {
        case .incomplete:
            context.read()
        case .invalid:
            received = nil
            context.close(promise: nil)
        case .complete(let source, let length):
            awaitingProxyHeader = false
            announcedClient = source
            received!.moveReaderIndex(forwardBy: length)
            if received!.readableBytes == 0 { received = nil }
            dispatch(context)
        }
    }

    /// Picks a server (or queues) once the client is known.
    private func dispatch(_ context: ChannelHandlerContext) {
        if let logger {
            if TrafficLogFormat(frontend.settings.options) == .connect {
                logger.emit(.info, ExchangeLog.connectLine(client: clientAddress, listener: context.channel.localAddress,
                                                           frontend: frontend.name, mode: "TCP"))
            } else {
                log = ExchangeLog(frontend: frontend.name, startedMono: createdAtMs)
            }
        }
        guard let backend = frontend.backend else {
            terminationCause = ("S", "C")
            context.close(promise: nil)
            return
        }
        log?.backend = backend.name
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        var key = BalanceKey()
        if case .source = backend.settings.balance { key.sourceAddress = BalanceKey.addressBytes(clientAddress) }
        switch backend.acquire(key: key, eventLoop: loop, grant: { server in bound.value.granted(backend, server) }) {
        case .server(let server):
            slot = (backend, server)
            backend.currentSessions.wrappingIncrement(ordering: .relaxed)
            backend.totalSessions.wrappingIncrement(ordering: .relaxed)
            connect(server)
        case .queued(let ticket):
            queueTicket = ticket
            log?.queuedMono = MonotonicClock.milliseconds()
            let wait = backend.settings.timeouts.queue ?? backend.settings.timeouts.connect ?? 0
            if wait > 0 {
                queueTimer = loop.scheduleTask(in: .milliseconds(wait)) {
                    let session = bound.value
                    if let ticket = session.queueTicket, backend.cancel(ticket: ticket) {
                        session.queueTicket = nil
                        session.terminationCause = ("s", "Q")
                        session.context.close(promise: nil)
                    }
                }
            }
        case .unavailable:
            terminationCause = ("S", "C")
            context.close(promise: nil)
        }
    }

    private func granted(_ backend: Backend, _ server: Server) {
        guard queueTicket != nil, !finished else {
            backend.release(server)
            return
        }
        queueTicket = nil
        queueTimer?.cancel()
        if let queued = log?.queuedMono, queued >= 0 { log!.queueMs = MonotonicClock.milliseconds() - queued }
        slot = (backend, server)
        backend.currentSessions.wrappingIncrement(ordering: .relaxed)
        backend.totalSessions.wrappingIncrement(ordering: .relaxed)
        connect(server)
    }

    private func connect(_ server: Server) {
        guard let (backend, _) = slot, let address = server.socketAddress else {
            context.close(promise: nil)
            return
        }
        attempts += 1
        server.connectAttempts.wrappingIncrement(ordering: .relaxed)
        if log != nil {
            if log!.connectStartMono < 0 { log!.connectStartMono = MonotonicClock.milliseconds() }
            log!.retries = attempts - 1
            log!.server = server.name
        }
        let client = context.channel
        let timeouts = backend.settings.timeouts
        let frontTimeouts = frontend.settings.timeouts
        let inactivity = timeouts.tunnel ?? max(frontTimeouts.client ?? 0, timeouts.server ?? 0)
        let (clientRelay, serverRelay) = RelayHandler.matchedPair(timeoutMs: inactivity)
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let relays = NIOLoopBound((clientRelay, serverRelay), eventLoop: loop)
        var bootstrap = ClientBootstrap(group: loop)
            .channelOption(.autoRead, value: false)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
        if let ms = timeouts.connect, ms > 0 { bootstrap = bootstrap.connectTimeout(.milliseconds(ms)) }
        let frontend = self.frontend
        bootstrap.connect(to: address).whenComplete { result in
            let session = bound.value
            switch result {
            case .success(let serverChannel):
                guard !session.finished, client.isActive else {
                    serverChannel.close(promise: nil)
                    return
                }
                session.finished = true
                session.connected = true
                if session.log != nil { session.log!.connectMs = MonotonicClock.milliseconds() - session.log!.connectStartMono }
                server.usedConnections.wrappingIncrement(ordering: .relaxed)
                let (clientRelay, serverRelay) = relays.value
                let logging = session.log != nil
                clientRelay.onBytes = {
                    server.counters.bytesIn.wrappingIncrement(by: $0, ordering: .relaxed)
                    backend.counters.bytesIn.wrappingIncrement(by: $0, ordering: .relaxed)
                    frontend.counters.bytesIn.wrappingIncrement(by: $0, ordering: .relaxed)
                    if logging { bound.value.log?.bytesIn += $0 }
                }
                serverRelay.onBytes = {
                    server.counters.bytesOut.wrappingIncrement(by: $0, ordering: .relaxed)
                    backend.counters.bytesOut.wrappingIncrement(by: $0, ordering: .relaxed)
                    frontend.counters.bytesOut.wrappingIncrement(by: $0, ordering: .relaxed)
                    if logging { bound.value.log?.bytesOut += $0 }
                }
                do {
                    try serverChannel.pipeline.syncOperations.addHandler(serverRelay)
                    // The session stays at the tail: the relay consumes the bytes, the session
                    // still sees the close and does the bookkeeping.
                    try client.pipeline.syncOperations.addHandler(clientRelay, position: .before(session))
                } catch {
                    serverChannel.close(promise: nil)
                    client.close(promise: nil)
                    return
                }
                serverChannel.closeFuture.whenComplete { _ in
                    server.usedConnections.wrappingDecrement(ordering: .relaxed)
                }
                // What followed the PROXY header goes first.
                if let pending = session.received {
                    session.received = nil
                    serverChannel.writeAndFlush(pending, promise: nil)
                }
                client.read()
                serverChannel.read()
                if server.settings.checks.observe == .layer4 {
                    session.runtime.observe(server, layer: .layer4, error: false, what: "")
                }
            case .failure:
                server.connectionErrors.wrappingIncrement(ordering: .relaxed)
                if server.settings.checks.observe != nil {
                    session.runtime.observe(server, layer: .layer4, error: true, what: "L4 unsuccessful connection")
                }
                session.connectFailed(server)
            }
        }
    }

    private func connectFailed(_ server: Server) {
        guard !finished, let (backend, _) = slot else { return }
        let retries = backend.settings.retries
        if attempts <= retries {
            server.counters.retries.wrappingIncrement(ordering: .relaxed)
            backend.counters.retries.wrappingIncrement(ordering: .relaxed)
            if backend.settings.options.redispatch, attempts == retries {
                releaseSlotOnce()
                if let other = backend.redispatch(excluding: server, key: BalanceKey()) {
                    log?.redispatched = true
                    slot = (backend, other)
                    server.counters.redispatches.wrappingIncrement(ordering: .relaxed)
                    backend.counters.redispatches.wrappingIncrement(ordering: .relaxed)
                    backend.currentSessions.wrappingIncrement(ordering: .relaxed)
                    connect(other)
                    return
                }
                terminationCause = ("S", "C")
                context.close(promise: nil)
                return
            }
            // HAProxy's turn-around timer before the same server is tried again.
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .milliseconds(backend.settings.timeouts.retryPauseMs)) {
                let session = bound.value
                guard !session.finished, !session.cleanedUp, session.slot?.server === server else { return }
                session.connect(server)
            }
            return
        }
        terminationCause = ("S", "C")
        context.close(promise: nil)
    }

    private func releaseSlotOnce() {
        guard let (backend, server) = slot else { return }
        slot = nil
        backend.currentSessions.wrappingDecrement(ordering: .relaxed)
        backend.release(server)
    }

    /// Dropping the context breaks the cycle context -> handler -> context (see HTTPSession).
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        cleanup(context)
        context.fireChannelInactive()
    }

    private var cleanedUp = false
    private func cleanup(_ context: ChannelHandlerContext) {
        guard !cleanedUp else { return }
        cleanedUp = true
        if let ticket = queueTicket, let backend = frontend.backend {
            _ = backend.cancel(ticket: ticket)
            queueTicket = nil
        }
        queueTimer?.cancel()
        // `option dontlognull`: a session that carried nothing either way is not logged.
        let null = log.map { $0.bytesIn == 0 && $0.bytesOut == 0 && terminationCause == nil } ?? false
        if let log, let logger, !(null && frontend.settings.options.dontLogNull) {
            let termination = terminationCause.map { "\($0.0)\($0.1)" } ?? "--"
            let counts = runtime.connectionCounts(frontend, slot, backend: frontend.backend)
            logger.emit(log.level(termination: termination, separateErrors: frontend.settings.options.logSeparateErrors),
                        log.tcpLine(client: ExchangeLog.client(clientAddress), frontend: frontend.name,
                                          termination: termination, counts: counts, endMono: MonotonicClock.milliseconds()))
            self.log = nil
        }
        releaseSlotOnce()
        finished = true
        runtime.sessions(on: context.eventLoop).remove(self)
        frontend.sessionClosed()
        listenerGate?.closed()
    }

    func beginSoftStop() {
        // TCP streams have no message boundary: they finish on their own or at hard-stop-after.
    }

    /// `shutdown sessions server` (logged with `K`).
    func abort() {
        terminationCause = ("K", connected ? "D" : "C")
        context.channel.close(promise: nil)
    }

    func isAttached(to server: Server) -> Bool { slot?.server === server }

    /// A TCP session keeps no idle server connection.
    func dropIdleConnection(to server: Server) {}
}

extension TCPSession: DescribableSession {
    func shortDescription() -> String {
        SessionText.line(self, address: clientAddress, frontend: frontend.name,
                         backend: slot?.backend.name ?? frontend.backend?.name, server: slot?.server.name,
                         ageMs: MonotonicClock.milliseconds() - createdAtMs)
    }
}
