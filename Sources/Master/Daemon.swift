import Shared

#if canImport(Glibc)
import Glibc
#endif

/// `-D`: the launcher starts a detached copy of itself and waits until it serves (or dies).
enum Daemon {
    static let pipeVariable = "HASP_DAEMON_READY_FD"
    static let pipeDescriptor: Int32 = 3

    static var isDetachedChild: Bool { ProcessEnvironment.get(pipeVariable) != nil }

    static func detach(options: LaunchOptions) {
        guard !isDetachedChild else { return }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            DiagnosticPrinter.shared.alert("[hasp.main()] Cannot create the daemon pipe.")
            exit(1)
        }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        let pid: pid_t
        do {
            pid = try Spawner.spawn(path: Spawner.currentExecutable(), arguments: Array(CommandLine.arguments.dropFirst()),
                                    extraEnvironment: [pipeVariable: String(pipeDescriptor)],
                                    descriptors: [(fds[1], pipeDescriptor)], newSession: true)
        } catch {
            DiagnosticPrinter.shared.alert("[hasp.main()] Cannot fork: \(error)")
            exit(1)
        }
        close(fds[1])
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = read(fds[0], &buffer, buffer.count)
        if n > 0, String(decoding: buffer[0..<n], as: UTF8.self).hasPrefix("READY") {
            exit(0)
        }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let code = ProcessStatus(status)
        DiagnosticPrinter.shared.alert("Process \(pid) exited with code \(code.exitCode) (\(code.reason))")
        exit(code.exitCode == 143 ? 0 : code.exitCode)
    }

    /// Called once the detached child serves: tells the launcher, then leaves the terminal.
    static func reportReady() {
        guard isDetachedChild else { return }
        // Said once: a re-executed master must not write to whatever fd 3 has become.
        unsetenv(pipeVariable)
        let message = Array("READY\n".utf8)
        _ = message.withUnsafeBytes { write(pipeDescriptor, $0.baseAddress, $0.count) }
        close(pipeDescriptor)
        let null = open("/dev/null", O_RDWR)
        if null >= 0 {
            dup2(null, 0)
            dup2(null, 1)
            dup2(null, 2)
            if null > 2 { close(null) }
        }
    }
}
