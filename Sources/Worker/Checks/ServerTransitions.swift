import Shared

/// Why a server's operational state changes: the wording HAProxy appends to its log lines.
enum TransitionCause {
    /// A check (health or agent) decided; its report gives the reason.
    case check(ServerCheck, CheckReport)
    /// The CLI (`set server ... health|agent`).
    case cli
    /// The tracked server changed.
    case tracking(Server)
    /// Checks were switched off or the server came out of maintenance.
    case quiet
}

/// Operational state changes of servers (UP, DOWN, NOLB, slow start), with HAProxy's log lines,
/// tracking propagation and the `on-marked-down`/`on-marked-up` actions. Callable from any
/// thread: every piece of state it touches is atomic or locked.
extension WorkerRuntime {
    func backend(of server: Server) -> Backend? { backends[server.backendName] }

    /// What the checks say the server should be, ignoring maintenance.
    func checkVerdict(_ server: Server) -> Server.OperationalState {
        if let tracked = server.tracked {
            let state = tracked.adminState.inMaintenance ? .stopped : tracked.operationalState
            if state == .stopped { return .stopped }
            if let agent = server.agentCheck, agent.isEnabled, !agent.isUp { return .stopped }
            return state == .stopping ? .stopping : .running
        }
        if let check = server.healthCheck, check.isEnabled, !check.isUp { return .stopped }
        if let agent = server.agentCheck, agent.isEnabled, !agent.isUp { return .stopped }
        if let check = server.healthCheck, check.isEnabled, check.snapshot.last.status == .l7okConditional { return .stopping }
        return .running
    }

    /// Brings the server's state in line with its checks.
    func reevaluate(_ server: Server, cause: TransitionCause) {
        let current = server.operationalState
        switch checkVerdict(server) {
        case .stopped where current != .stopped:
            markDown(server, cause: cause)
        case .running where current == .stopped || current == .stopping:
            markUp(server, cause: cause, wasDown: current == .stopped)
        case .stopping where current != .stopping:
            markStopping(server, cause: cause)
        default:
            break
        }
    }

    func markDown(_ server: Server, cause: TransitionCause) {
        let old = server.setOperationalState(.stopped)
        guard old != .stopped else { return }
        guard let backend = backend(of: server) else { return }
        if !server.adminState.inMaintenance {
            let (tail, noneLeft) = serversLeft(server, backend)
            report(server, backend, "is DOWN", level: old == .stopping || server.adminState.draining ? .notice : .alert,
                   cause: cause, tail: tail)
            if noneLeft { announceNoServer(backend) }
        }
        purgeIdleConnections(of: server)
        if server.settings.checks.shutdownSessionsOnDown { shutdownSessions(of: server) }
        for tracker in server.trackers { reevaluate(tracker, cause: .tracking(server)) }
    }

    func markUp(_ server: Server, cause: TransitionCause, wasDown: Bool) {
        let old = wasDown ? comeUp(server, as: .running) : server.setOperationalState(.running)
        guard old == .stopped || old == .stopping, let backend = backend(of: server) else { return }
        if !server.adminState.inMaintenance {
            report(server, backend, "is UP", level: .notice, cause: cause, tail: serversOnline(backend).tail)
        }
        if server.settings.checks.shutdownBackupSessionsOnUp, !server.isBackup {
            for other in backend.servers where other.isBackup { shutdownSessions(of: other) }
        }
        backend.dispatchQueue()
        for tracker in server.trackers { reevaluate(tracker, cause: .tracking(server)) }
    }

    func markStopping(_ server: Server, cause: TransitionCause) {
        let old = server.setOperationalState(.stopping)
        guard old != .stopping, let backend = backend(of: server) else { return }
        if !server.adminState.inMaintenance {
            let (tail, noneLeft) = serversOnline(backend)
            report(server, backend, "is stopping", level: .notice, cause: cause, tail: tail)
            if noneLeft { announceNoServer(backend) }
        }
        for tracker in server.trackers { reevaluate(tracker, cause: .tracking(server)) }
    }

    /// Brings a server that was down up as `state`, or into its `slowstart` ramp when it has one;
    /// returns the state it replaced.
    @discardableResult
    func comeUp(_ server: Server, as state: Server.OperationalState) -> Server.OperationalState {
        guard server.settings.checks.slowstartMs > 0, !isStopping else { return server.setOperationalState(state) }
        server.beginWarmup()
        let old = server.setOperationalState(.starting)
        scheduleWarmupEnd(server)
        return old
    }

    /// HAProxy's tail of a line that takes a server out of rotation, and whether none is left.
    func serversLeft(_ server: Server, _ backend: Backend) -> (tail: String, noneLeft: Bool) {
        let (active, backup) = usableCounts(backend)
        let tail = ". \(active) active and \(backup) backup servers left.\(active == 0 && backup > 0 ? " Running on backup." : "")"
            + " \(server.currentServed) sessions active, 0 requeued, \(backend.queued.load(ordering: .relaxed)) remaining in queue"
        return (tail, active + backup == 0)
    }

    /// HAProxy's tail of a line about a server still (or again) in rotation.
    func serversOnline(_ backend: Backend) -> (tail: String, noneLeft: Bool) {
        let (active, backup) = usableCounts(backend)
        let tail = ". \(active) active and \(backup) backup servers online.\(active == 0 && backup > 0 ? " Running on backup." : "")"
            + " 0 sessions requeued, \(backend.queued.load(ordering: .relaxed)) total in queue"
        return (tail, active + backup == 0)
    }

    /// Ends a slow start once its time has passed.
    private func scheduleWarmupEnd(_ server: Server) {
        let delay = server.settings.checks.slowstartMs
        loops[server.id % loops.count].scheduleTask(in: .milliseconds(delay)) {
            if server.operationalState == .starting { server.setOperationalState(.running) }
        }
    }

    func usableCounts(_ backend: Backend) -> (active: Int, backup: Int) {
        var active = 0
        var backup = 0
        for s in backend.servers where s.isUsable {
            if s.isBackup { backup += 1 } else { active += 1 }
        }
        return (active, backup)
    }

    func announceNoServer(_ backend: Backend) {
        backend.downTransitions.wrappingIncrement(ordering: .relaxed)
        let type = backend.settings.kind == .listen ? "proxy" : "backend"
        DiagnosticPrinter.shared.alert("\(type) '\(backend.name)' has no server available!")
        loggers[backend.name]?.emit(.emerg, "\(type) \(backend.name) has no server available!")
    }

    /// A server event HAProxy only logs (to the backend's `log` targets, as a notice).
    func logServerEvent(_ backend: Backend, _ text: String) {
        loggers[backend.name]?.emit(.notice, text)
    }

    /// A server event: on stderr as a warning, and to the backend's `log` targets at `level`.
    func announce(_ backend: Backend, _ level: LogLevel, _ text: String) {
        DiagnosticPrinter.shared.warning(text)
        loggers[backend.name]?.emit(level, text)
    }

    /// `[Backup ]Server <b>/<s> <what><reason><tail>.`
    private func report(_ server: Server, _ backend: Backend, _ what: String, level: LogLevel, cause: TransitionCause, tail: String) {
        var line = "\(server.isBackup ? "Backup " : "")Server \(backend.name)/\(server.name) \(what)"
        switch cause {
        case .check(_, let result):
            // With `option log-health-checks` the check line already gave the reason.
            if !backend.settings.options.logHealthChecks { line += result.reasonText }
        case .cli:
            line += ", changed from CLI"
        case .tracking(let tracked):
            line += " via \(tracked.backendName)/\(tracked.name)"
        case .quiet:
            break
        }
        announce(backend, level, line + tail + ".")
    }

    // MARK: - Check results

    /// Counts one check run and applies what it means for the server.
    func record(_ result: CheckReport, of check: ServerCheck, server: Server) {
        guard let backend = backend(of: server) else { return }
        let (moved, previous, state) = check.update { st -> (Bool, CheckStatus, ServerCheck.State) in
            let previous = st.last.status
            st.last = result
            st.lastRun = WallClock.seconds()
            var outcome = result.status.outcome
            // An agent that cannot be reached does not take the server down: only its answers do.
            if check.kind == .agent, outcome == .failed, !result.status.carriesCode { outcome = .unknown }
            let moved = st.health.record(outcome)
            if moved, outcome == .failed { st.failures += 1 }
            return (moved, previous, st)
        }
        if result.status.outcome == .passed || result.status.outcome == .conditionallyPassed {
            server.consecutiveErrors.store(0, ordering: .relaxed)
        }
        // HAProxy reports a check when it moved the counter or changed the status.
        if backend.settings.options.logHealthChecks, moved || previous != result.status, result.status != .checked {
            let what = check.kind == .agent ? "Agent" : "Health"
            let verb = result.status.outcome == .failed ? "failed" : (result.status.outcome == .conditionallyPassed ? "conditionally succeeded" : "succeeded")
            let progress = state.health.progress(drain: server.weight == 0)
            announce(backend, .notice, "\(what) check for \(server.isBackup ? "backup " : "")server \(backend.name)/\(server.name) \(verb)\(result.reasonText), status: \(progress).")
        }
        // Most runs change nothing: the verdict only moves with the counter or the status.
        if moved || previous != result.status { reevaluate(server, cause: .check(check, result)) }
    }
}
