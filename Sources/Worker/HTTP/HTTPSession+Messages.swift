import NIOCore
import NIOPosix
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// What the session writes itself: rewritten heads, local responses, the switch to a tunnel.
extension HTTPSession {
    // MARK: - Head rewriting

    static let crlf: StaticString = "\r\n"

    /// The request head as the server gets it: HTTP/1.1, hop-by-hop headers removed.
    func serverRequestHead(_ head: MessageHead, allocator: ByteBufferAllocator) -> ByteBuffer {
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
           let ip = clientAddress?.ipAddress {
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
    func clientResponseHead(_ head: MessageHead, framing: BodyFraming, extraCapacity: Int = 0) -> ByteBuffer {
        let minor = request?.versionMinor ?? 1
        var out = context.channel.allocator.buffer(capacity: head.bytes.readableBytes + 48 + extraCapacity)
        out.writeStaticString(minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        // The parser guarantees three digits.
        let status = head.status
        out.writeInteger(UInt8(48 + status / 100))
        out.writeInteger(UInt8(48 + status / 10 % 10))
        out.writeInteger(UInt8(48 + status % 10))
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

    func copyHeaders(_ head: MessageHead, into out: inout ByteBuffer, keepUpgrade: Bool, dropTransferEncoding: Bool = false) {
        let extraHopByHop = head.connectionNames
        var contentLengthWritten = false
        head.bytes.withUnsafeReadableBytes { p in
            for f in head.fields {
                if f.kind.isHopByHop && !(keepUpgrade && f.kind == .upgrade) { continue }
                if dropTransferEncoding && f.kind == .transferEncoding { continue }
                if f.kind == .contentLength, head.contentLengthNeedsRewrite, let length = head.contentLength {
                    // "1, 1" or a repeated header: one plain value, as HAProxy forwards it.
                    if !contentLengthWritten {
                        out.writeBytes(UnsafeRawBufferPointer(rebasing: p[f.nameStart..<f.nameEnd]))
                        out.writeStaticString(": ")
                        out.writeString(String(length))
                        out.writeStaticString(Self.crlf)
                        contentLengthWritten = true
                    }
                    continue
                }
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

    func upgradeResponseHead(_ head: MessageHead) -> ByteBuffer {
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

    // MARK: - Local responses

    func sendBuiltIn(_ response: BuiltInResponse) {
        guard phase != .closed else { return }
        // `errorfile`: the backend's page once a backend was chosen, else the frontend's.
        if let custom = (slot?.backend ?? (phase == .idle ? nil : frontend.backend))?.settings.errorFiles[response.rawValue]
            ?? frontend.settings.errorFiles[response.rawValue] {
            countResponse(status: response.rawValue)
            if logger != nil, logFormat != .connect {
                noteLocalResponse(response.rawValue, cause: Self.termination(of: response, queueTimedOut: timerReason == .queue))
            }
            writeLocal(custom, close: true)
            return
        }
        let close = response.closesConnection || closeAfterResponse || !clientKeepAlive || !requestEnded || phase == .idle
        var text = "HTTP/1.1 \(response.rawValue) \(response.reason)\r\n"
        for (name, value) in response.head().headers { text += "\(name): \(value)\r\n" }
        if close, !response.closesConnection { text += "connection: close\r\n" }
        text += "\r\n" + response.body
        countResponse(status: response.rawValue)
        if logger != nil, logFormat != .connect {
            noteLocalResponse(response.rawValue, cause: Self.termination(of: response, queueTimedOut: timerReason == .queue))
        }
        writeLocal(text, close: close)
    }

    func sendReturn(_ rule: HTTPReturnRule) {
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
        countResponse(status: rule.status)
        if !requestEnded && close { close = true }
        if exchangeLog != nil { noteLocalResponse(rule.status, cause: ("L", "R")) }
        writeLocal(bytes, close: close)
    }

    func writeLocal(_ text: String, close: Bool) {
        writeLocal(Array(text.utf8), close: close)
    }

    func writeLocal(_ bytes: [UInt8], close: Bool) {
        // Local answers are counted here; forwarded bytes where they are written.
        frontend.counters.bytesOut.wrappingIncrement(by: bytes.count, ordering: .relaxed)
        if exchangeLog != nil {
            exchangeLog!.bytesOut += bytes.count
            logExchange(localCause?.0 ?? "-", state: localCause?.1)
            localCause = nil
        }
        // A request not read to its end (or refused before its head was whole) may still be
        // arriving.
        let inputPending = !clientInputClosed && !requestEnded
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
            if inputPending { closeClientLingering() } else { closeClientAfterWrites() }
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

    func localResponseFinished() {
        guard phase == .responding else { return }
        nextRequest()
    }

    // MARK: - Tunnel (Upgrade)

    func startTunnel(_ head: MessageHead) {
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
