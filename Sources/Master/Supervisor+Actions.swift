import CHaspSys
import Dispatch
import Shared
import Worker

#if canImport(Glibc)
import Glibc
#endif

/// Carrying out the machine's actions. Each is quick: anything that may wait (a send, a client's
/// answer, a protocol-0 worker's runtime state) runs off the queue and comes back as an event.
extension Supervisor {
    func perform(_ action: MasterMachine.Action) {
        switch action {
        case .log(let level, let text):
            switch level {
            case .notice: printer.notice(text)
            case .warning: printer.warning(text)
            case .alert: printer.alert(text)
            }
        case .notifySystemd(let text):
            SystemdNotifier.notify(text)
        case .watch(let pid, let channel, let version):
            // One link per worker: a second one would close the channel the first one reads.
            guard links[pid] == nil else { return }
            links[pid] = WorkerLink(pid: pid, fd: channel, version: version, queue: queue, table: table) { [self] event in
                apply(event)
            }
        case .unwatch(let pid):
            // Messages still queued are delivered (as later events) before the channel closes.
            links.removeValue(forKey: pid)?.stop(draining: { [self] event in apply(event) })
        case .spawnWorker:
            spawnWorker()
        case .send(let pid, let message, let descriptors, let closing):
            guard let link = links[pid] else {
                if closing { for fd in descriptors { close(fd) } }
                apply(.sendFailed(to: pid))
                return
            }
            link.send(message, descriptors: descriptors, closing: closing) { [self] in post(.sendFailed(to: pid)) }
        case .fetchLegacyRuntimeState(let pid):
            fetchLegacyRuntimeState(from: pid)
        case .arm(let timer, let milliseconds):
            arm(timer, milliseconds: milliseconds)
        case .disarm(let timer):
            timers.removeValue(forKey: timer)?.cancel()
            timerGenerations[timer] = nil
        case .signal(let pid, let sig):
            kill(pid, sig)
        case .close(let fd):
            close(fd)
        case .reexec:
            reexec()
        case .answerReloadClient(let fd, let success):
            // The client may ask `show proc` the moment it reads the answer: the table it reads
            // must already show this reload (`apply` publishes only after all its actions).
            publish()
            var text = success ? "Success=1\n" : "Success=0\n"
            let logs = printer.startupLog
            if !logs.isEmpty { text += "--\n" + logs.map { $0 + "\n" }.joined() }
            Self.answer(fd, text, timeoutMs: 2_000)
        case .refuseReload(let fd, let reason):
            publish()
            Self.answer(fd, "Success=0\n--\n\(reason)\n", timeoutMs: 1_000)
        case .writePidfile:
            if let pidfile = options.pidfile ?? configuredPidfile { PidFile.write(pidfile, pid: getpid()) }
        case .reportReady:
            Daemon.reportReady()
        case .exit(let code):
            // A reload client answered just before (a load that a stop ended) still hears it.
            _ = Self.answers.wait(timeout: .now() + .seconds(2))
            exit(code)
        }
    }

    /// One timer per kind; arming again replaces it. A timer cancelled or replaced after its
    /// firing was queued is recognised and ignored.
    private func arm(_ timer: MasterMachine.Timer, milliseconds: Int) {
        timers.removeValue(forKey: timer)?.cancel()
        timerGeneration += 1
        let generation = timerGeneration
        let source = DispatchSource.makeTimerSource(queue: queue)
        source.schedule(deadline: .now() + .milliseconds(milliseconds))
        source.setEventHandler { [self] in
            guard timerGenerations[timer] == generation else { return }
            timers.removeValue(forKey: timer)?.cancel()
            timerGenerations[timer] = nil
            apply(.timerFired(timer))
        }
        timers[timer] = source
        timerGenerations[timer] = generation
        source.resume()
    }

    /// A protocol-0 worker answers `_runtime_state` on a runtime-API session, in text. Asked on
    /// another thread (`WorkerCommand.run` waits up to 2 s); a timeout is the machine's timer.
    private func fetchLegacyRuntimeState(from pid: pid_t) {
        let table = self.table
        DispatchQueue.global().async { [self] in
            var answer: [UInt8] = []
            let outcome = WorkerCommand.run("_runtime_state\n", on: pid, table: table, timeoutMs: MasterMachine.runtimeStateTimeoutMs) { piece in
                answer.append(contentsOf: piece)
                return true
            }
            switch outcome {
            case .answered: post(.legacyRuntimeState(RuntimeStateRecord(legacyText: String(decoding: answer, as: UTF8.self))))
            case .unreachable: post(.legacyRuntimeState(nil))
            case .timedOut: break
            }
        }
    }

    /// Answers being written: an exec waits for them, since it would close their clients.
    static let answers = DispatchGroup()

    /// Writes a master CLI client's answer and closes it, off the queue (bounded).
    static func answer(_ fd: Int32, _ text: String, timeoutMs: Int32) {
        let bytes = Array(text.utf8)
        DispatchQueue.global().async(group: answers) {
            _ = CLIConnection.writeAll(fd: fd, bytes, timeoutMs: timeoutMs)
            close(fd)
        }
    }
}
