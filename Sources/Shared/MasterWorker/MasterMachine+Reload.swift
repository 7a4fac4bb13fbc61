#if canImport(Glibc)
import Glibc
#endif

/// A reload in the running image: the current worker's runtime state, then the re-exec. The
/// new image goes on from `started(isReload: true)`.
extension MasterMachine {
    mutating func reloadRequested(_ request: ReloadRequest) {
        guard stopping == nil else {
            if request.client >= 0 { emit(.refuseReload(request.client, reason: "The master is stopping.")) }
            return
        }
        guard !lostState else {
            log(.alert, "master: reload refused: this master lost the previous image's state; stop and start hasp instead.")
            if request.client >= 0 { emit(.refuseReload(request.client, reason: "The master lost its state: stop and start hasp instead.")) }
            return
        }
        guard case .serving = phase else {
            // A load is in progress: this reload runs once it ends. Requests meanwhile merge; only
            // one client can cross the exec, so a second one is answered at once.
            guard var deferred = deferredReload else {
                deferredReload = request
                return
            }
            deferred.hard = deferred.hard || request.hard
            if deferred.client < 0 {
                deferred.client = request.client
            } else if request.client >= 0 {
                emit(.refuseReload(request.client, reason: "A reload is already pending."))
            }
            deferredReload = deferred
            return
        }
        guard settings.runtimeStateHandoff, let current = state.workers.filter({ !$0.leaving }).min(by: { $0.reloads < $1.reloads }),
              current.ipcFD >= 0 else {
            reexec(request, runtimeState: RuntimeStateRecord())
            return
        }
        // Bounded: a hung worker costs 2 s, and the reload goes on without its state.
        phase = .fetchingRuntimeState(request, from: current.pid)
        if current.protocolVersion == MasterWorkerProtocol.legacy {
            emit(.fetchLegacyRuntimeState(pid: current.pid))
        } else {
            emit(.send(to: current.pid, .runtimeStateRequest, descriptors: [], closing: false))
        }
        emit(.arm(.runtimeState, milliseconds: Self.runtimeStateTimeoutMs))
    }

    /// The answer of the worker asked, or nil if it cannot answer (it is gone, or the request
    /// could not be sent): the reload goes on without it either way.
    mutating func runtimeStateArrived(_ record: RuntimeStateRecord?, from pid: pid_t?) {
        guard case .fetchingRuntimeState(let request, let asked) = phase, pid == nil || pid == asked else { return }
        emit(.disarm(.runtimeState))
        reexec(request, runtimeState: record ?? RuntimeStateRecord())
    }

    mutating func legacyRuntimeState(_ record: RuntimeStateRecord?) {
        runtimeStateArrived(record, from: nil)
    }

    mutating func runtimeStateTimedOut() {
        guard case .fetchingRuntimeState(let request, let asked) = phase else { return }
        log(.warning, "master: the current worker (\(asked)) did not report its runtime state; reloading without it.")
        reexec(request, runtimeState: RuntimeStateRecord())
    }

    mutating func reexec(_ request: ReloadRequest, runtimeState: RuntimeStateRecord) {
        state.reloadClientFD = request.client
        state.hardReload = request.hard
        state.reloadStartedMs = request.startedMs
        state.runtimeState = settings.runtimeStateHandoff ? runtimeState : RuntimeStateRecord()
        log(.notice, "Reloading HAProxy")
        state.reloads += 1
        phase = .reexecuting(request)
        emit(.reexec)
    }

    /// The exec did not happen: the running image goes on with its workers, counts the failure,
    /// tells systemd it is ready again and answers the `reload` client.
    mutating func execFailed(_ message: String) {
        guard case .reexecuting = phase else { return }
        state.reloads -= 1
        state.failedReloads += 1
        log(.alert, message)
        notify("READY=1\nSTATUS=Reload failed!\n")
        loadFinished(isReload: true, success: false)
    }
}
