import NIOCore

/// The reading half of one HTTP/1 connection: the bytes received and not yet used, turned into
/// message events on demand (a PROXY header, a head, body bytes, the body's end). The session
/// asks for the event its exchange can take next, so a pipelined request stays here, unread,
/// until the response before it is complete.
struct H1Reader {
    /// Received and not yet consumed.
    private(set) var buffer: ByteBuffer?
    /// The body of the message whose head was read last.
    private var body = BodyReader(.none)

    var bufferedBytes: Int { buffer?.readableBytes ?? 0 }
    var isEmpty: Bool { bufferedBytes == 0 }

    mutating func append(_ bytes: ByteBuffer) {
        if buffer == nil || buffer!.readableBytes == 0 {
            buffer = bytes
        } else {
            var bytes = bytes
            buffer!.writeBuffer(&bytes)
        }
    }

    /// Forgets everything buffered (a refused message, a connection closing).
    mutating func discard() { buffer = nil }

    /// Everything buffered, for a tunnel.
    mutating func takeAll() -> ByteBuffer? {
        defer { buffer = nil }
        guard var rest = buffer, rest.readableBytes > 0 else { return nil }
        return rest.readSlice(length: rest.readableBytes)
    }

    enum ProxyHeader {
        case incomplete
        /// HAProxy drops such a connection without an answer.
        case invalid
        /// The client and the address it reached, as the header announces them.
        case announced(source: SocketAddress?, destination: SocketAddress?)
    }

    /// `accept-proxy`: the PROXY protocol header that must come first.
    mutating func readProxyHeader() -> ProxyHeader {
        guard let buffer, buffer.readableBytes > 0 else { return .incomplete }
        switch ProxyProtocolHeader.parse(buffer) {
        case .incomplete:
            return .incomplete
        case .invalid:
            self.buffer = nil
            return .invalid
        case .complete(let source, let destination, let length):
            self.buffer!.moveReaderIndex(forwardBy: length)
            return .announced(source: source, destination: destination)
        }
    }

    enum Head {
        case incomplete
        /// Refused; carries what was buffered (for `show errors`), now discarded.
        case invalid(ByteBuffer)
        case head(MessageHead)
    }

    mutating func readRequestHead(limit: Int, maxHeaders: Int) -> Head {
        readHead(limit: limit, maxHeaders: maxHeaders, isRequest: true)
    }

    mutating func readResponseHead(limit: Int, maxHeaders: Int) -> Head {
        readHead(limit: limit, maxHeaders: maxHeaders, isRequest: false)
    }

    private mutating func readHead(limit: Int, maxHeaders: Int, isRequest: Bool) -> Head {
        guard let buffer, buffer.readableBytes > 0 else { return .incomplete }
        var length = 0
        let head = HeadParser.read(buffer, limit: limit, maxHeaders: maxHeaders, isRequest: isRequest, length: &length)
        // (Told by `length`: switching over the result copied the head.)
        if length > 0 {
            self.buffer!.moveReaderIndex(forwardBy: length)
        } else if length < 0 {
            self.buffer = nil
        }
        return head
    }

    /// Starts walking the body of the message just read.
    mutating func expectBody(_ framing: BodyFraming, dechunk: Bool = false, lineLimit: Int) {
        body = BodyReader(framing, dechunk: dechunk, lineLimit: lineLimit)
    }

    var bodyEnded: Bool { body.isDone }
    var bodyRunsUntilClose: Bool { body.isUntilClose }

    /// Body bytes buffered so far, in their original framing (only the payload when
    /// de-chunking); nil when none. A framing error discards the buffer.
    mutating func readBody() throws(BodyReader.Failure) -> ByteBuffer? {
        guard var buffer, buffer.readableBytes > 0 else { return nil }
        do {
            let slice = try body.consume(&buffer)
            self.buffer = buffer
            return slice
        } catch {
            self.buffer = nil
            throw error
        }
    }

    /// A body of `limit` bytes at most that arrived whole with its head (to leave in the same
    /// write as the head); nil otherwise, and nothing is consumed.
    mutating func readSmallWholeBody(limit: Int, framing: BodyFraming) -> ByteBuffer? {
        guard case .length(let n) = framing, n <= limit, var buffer, buffer.readableBytes >= n,
              let slice = try? body.consume(&buffer) else { return nil }
        self.buffer = buffer
        return slice
    }
}
