#if canImport(Glibc)
import Glibc
#endif

/// Running workers: their messages, exits and signals, whatever the phase.
extension MasterMachine {
    mutating func message(_ received: ReceivedMessage, from pid: pid_t) {
        if let worker = newWorker, worker.pid == pid {
            newWorkerSaid(received.message)
            for fd in received.descriptors { emit(.close(fd)) }
            return
        }
        switch received.message {
        case .handover(let frontend):
            relay(frontend: frontend, fd: received.descriptors[0])
        case .runtimeState(let record):
            runtimeStateArrived(record, from: pid)
        default:
            for fd in received.descriptors { emit(.close(fd)) }
        }
    }

    /// A draining worker's idle connection goes to the current worker, which adopts it.
    mutating func relay(frontend: String, fd: Int32) {
        guard let current = currentWorker else {
            // A reload is between its workers (every worker is an old one until the new one is
            // READY): closing the connection now would reset its client's next request.
            if stopping == nil {
                waitingHandovers.append((frontend, fd))
            } else {
                emit(.close(fd))
            }
            return
        }
        emit(.send(to: current.pid, .adopt(frontend: frontend), descriptors: [fd], closing: true))
    }

    /// Hands the connections that waited for a current worker to it.
    mutating func deliverWaitingHandovers() {
        let waiting = waitingHandovers
        waitingHandovers = []
        for (frontend, fd) in waiting { relay(frontend: frontend, fd: fd) }
    }

    mutating func sendFailed(to pid: pid_t) {
        if let worker = newWorker, worker.pid == pid {
            failNewWorker("cannot hand the new worker (\(pid)) its configuration", spawned: true)
        } else if case .fetchingRuntimeState(_, let asked) = phase, asked == pid {
            runtimeStateArrived(nil, from: pid)
        }
    }

    mutating func channelClosed(pid: pid_t) {
        if let worker = newWorker, worker.pid == pid {
            if worker.failure == nil { failNewWorker("the new worker (\(pid)) closed its channel", spawned: true) }
            return
        }
        // The worker is gone (its exit comes with SIGCHLD): forget the number now, so that no
        // reload passes it on and nothing uses it once it is reused.
        if let i = state.workers.firstIndex(where: { $0.pid == pid }) { state.workers[i].ipcFD = -1 }
        if case .fetchingRuntimeState(_, let asked) = phase, asked == pid { runtimeStateArrived(nil, from: pid) }
    }

    mutating func timerFired(_ timer: Timer) {
        switch timer {
        case .runtimeState:
            runtimeStateTimedOut()
        case .acknowledgement:
            guard let worker = newWorker, !worker.goSent else { return }
            failNewWorker("the new worker (\(worker.pid)) did not acknowledge its listeners", spawned: true)
        case .ready:
            guard let worker = newWorker, worker.goSent else { return }
            failNewWorker("the new worker (\(worker.pid)) did not report READY in time", spawned: true)
        }
    }

    mutating func childExited(pid: pid_t, status s: ProcessStatus) {
        defer { finishIfDone() }
        if let worker = newWorker, worker.pid == pid {
            newWorkerExited(worker, status: s)
            return
        }
        guard let index = state.workers.firstIndex(where: { $0.pid == pid }) else {
            log(.warning, "Process \(pid) exited with code \(s.exitCode) (\(s.reason))")
            return
        }
        let worker = state.workers.remove(at: index)
        emit(.unwatch(pid: pid))
        if case .fetchingRuntimeState(_, let asked) = phase, asked == pid { runtimeStateArrived(nil, from: pid) }
        if worker.leaving {
            if worker.reloads > settings.maxReloads, s.exitCode == 143 {
                log(.warning, "Former worker (\(pid)) exited with code \(s.exitCode) (\(s.reason)), as it exceeds max reloads (\(settings.maxReloads))")
            } else {
                log(.warning, "Former worker (\(pid)) exited with code \(s.exitCode) (\(s.reason))")
            }
            return
        }
        log(s.exitCode < 128 ? .warning : .alert, "Current worker (\(pid)) exited with code \(s.exitCode) (\(s.reason))")
        if stopping != nil { return }
        if ![0, 130, 143].contains(s.exitCode) {
            log(.alert, "A worker process unexpectedly died and this can only be explained by a bug in hasp or its dependencies.")
            if exitCode == 0 { exitCode = s.exitCode }
            if !settings.noExitOnFailure {
                log(.alert, "exit-on-failure: killing every processes with SIGTERM")
                stopping = exitCode
                forward(SIGTERM)
            }
        }
    }

    mutating func received(signal: Int32) {
        switch signal {
        case SIGUSR2, SIGHUP: reloadRequested(ReloadRequest(client: -1, hard: false, startedMs: now()))
        case SIGTERM: stopAll(SIGTERM, exitCode: 0)
        case SIGUSR1: stopAll(SIGUSR1, exitCode: 0)
        case SIGINT: stopAll(SIGINT, exitCode: 130)
        case SIGTTOU, SIGTTIN: forward(signal)
        default: break
        }
    }

    /// Signals every worker. A worker still starting never served: it is stopped for good.
    mutating func forward(_ signal: Int32) {
        for w in state.workers { emit(.signal(pid: w.pid, signal)) }
        guard stopping != nil, let worker = newWorker, worker.pid != 0, worker.failure == nil else { return }
        failNewWorker(nil, spawned: true, signal: SIGTERM)
    }

    mutating func stopAll(_ signal: Int32, exitCode code: Int32) {
        if stopping == nil {
            notify("STOPPING=1")
            log(.notice, "Exiting Master process...")
            stopping = code
            if case .fetchingRuntimeState(let request, _) = phase {
                // The reload will not happen: its client hears why now.
                emit(.disarm(.runtimeState))
                phase = .serving
                if request.client >= 0 { emit(.refuseReload(request.client, reason: "The master is stopping.")) }
            }
            if let deferred = deferredReload {
                deferredReload = nil
                if deferred.client >= 0 { emit(.refuseReload(deferred.client, reason: "The master is stopping.")) }
            }
            for (_, fd) in waitingHandovers { emit(.close(fd)) }
            waitingHandovers = []
        }
        forward(signal)
        finishIfDone()
    }

    /// Exits once a stop has no worker left to wait for.
    mutating func finishIfDone() {
        guard let stopping, state.workers.isEmpty, newWorker == nil else { return }
        if case .exit = actions.last { return }
        let code = exitCode != 0 ? exitCode : stopping
        log(.warning, "All workers exited. Exiting... (\(code))")
        emit(.exit(code))
    }
}
