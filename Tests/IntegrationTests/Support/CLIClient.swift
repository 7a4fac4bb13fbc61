import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A client of a unix-socket CLI (stats socket or master CLI), with deadlines on every read.
final class CLIClient: @unchecked Sendable {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { dst in
            for (i, b) in bytes.enumerated() where i < dst.count - 1 { dst[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        // On failure deinit closes the socket: closing it here too would close a number some
        // other thread may have been given meanwhile.
        guard rc == 0 else { throw HarnessError("connect to \(path) failed: errno \(errno)") }
    }

    deinit { close(fd) }

    func send(_ text: String) throws { try sendAll(fd, Array(text.utf8)) }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads until the server closes; throws past the deadline.
    func readToEnd(timeout: Double = 10) throws -> String {
        while try fill(timeout: timeout) {}
        defer { buffer.removeAll() }
        return String(decoding: buffer, as: UTF8.self)
    }

    /// Reads until the received text ends with `suffix`; returns it and consumes it.
    func read(until suffix: String, timeout: Double = 10) throws -> String {
        let end = Array(suffix.utf8)
        let deadline = Date().addingTimeInterval(timeout)
        while !(buffer.count >= end.count && Array(buffer.suffix(end.count)) == end) {
            let left = deadline.timeIntervalSinceNow
            guard left > 0, try fill(timeout: left) else {
                throw HarnessError("no '\(suffix)' after: \(String(decoding: buffer, as: UTF8.self))")
            }
        }
        defer { buffer.removeAll() }
        return String(decoding: buffer, as: UTF8.self)
    }

    /// True while the connection is open: false on EOF. Throws on timeout.
    private func fill(timeout: Double) throws -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let r = poll(&p, 1, Int32(max(1, timeout * 1000)))
        guard r > 0 else { throw HarnessError("timed out; got: \(String(decoding: buffer, as: UTF8.self))") }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &chunk, chunk.count, 0)
        if n <= 0 { return false }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    /// One command line on a new connection, the whole answer (non-interactive use).
    static func ask(_ path: String, _ line: String, timeout: Double = 10) throws -> String {
        let client = try CLIClient(path: path)
        try client.send(line + "\n")
        // The master CLI is always interactive: end the session with the input.
        client.shutdownWrite()
        return try client.readToEnd(timeout: timeout)
    }
}
