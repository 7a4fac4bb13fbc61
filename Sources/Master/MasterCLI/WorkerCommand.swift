import Shared

#if canImport(Glibc)
import Glibc
#endif

/// A runtime-API session in a worker, opened by the master: a fresh socketpair whose other end
/// travels over the worker's channel, where the worker serves it at level admin.
enum WorkerCommand {
    /// The master's end of a new session with worker `pid`; nil if the worker cannot be reached.
    static func open(with pid: Int32, table: ProcessTable) -> Int32? {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else { return nil }
        let sent = table.withChannel(of: pid) { channel in
            (try? channel.send(.cli, descriptors: [fds[1]])) != nil
        }
        close(fds[1])
        guard sent == true else {
            close(fds[0])
            return nil
        }
        return fds[0]
    }

    enum Outcome { case answered, timedOut, unreachable }

    /// Sends one line, closes the worker's input, and hands each piece of the answer to
    /// `output` until the worker closes (or `output` returns false), within `timeoutMs`.
    static func run(_ line: String, on pid: Int32, table: ProcessTable, timeoutMs: Int,
                    output: ([UInt8]) -> Bool) -> Outcome {
        guard let fd = open(with: pid, table: table) else { return .unreachable }
        defer { close(fd) }
        guard CLIConnection.writeAll(fd: fd, Array(line.utf8), timeoutMs: Int32(clamping: timeoutMs)) else { return .unreachable }
        shutdown(fd, Int32(SHUT_WR))
        let deadline = MonotonicClock.milliseconds() + timeoutMs
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            let left = deadline - MonotonicClock.milliseconds()
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if left <= 0 || poll(&p, 1, Int32(clamping: left)) == 0 { return .timedOut }
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return .answered }
            if !output(Array(chunk[0..<n])) { return .answered }
        }
    }
}
