import Foundation
import Synchronization
import Testing
@testable import Shared

/// A UNIX listener appears at its path already listening: bound under a temporary name, then
/// renamed into place, as haproxy does.
@Suite struct ListenerSocketTests {
    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "hasp-listener-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func connects(_ path: String) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var sun = sockaddr_un()
        sun.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sun.sun_path) { dst in
            for (i, b) in path.utf8.enumerated() { dst[i] = b }
        }
        let rc = withUnsafePointer(to: &sun) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return rc == 0 ? 0 : errno
    }

    @Test func aStaleFileIsReplacedByAListeningSocketWithItsMode() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/admin.sock"
        try Data("stale".utf8).write(to: URL(fileURLWithPath: path))
        let fd = try ListenerSocket.open(.unix(path: path), backlog: 8, unixMode: 0o600)
        defer { close(fd) }
        var info = stat()
        #expect(stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK && (info.st_mode & 0o777) == 0o600)
        #expect(Self.connects(path) == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["admin.sock"])
    }

    /// A client that connects while the socket is bound again (a reload) always finds a
    /// listener: the old one or the new one, never no file or a file nobody listens on.
    @Test func rebindingNeverLeavesThePathWithoutAListener() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/admin.sock"
        var open = [try ListenerSocket.open(.unix(path: path), backlog: 512)]
        defer { for fd in open { close(fd) } }
        let client = ClientLoop(path: path)
        Thread { client.run() }.start()
        // Old listeners stay open, as an old worker's does while it drains.
        for _ in 0..<300 { open.append(try ListenerSocket.open(.unix(path: path), backlog: 512)) }
        let deadline = Date().addingTimeInterval(5)
        while client.state.withLock({ $0.attempts }) < 300, Date() < deadline { usleep(1000) }
        let state = client.state.withLock { state in
            state.stop = true
            return state
        }
        #expect(state.attempts >= 300 && state.failures == [], "\(state.failures)")
    }

    final class ClientLoop: Sendable {
        let path: String
        let state = Mutex<(stop: Bool, attempts: Int, failures: [Int32])>((false, 0, []))
        init(path: String) { self.path = path }
        func run() {
            while !state.withLock({ $0.stop }) {
                let code = ListenerSocketTests.connects(path)
                state.withLock {
                    $0.attempts += 1
                    if code != 0 { $0.failures.append(code) }
                }
            }
        }
    }
}
