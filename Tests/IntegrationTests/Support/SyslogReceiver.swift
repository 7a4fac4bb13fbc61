import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// A syslog server that keeps every datagram it receives: UDP on an ephemeral loopback port, or
/// a unix socket.
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
        Self.receive(on: made, into: lines)
    }

    /// A syslog stand-in on a unix datagram socket at `path` (what /dev/log is), writable by
    /// any user (a worker that dropped root sends to it).
    init(unixPath path: String) throws {
        let made = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        fd = made
        port = 0
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(made, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard rc == 0 else { throw HarnessError("cannot bind \(path)") }
        chmod(path, 0o666)
        Self.receive(on: made, into: lines)
    }

    /// Keeps every datagram, on a thread of its own, until the socket is shut down.
    private static func receive(on socketFD: Int32, into lines: NIOLockedValueBox<[String]>) {
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
