import Shared

#if canImport(Glibc)
import Glibc
#endif

/// The worker's runtime API: the command table and what its commands read and change. Every
/// session runs on its own thread with blocking I/O; commands read atomics or ask the event
/// loops for a snapshot, and never block a loop.
public final class RuntimeAPI: @unchecked Sendable {
    let runtime: WorkerRuntime
    let engine: Engine
    /// Wall-clock and monotonic start, for `Uptime` and `Start_time_sec`.
    var startedAt: Int { runtime.startedAt }
    var startedAtMs: Int { runtime.startedAtMs }
    /// `stats timeout`.
    let idleTimeoutMs: Int
    let table: CLICommandTable<RuntimeSession>

    init(runtime: WorkerRuntime, engine: Engine) {
        self.runtime = runtime
        self.engine = engine
        idleTimeoutMs = Int(clamping: runtime.configuration.global.statsTimeoutMs)
        table = CLICommandTable(RuntimeAPI.commands())
    }

    /// This process's copy of the start-up messages (taken when it started serving).
    var startupLogs: [String] { DiagnosticPrinter.shared.startupLog }

    /// Serves one client connection on a thread of its own; the descriptor is closed at the end.
    public func serve(fd: Int32, level: CLILevel, exposesListeners: Bool, listenerName: String) {
        let started = DetachedThread.start { [self] in
            let connection = CLIConnection(fd: fd, maxLine: runtime.bufferSize)
            let context = RuntimeSession(api: self, connection: connection, exposesListeners: exposesListeners)
            let session = CLISession(connection: connection, table: table, context: context,
                                     state: CLISessionState(level: level), idleTimeoutMs: idleTimeoutMs)
            session.promptText = { [self] state in
                state.timedPrompt ? Uptime(seconds: WallClock.seconds() - startedAt).prompt + "> " : "> "
            }
            session.run()
            close(fd)
        }
        if !started { close(fd) }
    }
}

/// One runtime-API session: the API, its connection, and what its listener allows.
final class RuntimeSession {
    let api: RuntimeAPI
    let connection: CLIConnection
    let exposesListeners: Bool
    let openedAtMs = MonotonicClock.milliseconds()

    init(api: RuntimeAPI, connection: CLIConnection, exposesListeners: Bool) {
        self.api = api
        self.connection = connection
        self.exposesListeners = exposesListeners
    }

    var runtime: WorkerRuntime { api.runtime }
}

extension RuntimeAPI {
    typealias Spec = CLICommandSpec<RuntimeSession>

    static func commands() -> [Spec] {
        var list: [Spec] = [
            CLICommonCommands.echo(),
            CLICommonCommands.showCLILevel(),
            CLICommonCommands.lowerLevel(to: .operator, denial: "Permission denied\n", clearsModes: true),
            CLICommonCommands.lowerLevel(to: .user, denial: "Permission denied\n", clearsModes: true),
            CLICommonCommands.setSeverityOutput(),
            CLICommonCommands.showVersion(),
            CLICommonCommands.showEnv(),
            CLICommonCommands.showStartupLogs { $0.api.startupLogs },
            modeSwitch("expert-mode", help: "get/set expert mode on this CLI session", \.expert),
            modeSwitch("experimental-mode", help: "get/set experimental mode on this CLI session", \.experimental),
            Spec(["show", "cli", "sockets"], help: "dump list of cli sockets", level: .operator) { s, _, _ in
                CLIReply(s.api.cliSockets())
            },
            Spec(["set", "timeout", "cli"], usage: "set timeout cli <delay>", help: "change the timeout of the current CLI session") { _, state, command in
                guard command.words.count >= 4, let ms = CLICommonCommands.parseDelay(command.words[3].allSatisfy(\.isNumber) ? command.words[3] + "s" : command.words[3]), ms > 0 else {
                    return .error("Expects an integer value.\n")
                }
                state.idleTimeoutMs = ms
                return .empty
            },
            Spec(["set", "timeout"], usage: "set timeout cli <delay>", help: "", hidden: true) { _, _, _ in
                .error("'set timeout' only supports 'cli'.\n")
            },
            Spec(["_getsocks"], help: "", hidden: true) { s, state, _ in
                state.quit = true
                return s.sendListeners()
            },
        ]
        list += infoCommands()
        list += proxyCommands()
        list += mapCommands()
        list += serverReportCommands()
        list += sessionCommands()
        list += serverCommands()
        list += dynamicServerCommands()
        list += eventCommands()
        list += tlsCommands()
        list += stickTableCommands()
        list += resolverCommands()
        return list
    }

    /// `expert-mode [on|off]`: no argument reports the mode; changing it needs admin.
    static func modeSwitch(_ word: String, help: String, _ flag: WritableKeyPath<CLISessionState, Bool>) -> Spec {
        Spec([word], usage: "\(word) [on|off]", help: help) { _, state, command in
            guard command.words.count >= 2 else {
                return CLIReply("\(word) is \(state[keyPath: flag] ? "ON" : "OFF")\n")
            }
            guard state.level >= .admin else { return .permissionDenied }
            state[keyPath: flag] = command.words[1] == "on"
            return .empty
        }
    }

    func cliSockets() -> String {
        var text = "# socket lvl thread\n"
        for s in runtime.configuration.global.statsSockets {
            let address: String
            switch s.address {
            case .unix(let path): address = "unix@" + path
            case .ipv4: address = "ipv4@" + s.address.description
            case .ipv6: address = "ipv6@" + s.address.description
            default: address = s.address.description
            }
            text += "\(address) \(s.level) all\n"
        }
        return text
    }
}

extension RuntimeSession {
    /// `_getsocks` (for `-x`): only on a socket with `expose-fd listeners`.
    func sendListeners() -> CLIReply {
        guard exposesListeners else { return .permissionDenied }
        _ = SocketTransfer.send(api.engine.adoptedListeners(), on: connection.fd)
        return .silent
    }
}
