import CHaspSys
import Worker
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// The master CLI (`-S`): its listeners, and one session thread per client. Commands are
/// answered by the master or forwarded to a worker (see MasterCLI+Routing).
final class MasterCLI: @unchecked Sendable {
    /// A `-S` listener: its socket and the spec it was made from (`<addr>[,level,<l>]...`).
    typealias Listener = MasterCLIListener

    let supervisor: Supervisor
    let table: ProcessTable
    let listeners: [Listener]
    let commands: CLICommandTable<MasterSession>
    /// Bound on a forwarded command's answer and on an idle session (`stats timeout`, as on the
    /// workers' sockets: an abandoned client never holds a thread for long).
    var timeoutMs: Int { table.read().cliTimeoutMs }

    init(supervisor: Supervisor, table: ProcessTable, listeners: [Listener]) {
        self.supervisor = supervisor
        self.table = table
        self.listeners = listeners
        commands = CLICommandTable(MasterCLI.commandList())
    }

    /// Binds the `-S` listeners of a first start.
    static func bind(_ specs: [String]) throws -> [Listener] {
        var result: [Listener] = []
        do {
            for spec in specs {
                let options = Options(spec)
                guard let address = (try? AddressParser.listenAddresses(options.address))?.first else {
                    throw StartupError("-S: invalid master CLI address '\(options.address)'")
                }
                do {
                    let fd = try ListenerSocket.open(address, backlog: 64, unixMode: options.mode ?? 0o600)
                    result.append(Listener(fd: fd, spec: spec))
                } catch {
                    throw StartupError("Cannot create the master CLI listener '\(options.address)': \(error)")
                }
            }
        } catch {
            for l in result { close(l.fd) }
            throw error
        }
        return result
    }

    /// The keywords of a `-S` spec that matter once the socket exists.
    struct Options {
        var address: String
        var level: CLILevel = .admin
        var mode: UInt32? = nil

        init(_ spec: String) {
            let parts = spec.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            address = parts[0]
            var i = 1
            while i + 1 < parts.count {
                switch parts[i] {
                case "level": level = CLILevel(name: parts[i + 1]) ?? .admin
                case "mode": mode = UInt32(parts[i + 1], radix: 8)
                default: break
                }
                i += 2
            }
        }
    }

    func start() {
        for listener in listeners {
            let level = Options(listener.spec).level
            DetachedThread.start { [self] in acceptLoop(listener.fd, level: level) }
        }
    }

    private func acceptLoop(_ fd: Int32, level: CLILevel) {
        while true {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, -1) <= 0 { continue }
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EMFILE || errno == ENFILE { _ = poll(nil, 0, 100) }
                continue
            }
            _ = hasp_set_cloexec(client, 1)
            if !DetachedThread.start({ [self] in serve(client, level: level) }) { close(client) }
        }
    }

    private func serve(_ fd: Int32, level: CLILevel) {
        let connection = CLIConnection(fd: fd)
        let context = MasterSession(cli: self, connection: connection)
        let session = CLISession(connection: connection, table: commands, context: context,
                                 state: CLISessionState(level: level), idleTimeoutMs: timeoutMs)
        session.workerStyle = false
        session.promptText = { [self] state in prompt(state, target: context.target) }
        session.route = { [self] command, session in route(command, session) }
        session.lineHook = { [self] line, session in bidirectional(line, session) }
        context.session = session
        session.run()
        if !context.keepsDescriptor { close(fd) }
    }

    func prompt(_ state: CLISessionState, target: Int32) -> String {
        let snapshot = table.read()
        var name: String
        var startedAt: Int? = snapshot.masterStartedAt
        if target == 0 {
            name = snapshot.lastReloadFailed ? "master[ReloadFailed]" : "master"
        } else {
            name = "\(target)"
            startedAt = snapshot.workers.first(where: { $0.pid == target })?.startedAt
        }
        var flags = ""
        if state.experimental { flags += "x" }
        if state.expert { flags += "e" }
        if state.mcliDebug { flags += "d" }
        if !flags.isEmpty { name += "(\(flags))" }
        var text = name + "> "
        if state.timedPrompt {
            if let startedAt {
                text = Uptime(seconds: Int(time(nil)) - startedAt).prompt + " " + text
            } else {
                text = "[gone] " + text
            }
        }
        return text
    }
}

/// One master CLI session: the CLI, the connection, the default target (0: the master).
final class MasterSession {
    let cli: MasterCLI
    let connection: CLIConnection
    var target: Int32 = 0
    weak var session: CLISession<MasterSession>?
    /// Set when `reload` handed the descriptor to the supervisor.
    var keepsDescriptor = false

    init(cli: MasterCLI, connection: CLIConnection) {
        self.cli = cli
        self.connection = connection
    }
}
