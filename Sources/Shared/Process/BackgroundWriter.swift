#if canImport(Glibc)
import Glibc
#endif

/// Writes to a descriptor (stderr, stdout) so that an event loop that reports something never
/// waits for a slow pipe, a full terminal or a stopped reader: a line goes out at once when the
/// descriptor has room and nothing waits before it, and otherwise through a thread of its own.
///
/// Bounded: once `limit` bytes wait, further lines are dropped and counted, as HAProxy drops
/// log lines its ring cannot take. What is queued is written before the process exits normally
/// (an `atexit` hook flushes every writer, waiting at most a second for each).
public final class BackgroundWriter: @unchecked Sendable {
    public let fd: Int32
    public let limit: Int
    private var mutex = pthread_mutex_t()
    private var changed = pthread_cond_t()
    private var pending: [[UInt8]] = []
    private var pendingBytes = 0
    private var writing = false
    private var droppedLines = 0

    /// The process's writers for stdout and stderr: one each, so that lines never mix.
    public static let standardOutput = BackgroundWriter(fd: 1)
    public static let standardError = BackgroundWriter(fd: 2)

    public init(fd: Int32, limit: Int = 4 << 20) {
        self.fd = fd
        self.limit = limit
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&changed, nil)
        Self.register(self)
        DetachedThread.start { [self] in run() }
    }

    /// Lines dropped because too much was waiting.
    public var dropped: Int {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return droppedLines
    }

    /// Writes `bytes` at once when that cannot block (nothing is waiting before them, and the
    /// descriptor reports room for a write this size), else queues them: the order is kept, the
    /// caller never waits for the reader, and in the usual case the line is out on return.
    public func write(_ bytes: [UInt8]) {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        if pending.isEmpty, !writing, bytes.count <= Int(PIPE_BUF) {
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            if poll(&p, 1, 0) == 1, p.revents & Int16(POLLOUT) != 0 {
                let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                if n == bytes.count { return }
                if n > 0 {
                    // Short write: the rest goes through the thread.
                    append(Array(bytes[n...]))
                    return
                }
            }
        }
        append(bytes)
    }

    /// Queues `bytes` for the writer thread; never blocks for longer than a short lock.
    public func enqueue(_ bytes: [UInt8]) {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        append(bytes)
    }

    /// Under the lock.
    private func append(_ bytes: [UInt8]) {
        guard pendingBytes + bytes.count <= limit else {
            droppedLines += 1
            return
        }
        pending.append(bytes)
        pendingBytes += bytes.count
        pthread_cond_broadcast(&changed)
    }

    /// Returns once everything queued so far has been written, or `timeoutMs` has passed
    /// (a reader that never reads must not keep the process from exiting); true when written.
    @discardableResult
    public func flush(timeoutMs: Int = 2_000) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let nanos = Int(deadline.tv_nsec) + (timeoutMs % 1_000) * 1_000_000
        deadline.tv_sec += timeoutMs / 1_000 + nanos / 1_000_000_000
        deadline.tv_nsec = nanos % 1_000_000_000
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while !pending.isEmpty || writing {
            if pthread_cond_timedwait(&changed, &mutex, &deadline) == ETIMEDOUT { return false }
        }
        return true
    }

    private func run() {
        // A reader that went away makes write() fail with EPIPE here rather than raise SIGPIPE
        // (which is directed at the writing thread; blocked, it never kills the process).
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
        while true {
            pthread_mutex_lock(&mutex)
            while pending.isEmpty { pthread_cond_wait(&changed, &mutex) }
            let batch = pending
            pending = []
            pendingBytes = 0
            writing = true
            pthread_mutex_unlock(&mutex)
            for bytes in batch { Self.writeAll(fd, bytes) }
            pthread_mutex_lock(&mutex)
            writing = false
            pthread_cond_broadcast(&changed)
            pthread_mutex_unlock(&mutex)
        }
    }

    /// Writes all of `bytes` to `fd`, blocking as long as it takes; false on an error or when
    /// nothing more could be written.
    @discardableResult
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return false }
            offset += n
        }
        return true
    }

    // MARK: - Flushing at exit

    private static let registry = Registry()

    private final class Registry: @unchecked Sendable {
        var mutex = pthread_mutex_t()
        var writers: [BackgroundWriter] = []
        var hooked = false
        init() { pthread_mutex_init(&mutex, nil) }
    }

    private static func register(_ writer: BackgroundWriter) {
        pthread_mutex_lock(&registry.mutex)
        defer { pthread_mutex_unlock(&registry.mutex) }
        registry.writers.append(writer)
        if !registry.hooked {
            registry.hooked = true
            atexit { BackgroundWriter.flushAll() }
        }
    }

    /// Writes out what every writer still holds (at exit), waiting a bounded time for each.
    public static func flushAll() {
        pthread_mutex_lock(&registry.mutex)
        let writers = registry.writers
        pthread_mutex_unlock(&registry.mutex)
        for writer in writers { writer.flush(timeoutMs: 1_000) }
    }
}
