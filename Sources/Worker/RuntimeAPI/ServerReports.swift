import NIOCore
import Shared

/// `show servers state`, `show servers conn`, `show backend`.
extension RuntimeAPI {
    static func serverReportCommands() -> [Spec] {
        [
            Spec(["show", "servers", "state"], usage: "show servers state [<backend>]",
                 help: "dump volatile server information (all or for a single backend)") { s, _, command in
                guard let backends = s.backends(command.words, at: 3) else { return .error("Can't find backend.\n") }
                return CLIReply(ServerStateReport.render(backends, api: s.api))
            },
            Spec(["show", "servers", "conn"], usage: "show servers conn [<backend>]",
                 help: "dump server connections status (all or for a single backend)") { s, _, command in
                guard let backends = s.backends(command.words, at: 3) else { return .error("Can't find backend.\n") }
                return CLIReply(s.api.serverConnections(backends))
            },
            Spec(["show", "default-server"], usage: "show default-server [<backend>]",
                 help: "list default-server instances in all or a single backend") { s, _, command in
                guard let backends = s.backends(command.words, at: 2) else { return .error("Can't find backend.\n") }
                return CLIReply(backends.map(Self.defaultServerLines).joined())
            },
            Spec(["show", "backend"], help: "list backends in the current running config") { s, _, _ in
                CLIReply("# name\n" + s.runtime.orderedBackends.map { $0.name + "\n" }.joined())
            },
            Spec(["show", "stat"], usage: "show stat [desc|json|no-maint|typed|up]*", help: "report counters for each proxy and server") { s, _, command in
                let (format, rest) = ReportFormat.parse(command.words.dropFirst(2))
                guard let scope = StatScope.parse(rest, runtime: s.runtime) else {
                    return .error("No such proxy.\n")
                }
                return CLIReply(StatReport.show(s.api, scope, format))
            },
        ]
    }

    /// `* <b>` for the unnamed `default-server`, then `<b>/<name>` for named ones (by name), the
    /// backend's first line marked `*`.
    static func defaultServerLines(_ backend: Backend) -> String {
        let defaults = backend.settings.defaultServer
        var lines: [String] = []
        if defaults.isDeclared { lines.append("* \(backend.name)") }
        for name in defaults.named.keys.sorted() { lines.append("\(lines.isEmpty ? "*" : " ") \(backend.name)/\(name)") }
        return lines.map { $0 + "\n" }.joined()
    }

    /// Pool counts of many servers on every event loop: a task per loop reads a batch of them
    /// (small enough that a loop is held for well under a millisecond).
    func poolSnapshots(of servers: [Server]) -> [ObjectIdentifier: [ServerConnectionPool.Snapshot]] {
        guard !servers.isEmpty else { return [:] }
        let batch = 1_024
        let perLoop: [[ServerConnectionPool.Snapshot]] = runtime.loops.enumerated().map { index, loop in
            var snapshots: [ServerConnectionPool.Snapshot] = []
            snapshots.reserveCapacity(servers.count)
            for start in stride(from: 0, to: servers.count, by: batch) {
                let pools = servers[start..<min(start + batch, servers.count)].map { $0.pools[index] }
                snapshots += (try? loop.submit { pools.map { $0.snapshot() } }.wait()) ?? pools.map { _ in ServerConnectionPool.Snapshot() }
            }
            return snapshots
        }
        var result: [ObjectIdentifier: [ServerConnectionPool.Snapshot]] = [:]
        result.reserveCapacity(servers.count)
        for (i, server) in servers.enumerated() {
            result[ObjectIdentifier(server)] = perLoop.map { $0[i] }
        }
        return result
    }

    /// Pool counts of one server on every event loop, read on each loop (bounded wait).
    func poolSnapshots(_ server: Server) -> [ServerConnectionPool.Snapshot] {
        runtime.loops.enumerated().map { index, loop in
            let pool = server.pools[index]
            let future = loop.submit { pool.snapshot() }
            return (try? future.wait()) ?? ServerConnectionPool.Snapshot()
        }
    }

    func serverConnections(_ backends: [Backend]) -> String {
        var text = "# bkname/svname bkid/svid addr port - purge_delay served used_cur used_max need_est idle_sess unsafe_nb safe_nb idle_lim idle_cur idle_per_thr[\(runtime.loops.count)]\n"
        for backend in backends {
            for server in backend.servers {
                let pools = poolSnapshots(server)
                let (host, port) = ServerStateReport.hostAndPort(server)
                let unsafe = pools.reduce(0) { $0 + $1.unsafe }
                let safe = pools.reduce(0) { $0 + $1.safe }
                var line = "\(backend.name)/\(server.name) \(backend.settings.id)/\(server.id) \(host) \(port) - "
                line += "\(server.settings.poolPurgeDelayMs) \(server.currentServed) "
                line += "\(pools.reduce(0) { $0 + $1.used }) \(pools.reduce(0) { $0 + $1.maxUsed }) "
                line += "\(pools.reduce(0) { $0 + $1.needEstimate }) \(server.sessionIdleConnections.load(ordering: .relaxed)) \(unsafe) \(safe) \(server.settings.poolMaxConn) "
                line += "\(unsafe + safe)"
                for p in pools { line += " \(p.unsafe + p.safe)" }
                text += line + "\n"
            }
        }
        return text
    }
}

extension RuntimeSession {
    /// Every backend, or the one named at `words[index]`; nil if that one does not exist.
    func backends(_ words: [String], at index: Int) -> [Backend]? {
        guard words.count > index else { return runtime.orderedBackends }
        guard let backend = runtime.backend(named: words[index]) else { return nil }
        return [backend]
    }
}

/// `show servers state`: format version 1, the line `server-state-file` also reads.
enum ServerStateReport {
    static let header = "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"

    static func render(_ backends: [Backend], api: RuntimeAPI) -> String {
        var text = "1\n" + header
        let now = WallClock.seconds()
        for backend in backends {
            for server in backend.servers {
                let (host, port) = hostAndPort(server)
                let admin = server.adminState
                let opState = admin.inMaintenance ? 0 : server.operationalState.rawValue
                let check = server.healthCheck?.snapshot
                let agent = server.agentCheck?.snapshot
                let health = check?.health.health ?? server.uncheckedHealth.load(ordering: .relaxed)
                let since = max(0, now - server.lastChange.load(ordering: .relaxed))
                let fields: [String] = [
                    "\(backend.settings.id)", backend.name, "\(server.id)", server.name, host,
                    "\(opState)", "\(admin.rawValue)", "\(server.weight)", "\(server.settings.weight)", "\(since)",
                    "\(check?.last.status.haproxyCode ?? 1)", "\(check?.last.status.haproxyResult ?? 0)", "\(health)",
                    "\(check.map(Self.stateFlags) ?? 0)", "\(agent.map(Self.stateFlags) ?? 0)",
                    "0", server.settings.id == nil ? "0" : "1", fqdn(server), port, serviceRecord(server),
                    server.settings.tls.enabled ? "1" : "0", "\(server.settings.checks.port ?? 0)", server.settings.checks.address ?? "-",
                    server.settings.checks.agentAddress ?? "-", "\(server.settings.checks.agentPort ?? 0)",
                ]
                text += fields.joined(separator: " ") + "\n"
            }
        }
        return text
    }

    /// HAProxy's check state bits: configured 0x02, enabled 0x04, paused 0x08.
    static func stateFlags(_ state: ServerCheck.State) -> Int {
        0x02 | (state.enabled ? 0x04 : 0) | (state.paused ? 0x08 : 0)
    }

    /// `srv_fqdn`: the name the server goes by (its SRV target for a slot), `-` for an IP.
    static func fqdn(_ server: Server) -> String {
        guard case .inet(let host, _) = server.configuredAddress, !host.hasPrefix("_"),
              (try? SocketAddress(ipAddress: host, port: 0)) == nil else { return "-" }
        return host
    }

    /// `srvrecord`: the SRV name a template's slot follows.
    static func serviceRecord(_ server: Server) -> String {
        guard case .inet(let host, _) = server.settings.address, host.hasPrefix("_") else { return "-" }
        return host
    }

    /// The address column (`-` when it is not an IP address) and the port (0 if none).
    static func hostAndPort(_ server: Server) -> (String, String) {
        switch server.configuredAddress {
        case .inet(let host, let port):
            let isIP = (try? SocketAddress(ipAddress: host, port: 0)) != nil
            return (isIP ? host : (server.socketAddress?.ipAddress ?? "-"), "\(port ?? 0)")
        case .unix, .none:
            return ("-", "0")
        }
    }
}
