import Shared

#if canImport(Glibc)
import Glibc
#endif

/// The commands the master answers itself.
extension MasterCLI {
    typealias Spec = CLICommandSpec<MasterSession>

    static func commandList() -> [Spec] {
        [
            // Listed by `help` only: routing handles every `@` word before the table is asked.
            Spec(["@!<pid>"], help: "send a command to the <pid> process") { _, _, _ in .empty },
            Spec(["@<relative pid>"], help: "send a command to the <relative pid> process") { _, _, _ in .empty },
            Spec(["@master"], help: "send a command to the master process") { _, _, _ in .empty },
            CLICommonCommands.echo(),
            CLICommonCommands.showCLILevel(),
            quiet(CLICommonCommands.lowerLevel(to: .operator, denial: "Permission denied!\n", clearsModes: false)),
            quiet(CLICommonCommands.lowerLevel(to: .user, denial: "Permission denied!\n", clearsModes: false)),
            hidden(quiet(CLICommonCommands.setSeverityOutput())),
            CLICommonCommands.showVersion(),
            CLICommonCommands.showEnv(),
            CLICommonCommands.showStartupLogs { _ in DiagnosticPrinter.shared.startupLog },
            hidden(quiet(modeSwitch("expert-mode", help: "activate or deactivate expert mode", \.expert))),
            hidden(quiet(modeSwitch("experimental-mode", help: "activate or deactivate experimental mode", \.experimental))),
            hidden(quiet(modeSwitch("mcli-debug-mode", help: "activate or deactivate the master CLI debug mode", \.mcliDebug))),
            Spec(["show", "proc"], help: "show processes status", level: .operator) { s, _, command in
                s.cli.showProc(command)
            },
            // A Hasp addition, kept out of `help` so that the listing stays HAProxy's.
            Spec(["show", "info"], usage: "show info", help: "report information about the master process (reloads)", level: .operator,
                 hidden: true) { s, _, _ in
                CLIReply(s.cli.masterInfo())
            },
            Spec(["show", "cli", "sockets"], help: "dump list of cli sockets", level: .operator) { s, _, _ in
                CLIReply("# socket lvl thread\n" + s.cli.listeners.map { l in
                    let o = Options(l.spec)
                    let address = o.address.contains("@") || !o.address.hasPrefix("/") ? o.address : "unix@" + o.address
                    return "\(address) \(o.level.name) all\n"
                }.joined())
            },
            Spec(["reload"], help: "achieve a soft-reload (-sf) of haproxy", level: .operator) { s, state, _ in
                s.cli.reload(s, &state, hard: false)
            },
            Spec(["hard-reload"], help: "achieve a hard-reload (-st) of haproxy", level: .operator) { s, state, _ in
                s.cli.reload(s, &state, hard: true)
            },
        ]
    }

    /// Session commands print nothing on the master when they succeed; errors are single lines.
    static func quiet(_ spec: Spec) -> Spec {
        var copy = spec
        let handler = spec.handler
        copy.handler = { context, state, command in
            var reply = handler(context, &state, command)
            reply.endsReply = false
            return reply
        }
        return copy
    }

    static func hidden(_ spec: Spec) -> Spec {
        var copy = spec
        copy.hidden = true
        return copy
    }

    /// On the master, `on` sets a mode and anything else (even nothing) clears it; admin only.
    static func modeSwitch(_ word: String, help: String, _ flag: WritableKeyPath<CLISessionState, Bool>) -> Spec {
        Spec([word], usage: "\(word) [on|off]", help: help) { _, state, command in
            guard state.level >= .admin else { return .error("Permission denied!\n") }
            state[keyPath: flag] = command.words.count >= 2 && command.words[1] == "on"
            return .empty
        }
    }

    /// `reload` / `hard-reload`: the client gets `Success=1|0` and the start-up log from the
    /// new master image, then its connection closes.
    func reload(_ s: MasterSession, _ state: inout CLISessionState, hard: Bool) -> CLIReply {
        if table.read().loading {
            return CLIReply("Success=0\n--\nAnother reload is still in progress.\n", endsReply: false)
        }
        s.keepsDescriptor = true
        state.quit = true
        supervisor.requestReload(client: s.connection.fd, hard: hard)
        return .silent
    }

    func showProc(_ command: CLICommand) -> CLIReply {
        let debug: Bool
        switch command.words.count {
        case 2: debug = false
        case 3 where command.words[2] == "debug": debug = true
        default: return .error("'show proc' only supports 'debug' as argument\n")
        }
        let snapshot = table.read()
        let now = Int(time(nil))
        func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }
        func uptime(_ since: Int) -> String { Uptime(seconds: now - since).processList }
        func row(_ fields: [String], fds: (String, String)) -> String {
            var line = fields.map { pad($0, 15) }.joined(separator: " ")
            if debug { line += "\t\t " + pad(fds.0, 15) + " " + pad(fds.1, 15) }
            return line + "\n"
        }
        var text = "#" + pad("<PID>", 14) + " " + ["<type>", "<reloads>", "<uptime>", "<version>"].map { pad($0, 15) }.joined(separator: " ")
        if debug { text += "\t\t " + pad("<ipc_fd[0]>", 15) + " " + pad("<ipc_fd[1]>", 15) }
        text += "\n"
        text += row(["\(snapshot.masterPid)", "master", "\(snapshot.reloads) [failed: \(snapshot.lastReloadFailed ? 1 : 0)]",
                     uptime(snapshot.masterStartedAt), HaspVersion.version], fds: ("-1", "-1"))
        text += "# workers\n"
        for w in snapshot.workers where !w.leaving {
            text += row(["\(w.pid)", "worker", "\(w.reloads)", uptime(w.startedAt), w.version], fds: ("\(w.ipcFD)", "-1"))
        }
        let old = snapshot.workers.filter(\.leaving).sorted { $0.reloads < $1.reloads }
        if !old.isEmpty {
            text += "# old workers\n"
            for w in old {
                text += row(["\(w.pid)", "worker", "\(w.reloads)", uptime(w.startedAt), w.version], fds: ("\(w.ipcFD)", "-1"))
            }
        }
        return CLIReply(text)
    }

    /// The master's own `show info`, with the reload history HAProxy does not keep.
    func masterInfo() -> String {
        let s = table.read()
        let now = Int(time(nil))
        let up = max(0, now - s.masterStartedAt)
        let fields: [(String, String)] = [
            ("Name", "Hasp"), ("Version", HaspVersion.version), ("Release_date", HaspVersion.date),
            ("Pid", "\(s.masterPid)"), ("Uptime", Uptime(seconds: up).info),
            ("Uptime_sec", "\(up)"), ("Start_time_sec", "\(s.masterStartedAt)"),
            ("Reloads", "\(s.reloads)"), ("FailedReloads", "\(s.failedReloads)"),
            ("LastReloadStatus", s.lastReloadStatus.isEmpty ? "none" : s.lastReloadStatus),
            ("LastReloadDuration_ms", "\(s.lastReloadDurationMs)"), ("LastReloadTime", "\(s.lastReloadTime)"),
            ("Workers", "\(s.workers.filter { !$0.leaving }.count)"),
            ("OldWorkers", "\(s.workers.filter(\.leaving).count)"),
            ("Stopping", "0"),
        ]
        return fields.map { "\($0.0): \($0.1)\n" }.joined()
    }
}
