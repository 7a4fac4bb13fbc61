import NIOCore
import NIOPosix
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// What the session answers itself (built-in errors, `http-request return`) and the switch
/// to a tunnel.
extension HTTPSession {
    // MARK: - Local responses

    /// A built-in answer; `cause` overrides its termination flags in the log.
    func sendBuiltIn(_ response: BuiltInResponse, cause: (Character, Character)? = nil) {
        guard !exchange.isClosed else { return }
        let flags = cause ?? Self.termination(of: response)
        if hasAfterResponseRules, !response.closesConnection {
            // `http-after-response` rules see (and may edit) the proxy's own errors too.
            let backend = slot?.backend ?? (exchange.phase == .idle ? nil : streams.backend ?? frontend.backend)
            let pages = (backend?.settings.errorFiles ?? [:]).merging(frontend.settings.errorFiles) { mine, _ in mine }
            sendAnswer(LocalAnswer.errorPage(response.rawValue, errorFiles: pages, cause: flags))
            return
        }
        // `errorfile`: the backend's page once a backend was chosen, else the frontend's.
        if let custom = (slot?.backend ?? (exchange.phase == .idle ? nil : frontend.backend))?.settings.errorFiles[response.rawValue]
            ?? frontend.settings.errorFiles[response.rawValue] {
            countResponse(status: response.rawValue)
            if logger != nil, logFormat.format != nil { noteLocalResponse(response.rawValue, cause: flags) }
            writeLocal(custom, closes: true)
            return
        }
        let close = exchange.builtInCloses(response)
        var text = "HTTP/1.1 \(response.rawValue) \(response.reason)\r\n"
        for (name, value) in response.head().headers { text += "\(name): \(value)\r\n" }
        if close, !response.closesConnection { text += "connection: close\r\n" }
        text += "\r\n" + response.body
        countResponse(status: response.rawValue)
        if logger != nil, logFormat.format != nil { noteLocalResponse(response.rawValue, cause: flags) }
        writeLocal(text, closes: close)
    }

    func writeLocal(_ text: String, closes: Bool) {
        writeLocal(Array(text.utf8), closes: closes)
    }

    func writeLocal(_ bytes: [UInt8], closes: Bool) {
        // Local answers are counted here; forwarded bytes where they are written.
        frontend.counters.bytesOut.wrappingIncrement(by: bytes.count, ordering: .relaxed)
        streams.streamBytesOut &+= Int64(bytes.count)
        if exchangeLog != nil {
            exchangeLog!.bytesOut += bytes.count
            logExchange(localCause?.0 ?? "-", state: localCause?.1)
            localCause = nil
        }
        streams.endStickStream()
        var buffer = context.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        context.write(wrapOutboundOut(buffer), promise: nil)
        switch exchange.localResponse(closes: closes) {
        case .closeLingering:
            clientIn.discard()
            closeClientLingering()
        case .closeAfterWrites:
            clientIn.discard()
            closeClientAfterWrites()
        case .nextRequest:
            context.flush()
            nextRequest()
        case .discardRequestBody:
            // Discard the rest of the request body, then take the next request.
            context.flush()
            processClient()
            readClientIfWanted()
        }
    }

    // MARK: - Tunnel (Upgrade)

    func startTunnel(_ head: MessageHead) {
        guard let c = connection else { return }
        dialer.release()
        context.write(wrapOutboundOut(H1Serializer.upgradeResponseHead(head, allocator: context.channel.allocator)), promise: nil)
        if let rest = serverIn.takeAll() { context.write(wrapOutboundOut(rest), promise: nil) }
        context.flush()
        if let rest = clientIn.takeAll() { c.channel.writeAndFlush(rest, promise: nil) }
        syncTimer()
        readServerIfWanted(c)
        readClientIfWanted()
    }
}
