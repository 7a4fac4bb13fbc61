import NIOCore
import Shared

/// Commands that change servers: state, weight, address, maxconn, health, sessions.
extension RuntimeAPI {
    static func serverCommands() -> [Spec] {
        [
            Spec(["disable", "server"], usage: "disable server (DEPRECATED)", help: "disable a server for maintenance (use 'set server' instead)",
                 level: .admin) { s, _, command in
                s.withServer(command.words, at: 2) { backend, server in s.api.setAdminState(.maint, server, backend) }
            },
            Spec(["enable", "server"], usage: "enable server (DEPRECATED)", help: "enable a disabled server (use 'set server' instead)",
                 level: .admin) { s, _, command in
                s.withServer(command.words, at: 2) { backend, server in s.api.setAdminState(.ready, server, backend) }
            },
            Spec(["set", "server"], usage: "set server <bk>/<srv> [opts]", help: "change a server's state, weight, address or ssl",
                 level: .admin) { s, _, command in
                s.withServer(command.words, at: 2) { backend, server in s.api.setServer(command.words, server, backend) }
            },
            Spec(["set", "weight"], usage: "set weight <bk>/<srv> (DEPRECATED)", help: "change a server's weight (use 'set server' instead)",
                 level: .admin) { s, _, command in
                s.withServer(command.words, at: 2) { backend, server in
                    s.api.setWeight(command.words.count > 3 ? command.words[3] : nil, server, backend)
                }
            },
            Spec(["get", "weight"], usage: "get weight <bk>/<srv>", help: "report a server's current weight") { s, _, command in
                s.withServer(command.words, at: 2) { _, server in
                    CLIReply("\(server.weight) (initial \(server.settings.weight))\n")
                }
            },
            Spec(["set", "maxconn", "server"], usage: "set maxconn server <bk>/<srv>", help: "change a server's maxconn setting",
                 level: .admin) { s, _, command in
                s.withServer(command.words, at: 3) { backend, server in
                    guard command.words.count > 4 else { return .error("Require <maxconn>.\n") }
                    let text = command.words[4]
                    guard let first = text.first, first.isNumber else { return .error("maxconn string empty or preceded by garbage\n") }
                    guard let n = Int(text), n >= 0 else { return .error("Trailing garbage in maxconn string\n") }
                    server.setMaxconn(n)
                    backend.dispatchQueue()
                    return .empty
                }
            },
            Spec(["enable", "health"], usage: "enable health <bk>/<srv>", help: "enable health checks", level: .admin) { s, _, command in
                s.withServer(command.words, at: 2) { _, server in s.checkSwitch(server, agent: false, on: true) }
            },
            Spec(["disable", "health"], usage: "disable health <bk>/<srv>", help: "disable health checks", level: .admin) { s, _, command in
                s.withServer(command.words, at: 2) { _, server in s.checkSwitch(server, agent: false, on: false) }
            },
            Spec(["enable", "agent"], usage: "enable agent <bk>/<srv>", help: "enable agent checks", level: .admin) { s, _, command in
                s.withServer(command.words, at: 2) { _, server in s.checkSwitch(server, agent: true, on: true) }
            },
            Spec(["disable", "agent"], usage: "disable agent <bk>/<srv>", help: "disable agent checks", level: .admin) { s, _, command in
                s.withServer(command.words, at: 2) { _, server in s.checkSwitch(server, agent: true, on: false) }
            },
            Spec(["shutdown", "sessions", "server"], usage: "shutdown sessions server <bk>/<srv>", help: "kill sessions on a server",
                 level: .admin) { s, _, command in
                s.withServer(command.words, at: 3) { _, server in
                    s.runtime.shutdownSessions(of: server)
                    return .empty
                }
            },
        ]
    }

    /// `enable|disable server`, `set server ... state`.
    func setAdminState(_ target: WorkerRuntime.AdminTarget, _ server: Server, _ backend: Backend) -> CLIReply {
        runtime.setAdminState(target, server)
        return .empty
    }

    func setServer(_ words: [String], _ server: Server, _ backend: Backend) -> CLIReply {
        let usage = "usage: set server <backend>/<server> addr | agent | agent-addr | agent-port | agent-send | check-addr | check-port | fqdn | health | name | ssl | state | weight\n"
        guard words.count > 3 else { return .error(usage) }
        let value = words.count > 4 ? words[4] : nil
        switch words[3] {
        case "state":
            switch value {
            case "ready": return setAdminState(.ready, server, backend)
            case "drain": return setAdminState(.drain, server, backend)
            case "maint": return setAdminState(.maint, server, backend)
            default: return .error("'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n")
            }
        case "weight":
            return setWeight(value, server, backend)
        case "addr":
            return setAddress(Array(words.dropFirst(4)), server)
        case "health":
            return runtime.setHealth(server, value).map { .error($0 + "\n") } ?? .empty
        case "agent":
            return runtime.setAgent(server, value).map { .error($0 + "\n") } ?? .empty
        case "name":
            guard let value, !value.isEmpty else { return .error("set server <b>/<s> name requires a new name.\n") }
            guard server.adminState.inMaintenance else { return .error("Server must be in maintenance mode\n") }
            guard value.allSatisfy({ $0.isLetter || $0.isNumber || "-_.:".contains($0) }), value.allSatisfy(\.isASCII) else {
                return .error("Server name contains invalid characters.\n")
            }
            guard backend.server(named: value) == nil else { return .error("A server with the same name already exists\n") }
            server.rename(value)
            return CLIReply("Server name updated.\n")
        case "fqdn":
            guard let value, !value.isEmpty else { return .error("set server <b>/<s> fqdn requires a FQDN.\n") }
            guard ResolversService.section(of: server, in: runtime.configuration.resolvers) != nil else {
                return .error("set server <b>/<s> fqdn failed because no resolution is configured.\n")
            }
            guard case .inet(let host, let port) = server.settings.address, !host.hasPrefix("_") else {
                return .error("set server <b>/<s> fqdn failed because SRV resolution is configured.\n")
            }
            return CLIReply(setFQDN(value, server, backend, port: port) + " by 'stats socket command'\n")
        default:
            return .error(usage)
        }
    }

    /// `<w>` in 0..256 or `<n>%` of the initial weight.
    func setWeight(_ text: String?, _ server: Server, _ backend: Backend) -> CLIReply {
        guard let text, !text.isEmpty else { return .error("Require <weight> or <weight%>.\n") }
        guard let first = text.first, first.isNumber || first == "-" else {
            return .error("Empty weight string empty or preceded by garbage\n")
        }
        var digits = Substring(text)
        let relative = digits.last == "%"
        if relative { digits = digits.dropLast() }
        guard let n = Int(digits) else { return .error("Trailing garbage in weight string\n") }
        let weight: Int
        if relative {
            guard n >= 0 else { return .error("Relative weight must be positive.\n") }
            weight = min(256, server.settings.weight * n / 100)
        } else {
            guard (0...256).contains(n) else { return .error("Absolute weight can only be between 0 and 256 inclusive.\n") }
            weight = n
        }
        if !backend.supportsDynamicServers, weight != 0, weight != server.settings.weight {
            return .error("Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.\n")
        }
        server.setWeight(weight)
        server.lastChange.store(WallClock.seconds(), ordering: .relaxed)
        if weight > 0 { backend.dispatchQueue() }
        return .empty
    }

    /// `set server <b>/<s> fqdn <name>`: the server goes by a new name, resolved at once; it
    /// keeps its address until an answer for the new name comes. HAProxy's words (and its
    /// "FDQN" typo).
    func setFQDN(_ name: String, _ server: Server, _ backend: Backend, port: Int?) -> String {
        guard case .inet(let current, _) = server.configuredAddress else { return "could not update \(backend.name)/\(server.name) FQDN" }
        if current == name { return "no need to change the FDQN" }
        let allowed = name.utf8.allSatisfy { c in (c >= 0x30 && c <= 0x39) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x7a) || c == 0x2e || c == 0x2d || c == 0x5f }
        guard name.utf8.count <= 255, allowed else { return "invalid fqdn '\(name)'" }
        guard (try? SocketAddress(ipAddress: name, port: 0)) == nil else { return "could not update \(backend.name)/\(server.name) FQDN" }
        let message = "\(backend.name)/\(server.name) changed its FQDN from \(ServerStateReport.fqdn(server) == "-" ? "(null)" : current) to \(name)"
        _ = server.setResolution(hostname: .inet(host: name, port: port), resolved: server.socketAddress)
        server.updateAdmin { $0.insert(.fqdnChanged) }
        runtime.resolvers.nameChanged()
        return message
    }

    /// `set server <b>/<s> addr <ip> [port <port>]`: purges the idle connections on a change.
    func setAddress(_ args: [String], _ server: Server) -> CLIReply {
        guard let ip = args.first else {
            return .error("set server <b>/<s> addr requires an address and optionally a port.\n")
        }
        guard (try? SocketAddress(ipAddress: ip, port: 0)) != nil else { return .error("Invalid addr '\(ip)'\n") }
        guard case .inet(let oldHost, let oldPort) = server.configuredAddress else {
            return .error("Update for the current server address family is only supported through configuration file.\n")
        }
        var newPort = oldPort
        if args.count >= 2, args[1] == "port" {
            guard args.count >= 3, let p = Int(args[2]), (0...65535).contains(p) else {
                return .error("problem converting port '\(args.count >= 3 ? args[2] : "")' to an int\n")
            }
            newPort = p
        }
        var changes: [String] = []
        if ip != oldHost { changes.append("IP changed from '\(oldHost)' to '\(ip)'") }
        if newPort != oldPort { changes.append("port changed from '\(oldPort.map(String.init) ?? "0")' to '\(newPort.map(String.init) ?? "0")'") }
        guard !changes.isEmpty else { return CLIReply("nothing changed\n") }
        server.setAddress(.inet(host: ip, port: newPort))
        runtime.purgeIdleConnections(of: server)
        return CLIReply(changes.joined(separator: ", ") + " by 'stats socket command'\n")
    }
}

extension RuntimeSession {
    func checkSwitch(_ server: Server, agent: Bool, on: Bool) -> CLIReply {
        runtime.setCheckEnabled(server, agent: agent, on).map { .error($0 + "\n") } ?? .empty
    }

    /// Finds `<backend>/<server>` at `words[index]` and runs `body`, or answers HAProxy's lookup error.
    func withServer(_ words: [String], at index: Int, _ body: (Backend, Server) -> CLIReply) -> CLIReply {
        switch api.lookupServer(words.count > index ? words[index] : nil) {
        case .success(let (backend, server)): return body(backend, server)
        case .failure(let failure): return .error(failure.message + "\n")
        }
    }
}

extension RuntimeAPI {
    struct LookupFailure: Error { var message: String }

    func lookupServer(_ text: String?) -> Result<(Backend, Server), LookupFailure> {
        guard let text, let path = ServerPath(text), let backendName = path.backend else {
            return .failure(LookupFailure(message: "Require 'backend/server'."))
        }
        guard let backend = runtime.backend(named: backendName) else { return .failure(LookupFailure(message: "No such backend.")) }
        guard let server = backend.server(named: path.server) else {
            return .failure(LookupFailure(message: "No such server."))
        }
        return .success((backend, server))
    }
}
