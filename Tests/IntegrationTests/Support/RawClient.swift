import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP client with receive timeouts, for byte-exact exchanges.
final class RawClient: @unchecked Sendable {
    let fd: Int32

    init(port: Int, timeout: Double = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        // On failure deinit closes the socket (closing it here too would close it twice).
        guard rc == 0 else { throw HarnessError("connect to \(port) failed: errno \(errno)") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws { try sendAll(fd, bytes) }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads until the peer closes (or the timeout); returns everything.
    func readToEnd() -> [UInt8] {
        var all: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            all.append(contentsOf: buffer[0..<n])
        }
        return all
    }

    /// Reads until `count` complete HTTP responses (with content-length bodies) have arrived.
    func readResponses(_ count: Int) throws -> [String] {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            if let responses = Self.split(data), responses.count >= count { return responses }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 {
                // How it ended tells a close from a reset from a timeout.
                let how = n == 0 ? "closed" : errno == EAGAIN ? "timed out" : "failed (errno \(errno))"
                throw HarnessError("connection \(how) after \(String(decoding: data, as: UTF8.self).debugDescription)")
            }
            data.append(contentsOf: buffer[0..<n])
        }
    }

    /// True when the peer has closed the connection (EOF) within the timeout.
    func isClosedByPeer() -> Bool {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, 0)
        return n == 0
    }

    static func split(_ data: [UInt8]) -> [String]? {
        var result: [String] = []
        var rest = data[...]
        while let headEnd = rest.firstRange(of: Array("\r\n\r\n".utf8)) {
            let head = String(decoding: rest[rest.startIndex..<headEnd.lowerBound], as: UTF8.self)
            var length = 0
            for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                length = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
            }
            let bodyEnd = headEnd.upperBound + length
            guard bodyEnd <= rest.endIndex else { break }
            result.append(String(decoding: rest[rest.startIndex..<bodyEnd], as: UTF8.self))
            rest = rest[bodyEnd...]
        }
        return result
    }
}

/// Writes all of `bytes` on a socket (no SIGPIPE).
func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
        guard n > 0 else { throw HarnessError("send failed: errno \(errno)") }
        offset += n
    }
}
