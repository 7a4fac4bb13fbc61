import Shared

/// `add server`, `del server` and `wait <delay> [srv-removable <b>/<s>]`.
extension RuntimeAPI {
    static func dynamicServerCommands() -> [Spec] {
        [
            Spec(["add", "server"], usage: "add server <bk>/<srv>", help: "create a new server", level: .admin) { s, _, command in
                s.api.addServer(Array(command.words.dropFirst(2)))
            },
            Spec(["del", "server"], usage: "del server <bk>/<srv>", help: "remove a dynamically added server", level: .admin) { s, _, command in
                s.api.deleteServer(command.words.count > 2 ? command.words[2] : nil)
            },
            Spec(["wait"], usage: "wait {-h|<delay_ms>} cond [args...]", help: "wait the specified delay or condition (-h to see list)",
                 level: .admin) { s, _, command in s.wait(command) },
        ]
    }

    func addServer(_ args: [String]) -> CLIReply {
        if args.first == "help" {
            return CLIReply("List of keywords supported for dynamic server:\n" + ConfigParser.dynamicServerKeywords.map { $0 + "\n" }.joined())
        }
        guard let path = args.first.flatMap(ServerPath.init), let backendName = path.backend else {
            return .error("Require 'backend/server'.\n")
        }
        let name = path.server
        guard let backend = runtime.backend(named: backendName) else { return .error("No such backend.\n") }
        guard backend.supportsDynamicServers else {
            return .error("Backend does not support dynamic servers : backend '\(backend.name)' uses a non dynamic load balancing method.\n")
        }
        if backend.server(named: name) != nil { return .error("Already exists a server with the same name in backend.\n") }
        let settings: ServerSettings
        switch ConfigParser.dynamicServer(name: name, words: Array(args.dropFirst()), proxy: backend.settings, global: runtime.configuration.global, backend: { runtime.backend(named: $0)?.settings }) {
        case .success(let made): settings = made
        case .failure(let refusal): return .error(refusal.message + "\n")
        }
        if let reply = checkTracking(Array(args.dropFirst()), backend) { return reply }
        if let proto = settings.proto, proto != "h1" {
            // HTTP/2 (and other muxes) to servers do not exist in Hasp yet; in TCP mode no mux applies.
            return .error(backend.settings.mode == .tcp ? "MUX protocol is not usable for server.\n"
                : "'proto \(proto)' is not supported by Hasp yet.\n")
        }
        switch backend.add(settings, arguments: Array(args.dropFirst())) {
        case .success(let server):
            runtime.serverAdded(server, to: backend, startingChecks: true)
            DiagnosticPrinter.shared.notice("CLI : 'server \(backend.name)/\(name)' : New server registered.")
            return CLIReply("New server registered.\n")
        case .failure(.nameTaken):
            return .error("Already exists a server with the same name in backend.\n")
        case .failure(.idTaken):
            return .error("'server \(backend.name)/\(name)' : custom id \(settings.id ?? 0) already used.\n")
        }
    }

    /// `track [<backend>/]<server>`: HAProxy's checks on the tracked server.
    private func checkTracking(_ words: [String], _ backend: Backend) -> CLIReply? {
        guard let i = words.firstIndex(of: "track"), i + 1 < words.count else { return nil }
        let path = ServerPath(words[i + 1])
        let backendName = path?.backend(or: backend.name) ?? backend.name
        let serverName = path?.server ?? ""
        guard let tracked = runtime.backend(named: backendName)?.server(named: serverName) else {
            return .error("unable to find required server '\(serverName)' for tracking.\n")
        }
        if tracked.isDynamic { return .error("unable to use \(backendName)/\(serverName) for tracking as it is a dynamic server.\n") }
        if !tracked.settings.check && !tracked.settings.checks.agent {
            return .error("unable to use \(backendName)/\(serverName) for tracking as it does not have any check nor agent enabled.\n")
        }
        return nil
    }

    /// The removability check of `del server` and `wait srv-removable`: a reply when it cannot
    /// go now, and whether that is for good (unrecoverable) or may pass later.
    enum Removal {
        case removable(Backend, Server)
        case never(String)
        case notYet(String)
    }

    func removal(_ target: String?) -> Removal {
        switch lookupServer(target) {
        case .failure(let failure): return .never(failure.message)
        case .success(let (backend, server)):
            if isReferenced(server, in: backend) {
                return .never("This server cannot be removed at runtime due to other configuration elements pointing to it.")
            }
            switch Backend.removability(server, queued: 0) {
            case .removable: return .removable(backend, server)
            case .notInMaintenance: return .never(Backend.RemovalCheck.notInMaintenance.message)
            case .busy: return .notYet(Backend.RemovalCheck.busy.message)
            }
        }
    }

    /// Named by another server's `track` (`<s>` in its own backend, or `<b>/<s>`).
    func isReferenced(_ server: Server, in backend: Backend) -> Bool {
        for other in runtime.orderedBackends {
            for s in other.servers where s !== server {
                guard let track = s.settings.track else { continue }
                if track == "\(backend.name)/\(server.name)" || (other === backend && track == server.name) { return true }
            }
        }
        return false
    }

    func deleteServer(_ target: String?) -> CLIReply {
        switch removal(target) {
        case .never(let reason), .notYet(let reason):
            return .error(reason + "\n")
        case .removable(let backend, let server):
            // Checked again under the backend's lock, where nothing can take a slot meanwhile.
            let outcome = backend.remove(server)
            guard outcome == .removable else { return .error(outcome.message + "\n") }
            runtime.serverRemoved(server)
            DiagnosticPrinter.shared.notice("Server deleted.")
            return CLIReply("Server deleted.\n")
        }
    }
}

extension RuntimeSession {
    static let waitUsage = "Usage: wait {-h|<duration>} [condition [args...]]\n"
        + "  - '-h' displays this help\n"
        + "  - <duration> is the maximum wait time, optionally suffixed by the unit among\n"
        + "    'us', 'ms', 's', 'm', 'h', and 'd'. ; the default unit is milliseconds.\n"
        + "  - <condition> indicates what to wait for, no longer than the specified\n"
        + "    duration. Supported conditions are:\n"
        + "    - <none> : by default, just sleep for the specified duration.\n"
        + "    - srv-removable <px>/<sv> : wait for this server to become removable.\n"

    /// `wait <delay> [srv-removable <b>/<s>]`: checks at once, then after `elapsed/2 + 1` ms,
    /// at most 10% of the delay apart; stops early when the client closes its input.
    func wait(_ command: CLICommand) -> CLIReply {
        let w = command.words
        guard w.count >= 2 else { return .error("Expects a duration in milliseconds.\n") }
        if w[1] == "-h" || (w.count > 2 && w[2] == "-h") { return CLIReply(Self.waitUsage) }
        guard let delay = CLICommonCommands.parseDelay(w[1]), delay >= 1 else { return .error("Invalid duration.\n") }
        var target: String? = nil
        if w.count > 2 {
            guard w[2] == "srv-removable" else { return .error(Self.waitUsage) }
            guard w.count > 3 else { return .error("Missing server name (<backend>/<server>).\n") }
            guard ServerPath(w[3])?.backend != nil else { return .error("Require 'backend/server'.\n") }
            target = w[3]
        }
        let start = MonotonicClock.milliseconds()
        let deadline = start + delay
        var reason: String? = nil
        while true {
            if let target {
                switch api.removal(target) {
                case .removable: return CLIReply("Done.\n")
                case .never(let why): return .error("Failed. \(why)\n")
                case .notYet(let why): reason = why
                }
            }
            let now = MonotonicClock.milliseconds()
            if now >= deadline {
                return target == nil ? CLIReply("Done.\n") : .error("Wait delay expired. \(reason ?? "")\n")
            }
            let elapsed = now - start
            let step = target == nil ? deadline - now : min(elapsed / 2 + 1, max(1, delay / 10), deadline - now)
            if connection.inputClosed() {
                return .error(reason.map { "Interrupted. \($0)\n" } ?? "Interrupted.\n")
            }
            // Sleeps until the next check, waking if the client's input changes.
            _ = connection.waitReadable(timeoutMs: Int32(clamping: min(step, 100)))
        }
    }
}
