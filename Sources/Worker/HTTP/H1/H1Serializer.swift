import NIOCore

/// Writes message heads as HTTP/1.1 (or 1.0 toward a 1.0 client). A head nobody edited is copied
/// from its parsed byte ranges; an edited one from its owned header list. Either way the
/// hop-by-hop headers (and the names its `Connection` header lists) are dropped: the proxy
/// writes its own `Connection`.
enum H1Serializer {
    static let crlf: StaticString = "\r\n"

    /// The `Connection` header the server gets.
    enum ServerConnectionHeader {
        case none
        case close
        case upgrade
    }

    /// The request head as the server gets it: HTTP/1.1, hop-by-hop headers removed, then
    /// `Connection` and `X-Forwarded-For` as the proxy decides.
    static func requestHead(_ head: MessageHead, connection: ServerConnectionHeader,
                            forwardedFor: (name: String, address: String)?, originalTo: (name: String, address: String)? = nil,
                            allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: head.bytes.readableBytes + 96)
        out.writeSubstring(head.method)
        out.writeStaticString(" ")
        out.writeSubstring(head.target)
        out.writeStaticString(" HTTP/1.1\r\n")
        writeFields(head, into: &out, keepUpgrade: connection == .upgrade)
        switch connection {
        case .upgrade: out.writeStaticString("connection: upgrade\r\n")
        case .close: out.writeStaticString("connection: close\r\n")
        case .none: break
        }
        func writeAddress(_ header: (name: String, address: String)?) {
            guard let (name, address) = header else { return }
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(address)
            out.writeStaticString(crlf)
        }
        writeAddress(forwardedFor)
        writeAddress(originalTo)
        out.writeStaticString(crlf)
        return out
    }

    /// The response head as the client gets it, in the client's HTTP version.
    static func responseHead(_ head: MessageHead, clientMinor: Int, connection: HTTPExchange.ClientConnectionHeader,
                             dechunk: Bool, extraCapacity: Int = 0, allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: head.bytes.readableBytes + 48 + extraCapacity)
        out.writeStaticString(clientMinor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        writeStatus(head, into: &out)
        writeFields(head, into: &out, keepUpgrade: false, dropTransferEncoding: dechunk)
        switch connection {
        case .close: out.writeStaticString("connection: close\r\n")
        case .keepAlive: out.writeStaticString("connection: keep-alive\r\n")
        case .none: break
        }
        out.writeStaticString(crlf)
        return out
    }

    /// The `101` that switches the client to a tunnel.
    static func upgradeResponseHead(_ head: MessageHead, allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: head.bytes.readableBytes + 32)
        out.writeStaticString("HTTP/1.1 ")
        writeStatus(head, into: &out)
        writeFields(head, into: &out, keepUpgrade: true)
        out.writeStaticString("connection: upgrade\r\n\r\n")
        return out
    }

    /// `<status> <reason>\r\n` (the parser guarantees three digits).
    private static func writeStatus(_ head: MessageHead, into out: inout ByteBuffer) {
        let status = head.status
        // The three digits and the space after them in one write (the space is taken back
        // when no reason follows).
        let digits = UInt32(48 + status / 100) << 24 | UInt32(48 + status / 10 % 10) << 16 | UInt32(48 + status % 10) << 8 | 32
        out.writeInteger(digits)
        if let reason = head.reasonOverride {
            out.writeString(reason)
            out.writeStaticString(crlf)
            return
        }
        guard head.reasonEnd > head.reasonStart else {
            out.moveWriterIndex(to: out.writerIndex - 1)
            out.writeStaticString(crlf)
            return
        }
        head.bytes.withUnsafeReadableBytes { p in
            // A reason that ended with CRLF goes out with it, in one piece.
            if head.reasonEnd + 1 < p.count, p[head.reasonEnd] == 13, p[head.reasonEnd + 1] == 10 {
                out.writeBytes(UnsafeRawBufferPointer(rebasing: p[head.reasonStart..<(head.reasonEnd + 2)]))
            } else {
                out.writeBytes(UnsafeRawBufferPointer(rebasing: p[head.reasonStart..<head.reasonEnd]))
                out.writeStaticString(crlf)
            }
        }
    }

    /// The end-to-end header lines.
    static func writeFields(_ head: MessageHead, into out: inout ByteBuffer, keepUpgrade: Bool, dropTransferEncoding: Bool = false) {
        if let edited = head.editedFields {
            writeEdited(edited, of: head, into: &out, keepUpgrade: keepUpgrade, dropTransferEncoding: dropTransferEncoding)
            return
        }
        let extraHopByHop = head.connectionNames
        var contentLengthWritten = false
        let removed = head.removedMask
        head.bytes.withUnsafeReadableBytes { p in
            // Fields received as `name: value` CRLF are copied as they came, and consecutive ones
            // in one write: the bytes are the same as writing name, ": ", value and CRLF apart.
            var runStart = 0, runEnd = 0
            func flushRun() {
                if runEnd > runStart { out.writeBytes(UnsafeRawBufferPointer(rebasing: p[runStart..<runEnd])) }
                runStart = 0
                runEnd = 0
            }
            defer { flushRun() }
            for (index, f) in head.fields.enumerated() {
                if removed != 0, head.isRemoved(index) { continue }
                if f.kind.isHopByHop && !(keepUpgrade && f.kind == .upgrade) { continue }
                if dropTransferEncoding && f.kind == .transferEncoding { continue }
                if f.kind == .contentLength, head.contentLengthNeedsRewrite, let length = head.contentLength {
                    // "1, 1" or a repeated header: one plain value, as HAProxy forwards it.
                    if !contentLengthWritten {
                        flushRun()
                        out.writeBytes(UnsafeRawBufferPointer(rebasing: p[f.nameStart..<f.nameEnd]))
                        out.writeStaticString(": ")
                        out.writeString(String(length))
                        out.writeStaticString(crlf)
                        contentLengthWritten = true
                    }
                    continue
                }
                if !extraHopByHop.isEmpty, f.kind == .other {
                    let name = String(decoding: UnsafeRawBufferPointer(rebasing: p[f.nameStart..<f.nameEnd]), as: UTF8.self).lowercased()
                    if extraHopByHop.contains(name) { continue }
                }
                if f.valueStart == f.nameEnd + 2, p[f.nameEnd + 1] == 32,
                   f.valueEnd + 1 < p.count, p[f.valueEnd] == 13, p[f.valueEnd + 1] == 10 {
                    if runEnd == f.nameStart, runEnd > runStart {
                        runEnd = f.valueEnd + 2
                    } else {
                        flushRun()
                        runStart = f.nameStart
                        runEnd = f.valueEnd + 2
                    }
                    continue
                }
                flushRun()
                out.writeBytes(UnsafeRawBufferPointer(rebasing: p[f.nameStart..<f.nameEnd]))
                out.writeStaticString(": ")
                out.writeBytes(UnsafeRawBufferPointer(rebasing: p[f.valueStart..<f.valueEnd]))
                out.writeStaticString(crlf)
            }
        }
        // Lines rules added: framing stays the parser's, hop-by-hop headers stay out. Most
        // added lines are neither, and go out in one copy.
        if head.added.isEmpty { return }
        if !head.added.holdsFilteredKind {
            head.added.writeAll(into: &out)
            return
        }
        head.added.write(into: &out) { kind in !AddedLines.isFiltered(kind) || (keepUpgrade && kind == .upgrade) }
    }

    /// `name: value` CRLF in one write (four small writes cost four capacity checks and
    /// index updates each).
    static func writeLine(_ name: String, _ value: String, into out: inout ByteBuffer) {
        // A native string's bytes are read where they are; `withUTF8` would need a copy of
        // each string (a retain and a release) to call.
        let written = name.utf8.withContiguousStorageIfAvailable { n in
            value.utf8.withContiguousStorageIfAvailable { v in
                writeLine(n, v, into: &out)
                return true
            } ?? false
        } ?? false
        if written { return }
        var name = name, value = value
        name.withUTF8 { n in value.withUTF8 { v in writeLine(n, v, into: &out) } }
    }

    private static func writeLine(_ n: UnsafeBufferPointer<UInt8>, _ v: UnsafeBufferPointer<UInt8>, into out: inout ByteBuffer) {
        let length = n.count + v.count + 4
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { buffer in
            let base = buffer.baseAddress!
            if n.count > 0 { base.copyMemory(from: n.baseAddress!, byteCount: n.count) }
            base.storeBytes(of: UInt8(ascii: ":"), toByteOffset: n.count, as: UInt8.self)
            base.storeBytes(of: UInt8(ascii: " "), toByteOffset: n.count + 1, as: UInt8.self)
            if v.count > 0 { (base + n.count + 2).copyMemory(from: v.baseAddress!, byteCount: v.count) }
            base.storeBytes(of: 13, toByteOffset: length - 2, as: UInt8.self)
            base.storeBytes(of: 10, toByteOffset: length - 1, as: UInt8.self)
            return length
        }
    }

    /// The same rules over an edited list. Content-Length is written as the parser read it:
    /// the body keeps the framing it arrived with.
    private static func writeEdited(_ fields: [HTTPField], of head: MessageHead, into out: inout ByteBuffer,
                                    keepUpgrade: Bool, dropTransferEncoding: Bool) {
        let extraHopByHop = head.connectionNames
        var contentLengthWritten = false
        for field in fields {
            let kind = field.kind
            if kind.isHopByHop && !(keepUpgrade && kind == .upgrade) { continue }
            if dropTransferEncoding && kind == .transferEncoding { continue }
            if kind == .contentLength {
                guard !contentLengthWritten, let length = head.contentLength else { continue }
                contentLengthWritten = true
                out.writeString(field.name)
                out.writeStaticString(": ")
                out.writeString(String(length))
                out.writeStaticString(crlf)
                continue
            }
            if kind == .other, !extraHopByHop.isEmpty, extraHopByHop.contains(field.lowercasedName) { continue }
            writeLine(field.name, field.value, into: &out)
        }
    }
}
