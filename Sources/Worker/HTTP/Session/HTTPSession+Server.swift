import NIOCore
import NIOPosix
import Shared

/// The server side of an exchange: choosing a connection, response forwarding, reuse.
extension HTTPSession: ServerDialerClient {
    // MARK: - Server connections

    /// The session's own idle connection, then the loop's pool, then a new connection.
    func obtainConnection(to server: Server) {
        // The rules after this point (`http-response`, `%s`, `srv_name`, `srv_id`) see it.
        streams.server = server
        let reuse = slot?.backend.settings.httpReuse ?? .safe
        // With `sni`, a connection serves only requests for the name it was opened with.
        let name = server.sniExpression == nil ? nil : dialerServerName(for: server)
        if let own = ownIdle {
            ownIdle = nil
            if own.server === server, !own.isClosed, own.serverName == name || server.sniExpression == nil {
                server.reuses.wrappingIncrement(ordering: .relaxed)
                attach(own, reused: true)
                return
            }
            offerToPool(own)
        }
        let pool = server.pools[loopIndex]
        while server.sniExpression == nil, !server.connectionsArePrivate, let pooled = pool.take(isFirstRequest: exchange.requestsDone == 0, reuse: reuse) {
            pool.noteTaken(server: server)
            pooled.isPooled = false
            if pooled.isClosed { continue }
            server.reuses.wrappingIncrement(ordering: .relaxed)
            attach(pooled, reused: true)
            return
        }
        dialer.connect()
    }

    func dialerGranted(_ server: Server) {
        guard exchange.phase == .connecting else { return }
        exchange.slotGranted()
        if let queued = exchangeLog?.queuedMono, queued >= 0 { exchangeLog!.queueMs = MonotonicClock.milliseconds() - queued }
        obtainConnection(to: server)
    }

    func dialerConnecting(to server: Server, attempt: Int) {
        exchangeLog?.noteConnectAttempt(server: server.name, attempt: attempt, redispatched: dialer.redispatched)
    }

    func dialerConnected(_ channel: Channel, to server: Server) {
        guard let connection = Self.serverConnection(channel, server: server, loopIndex: loopIndex) else {
            channel.close(promise: nil)
            dialerFailed()
            return
        }
        attach(connection, reused: false)
    }

    var dialerClientAddress: SocketAddress? { clientAddress }
    var dialerFrontendAddress: SocketAddress? { streams.localSocket ?? context?.channel.localAddress }

    func dialerServerName(for server: Server) -> String? {
        guard let expression = server.sniExpression else { return nil }
        return expression.evaluate(streams)?.asString
    }

    func dialerFailed() {
        guard exchange.phase == .connecting else { return }
        sendBuiltIn(.serviceUnavailable)
    }

    /// Wraps a freshly connected HTTP channel.
    static func serverConnection(_ channel: Channel, server: Server, loopIndex: Int) -> ServerConnection? {
        guard let handler = try? channel.pipeline.syncOperations.handler(type: ServerConnectionHandler.self) else { return nil }
        let connection = ServerConnection(channel: channel, server: server, pool: server.pools[loopIndex])
        handler.connection = connection
        let closing = NIOLoopBound(connection, eventLoop: channel.eventLoop)
        channel.closeFuture.whenComplete { _ in closing.value.closed() }
        return connection
    }

    /// A connection whose session left while it was being made: kept for others.
    static func poolOrphan(_ channel: Channel, server: Server, runtime: WorkerRuntime) {
        guard let connection = serverConnection(channel, server: server, loopIndex: runtime.loopIndex(of: channel.eventLoop)) else {
            channel.close(promise: nil)
            return
        }
        offer(connection, to: runtime)
    }

    func attach(_ c: ServerConnection, reused: Bool) {
        guard streams.holdsRequest, connection == nil else {
            offerToPool(c)
            return
        }
        connection = c
        c.delegate = self
        streams.serverTLS = c.tls
        c.requestCount += 1
        c.pool.noteUsed()
        exchange.serverAttached(now: clock.now(), reused: reused)
        if exchangeLog != nil { noteConnected(c) }
        serverIn.discard()
        let connectionHeader = serverConnectionHeader(), forwardedFor = forwardedFor(), originalTo = originalTo()
        // Moved out for the serializer and back: a copy would retain and release each of the
        // head's references.
        let head = request.take()!
        let requestHead = H1Serializer.requestHead(head, connection: connectionHeader, forwardedFor: forwardedFor,
                                                   originalTo: originalTo, allocator: c.channel.allocator)
        request = consume head
        countRequestBytes(requestHead.readableBytes)
        c.channel.write(requestHead, promise: nil)
        serverNeedsFlush = true
        processClient()
        flushServerIfNeeded()
        syncTimer()
        readServerIfWanted(c)
        readClientIfWanted()
    }

    /// `connection: upgrade` for an upgrade, `close` outside keep-alive mode.
    func serverConnectionHeader() -> H1Serializer.ServerConnectionHeader {
        if exchange.isUpgrade { return .upgrade }
        return exchange.policy.frontendKeepsServer && exchange.policy.backendKeepsServer ? .none : .close
    }

    /// `option forwardfor`: the client's address; `if-none` leaves requests that carry the
    /// header alone unless a side asks for it always.
    func forwardedFor() -> (name: String, address: String)? {
        let frontOn = frontend.settings.options.forwardFor
        let backOn = slot?.backend.settings.options.forwardFor ?? false
        guard let options = headerOptions(front: frontOn, back: backOn),
              let header = addressHeader(address: clientAddress, except: options.forwardForExcept, name: options.forwardForHeader)
        else { return nil }
        let always = (frontOn && !frontend.settings.options.forwardForIfNone)
            || (backOn && !(slot?.backend.settings.options.forwardForIfNone ?? false))
        if !always, request?.contains(options.forwardForHeader) ?? false { return nil }
        return header
    }

    /// `option originalto`: the address the client connected to (as `set-dst` leaves it).
    func originalTo() -> (name: String, address: String)? {
        guard let options = headerOptions(front: frontend.settings.options.originalTo,
                                          back: slot?.backend.settings.options.originalTo ?? false) else { return nil }
        return addressHeader(address: streams.localSocket ?? context.channel.localAddress,
                             except: options.originalToExcept, name: options.originalToHeader)
    }

    /// The options of the proxy that asks for an address header (the frontend's win), nil
    /// when neither does. Most proxies ask for none: two flags answer before any options are
    /// copied (this runs for every request).
    private func headerOptions(front: Bool, back: Bool) -> ProxyOptions? {
        front ? frontend.settings.options : back ? slot?.backend.settings.options : nil
    }

    /// The header line for `address`, unless it lies in the `except` network.
    private func addressHeader(address: SocketAddress?, except: IPNetwork?, name: String) -> (name: String, address: String)? {
        guard let address, let ip = address.ipAddress else { return nil }
        if let except, let sample = StreamContext.sample(address),
           let v6 = IPNetwork.sampleAddress(sample), except.contains(v6) {
            return nil
        }
        return (name, ip)
    }

    func detachServer(close: Bool) {
        guard let c = connection else { return }
        connection = nil
        c.delegate = nil
        c.pool.noteReleased()
        if close { c.close() }
    }

    // MARK: - Server events

    func server(_ c: ServerConnection, received bytes: ByteBuffer) {
        guard c === connection else { return }
        exchange.serverActivity(now: clock.now())
        if exchange.phase == .tunnel {
            countResponseBytes(bytes.readableBytes)
            context.write(wrapOutboundOut(bytes), promise: nil)
            clientNeedsFlush = true
            return
        }
        serverIn.append(bytes)
        processServer(c)
    }

    func processServer(_ c: ServerConnection) {
        while connection === c, !serverIn.isEmpty {
            guard response != nil else {
                switch serverIn.readResponseHead(limit: runtime.bufferSize, maxHeaders: runtime.maxHeaders) {
                case .incomplete:
                    return
                case .invalid:
                    serverFailed()
                    return
                case .head(let head):
                    startResponse(head)
                }
                continue
            }
            let slice: ByteBuffer?
            do {
                slice = try serverIn.readBody()
            } catch {
                abortExchange()
                return
            }
            if let slice {
                countResponseBytes(slice.readableBytes)
                context.write(wrapOutboundOut(slice), promise: nil)
                clientNeedsFlush = true
            }
            if serverIn.bodyEnded {
                finishResponse()
                return
            }
        }
    }

    /// Takes the head (consuming: it becomes `response` at the end without a copy).
    func startResponse(_ head: consuming MessageHead) {
        let framing = HeadParser.responseFraming(head, requestMethod: streams.heldRequestMethod ?? "GET")
        let action = exchange.responseHead(status: head.status, chunked: head.chunked,
                                           untilClose: framing == .untilClose, now: clock.now())
        if action == .forwardInterim {
            // Interim responses (100 Continue) pass through; the final one follows.
            context.write(wrapOutboundOut(head.bytes), promise: nil)
            clientNeedsFlush = true
            return
        }
        if frontend.hasResponseRules || (slot?.backend.hasResponseRules ?? false) {
            // The rules edit the head where the stream context holds it: moved in, then out.
            streams.response = consume head
            guard applyResponseRules(), let edited = streams.takeResponse() else { return }
            head = edited
        }
        if let (backend, server) = slot, let cookie = backend.settings.cookie {
            applyCookiePersistence(&head, backend, server, cookie)
        }
        if exchangeLog != nil { noteResponse(head.status) }
        let connectionHeader: HTTPExchange.ClientConnectionHeader
        let dechunk: Bool
        switch action {
        case .forwardInterim:
            return
        case .abort:
            abortExchange()
            return
        case .startTunnel:
            startTunnel(head)
            return
        case .forward(let header, let d):
            connectionHeader = header
            dechunk = d
        }
        serverIn.expectBody(framing, dechunk: dechunk, lineLimit: runtime.bufferSize)
        countResponse(status: head.status)
        if let (backend, server) = slot, !backend.rules.stickRules.isEmpty { storeSticking(backend, server, response: head) }
        if let (_, server) = slot, server.settings.checks.observe == .layer7 {
            // (The status read first: `&&`'s autoclosures would capture, and so copy, the head.)
            let status = head.status
            let failed = status >= 500 && status != 501 && status != 505
            runtime.observe(server, layer: .layer7, error: failed, what: "Wrong http response")
        }
        // A small body that came with the head leaves in the same write: one system call and
        // one segment instead of a two-part writev.
        let inline = serverIn.readSmallWholeBody(limit: Self.inlineBodyLimit, framing: framing)
        var headBytes = H1Serializer.responseHead(head, clientMinor: exchange.clientVersionMinor, connection: connectionHeader,
                                                  dechunk: dechunk, extraCapacity: inline?.readableBytes ?? 0,
                                                  allocator: context.channel.allocator)
        countResponseBytes(headBytes.readableBytes)
        if var inline {
            countResponseBytes(inline.readableBytes)
            headBytes.writeBuffer(&inline)
        }
        response = consume head
        context.write(wrapOutboundOut(headBytes), promise: nil)
        clientNeedsFlush = true
        if serverIn.bodyEnded { finishResponse() }
    }

    static var inlineBodyLimit: Int { 4096 }

    func serverReadComplete(_ c: ServerConnection) {
        guard c === connection || exchange.phase == .tunnel else { return }
        flushClientIfNeeded()
        if exchange.phase == .tunnel || !exchange.responseEnded { readServerIfWanted(c) }
    }

    func serverWritabilityChanged(_ c: ServerConnection) {
        guard c === connection, c.channel.isWritable else { return }
        if exchange.phase == .exchanging, !exchange.requestEnded {
            processClient()
            flushServerIfNeeded()
            readClientIfWanted()
        } else if exchange.phase == .tunnel {
            readClientIfWanted()
        }
    }

    func serverClosed(_ c: ServerConnection) {
        guard c === connection else { return }
        connection = nil
        c.delegate = nil
        c.pool.noteReleased()
        switch exchange.serverClosed(responseHeadSeen: response != nil, untilClose: serverIn.bodyRunsUntilClose) {
        case .none:
            return
        case .finishResponse:
            finishResponse()
        case .resend:
            // A reused connection may have been closed by the server as we sent the request:
            // a bodiless request is safe to send again on a fresh connection.
            dialer.connect()
        case .respond(let answer):
            dialer.release()
            sendBuiltIn(answer)
        case .closeAfterWrites:
            if exchange.phase != .tunnel { dialer.release() }
            flushClientIfNeeded()
            closeClientAfterWrites()
        }
    }

    func server(_ c: ServerConnection, failed error: Error) {
        guard c === connection else { return }
        serverFailed()
    }

    /// A malformed or broken response: 502 if the client has seen nothing yet.
    func serverFailed() {
        detachServer(close: true)
        dialer.release()
        switch exchange.serverFailed() {
        case .respond(let answer):
            sendBuiltIn(answer)
        case .closeAfterWrites:
            flushClientIfNeeded()
            closeClientAfterWrites()
        }
    }

    /// Ends the exchange abruptly (bad framing, client gone mid-request).
    func abortExchange() {
        detachServer(close: true)
        dialer.release()
        flushClientIfNeeded()
        closeClientAfterWrites()
    }

    /// The response is complete: settle the server connection, then the client side.
    func finishResponse() {
        if exchangeLog != nil { logExchange("-") }
        streams.endStickStream()
        var usable: Bool? = nil
        if let c = connection {
            let maxReuse = c.server.settings.maxReuse
            usable = (response?.isKeepAlive ?? false) && !c.isClosed && serverIn.isEmpty
                && (maxReuse < 0 || c.requestCount < maxReuse)
        }
        let keepsIdle = connection?.server.keepsIdleConnections ?? false
        let (serverSide, clientSide) = exchange.responseEnded(connectionUsable: usable, responseUntilClose: serverIn.bodyRunsUntilClose,
                                                              serverKeepsIdle: keepsIdle)
        if let c = connection {
            connection = nil
            c.pool.noteReleased()
            switch serverSide {
            case .keepForClient?:
                ownIdle = c
                c.park()
            case .pool? where c.server.connectionsArePrivate:
                // It carries this client's identity (PROXY header, client's source address):
                // it serves no other (HAProxy's private connections).
                ownIdle = c
                c.park()
            case .pool?:
                offerToPool(c)
            case .close?, nil:
                c.delegate = nil
                c.close()
            }
        }
        dialer.release()
        serverIn.discard()
        switch clientSide {
        case .closeAfterWrites:
            closeClientAfterWrites()
        case .nextRequest:
            flushClientIfNeeded()
            nextRequest()
        }
    }

    func nextRequest() {
        request = nil
        response = nil
        idleSinceMono = MonotonicClock.milliseconds()
        streamID = runtime.nextStreamID()
        exchange.waitNextRequest(now: clock.now())
        if let (table, sink) = drainHandover, exchange.takeHandOver() {
            drainHandover = nil
            if handOver(table, to: sink) { return }
            // Could not move (a pipelined request is already buffered...): finish here.
            exchange.handOverFailed(now: clock.now())
            if clientIn.isEmpty {
                closeClient()
                return
            }
        }
        syncTimer()
        processClient()
        flushServerIfNeeded()
        if exchange.phase == .idle, exchange.clientInputClosed, clientIn.isEmpty {
            closeClient()
            return
        }
        readClientIfWanted()
    }

    func offerToPool(_ c: ServerConnection) {
        Self.offer(c, to: runtime)
    }

    static func offer(_ c: ServerConnection, to runtime: WorkerRuntime) {
        c.delegate = nil
        guard !c.isClosed else { return }
        // Connections opened for one SNI or with a PROXY header naming one client are not
        // shared (HAProxy's private connections).
        guard c.server.sniExpression == nil, !c.server.connectionsArePrivate else {
            c.close()
            return
        }
        let reuse = runtime.backends[c.server.backendName]?.settings.httpReuse ?? .safe
        if reuse != .never, c.pool.add(c, server: c.server, eventLoop: c.channel.eventLoop, inMaintenance: !c.server.keepsIdleConnections) {
            c.isPooled = true
            c.park()
        } else {
            c.close()
        }
    }
}
