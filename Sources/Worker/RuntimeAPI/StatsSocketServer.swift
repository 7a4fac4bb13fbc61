import Dispatch
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// The `stats socket` listeners. For now they answer the socket hand-over command of `-x`
/// (`expose-fd listeners`) and refuse the rest with a one-line error; the runtime API proper
/// plugs into the same listeners later. Connections are served one at a time on a dedicated
/// thread with blocking calls, never on an event loop.
final class StatsSocketServer: @unchecked Sendable {
    private let fd: Int32
    private let settings: StatsSocketSettings
    private let listeners: @Sendable () -> [SocketTransfer.Listener]

    init(settings: StatsSocketSettings, listeners: @escaping @Sendable () -> [SocketTransfer.Listener]) throws {
        self.settings = settings
        self.listeners = listeners
        fd = try ListenerSocket.open(settings.address, backlog: 16, unixMode: settings.mode)
    }

    func start() {
        let queue = DispatchQueue(label: "hasp.stats-socket")
        queue.async { [self] in
            while true {
                let connection = accept(fd, nil, nil)
                if connection >= 0 { _ = fcntl(connection, F_SETFD, FD_CLOEXEC) }
                if connection < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return
                }
                serve(connection)
                close(connection)
            }
        }
    }

    private func serve(_ connection: Int32) {
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < 1024 {
            let n = read(connection, &byte, 1)
            if n <= 0 || byte == 10 { break }
            if byte != 13 { line.append(byte) }
        }
        let command = String(decoding: line, as: UTF8.self).trimmingCharacters()
        if command == SocketTransfer.command, settings.exposeFdListeners {
            _ = SocketTransfer.send(listeners(), on: connection)
            return
        }
        let reply = Array("Unknown command: '\(command)'. The runtime API is not available in this version of Hasp.\n\n".utf8)
        _ = reply.withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }
    }
}

private extension String {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
