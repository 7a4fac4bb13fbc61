import CHaspSys

#if canImport(Glibc)
import Glibc
#endif

/// `-x`: listening sockets passed from a running process to its successor over the old one's
/// stats socket (`expose-fd listeners`). Both ends are Hasp; the records are fixed-size so that
/// each descriptor travels with its own description on a stream socket.
public enum SocketTransfer {
    public static let command = "_getsocks"
    static let recordSize = 512

    public typealias Listener = PassedListener

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Old process side: writes every listener on `connection`.
    public static func send(_ listeners: [Listener], on connection: Int32) -> Bool {
        guard sendRecord("COUNT \(listeners.count)", fd: nil, on: connection) else { return false }
        for l in listeners {
            guard sendRecord("\(l.frontend)\t\(l.address)\t\(l.backlog)", fd: l.fd, on: connection) else { return false }
        }
        return true
    }

    private static func sendRecord(_ text: String, fd: Int32?, on connection: Int32) -> Bool {
        var record = Array(text.utf8.prefix(recordSize - 1))
        record.append(contentsOf: repeatElement(0, count: recordSize - record.count))
        var fds: [Int32] = fd.map { [$0] } ?? []
        let n = record.withUnsafeBytes { raw in
            fds.withUnsafeMutableBufferPointer { f in hasp_send_fds(connection, raw.baseAddress, raw.count, f.baseAddress, Int32(f.count)) }
        }
        return n == recordSize
    }

    /// New process side: connects to the old process's socket and takes its listeners.
    public static func fetch(from path: String, timeoutSeconds: Int = 10) throws(Failure) -> [Listener] {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(ConfigLoader.errorText(errno))") }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw Failure(description: "path too long") }
        withUnsafeMutableBytes(of: &address.sun_path) { dst in for (i, b) in bytes.enumerated() { dst[i] = b } }
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard rc == 0 else { throw Failure(description: "connect(\(path)): \(ConfigLoader.errorText(errno))") }
        let request = Array((command + "\n").utf8)
        guard request.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == request.count else {
            throw Failure(description: "write: \(ConfigLoader.errorText(errno))")
        }
        let (header, _) = try readRecord(fd)
        guard header.hasPrefix("COUNT "), let count = Int(header.dropFirst(6)), count >= 0 else {
            throw Failure(description: "unexpected answer '\(header.prefix(80))'")
        }
        var listeners: [Listener] = []
        for _ in 0..<count {
            let (text, received) = try readRecord(fd)
            let fields = text.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 3, let backlog = Int32(fields[2]), let listenerFD = received else {
                for l in listeners { close(l.fd) }
                if let received { close(received) }
                throw Failure(description: "bad listener record")
            }
            listeners.append(Listener(frontend: String(fields[0]), address: String(fields[1]), backlog: backlog, fd: listenerFD))
        }
        return listeners
    }

    private static func readRecord(_ fd: Int32) throws(Failure) -> (String, Int32?) {
        var record = [UInt8](repeating: 0, count: recordSize)
        var got = 0
        var descriptor: Int32? = nil
        while got < recordSize {
            var fds: [Int32] = [-1]
            var count: Int32 = 0
            let n = record.withUnsafeMutableBytes { raw in
                fds.withUnsafeMutableBufferPointer { f in
                    hasp_recv_fds(fd, raw.baseAddress! + got, recordSize - got, f.baseAddress, 1, &count)
                }
            }
            guard n > 0 else { throw Failure(description: n == 0 ? "connection closed" : "read: \(ConfigLoader.errorText(errno))") }
            if count > 0 { descriptor = fds[0] }
            got += n
        }
        let text = String(decoding: record.prefix { $0 != 0 }, as: UTF8.self)
        return (text, descriptor)
    }
}
