import NIOCore

/// A request body read before rules and routing run (`option http-buffer-request`,
/// `http-request wait-for-body`, the statistics page's admin form): peeked at in the client's
/// buffer, not consumed, and forwarded as usual once the request is served.
extension HTTPSession {
    /// The statistics page's admin form is read whole, for `timeout http-request`.
    func statsBodyWait(_ head: MessageHead) -> (milliseconds: Int64, continues: Bool)? {
        guard statsBodyWanted(head) else { return nil }
        let timeouts = frontend.settings.timeouts
        return (timeouts.httpRequest ?? timeouts.client ?? 10_000, true)
    }

    /// The buffered body is whole, the buffer is full, or `wait-for-body` waited enough.
    func resumeBufferedRequest() {
        guard request != nil else { return }
        if exchange.phase == .bufferingBody { exchange.bodyBuffered() }
        syncTimer()
        serveRequest()
    }

    /// Whether the body being buffered is whole, or fills what the proxy buffers.
    var bufferedBodyComplete: Bool { peekedBody.complete }

    /// The request body buffered so far (de-chunked), and whether it is complete.
    var peekedBody: (payload: [UInt8], complete: Bool) {
        guard request != nil else { return ([], true) }
        return clientIn.peekBufferedBody(HeadParser.requestFraming(request!), limit: headLimit, lineLimit: runtime.bufferSize)
    }
}

extension H1Reader {
    /// The body buffered so far, without consuming it: its payload (de-chunked) and whether it
    /// is complete or fills `limit` bytes of buffer. A framing error counts as complete: the
    /// request goes on and the forwarding path refuses it.
    func peekBufferedBody(_ framing: BodyFraming, limit: Int, lineLimit: Int) -> (payload: [UInt8], complete: Bool) {
        guard var copy = buffer else { return ([], framing == .none) }
        switch framing {
        case .length(let n):
            let have = min(n, copy.readableBytes)
            return (Array(copy.readableBytesView.prefix(min(have, limit))), copy.readableBytes >= min(n, limit))
        case .chunked:
            let full = copy.readableBytes >= limit
            var reader = BodyReader(.chunked, dechunk: true, lineLimit: lineLimit)
            var payload: [UInt8] = []
            do {
                while let slice = try reader.consume(&copy) {
                    payload.append(contentsOf: slice.readableBytesView)
                    if reader.isDone { break }
                }
            } catch {
                return (payload, true)
            }
            return (payload, reader.isDone || full)
        default:
            return ([], true)
        }
    }
}
