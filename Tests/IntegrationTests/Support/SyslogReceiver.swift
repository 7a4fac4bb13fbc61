import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// A UDP syslog server on an ephemeral loopback port that keeps every datagram it receives.
final class SyslogReceiver: @unchecked Sendable {
    let fd: Int32
    let port: Int
    private let lines = NIOLockedValueBox<[String]>([])

    init() throws {
        let made = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        fd = made
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(made, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw HarnessError("syslog bind failed") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(made, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        let socketFD = self.fd
        let lines = self.lines
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = recv(socketFD, &buffer, buffer.count, 0)
                if n <= 0 { return }
                let text = String(decoding: buffer[0..<n], as: UTF8.self)
                lines.withLockedValue { $0.append(text) }
            }
        }
    }

    var received: [String] { lines.withLockedValue { $0 } }

    /// Ends the receiving thread; the socket is closed once, at deinit.
    func stop() { shutdown(fd, Int32(SHUT_RDWR)) }
    deinit { stop(); close(fd) }
}
