import NIOCore
import NIOPosix
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// The server side of an exchange: slots, connections, response forwarding, reuse.
extension HTTPSession {
    // MARK: - Server connections

    func obtainConnection(to server: Server) {
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

    func connectNew(to server: Server) {
        guard let address = server.socketAddress else {
            connectFailed(server: server)
            return
        }
        connectAttempts += 1
        server.connectAttempts.wrappingIncrement(ordering: .relaxed)
        if exchangeLog != nil {
            if exchangeLog!.connectStartMono < 0 { exchangeLog!.connectStartMono = MonotonicClock.milliseconds() }
            exchangeLog!.retries = connectAttempts - 1
            exchangeLog!.server = server.name
        }
        let pool = server.pools[loopIndex]
        let bootstrap = runtime.connectors[loopIndex].bootstrap(for: slot?.backend, loop: context.eventLoop,
                                                                timeoutMs: backendTimeouts.connect ?? 0)
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        bootstrap.connect(to: address).whenComplete { result in
            let session = bound.value
            switch result {
            case .success(let channel):
                // A channel that already closed (its inactive event went by unseen) is a failure.
                guard channel.isActive, let handler = try? channel.pipeline.syncOperations.handler(type: ServerConnectionHandler.self) else {
                    channel.close(promise: nil)
                    if session.phase == .connecting, session.slot?.server === server { session.connectFailed(server: server) }
                    return
                }
                let connection = ServerConnection(channel: channel, server: server, pool: pool)
                handler.connection = connection
                server.usedConnections.wrappingIncrement(ordering: .relaxed)
                // The connect promise succeeds before the channel is fully active; a close in
                // that window fires no channelInactive, so the close future settles the count.
                let closing = NIOLoopBound(connection, eventLoop: channel.eventLoop)
                channel.closeFuture.whenComplete { _ in closing.value.closed() }
                guard session.phase == .connecting, session.slot?.server === server else {
                    // The client left while we were connecting: keep the connection for others.
                    session.offerToPool(connection)
                    return
                }
                session.attach(connection)
                if server.settings.checks.observe == .layer4 {
                    session.runtime.observe(server, layer: .layer4, error: false, what: "")
                }
            case .failure:
                server.connectionErrors.wrappingIncrement(ordering: .relaxed)
                if server.settings.checks.observe != nil {
                    session.runtime.observe(server, layer: .layer4, error: true, what: "L4 unsuccessful connection")
                }
                guard session.phase == .connecting, session.slot?.server === server else { return }
                session.connectFailed(server: server)
            }
        }
    }

    /// Connection refused or timed out: retry, possibly on another server, then give up with 503.
    func connectFailed(server: Server) {
        guard let (backend, _) = slot else { return }
        let retries = backend.settings.retries
        if connectAttempts <= retries {
            server.counters.retries.wrappingIncrement(ordering: .relaxed)
            backend.counters.retries.wrappingIncrement(ordering: .relaxed)
            if backend.settings.options.redispatch, connectAttempts == retries || server.socketAddress == nil {
                releaseSlot()
                if let other = backend.redispatch(excluding: server, key: balanceKey(backend)) {
                    exchangeLog?.redispatched = true
                    slot = (backend, other)
                    server.counters.redispatches.wrappingIncrement(ordering: .relaxed)
                    backend.counters.redispatches.wrappingIncrement(ordering: .relaxed)
                    backend.currentSessions.wrappingIncrement(ordering: .relaxed)
                    connectNew(to: other)
                    return
                }
                sendBuiltIn(.serviceUnavailable)
                return
            }
            // HAProxy's turn-around timer: a restarting server gets min(timeout connect, 1 s)
            // before the same server is tried again.
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .milliseconds(backendTimeouts.retryPauseMs)) {
                let session = bound.value
                guard session.phase == .connecting, session.slot?.server === server, session.connection == nil else { return }
                session.connectNew(to: server)
            }
            return
        }
        releaseSlot()
        sendBuiltIn(.serviceUnavailable)
    }

    func attach(_ c: ServerConnection) {
        guard let head = request, connection == nil else {
            offerToPool(c)
            return
        }
        connection = c
        c.delegate = self
        c.requestCount += 1
        c.pool.noteUsed()
        if exchangeLog != nil { noteConnected(c) }
        phase = .exchanging
        serverBuffer = nil
        lastServerActivity = .now()
        let requestHead = serverRequestHead(head, allocator: c.channel.allocator)
        countRequestBytes(requestHead.readableBytes)
        c.channel.write(requestHead, promise: nil)
        serverNeedsFlush = true
        processClient()
        flushServerIfNeeded()
        let serverTimeout = backendTimeouts.server ?? 0
        if serverTimeout > 0 { armTimer(.server, after: serverTimeout) }
        readServerIfWanted(c)
        readClientIfWanted()
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
        lastServerActivity = .now()
        if phase == .tunnel {
            lastTunnelActivity = lastServerActivity
            countResponseBytes(bytes.readableBytes)
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

    func processServer(_ c: ServerConnection) {
        while connection === c, var buffer = serverBuffer, buffer.readableBytes > 0 {
            guard let head = response else {
                switch HeadParser.parseResponse(buffer, limit: runtime.bufferSize, maxHeaders: runtime.maxHeaders) {
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
                countResponseBytes(slice.readableBytes)
                context.write(wrapOutboundOut(slice), promise: nil)
                clientNeedsFlush = true
            }
            if responseBody.isDone {
                finishResponse()
                return
            }
        }
    }

    func startResponse(_ head: MessageHead) {
        if head.status >= 100, head.status < 200, head.status != 101 {
            // Interim responses (100 Continue) pass through; the final one follows.
            context.write(wrapOutboundOut(head.bytes), promise: nil)
            clientNeedsFlush = true
            return
        }
        responseStarted = true
        if exchangeLog != nil { noteResponse(head.status) }
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
        responseBody = BodyReader(framing, dechunk: dechunk, lineLimit: runtime.bufferSize)
        countResponse(status: head.status)
        if let (_, server) = slot, server.settings.checks.observe == .layer7 {
            let failed = head.status >= 500 && head.status != 501 && head.status != 505
            runtime.observe(server, layer: .layer7, error: failed, what: "Wrong http response")
        }
        // A small body that came with the head leaves in the same write: one system call and
        // one segment instead of a two-part writev.
        var inline: ByteBuffer?
        if case .length(let n) = framing, n <= Self.inlineBodyLimit, var buffer = serverBuffer, buffer.readableBytes >= n,
           let slice = try? responseBody.consume(&buffer) {
            serverBuffer = buffer
            inline = slice
        }
        var headBytes = clientResponseHead(head, framing: framing, extraCapacity: inline?.readableBytes ?? 0)
        countResponseBytes(headBytes.readableBytes)
        if var inline {
            countResponseBytes(inline.readableBytes)
            headBytes.writeBuffer(&inline)
        }
        context.write(wrapOutboundOut(headBytes), promise: nil)
        clientNeedsFlush = true
        if responseBody.isDone { finishResponse() }
    }

    static var inlineBodyLimit: Int { 4096 }

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
        terminationCause = "S"
        releaseSlot()
        flushClientIfNeeded()
        closeClientAfterWrites()
    }

    func server(_ c: ServerConnection, failed error: Error) {
        guard c === connection else { return }
        serverFailed()
    }

    /// A malformed or broken response: 502 if the client has seen nothing yet.
    func serverFailed() {
        detachServer(close: true)
        releaseSlot()
        if !responseStarted {
            sendBuiltIn(.badGateway)
        } else {
            terminationCause = "S"
            flushClientIfNeeded()
            closeClientAfterWrites()
        }
    }

    /// Ends the exchange abruptly (bad framing, client gone mid-request).
    func abortExchange() {
        detachServer(close: true)
        releaseSlot()
        flushClientIfNeeded()
        closeClientAfterWrites()
    }

    /// The response is complete: settle the server connection, then the client side.
    func finishResponse() {
        responseEnded = true
        cancelTimer()
        if exchangeLog != nil { logExchange("-") }
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
            } else if clientKeepAlive, !closeAfterResponse, c.server.keepsIdleConnections {
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

    func nextRequest() {
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

    func offerToPool(_ c: ServerConnection) {
        c.delegate = nil
        guard !c.isClosed else { return }
        let reuse = runtime.backends[c.server.backendName]?.settings.httpReuse ?? .safe
        if reuse != .never, c.pool.add(c, server: c.server, eventLoop: c.channel.eventLoop, inMaintenance: !c.server.keepsIdleConnections) {
            c.isPooled = true
            c.park()
        } else {
            c.close()
        }
    }
}
