import Dispatch

#if canImport(Glibc)
import Glibc
#endif

/// Turns POSIX signals into closures run on a serial queue (never inside a signal handler).
final class SignalRouter: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private let queue = DispatchQueue(label: "hasp.signals")

    static let handled: [Int32] = [SIGUSR1, SIGUSR2, SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGTTOU, SIGTTIN]
    // SIGCHLD is not ignored: an ignored SIGCHLD makes the kernel reap children itself, and the
    // master must see its workers' exit statuses. Its dispatch source works with the default.

    /// Ignores the handled signals' default actions so that the dispatch sources receive them.
    static func blockHandledSignals() {
        for sig in handled { signal(sig, SIG_IGN) }
    }

    func on(_ sig: Int32, queue target: DispatchQueue? = nil, _ action: @escaping @Sendable () -> Void) {
        if sig != SIGCHLD { signal(sig, SIG_IGN) }
        let source = DispatchSource.makeSignalSource(signal: sig, queue: target ?? queue)
        source.setEventHandler(handler: action)
        source.resume()
        sources.append(source)
    }

    /// The signals of a process that serves traffic (standalone or worker): SIGUSR1 soft-stops
    /// the engine once it runs (before that, the process simply exits), SIGTERM and SIGINT end it
    /// at once, the rest are ignored. Keep the router alive as long as the process runs.
    static func forServingProcess(_ slot: EngineSlot) -> SignalRouter {
        blockHandledSignals()
        let router = SignalRouter()
        router.on(SIGUSR1) {
            guard let engine = slot.engine else { exit(0) }
            engine.softStop()
        }
        router.on(SIGTERM) { dieBySignal(SIGTERM) }
        router.on(SIGINT) { dieBySignal(SIGINT) }
        for ignored in [SIGHUP, SIGUSR2, SIGPIPE] { router.on(ignored) {} }
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
