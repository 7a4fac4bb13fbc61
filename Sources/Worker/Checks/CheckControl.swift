import NIOCore
import Shared

/// Starting and stopping checks, maintenance, and what the CLI and agents may change.
extension WorkerRuntime {
    /// Resolves every `track [<backend>/]<server>` once the backends exist.
    func linkTrackedServers() {
        for backend in backends.values {
            for server in backend.servers {
                if let target = trackTarget(server.settings.track, from: backend) { server.track(target) }
            }
        }
    }

    func trackTarget(_ spec: String?, from backend: Backend) -> Server? {
        guard let path = spec.flatMap(ServerPath.init) else { return nil }
        let owner = path.backend.map { backends[$0] } ?? backend
        return owner?.server(named: path.server)
    }

    /// Starts every server's checks, their first runs spread over the shortest interval (at most
    /// `max-spread-checks`).
    func startChecks() {
        let checked = backends.values.sorted { $0.settings.id < $1.settings.id }.flatMap(\.servers).flatMap { server in
            [server.healthCheck, server.agentCheck].compactMap { $0 }.map { (server, $0) }
        }
        guard !checked.isEmpty else { return }
        var window = checked.map { Int($0.0.settings.interMs) }.min() ?? 2_000
        if let limit = configuration.global.maxSpreadChecksMs { window = min(window, Int(limit)) }
        for (position, (server, check)) in checked.enumerated() {
            startChecker(server, check, position: position, afterMs: window * position / checked.count)
        }
    }

    /// A server added at run time: it follows the server it tracks, and its checks (idle until
    /// enabled) start with it, unless the engine will start them all.
    func serverAdded(_ server: Server, to backend: Backend, startingChecks: Bool) {
        if let target = trackTarget(server.settings.track, from: backend) { server.track(target) }
        if startingChecks { startChecks(for: server) }
    }

    func serverRemoved(_ server: Server) { stopChecks(for: server) }

    private func startChecks(for server: Server) {
        for (i, check) in [server.healthCheck, server.agentCheck].compactMap({ $0 }).enumerated() {
            startChecker(server, check, position: server.id + i, afterMs: 0)
        }
    }

    private func startChecker(_ server: Server, _ check: ServerCheck, position: Int, afterMs: Int) {
        let checker = HealthChecker(server: server, check: check, runtime: self, loop: loops[position % loops.count])
        checkers.withLockedValue { $0[ObjectIdentifier(server), default: []].append(checker) }
        checker.start(afterMs: afterMs)
    }

    /// A deleted server's checks stop and it no longer follows the server it tracked.
    func stopChecks(for server: Server) {
        let stopped = checkers.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(server)) } ?? []
        for checker in stopped { checker.stop() }
        server.untrack()
    }

    private func wakeChecks(of server: Server) {
        for checker in checkers.withLockedValue({ $0[ObjectIdentifier(server)] ?? [] }) { checker.wake() }
    }

    // MARK: - Maintenance and drain

    enum AdminTarget { case ready, drain, maint }

    /// `enable|disable server`, `set server ... state`, agent `ready|drain|maint`: HAProxy's
    /// flag changes, log lines, check pausing and propagation to trackers.
    func setAdminState(_ target: AdminTarget, _ server: Server) {
        let (before, after) = server.updateAdmin { state in
            switch target {
            case .ready: state.remove([.forcedMaint, .forcedDrain])
            case .drain: state.insert(.forcedDrain); state.remove(.forcedMaint)
            case .maint: state.insert(.forcedMaint); state.remove(.forcedDrain)
            }
        }
        adminChanged(server, before: before, after: after, via: nil)
    }

    /// DNS resolution gave `server` this address (nil: none): a change closes its idle
    /// connections; without one it waits in `MAINT (resolution)`, with one it leaves it.
    /// What a server's name resolved to (nil: nothing, the server waits in maintenance for
    /// `cause`); `hostname`, a new name to resolve with it. Idle connections to an address
    /// that changed are purged, as `set server addr` purges them.
    func applyResolution(_ server: Server, _ resolved: SocketAddress?, hostname: ServerAddress? = nil, cause: String = "No IP for server ") {
        let changed = hostname.map { server.setResolution(hostname: $0, resolved: resolved) } ?? server.setResolvedAddress(resolved)
        if changed { purgeIdleConnections(of: server) }
        let (before, after) = server.updateAdmin { state in
            if resolved == nil { state.insert(.resolutionMaint) } else { state.remove(.resolutionMaint) }
        }
        adminChanged(server, before: before, after: after, via: nil, cause: cause)
    }

    /// `cause`: why a server enters maintenance, in HAProxy's words (`DNS NX status`...).
    private func adminChanged(_ server: Server, before: ServerAdminState, after: ServerAdminState, via: Server?, cause: String? = nil) {
        guard let backend = backend(of: server) else { return }
        let label = "\(server.isBackup ? "Backup " : "")Server \(backend.name)/\(server.name)"
        // HAProxy names the tracked server when the change was inherited from it.
        let viaText = via.map { " via \($0.backendName)/\($0.name)" } ?? ""
        if !before.inMaintenance, after.inMaintenance {
            // The health check pauses; the agent goes on, so that it can bring the server back.
            server.healthCheck?.update { $0.paused = true; $0.health.markDown() }
            let old = server.setOperationalState(.stopped)
            if old != .stopped { server.uncheckedHealth.store(0, ordering: .relaxed) }
            let because = cause.map { " (\($0))" } ?? ""
            if old == .stopped {
                announce(backend, .notice, "\(label) was DOWN and now enters maintenance\(because)\(viaText).")
            } else {
                let level: LogLevel = old == .stopping || before.draining ? .notice : .alert
                let (tail, noneLeft) = serversLeft(server, backend)
                announce(backend, level, "\(label) is going DOWN for maintenance\(because)\(viaText)\(tail).")
                if noneLeft { announceNoServer(backend) }
            }
            purgeIdleConnections(of: server)
            if server.settings.checks.shutdownSessionsOnDown { shutdownSessions(of: server) }
        } else if before.inMaintenance, !after.inMaintenance {
            // Up, but checked again at once: the first failure takes it down.
            server.healthCheck?.update { $0.paused = false; $0.health.resume() }
            let verdict = checkVerdict(server)
            if verdict == .stopped {
                server.setOperationalState(.stopped)
            } else {
                comeUp(server, as: verdict)
            }
            let state = "\(verdict == .stopped ? "DOWN" : "UP")/\(after.draining ? "DRAIN" : "READY")"
            if before.contains(.resolutionMaint), !after.contains(.resolutionMaint), case .inet(let host, _) = server.configuredAddress {
                announce(backend, .notice, "\(label) ('\(host)') is \(state) (resolves again).")
            } else {
                let why = before.contains(.forcedMaint) && !after.contains(.forcedMaint) ? "leaving forced maintenance" : "leaving maintenance"
                announce(backend, .notice, "\(label) is \(state) (\(why)).")
            }
            wakeChecks(of: server)
            backend.dispatchQueue()
        } else if !after.inMaintenance, before.draining != after.draining {
            if after.draining {
                let (tail, noneLeft) = serversOnline(backend)
                announce(backend, .notice, "\(label) enters drain state\(viaText)\(tail).")
                if noneLeft { announceNoServer(backend) }
            } else {
                let state = server.operationalState == .stopped ? "DOWN" : "UP"
                let why = before.contains(.forcedDrain) ? "leaving forced drain" : "leaving drain"
                announce(backend, .notice, "\(label) is \(state) (\(why))\(before.contains(.forcedDrain) ? "" : viaText).")
                backend.dispatchQueue()
            }
        }
        // Trackers inherit maintenance and drain.
        let inherited = (after.inMaintenance, after.draining)
        guard (before.inMaintenance, before.draining) != inherited else { return }
        for tracker in server.trackers {
            let (b, a) = tracker.updateAdmin { state in
                if inherited.0 { state.insert(.inheritedMaint) } else { state.remove(.inheritedMaint) }
                if inherited.1 { state.insert(.inheritedDrain) } else { state.remove(.inheritedDrain) }
            }
            adminChanged(tracker, before: b, after: a, via: server)
        }
    }

    /// A state restored before the engine starts (runtime-state handoff, server-state file):
    /// the operational state and the checks follow the maintenance flags, without log lines.
    func settleRestoredAdminState(_ server: Server) {
        let checks = [server.healthCheck].compactMap { $0 }
        if server.adminState.inMaintenance {
            for check in checks { check.update { $0.paused = true; $0.health.markDown() } }
            if server.operationalState != .stopped { server.setOperationalState(.stopped) }
            server.uncheckedHealth.store(0, ordering: .relaxed)
        } else {
            for check in checks { check.update { st in if st.paused { st.paused = false; st.health.resume() } } }
            if server.operationalState == .stopped { server.setOperationalState(.running) }
            if server.uncheckedHealth.load(ordering: .relaxed) == 0 { server.uncheckedHealth.store(server.settings.rise, ordering: .relaxed) }
        }
    }

    // MARK: - CLI

    /// `set server <b>/<s> health up|stopping|down`; nil when done, else the error.
    func setHealth(_ server: Server, _ value: String?) -> String? {
        guard server.tracked == nil else { return "cannot change health on a tracking server." }
        switch value {
        case "up", "stopping":
            server.healthCheck?.update { $0.health.markUp(); $0.last = CheckReport(status: .unknown) }
            server.uncheckedHealth.store(server.settings.rise + server.settings.fall - 1, ordering: .relaxed)
            if value == "up" {
                markUp(server, cause: .cli, wasDown: server.operationalState == .stopped)
            } else {
                markStopping(server, cause: .cli)
            }
        case "down":
            server.healthCheck?.update { $0.health.markDown() }
            server.uncheckedHealth.store(0, ordering: .relaxed)
            markDown(server, cause: .cli)
        default:
            return "'set server <srv> health' expects 'up', 'stopping', or 'down'."
        }
        return nil
    }

    /// `set server <b>/<s> agent up|down`.
    func setAgent(_ server: Server, _ value: String?) -> String? {
        guard value == "up" || value == "down" else { return "'set server <srv> agent' expects 'up' or 'down'." }
        guard let agent = server.agentCheck, agent.isEnabled else { return "agent checks are not enabled on this server." }
        if value == "up" {
            agent.update { $0.health.markUp() }
            if checkVerdict(server) != .stopped { markUp(server, cause: .cli, wasDown: server.operationalState == .stopped) }
        } else {
            agent.update { $0.health.markDown() }
            markDown(server, cause: .cli)
        }
        return nil
    }

    /// `enable|disable health|agent`; nil when done, else the error.
    func setCheckEnabled(_ server: Server, agent: Bool, _ on: Bool) -> String? {
        guard let check = agent ? server.agentCheck : server.healthCheck else {
            guard on else { return nil }
            return agent ? "Agent was not configured on this server, cannot enable." : "Health check was not configured on this server, cannot enable."
        }
        check.update { $0.enabled = on }
        if on {
            wakeChecks(of: server)
        } else {
            reevaluate(server, cause: .quiet)
        }
        return nil
    }

    // MARK: - Agents and observed traffic

    /// Applies the administrative part of an agent's answer (its health part is the check result).
    func applyAgentReply(_ reply: AgentReply, to server: Server) {
        switch reply.admin {
        case .ready?: setAdminState(.ready, server)
        case .drain?: setAdminState(.drain, server)
        case .maint?: setAdminState(.maint, server)
        case nil: break
        }
        if let percent = reply.weightPercent {
            server.setWeight(min(256, server.settings.weight * percent / 100))
            backend(of: server)?.dispatchQueue()
        }
        if let maxconn = reply.maxconn {
            server.setMaxconn(maxconn)
            backend(of: server)?.dispatchQueue()
        }
    }

    /// `observe layer4|layer7`: counts errors seen on live traffic and, after `error-limit`
    /// in a row, acts as `on-error` says.
    func observe(_ server: Server, layer: ObservedLayer, error: Bool, what: String) {
        let checks = server.settings.checks
        guard let wanted = checks.observe, layer == wanted || (wanted == .layer7 && layer == .layer4),
              let check = server.healthCheck, check.isActive else { return }
        guard error else {
            if layer == wanted { server.consecutiveErrors.store(0, ordering: .relaxed) }
            return
        }
        let count = server.consecutiveErrors.wrappingIncrementThenLoad(ordering: .relaxed)
        guard count >= checks.errorLimit else { return }
        server.consecutiveErrors.store(0, ordering: .relaxed)
        server.counters.failedAnalyses.wrappingIncrement(ordering: .relaxed)
        let report = CheckReport(status: .healthAnalyze, description: "Detected \(count) consecutive errors, last one was: \(what)")
        switch checks.onError {
        case .fastinter:
            break
        case .failCheck:
            record(report, of: check, server: server)
        case .suddenDeath:
            // Pre-fatal: one more failed check takes the server down.
            check.update { st in if st.health.health > st.health.rise { st.health.set(st.health.rise + 1) } }
            record(report, of: check, server: server)
        case .markDown:
            check.update { $0.health.set($0.health.rise) }
            record(report, of: check, server: server)
        }
        wakeChecks(of: server)
    }
}
