import NIOConcurrencyHelpers
import Shared
#if canImport(Glibc)
import Glibc
#endif

/// Where log lines go: a syslog server over UDP, a local syslog socket (`/dev/log`,
/// `unix@<path>`), or the process's stdout/stderr. Sending never blocks: a datagram the socket
/// cannot take right now is dropped (and counted), as HAProxy does.
final class LogSink: Sendable {
    private enum Destination {
        case datagram(Int32)
        /// A local syslog socket, named again by each send: the path is looked up then (inside
        /// the worker's `chroot`, which is how `/dev/log` reaches the daemon's socket there), and a
        /// syslog daemon that restarted or was not up yet is found again without reopening.
        case unixDatagram(Int32, sockaddr_un)
        /// stdout or stderr, written by a thread of its own: a terminal or pipe that does not
        /// keep up must not stall an event loop.
        case stream(BackgroundWriter)
        /// A `ring` section's memory.
        case ring(EventRing)
    }

    private let destination: Destination
    let dropped = NIOLockedValueBox(0)

    private init(_ destination: Destination) { self.destination = destination }

    /// Opens `address` as HAProxy reads it; nil when it cannot be used. `ring@<name>` is one of
    /// `rings`.
    static func open(_ address: String, rings: [String: EventRing] = [:]) -> LogSink? {
        if address.hasPrefix("ring@") {
            return rings[String(address.dropFirst(5))].map { LogSink(.ring($0)) }
        }
        switch address {
        case "stdout": return LogSink(.stream(BackgroundWriter.standardOutput))
        case "stderr": return LogSink(.stream(BackgroundWriter.standardError))
        default: break
        }
        var text = address
        for prefix in ["udp@", "udp4@", "ipv4@"] where text.hasPrefix(prefix) { text = String(text.dropFirst(prefix.count)) }
        if text.hasPrefix("unix@") || text.hasPrefix("/") {
            if text.hasPrefix("unix@") { text = String(text.dropFirst(5)) }
            return unixDatagram(text).map { LogSink(.unixDatagram($0.fd, $0.address)) }
        }
        var host = text
        var port = 514
        if let colon = text.lastIndex(of: ":"), let p = Int(text[text.index(after: colon)...]) {
            host = String(text[..<colon])
            port = p
        }
        return udp(host: host, port: port).map { LogSink(.datagram($0)) }
    }

    private static func udp(host: String, port: Int) -> Int32? {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { return nil }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { close(fd); return nil }
        return fd
    }

    private static func unixDatagram(_ path: String) -> (fd: Int32, address: sockaddr_un)? {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        return (fd, addr)
    }

    func send(_ line: [UInt8]) {
        switch destination {
        case .datagram(let fd):
            let sent = line.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL)) }
            if sent < 0 { dropped.withLockedValue { $0 += 1 } }
        case .unixDatagram(let fd, var address):
            let sent = line.withUnsafeBytes { bytes in
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                    }
                }
            }
            if sent < 0 { dropped.withLockedValue { $0 += 1 } }
        case .stream(let writer):
            writer.write(line)
        case .ring(let ring):
            ring.append(line)
        }
    }

    /// The ring behind a `ring@<name>` target (its format and length win over the target's).
    var ring: EventRing? {
        if case .ring(let r) = destination { return r }
        return nil
    }

    deinit {
        switch destination {
        case .datagram(let fd), .unixDatagram(let fd, _): close(fd)
        default: break
        }
    }
}

/// An in-memory buffer of lines (a `ring` section), the oldest dropped first once it holds
/// `size` bytes. Appended to from any loop, read by `show events`.
final class EventRing: Sendable {
    let settings: RingSettings
    private let state = NIOLockedValueBox<(lines: [[UInt8]], start: Int, bytes: Int)>(([], 0, 0))

    init(_ settings: RingSettings) { self.settings = settings }

    var name: String { settings.name }

    func append(_ line: [UInt8]) {
        var line = line
        if let max = settings.maxLength, line.count > max {
            line = Array(line.prefix(max - 1)) + [10]
        }
        state.withLockedValue { s in
            s.lines.append(line)
            s.bytes += line.count
            while s.bytes > settings.size, s.start < s.lines.count {
                s.bytes -= s.lines[s.start].count
                s.start += 1
            }
            // Compact now and then rather than on every drop.
            if s.start > 1024, s.start * 2 > s.lines.count {
                s.lines.removeFirst(s.start)
                s.start = 0
            }
        }
    }

    /// The lines it holds, oldest first.
    var contents: [[UInt8]] {
        state.withLockedValue { Array($0.lines[$0.start...]) }
    }
}
