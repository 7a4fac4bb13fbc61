import CHaspSys
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Errors raised by the harness itself.
struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Ports {
    /// Ports handed out come from below the kernel's ephemeral range (which starts at 32768),
    /// one after the other: a port given to one test is never given to another test of the same
    /// run, and never taken meanwhile by the kernel for an outgoing connection or a `bind(0)`.
    /// (Handing out a just-released ephemeral port let two parallel tests share one, each then
    /// talking to the other's hasp.)
    private static let next = Mutex<Int>(20_000 + Int.random(in: 0..<8_000))

    /// An unused loopback TCP port, unique within this test run.
    static func free() throws -> Int {
        for _ in 0..<4_000 {
            let candidate = next.withLock { port -> Int in
                defer { port = port >= 31_999 ? 20_000 : port + 1 }
                return port
            }
            if canBind(candidate) { return candidate }
        }
        throw HarnessError("no free port below the ephemeral range")
    }

    private static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        return rc == 0
    }

    /// Whether a UNIX socket accepts connections: its file appears at bind(), a moment before
    /// listen(), so the file alone does not say it.
    static func isAccepting(unixPath path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { dst in for (i, b) in bytes.enumerated() { dst[i] = b } }
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        return rc == 0
    }

    static func isAccepting(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        return rc == 0
    }
}

/// Polls `condition` until it holds or the deadline passes (never a blind sleep).
func eventually(timeout: Double = 10, _ what: String, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return }
        usleep(10_000)
    }
    throw HarnessError("timed out after \(timeout)s waiting for \(what)")
}

/// The `hasp` binary under test: HASP_BINARY, else the debug build next to the package.
enum HaspBinary {
    static var path: String {
        if let p = ProcessInfo.processInfo.environment["HASP_BINARY"] { return p }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/hasp").path
    }
}

/// A temporary directory removed at deinit.
final class TempDir {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("hasp-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func write(_ name: String, _ text: String) throws -> String {
        let p = path(name)
        // Configuration files end with a line feed, as real ones do (a missing one is refused).
        let content = name.hasSuffix(".cfg") && !text.hasSuffix("\n") ? text + "\n" : text
        try content.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }
    deinit { try? FileManager.default.removeItem(at: url) }
}

/// A child process started by a test and killed by pid when the test ends. Spawned and reaped
/// here with `posix_spawn` and `waitpid`, not Foundation's `Process`: its `run()` on Linux
/// over-reads a directory entry while listing `/proc/self/fd` and now and then crashes the
/// whole test run (swift-corelibs-foundation PR #5472), and its reaper could sit in a blocking
/// wait on one child while another had long exited.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    let stdoutPath: String
    let stderrPath: String
    private let ending = Mutex<(code: Int32, bySignal: Bool)?>(nil)

    /// `stdout`: a descriptor to give the child as its standard output instead of the file;
    /// `descriptor3`: one the child gets as its descriptor 3 (a listener for `fd@3`).
    init(_ executable: String, _ arguments: [String], dir: TempDir, name: String = "proc",
         environment: [String: String] = [:], stdout: Int32? = nil, descriptor3: Int32? = nil) throws {
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        stdoutPath = dir.path("\(name).out")
        stderrPath = dir.path("\(name).err")
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let stdout {
            posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_TRUNC, 0)
        }
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_TRUNC, 0)
        // Nothing else of the test process (its sockets, other children's pipes) reaches the
        // child, whether or not it was opened close-on-exec.
        if let descriptor3 { posix_spawn_file_actions_adddup2(&actions, descriptor3, 3) }
        hasp_spawn_add_closefrom(&actions, descriptor3 == nil ? 3 : 4)

        // Signals as a fresh process has them: none blocked, each with its default action.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var child: pid_t = 0
        let failed = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        guard failed == 0 else { throw HarnessError("cannot start \(executable): \(String(cString: strerror(failed)))") }
        pid = child
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    func signal(_ sig: Int32) { kill(pid, sig) }

    /// How the process ended, once it has (reaped on the first look that finds it ended).
    var ended: (code: Int32, bySignal: Bool)? {
        ending.withLock { ending in
            if let ending { return ending }
            var status: Int32 = 0
            guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
            // WIFEXITED: the low seven bits are zero; the code is in the next byte. Otherwise
            // the low seven bits are the signal.
            let signal = status & 0x7f
            ending = signal == 0 ? ((status >> 8) & 0xff, false) : (signal, true)
            return ending
        }
    }

    var isRunning: Bool { ended == nil }

    /// Waits for exit; returns the termination status (exit code, or signal number for signals).
    func waitExit(timeout: Double = 10) throws -> (code: Int32, bySignal: Bool) {
        var result: (code: Int32, bySignal: Bool)?
        try eventually(timeout: timeout, "process \(pid) to exit") {
            result = ended
            return result != nil
        }
        return result!
    }

    /// Kills the process and reaps it (boundedly: a killed process has released its sockets
    /// already, and one that is not reaped yet is reaped at the next look).
    func stop() {
        guard isRunning else { return }
        kill(pid, SIGKILL)
        try? eventually(timeout: 2, "process \(pid) to be reaped") { !isRunning }
    }

    deinit { stop() }
}

/// Runs `hasp` on a configuration text and waits until `port` accepts connections.
/// `@DIR@` in the text stands for the process's own temporary directory (for socket paths).
final class Hasp {
    let dir: TempDir
    let child: ChildProcess
    let configPath: String

    /// `binary`: another program to run the same way (Debian's haproxy, for differential tests).
    init(config: String, waitFor ports: [Int], arguments: [String] = ["-db"], environment: [String: String] = [:],
         binary: String = HaspBinary.path) throws {
        dir = try TempDir()
        let here = dir.url.path
        configPath = try dir.write("hasp.cfg", config.replacingOccurrences(of: "@DIR@", with: here))
        let arguments = arguments.map { $0.replacingOccurrences(of: "@DIR@", with: here) }
        child = try ChildProcess(binary, arguments + ["-f", configPath], dir: dir, name: "hasp", environment: environment)
        for port in ports {
            try eventually("hasp to listen on \(port)") {
                guard child.isRunning else { throw HarnessError("hasp exited early: \(child.stderr)") }
                return Ports.isAccepting(port)
            }
        }
    }

    var pid: Int32 { child.pid }
    func stop() { child.stop() }
    deinit { child.stop() }
}

/// Copies an executable for a test to run. `cp` writes it, not this process: a descriptor open
/// for writing here would be inherited by any child another test spawns meanwhile, and running
/// the copy would then fail with ETXTBSY for as long as that child lives.
func copyExecutable(_ source: String, to destination: String) throws {
    let copied = try run("/bin/cp", [source, destination])
    guard copied.status == 0 else { throw HarnessError("cp \(source) \(destination): \(copied.stderr)") }
}

/// Runs a command to completion and returns its status and output.
@discardableResult
func run(_ executable: String, _ arguments: [String], timeout: Double = 60) throws -> (status: Int32, stdout: String, stderr: String) {
    let dir = try TempDir()
    let child = try ChildProcess(executable, arguments, dir: dir, name: "cmd")
    let status = try child.waitExit(timeout: timeout).code
    return (status, child.stdout, child.stderr)
}

func curl(_ arguments: [String], timeout: Double = 60) throws -> (status: Int32, stdout: String, stderr: String) {
    try run("/usr/bin/curl", ["-sS", "--max-time", String(Int(timeout))] + arguments, timeout: timeout + 5)
}

/// FNV-1a, 64 bits: a cheap checksum both ends can compute while streaming.
struct FNV1a {
    var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        for b in bytes {
            value ^= UInt64(b)
            value = value &* 0x0000_0100_0000_01B3
        }
    }
    var hex: String { String(value, radix: 16) }
}

/// The deterministic byte pattern backends stream for `/bytes/N`.
enum Pattern {
    static func byte(at offset: Int) -> UInt8 { UInt8(truncatingIfNeeded: (offset &* 31) ^ (offset >> 8)) }
    static func chunk(from offset: Int, count: Int) -> [UInt8] { (offset..<(offset + count)).map(byte(at:)) }
}
