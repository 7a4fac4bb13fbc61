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

    /// 0 when a listener is behind the path. Non-blocking: nobody accepts, and a full backlog
    /// (EAGAIN) still means a listener is there.
    static func connects(_ path: String) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue), 0)
        defer { close(fd) }
        var sun = sockaddr_un()
        sun.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sun.sun_path) { dst in
            for (i, b) in path.utf8.enumerated() { dst[i] = b }
        }
        let rc = withUnsafePointer(to: &sun) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return rc == 0 || errno == EAGAIN ? 0 : errno
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
        let rebinder = Rebinder(path: path, first: try ListenerSocket.open(.unix(path: path), backlog: 512))
        defer { rebinder.closeAll() }
        Thread { rebinder.run(times: 300) }.start()
        // Connect for as long as the rebinding goes on, and at least 300 times.
        var attempts = 0
        var failures: [Int32] = []
        while !rebinder.isDone || attempts < 300 {
            let code = Self.connects(path)
            if code != 0 { failures.append(code) }
            attempts += 1
        }
        #expect(rebinder.error == nil && failures == [], "\(failures)")
    }

    /// Binds the path again and again from its own thread; old listeners stay open, as an old
    /// worker's does while it drains.
    final class Rebinder: Sendable {
        let path: String
        private let state: Mutex<(open: [Int32], done: Bool, error: String?)>
        init(path: String, first: Int32) {
            self.path = path
            state = Mutex(([first], false, nil))
        }
        var isDone: Bool { state.withLock { $0.done } }
        var error: String? { state.withLock { $0.error } }
        func run(times: Int) {
            for _ in 0..<times {
                do {
                    let fd = try ListenerSocket.open(.unix(path: path), backlog: 512)
                    state.withLock { $0.open.append(fd) }
                } catch {
                    state.withLock { $0.error = "\(error)" }
                    break
                }
            }
            state.withLock { $0.done = true }
        }
        func closeAll() { state.withLock { for fd in $0.open { close(fd) } } }
    }
}
