import CHaspSys
import Shared
import Dispatch

#if canImport(Glibc)
import Glibc
#endif

/// Turns POSIX signals into closures run on a queue (never inside a signal handler).
///
/// A C handler writes each signal's number to a pipe that one thread reads. Installing a
/// handler is synchronous, unlike libdispatch's signal sources, whose registration happens later
/// on its manager thread: a signal sent right after start-up (or after a re-exec) is never lost.
/// A signal that arrives before its action is registered waits for it.
final class SignalRouter: @unchecked Sendable {
    static let shared = SignalRouter()

    static let handled: [Int32] = [SIGUSR1, SIGUSR2, SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGTTOU, SIGTTIN, SIGCHLD]

    private var mutex = pthread_mutex_t()
    private var actions: [Int32: (DispatchQueue, @Sendable () -> Void)] = [:]
    private var pending: Set<Int32> = []
    private var readerStarted = false
    private let defaultQueue = DispatchQueue(label: "hasp.signals")

    private init() { pthread_mutex_init(&mutex, nil) }

    /// Catches every handled signal now (actions may come later).
    static func blockHandledSignals() {
        shared.install(handled)
    }

    func on(_ sig: Int32, queue target: DispatchQueue? = nil, _ action: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(&mutex)
        actions[sig] = (target ?? defaultQueue, action)
        let wasPending = pending.remove(sig) != nil
        pthread_mutex_unlock(&mutex)
        install([sig])
        if wasPending { (target ?? defaultQueue).async(execute: action) }
    }

    private func install(_ sigs: [Int32]) {
        let fd = sigs.withUnsafeBufferPointer { hasp_signals_install($0.baseAddress, Int32($0.count)) }
        guard fd >= 0 else { return }
        pthread_mutex_lock(&mutex)
        let start = !readerStarted
        readerStarted = true
        pthread_mutex_unlock(&mutex)
        if start {
            DetachedThread.start { [self] in readLoop(fd) }
        }
    }

    private func readLoop(_ fd: Int32) {
        var byte: UInt8 = 0
        while true {
            let n = read(fd, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            let sig = Int32(byte)
            pthread_mutex_lock(&mutex)
            let entry = actions[sig]
            if entry == nil { pending.insert(sig) }
            pthread_mutex_unlock(&mutex)
            if let (queue, action) = entry { queue.async(execute: action) }
        }
    }

    /// Keeps the handled signals pending across an exec: the new image catches them once its
    /// handlers are in place.
    static func blockForExec() {
        handled.withUnsafeBufferPointer { hasp_signals_block($0.baseAddress, Int32($0.count)) }
    }

    /// The signals of a process that serves traffic (standalone or worker): SIGUSR1 soft-stops
    /// the engine once it runs (before that, the process simply exits), SIGTERM and SIGINT end it
    /// at once, the rest are ignored.
    static func forServingProcess(_ slot: EngineSlot) -> SignalRouter {
        blockHandledSignals()
        let router = shared
        router.on(SIGUSR1) {
            guard let engine = slot.engine else { exit(0) }
            engine.softStop()
        }
        router.on(SIGTERM) { dieBySignal(SIGTERM) }
        router.on(SIGINT) { dieBySignal(SIGINT) }
        for ignored in [SIGHUP, SIGUSR2, SIGPIPE, SIGTTOU, SIGTTIN, SIGCHLD] { router.on(ignored) {} }
        return router
    }

    /// Ends the process the way the default action of `sig` would, so the parent sees the signal.
    static func dieBySignal(_ sig: Int32) -> Never {
        signal(sig, SIG_DFL)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, sig)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        raise(sig)
        _exit(128 + sig)
    }
}

enum PidFile {
    static func write(_ path: String, pid: Int32) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            DiagnosticPrinterBridge.alert("[hasp.main()] Cannot create pidfile \(path)")
            return
        }
        let text = Array("\(pid)\n".utf8)
        _ = text.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }
}
