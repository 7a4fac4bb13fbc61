import Atomics
import CHaspSys
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// One `stats socket` listener: a thread accepts clients and gives each one to the runtime API
/// at the socket's level. It polls so that a soft-stop can end it without touching the socket
/// itself (a TCP stats socket passed by the master is shared with the next worker).
final class StatsSocketServer: Sendable {
    private let fd: Int32
    private let settings: StatsSocketSettings
    private let stopped = ManagedAtomic<Bool>(false)

    /// Listens on `inheritedFD` when given (passed by the master), else binds the address.
    init(settings: StatsSocketSettings, inheritedFD: Int32?) throws {
        self.settings = settings
        fd = try inheritedFD ?? ListenerSocket.open(settings.address, backlog: 64, unixMode: settings.mode)
    }

    func start(api: RuntimeAPI) {
        let level = CLILevel(name: settings.level) ?? .operator
        let name = settings.address.description
        DetachedThread.start { [self] in
            while !stopped.load(ordering: .relaxed) {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let r = poll(&p, 1, 200)
                if r <= 0 { continue }
                let connection = accept(fd, nil, nil)
                if connection >= 0 { _ = hasp_set_cloexec(connection, 1) }
                if connection < 0 {
                    if errno == EINTR || errno == ECONNABORTED || errno == EAGAIN { continue }
                    // Out of descriptors: let the backlog wait rather than spin.
                    if errno == EMFILE || errno == ENFILE { _ = poll(nil, 0, 100); continue }
                    return
                }
                api.serve(fd: connection, level: level, exposesListeners: settings.exposeFdListeners, listenerName: name)
            }
            close(fd)
        }
    }

    /// Stops accepting (soft-stop); sessions already open go on.
    func stop() {
        stopped.store(true, ordering: .relaxed)
    }
}
