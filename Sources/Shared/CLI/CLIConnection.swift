#if canImport(Glibc)
import Glibc
#endif

/// A CLI client connection served with blocking calls on its own thread: buffered line reads
/// bounded by a deadline and a size, and whole writes.
public final class CLIConnection {
    public let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    public private(set) var sawEOF = false
    /// The longest accepted line (HAProxy's limit is the buffer size).
    public var maxLine: Int

    public init(fd: Int32, maxLine: Int = 16_384) {
        self.fd = fd
        self.maxLine = maxLine
    }

    public enum LineResult: Equatable {
        case line(String)
        case eof
        case timeout
        case tooLong
    }

    /// The next line without its `\n` (a `\r` before it is dropped). `timeoutMs` < 0 waits forever.
    public func readLine(timeoutMs: Int) -> LineResult {
        let deadline = timeoutMs < 0 ? nil : MonotonicClock.milliseconds() + timeoutMs
        while true {
            if let nl = buffer[start...].firstIndex(of: 10) {
                var end = nl
                if end > start, buffer[end - 1] == 13 { end -= 1 }
                let line = String(decoding: buffer[start..<end], as: UTF8.self)
                start = nl + 1
                compact()
                return .line(line)
            }
            if buffer.count - start > maxLine { return .tooLong }
            if sawEOF {
                // A last line without its newline still counts.
                guard buffer.count > start else { return .eof }
                let line = String(decoding: buffer[start...], as: UTF8.self)
                start = buffer.count
                compact()
                return .line(line)
            }
            var wait: Int32 = -1
            if let deadline {
                let left = deadline - MonotonicClock.milliseconds()
                if left <= 0 { return .timeout }
                wait = Int32(clamping: left)
            }
            switch waitReadable(timeoutMs: wait) {
            case .ready: fill()
            case .timeout: return .timeout
            case .closed: sawEOF = true
            }
        }
    }

    /// True once the client closed its input and nothing it sent is left to run (for `wait`).
    /// Reads pending bytes into the buffer, consuming nothing.
    public func inputClosed() -> Bool {
        if !sawEOF {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 0) > 0 {
                if p.revents & Int16(POLLIN) != 0 { fill() } else { sawEOF = true }
            }
        }
        return sawEOF && buffer.count == start
    }

    public enum Readiness { case ready, timeout, closed }

    public func waitReadable(timeoutMs: Int32) -> Readiness {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let r = poll(&p, 1, timeoutMs)
            if r < 0 && errno == EINTR { continue }
            if r == 0 { return .timeout }
            if r < 0 { return .closed }
            if p.revents & Int16(POLLIN) != 0 { return .ready }
            return .closed
        }
    }

    private func fill() {
        var chunk = [UInt8](repeating: 0, count: 4096)
        let n = read(fd, &chunk, chunk.count)
        if n > 0 { buffer.append(contentsOf: chunk[0..<n]) } else if n == 0 || (errno != EINTR && errno != EAGAIN) { sawEOF = true }
    }

    private func compact() {
        if start > 4096 || start == buffer.count {
            buffer.removeFirst(start)
            start = 0
        }
    }

    /// Everything buffered but not yet returned as a line.
    public func takeBuffered() -> [UInt8] {
        defer { buffer.removeAll(); start = 0 }
        return Array(buffer[start...])
    }

    /// Writes everything, or gives up when the peer is gone or stops reading for `timeoutMs`.
    @discardableResult
    public func write(_ text: String, timeoutMs: Int32 = 10_000) -> Bool {
        Self.writeAll(fd: fd, Array(text.utf8), timeoutMs: timeoutMs)
    }

    @discardableResult
    public static func writeAll(fd: Int32, _ bytes: [UInt8], timeoutMs: Int32 = 10_000) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { offset += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                if poll(&p, 1, timeoutMs) <= 0 { return false }
                continue
            }
            return false
        }
        return true
    }
}
