import NIOCore
import NIOPosix
import Shared

/// A client connection in `mode tcp`: picks a server, connects (with retries and redispatch),
/// then replaces itself by a pair of `RelayHandler`s.
final class TCPSession: ChannelInboundHandler, RemovableChannelHandler, StoppableSession, ServerDialerClient {
    typealias InboundIn = ByteBuffer

    private let runtime: WorkerRuntime
    private let frontend: Frontend
    private var context: ChannelHandlerContext!
    private let createdAtMs = MonotonicClock.milliseconds()
    private var dialer: ServerDialer!
    private var slot: (backend: Backend, server: Server)? { dialer?.slot }
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
    /// What rules read: the addresses, the bytes buffered for inspection, variables.
    let streams: StreamContext
    /// `tcp-request inspect-delay` with content rules: the first bytes are buffered and
    /// inspected before a backend is chosen.
    private var inspecting = false
    /// `bind ... ssl`: the TLS layer below; the backend is chosen once its handshake is over,
    /// so that rules and `sni` expressions see the client's SNI, as in HAProxy.
    private var clientTLS: TLSHandler?
    private var awaitingHandshake = false
    private var inspectTimer: Scheduled<Void>?

    init(runtime: WorkerRuntime, frontend: Frontend, listenerGate: AcceptGate? = nil, acceptProxy: Bool = false) {
        self.runtime = runtime
        self.frontend = frontend
        self.listenerGate = listenerGate
        awaitingProxyHeader = acceptProxy
        logger = frontend.logger
        streams = StreamContext(runtime: runtime, frontend: frontend)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        dialer = ServerDialer(runtime: runtime, loop: context.eventLoop, kind: .tcp,
                              connector: runtime.connectors[runtime.loopIndex(of: context.eventLoop)], client: self)
        if let tls = try? context.pipeline.syncOperations.handler(type: TLSHandler.self) {
            clientTLS = tls
            streams.clientTLS = tls.facts
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        runtime.sessions(on: context.eventLoop).add(self)
        frontend.sessionOpened()
        listenerGate?.opened()
        context.fireChannelActive()
        streams.clientSocket = context.channel.remoteAddress
        streams.localSocket = context.channel.localAddress
        if frontend.hasConnectionRules {
            switch frontend.acceptsConnection(streams) {
            case .reject:
                terminationCause = ("P", "R")
                // Trackers released before the client can see the close (as in HTTP).
                cleanup(context)
                context.close(promise: nil)
                return
            case .accept(let expectProxy):
                if expectProxy { awaitingProxyHeader = true }
            }
        }
        if awaitingProxyHeader {
            // Reading stays manual: one read at a time until the header is complete.
            context.read()
            return
        }
        if let tls = clientTLS, tls.state == .handshaking {
            awaitingHandshake = true
            return
        }
        begin(context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let announced = event as? ProxyHeaderReceived {
            announcedClient = announced.source
            if let source = announced.source { streams.clientSocket = source }
            return
        }
        if event is TLSHandshakeCompleted, awaitingHandshake {
            awaitingHandshake = false
            begin(context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Inspects the first bytes when content rules wait for them, else picks a backend now.
    private func begin(_ context: ChannelHandlerContext) {
        guard frontend.inspectsContent else {
            dispatch(context)
            return
        }
        inspecting = true
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        inspectTimer = context.eventLoop.scheduleTask(in: .milliseconds(frontend.settings.rules.inspectDelay ?? 0)) {
            let session = bound.value
            guard session.inspecting, let context = session.context else { return }
            session.inspect(context, final: true)
        }
        if received != nil {
            inspect(context, final: false)
        } else {
            context.read()
        }
    }

    /// Runs the `tcp-request content` rules over what arrived so far. A rule whose condition
    /// reads the contents and is not met yet waits for more bytes, until the delay expires or
    /// the buffer is full; then the rules decide with what is there.
    private func inspect(_ context: ChannelHandlerContext, final: Bool) {
        let buffered = received?.readableBytes ?? 0
        let final = final || buffered >= runtime.bufferSize
        streams.payload = received.map { Array($0.readableBytesView) } ?? []
        rules: for rule in frontend.rules.tcpContent {
            if let condition = rule.condition, !condition.matches(streams) {
                if !final, condition.readsRequestContent {
                    context.read()
                    return
                }
                continue
            }
            switch TCPRuleRunner.apply(rule, streams) {
            case .accept:
                break rules
            case .reject:
                finishInspection()
                frontend.counters.deniedRequests.wrappingIncrement(ordering: .relaxed)
                terminationCause = ("P", "R")
                context.close(promise: nil)
                return
            case .next, .expectProxy:
                continue
            }
        }
        finishInspection()
        dispatch(context)
    }

    private func finishInspection() {
        inspecting = false
        inspectTimer?.cancel()
        inspectTimer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if inspecting {
            var bytes = unwrapInboundIn(data)
            if received == nil { received = bytes } else { received!.writeBuffer(&bytes) }
            inspect(context, final: false)
            return
        }
        guard awaitingProxyHeader else {
            // Bytes before the relay exists (TLS decrypts what came with the handshake) wait
            // for it with the rest of what was received.
            if !connected {
                var bytes = unwrapInboundIn(data)
                if received == nil { received = bytes } else { received!.writeBuffer(&bytes) }
                return
            }
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
        case .complete(let source, let destination, let length):
            awaitingProxyHeader = false
            announcedClient = source
            if let source { streams.clientSocket = source }
            if let destination { streams.localSocket = destination }
            received!.moveReaderIndex(forwardBy: length)
            if received!.readableBytes == 0 { received = nil }
            begin(context)
        }
    }

    /// Picks a server (or queues) once the client is known.
    private func dispatch(_ context: ChannelHandlerContext) {
        if let logger {
            if frontend.settings.logging.format == nil {
                logger.emit(.info, ExchangeLog.connectLine(client: clientAddress, listener: context.channel.localAddress,
                                                           frontend: frontend.name, mode: "TCP"))
            } else {
                log = ExchangeLog(frontend: frontend.name, startedMono: createdAtMs)
                log!.startedWall -= (MonotonicClock.milliseconds() - createdAtMs) * 1000
                log!.streamID = runtime.nextStreamID()
            }
        }
        guard let backend = chooseBackend() else {
            terminationCause = ("S", "C")
            context.close(promise: nil)
            return
        }
        log?.backend = backend.name
        var key = BalanceKey()
        if case .source = backend.settings.balance { key.sourceAddress = BalanceKey.addressBytes(clientAddress) }
        // `stick match|on`: the connection goes back to the server its key sticks to.
        let sticky = backend.rules.stickRules.isEmpty ? nil
            : StickPersistence.server(backend, context: streams, runtime: runtime, assigned: false) {
                $0.isRunning || backend.settings.options.persist
            }
        switch sticky.map({ dialer.acquire(backend, forcing: $0, key: key) }) ?? dialer.acquire(backend, key: key) {
        case .server:
            dialer.connect()
        case .queued:
            log?.queuedMono = MonotonicClock.milliseconds()
            let wait = backend.settings.timeouts.queue ?? backend.settings.timeouts.connect ?? 0
            if wait > 0 {
                let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
                queueTimer = context.eventLoop.scheduleTask(in: .milliseconds(wait)) {
                    let session = bound.value
                    if session.dialer.leaveQueue() {
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

    /// The first `use_backend` rule that matches and names a backend, else the default one.
    private func chooseBackend() -> Backend? {
        for rule in frontend.rules.useBackends {
            if let condition = rule.condition, !condition.matches(streams) { continue }
            if let backend = runtime.backends[rule.target.evaluate(streams)] {
                streams.backend = backend
                return backend
            }
        }
        streams.backend = frontend.backend
        return frontend.backend
    }

    func dialerGranted(_ server: Server) {
        guard !finished else { return }
        queueTimer?.cancel()
        if let queued = log?.queuedMono, queued >= 0 { log!.queueMs = MonotonicClock.milliseconds() - queued }
        dialer.connect()
    }

    func dialerConnecting(to server: Server, attempt: Int) {
        log?.noteConnectAttempt(server: server.name, attempt: attempt, redispatched: dialer.redispatched)
    }

    func dialerFailed() {
        guard !finished else { return }
        terminationCause = ("S", "C")
        context.close(promise: nil)
    }

    var dialerClientAddress: SocketAddress? { clientAddress }
    var dialerFrontendAddress: SocketAddress? { streams.localSocket ?? context?.channel.localAddress }

    func dialerServerName(for server: Server) -> String? {
        server.sniExpression?.evaluate(streams)?.asString
    }

    /// The server connection is up: a relay pair takes over both channels.
    func dialerConnected(_ serverChannel: Channel, to server: Server) {
        let client = context.channel
        guard !finished, client.isActive, let backend = dialer.backend else {
            serverChannel.close(promise: nil)
            return
        }
        finished = true
        connected = true
        if !backend.rules.stickRules.isEmpty { StickPersistence.store(backend, server, context: streams) }
        if log != nil {
            log!.connectMs = MonotonicClock.milliseconds() - log!.connectStartMono
            log!.serverAddress = serverChannel.remoteAddress
            log!.sourceAddress = serverChannel.localAddress
        }
        let timeouts = backend.settings.timeouts
        let inactivity = timeouts.tunnel ?? max(frontend.settings.timeouts.client ?? 0, timeouts.server ?? 0)
        let (clientRelay, serverRelay) = RelayHandler.matchedPair(timeoutMs: inactivity)
        let frontend = self.frontend
        let logging = log != nil
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        clientRelay.onBytes = {
            server.counters.bytesIn.wrappingIncrement(by: $0, ordering: .relaxed)
            backend.counters.bytesIn.wrappingIncrement(by: $0, ordering: .relaxed)
            frontend.counters.bytesIn.wrappingIncrement(by: $0, ordering: .relaxed)
            if logging { bound.value.log?.bytesIn += $0 }
            bound.value.streams.streamBytesIn &+= Int64($0)
        }
        serverRelay.onBytes = {
            server.counters.bytesOut.wrappingIncrement(by: $0, ordering: .relaxed)
            backend.counters.bytesOut.wrappingIncrement(by: $0, ordering: .relaxed)
            frontend.counters.bytesOut.wrappingIncrement(by: $0, ordering: .relaxed)
            if logging { bound.value.log?.bytesOut += $0 }
            bound.value.streams.streamBytesOut &+= Int64($0)
        }
        do {
            try serverChannel.pipeline.syncOperations.addHandler(serverRelay)
            // The session stays at the tail: the relay consumes the bytes, the session
            // still sees the close and does the bookkeeping.
            try client.pipeline.syncOperations.addHandler(clientRelay, position: .before(self))
        } catch {
            serverChannel.close(promise: nil)
            client.close(promise: nil)
            return
        }
        // What followed the PROXY header goes first.
        if let pending = received {
            received = nil
            serverChannel.writeAndFlush(pending, promise: nil)
        }
        client.read()
        serverChannel.read()
    }

    /// Dropping the context breaks the cycle context -> handler -> context (see HTTPSession).
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        dialer?.detach()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cleanup(context)
        context.fireChannelInactive()
    }

    private var cleanedUp = false
    private func cleanup(_ context: ChannelHandlerContext) {
        guard !cleanedUp else { return }
        cleanedUp = true
        queueTimer?.cancel()
        finishInspection()
        // `option dontlognull`: a session that carried nothing either way is not logged.
        let null = log.map { $0.bytesIn == 0 && $0.bytesOut == 0 && terminationCause == nil } ?? false
        if let log, let logger, let format = frontend.settings.logging.format, !(null && frontend.settings.options.dontLogNull) {
            let termination = terminationCause.map { "\($0.0)\($0.1)" } ?? "--"
            let options = frontend.settings.options
            if !(options.dontLogNormal && log.isNormal(termination: termination)) {
                var record = TrafficLogRecord(log: log, termination: termination,
                                              counts: runtime.connectionCounts(frontend, slot, backend: frontend.backend),
                                              client: clientAddress, listener: streams.localSocket,
                                              serverAddress: log.serverAddress, sourceAddress: log.sourceAddress,
                                              frontendName: frontend.name, endMono: MonotonicClock.milliseconds(),
                                              lineNumber: frontend.nextLogLine(), isTCP: true)
                record.tls = streams.clientTLS
                let sd = frontend.settings.logging.structuredData.map { $0.render(record, context: streams) }
                logger.emit(log.level(termination: termination, separateErrors: options.logSeparateErrors),
                            format.render(record, context: streams), structuredData: sd)
            }
            self.log = nil
        }
        streams.endStickSession()
        dialer.detach()
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
