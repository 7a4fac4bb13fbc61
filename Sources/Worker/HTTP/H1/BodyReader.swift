import NIOCore

/// Walks a message body as it arrives and hands back the bytes to forward, so that the proxy
/// forwards the original framing untouched (or only the data, when it must de-chunk).
struct BodyReader {
    enum Failure: Error { case badChunk }

    private enum State {
        case length(remaining: Int)
        /// `length`: bytes of the line so far, extensions included.
        case chunkSize(value: Int, digits: Int, inExtension: Bool, sawCR: Bool, length: Int)
        case chunkData(remaining: Int)
        case chunkDataCR
        case chunkDataLF
        case trailerLineStart
        case trailerLine(sawCR: Bool, length: Int)
        case finalCR
        case untilClose
        case done
    }

    private var state: State
    /// When true, only chunk payloads are returned (for an HTTP/1.0 client).
    let dechunk: Bool
    /// The longest chunk-size or trailer line: like HAProxy, which needs such a line whole in
    /// its buffer, a longer one (a 64 KiB chunk extension) is refused.
    let lineLimit: Int

    init(_ framing: BodyFraming, dechunk: Bool = false, lineLimit: Int = 16_384) {
        self.dechunk = dechunk
        self.lineLimit = lineLimit
        switch framing {
        case .none: state = .done
        case .length(let n): state = n > 0 ? .length(remaining: n) : .done
        case .chunked: state = .chunkSize(value: 0, digits: 0, inExtension: false, sawCR: false, length: 0)
        case .untilClose: state = .untilClose
        }
    }

    var isDone: Bool {
        if case .done = state { return true }
        return false
    }

    var isUntilClose: Bool {
        if case .untilClose = state { return true }
        return false
    }

    /// Takes as many body bytes from `buffer` as belong to this message; returns what to forward.
    mutating func consume(_ buffer: inout ByteBuffer) throws(Failure) -> ByteBuffer? {
        switch state {
        case .done:
            return nil
        case .untilClose:
            guard buffer.readableBytes > 0 else { return nil }
            return buffer.readSlice(length: buffer.readableBytes)
        case .length(let remaining):
            let n = min(remaining, buffer.readableBytes)
            guard n > 0 else { return nil }
            let slice = buffer.readSlice(length: n)
            state = remaining - n == 0 ? .done : .length(remaining: remaining - n)
            return slice
        default:
            return try consumeChunked(&buffer)
        }
    }

    /// Chunked framing, validated byte by byte; data runs are passed on as slices.
    private mutating func consumeChunked(_ buffer: inout ByteBuffer) throws(Failure) -> ByteBuffer? {
        let start = buffer.readerIndex
        var output: ByteBuffer? = nil
        var passStart = start   // start of bytes to forward verbatim (non-dechunk mode)
        var index = start
        let end = buffer.writerIndex
        func appendOutput(_ from: Int, _ to: Int, _ buffer: ByteBuffer) {
            guard to > from else { return }
            let slice = buffer.getSlice(at: from, length: to - from)!
            if output == nil { output = slice } else { var s = slice; output!.writeBuffer(&s) }
        }
        loop: while index < end {
            switch state {
            case .chunkSize(let value, let digits, let inExtension, let sawCR, let length):
                let c = buffer.getInteger(at: index, as: UInt8.self)!
                index += 1
                guard length < lineLimit else { throw .badChunk }
                if sawCR {
                    guard c == 10, digits > 0 else { throw .badChunk }
                    state = value == 0 ? .trailerLineStart : .chunkData(remaining: value)
                    continue
                }
                if c == 13 { state = .chunkSize(value: value, digits: digits, inExtension: inExtension, sawCR: true, length: length + 1); continue }
                if c == 10 { throw .badChunk }   // bare LF ends no chunk-size line
                if inExtension {
                    state = .chunkSize(value: value, digits: digits, inExtension: true, sawCR: false, length: length + 1)
                    continue
                }
                if c == 59 || c == 32 || c == 9 {
                    guard digits > 0 else { throw .badChunk }
                    state = .chunkSize(value: value, digits: digits, inExtension: true, sawCR: false, length: length + 1)
                    continue
                }
                guard let d = hexDigit(c), digits < 15 else { throw .badChunk }
                state = .chunkSize(value: value * 16 + d, digits: digits + 1, inExtension: false, sawCR: false, length: length + 1)
            case .chunkData(let remaining):
                let n = min(remaining, end - index)
                if dechunk {
                    appendOutput(index, index + n, buffer)
                }
                index += n
                state = remaining - n == 0 ? .chunkDataCR : .chunkData(remaining: remaining - n)
            case .chunkDataCR:
                let c = buffer.getInteger(at: index, as: UInt8.self)!
                index += 1
                guard c == 13 else { throw .badChunk }
                state = .chunkDataLF
            case .chunkDataLF:
                let c = buffer.getInteger(at: index, as: UInt8.self)!
                index += 1
                guard c == 10 else { throw .badChunk }
                state = .chunkSize(value: 0, digits: 0, inExtension: false, sawCR: false, length: 0)
            case .trailerLineStart:
                let c = buffer.getInteger(at: index, as: UInt8.self)!
                index += 1
                if c == 13 { state = .finalCR; continue }
                if c == 10 { throw .badChunk }
                state = .trailerLine(sawCR: false, length: 1)
            case .trailerLine(let sawCR, let length):
                let c = buffer.getInteger(at: index, as: UInt8.self)!
                index += 1
                guard length < lineLimit else { throw .badChunk }
                if sawCR {
                    guard c == 10 else { throw .badChunk }
                    state = .trailerLineStart
                } else {
                    state = .trailerLine(sawCR: c == 13, length: length + 1)
                }
            case .finalCR:
                let c = buffer.getInteger(at: index, as: UInt8.self)!
                index += 1
                guard c == 10 else { throw .badChunk }
                state = .done
                break loop
            case .done, .length, .untilClose:
                break loop
            }
        }
        if !dechunk { appendOutput(passStart, index, buffer) }
        passStart = index
        buffer.moveReaderIndex(to: index)
        if dechunk, isDone {
            // An HTTP/1.0 client's body simply ends with the connection.
        }
        return output
    }

    private func hexDigit(_ c: UInt8) -> Int? {
        switch c {
        case 48...57: return Int(c - 48)
        case 65...70: return Int(c - 55)
        case 97...102: return Int(c - 87)
        default: return nil
        }
    }
}
