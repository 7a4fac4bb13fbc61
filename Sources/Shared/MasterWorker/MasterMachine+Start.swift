#if canImport(Glibc)
import Glibc
#endif

/// Loading: from the image's start to a new worker's READY, or to its failure.
extension MasterMachine {
    mutating func started(isReload: Bool) {
        phase = .loading(isReload: isReload)
        guard isReload else { return }
        // Every existing worker is now an old one (until the load fails: then the ones that were
        // serving go on serving, and stay the current ones).
        servingBeforeReload = Set(state.workers.filter { !$0.leaving }.map(\.pid))
        for i in state.workers.indices {
            state.workers[i].reloads += 1
            state.workers[i].leaving = true
        }
        for w in state.workers where w.ipcFD >= 0 { emit(.watch(pid: w.pid, channel: w.ipcFD, version: w.protocolVersion)) }
    }

    mutating func startedWithoutState(children: [pid_t]) {
        lostState = true
        state.workers = children.map { WorkerRecord(pid: $0, ipcFD: -1, reloads: 0, startedAt: now() / 1000, leaving: false) }
        phase = .serving
        notify("READY=1\nSTATUS=Serving without the previous master's state.\n")
    }

    mutating func loadFailed() {
        guard case .loading(let isReload) = phase else { return }
        guard isReload else {
            emit(.exit(1))
            return
        }
        reloadFailed()
        loadFinished(isReload: true, success: false)
    }

    mutating func loaded(_ load: Load) {
        guard case .loading(let isReload) = phase else { return }
        settings = load.settings
        phase = .startingWorker(NewWorker(load: load, isReload: isReload))
        emit(.spawnWorker)
    }

    mutating func spawned(pid: pid_t, channel: Int32) {
        guard var worker = newWorker, worker.pid == 0 else { return }
        worker.pid = pid
        worker.channel = channel
        phase = .startingWorker(worker)
        log(.notice, "Initializing new worker (\(pid))")
        emit(.watch(pid: pid, channel: channel, version: MasterWorkerProtocol.current))
        if stopping != nil {
            // A stop came while the configuration loaded: this worker will never serve.
            failNewWorker(nil, spawned: true, signal: SIGTERM)
            return
        }
        let handoff = handoff(for: worker.load)
        for message in handoff.preamble { emit(.send(to: pid, message, descriptors: [], closing: false)) }
        sendNextBatch()
    }

    func handoff(for load: Load) -> WorkerHandoff {
        WorkerHandoff(sources: load.sources, files: load.files, listeners: load.listeners.map {
            PassedListener(frontend: $0.frontend, address: $0.address, backlog: $0.backlog, fd: $0.fd)
        }, runtimeState: load.settings.runtimeStateHandoff ? state.runtimeState : RuntimeStateRecord())
    }

    /// The next listener batch (its ACK awaited), or GO and the wait for READY.
    mutating func sendNextBatch() {
        guard var worker = newWorker else { return }
        let batches = handoff(for: worker.load).batches
        if worker.batchesSent < batches.count {
            let batch = batches[worker.batchesSent]
            emit(.send(to: worker.pid, WorkerHandoff.message(for: batch), descriptors: batch.map(\.fd), closing: false))
            worker.batchesSent += 1
            emit(.arm(.acknowledgement, milliseconds: Self.acknowledgementTimeoutMs))
        } else {
            emit(.send(to: worker.pid, .go, descriptors: [], closing: false))
            worker.goSent = true
            emit(.arm(.ready, milliseconds: Self.readyTimeoutMs))
        }
        phase = .startingWorker(worker)
    }

    /// A message from the worker being started.
    mutating func newWorkerSaid(_ message: MasterWorkerMessage) {
        guard let worker = newWorker, worker.failure == nil else { return }
        let batches = handoff(for: worker.load).batches
        switch message {
        case .ack(let count) where !worker.goSent && worker.batchesSent > 0 && count == batches[worker.batchesSent - 1].count:
            emit(.disarm(.acknowledgement))
            sendNextBatch()
        case .ready where worker.goSent:
            emit(.disarm(.ready))
            becameReady(worker)
        default:
            failNewWorker("unexpected \(message.verb) from the new worker", spawned: true)
        }
    }

    /// The new worker serves: retire the old ones and the listeners nobody uses any more.
    mutating func becameReady(_ worker: NewWorker) {
        let keep = Set(worker.load.listeners.map(\.key))
        for l in state.listeners where !keep.contains(l.key) { emit(.close(l.fd)) }
        state.listeners = worker.load.listeners
        for w in state.workers {
            emit(.signal(pid: w.pid, w.reloads > settings.maxReloads || state.hardReload ? SIGTERM : SIGUSR1))
        }
        state.workers.append(WorkerRecord(pid: worker.pid, ipcFD: worker.channel, reloads: 0, startedAt: now() / 1000, leaving: false))
        phase = .serving
        deliverWaitingHandovers()
        log(.notice, "Loading success.")
        notify("READY=1\nMAINPID=\(getpid())\nSTATUS=Ready.\n")
        emit(.writePidfile)
        if !worker.isReload {
            for pid in options.softStopPids { emit(.signal(pid: pid, SIGUSR1)) }
            for pid in options.terminatePids { emit(.signal(pid: pid, SIGTERM)) }
        }
        emit(.reportReady)
        loadFinished(isReload: worker.isReload, success: true)
    }

    /// The new worker will not serve: it is killed (unless it is gone already) and its exit,
    /// when reaped, ends the load (`newWorkerExited`).
    mutating func failNewWorker(_ reason: String?, spawned: Bool, signal: Int32 = SIGKILL) {
        guard var worker = newWorker, worker.failure == nil else { return }
        if let reason, stopping == nil { log(.alert, "master: \(reason)") }
        guard spawned else {
            // Nothing was started: the load ends now.
            endFailedLoad(worker)
            return
        }
        worker.failure = reason ?? "stopping"
        phase = .startingWorker(worker)
        emit(.disarm(.acknowledgement))
        emit(.disarm(.ready))
        emit(.unwatch(pid: worker.pid))
        emit(.signal(pid: worker.pid, signal))
    }

    mutating func newWorkerExited(_ worker: NewWorker, status: ProcessStatus) {
        if worker.failure == nil {
            // It died by itself during its start: nothing more to kill.
            emit(.disarm(.acknowledgement))
            emit(.disarm(.ready))
            emit(.unwatch(pid: worker.pid))
        }
        log(.warning, "Failed to load worker (\(worker.pid)) exited with code \(status.exitCode) (\(status.reason))")
        endFailedLoad(worker)
    }

    mutating func endFailedLoad(_ worker: NewWorker) {
        guard worker.isReload else {
            phase = .serving
            if stopping == nil {
                emit(.exit(1))
            } else {
                finishIfDone()
            }
            return
        }
        // Nobody will accept on the sockets this attempt bound: close them (the ones the running
        // workers use are kept).
        let previous = Set(state.listeners.map(\.key))
        for l in worker.load.listeners where !previous.contains(l.key) { emit(.close(l.fd)) }
        phase = .serving
        if stopping == nil { reloadFailed() }
        loadFinished(isReload: true, success: false)
        finishIfDone()
    }

    mutating func reloadFailed() {
        state.failedReloads += 1
        notify("READY=1\nSTATUS=Reload failed!\n")
        phase = .serving
        for i in state.workers.indices where servingBeforeReload.contains(state.workers[i].pid) {
            state.workers[i].leaving = false
        }
        deliverWaitingHandovers()
        let kept = state.workers.filter { !$0.leaving }.map { String($0.pid) }.joined(separator: ", ")
        log(.warning, "Reload failed (\(state.failedReloads) failed reload(s) out of \(state.reloads)); the running worker(s) are kept: \(kept.isEmpty ? "none" : kept).")
    }

    /// Ends a load: records its outcome, answers the `reload` client, and runs a reload that
    /// was asked for meanwhile.
    mutating func loadFinished(isReload: Bool, success: Bool) {
        if isReload {
            state.lastReloadFailed = !success
            state.lastReloadStatus = success ? "Success" : "Failed"
            state.lastReloadTime = now() / 1000
            if state.reloadStartedMs > 0 { state.lastReloadDurationMs = max(0, now() - state.reloadStartedMs) }
        }
        state.reloadStartedMs = 0
        state.hardReload = false
        state.runtimeState = RuntimeStateRecord()
        phase = .serving
        if state.reloadClientFD >= 0 {
            emit(.answerReloadClient(state.reloadClientFD, success: success))
            state.reloadClientFD = -1
        }
        if let deferred = deferredReload {
            deferredReload = nil
            reloadRequested(deferred)
        }
    }
}
