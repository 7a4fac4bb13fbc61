import CHaspSys
import Dispatch
import Shared
import Worker

#if canImport(Glibc)
import Glibc
#endif

/// The master: owns the listening sockets, spawns workers, reloads by re-executing itself,
/// forwards stop signals and reaps workers. Everything runs on one serial queue.
final class Supervisor: @unchecked Sendable {
    private let options: LaunchOptions
    private let arguments: [String]
    private var state: MasterState
    private let queue = DispatchQueue(label: "hasp.master")
    private let router = SignalRouter.shared
    private var stopping: Int32? = nil
    private var exitCode: Int32 = 0
    private var noExitOnFailure = false
    private var maxReloads = 50
    private let printer = DiagnosticPrinter.shared
    /// One read source per worker socketpair, for connections handed over by draining workers.
    private var watchers: [pid_t: DispatchSourceRead] = [:]
    /// What the master CLI sees of the processes.
    let table = ProcessTable()
    private var servingBeforeReload: Set<pid_t> = []
    /// Connections handed over while no worker could take them yet (within a reload).
    private var waitingHandovers: [(frontend: String, fd: Int32)] = []
    private var runtimeStateHandoff = true
    private var cli: MasterCLI?

    init(options: LaunchOptions, arguments: [String], state: MasterState) {
        self.options = options
        self.arguments = arguments
        self.state = state
    }

    // MARK: - Entry points

    /// First start, or start after a re-exec (`inherited` is then the previous image's state).
    static func run(options: LaunchOptions, arguments: [String]) -> Never {
        SignalRouter.blockHandledSignals()
        var inherited: MasterState? = nil
        if let text = ProcessEnvironment.get(MasterState.variable), let fd = Int32(text) {
            unsetenv(MasterState.variable)
            inherited = readState(fd)
            if inherited == nil { DiagnosticPrinter.shared.alert("master: cannot read the state of the previous master image") }
        }
        let binary = inherited?.binaryPath ?? Spawner.currentExecutable()
        let supervisor = Supervisor(options: options, arguments: arguments, state: inherited ?? MasterState(binaryPath: binary))
        supervisor.startCLI(isReload: inherited != nil)
        supervisor.queue.sync { supervisor.start(isReload: inherited != nil) }
        withExtendedLifetime(supervisor) { dispatchMain() }
    }

    private static func readState(_ fd: Int32) -> MasterState? {
        lseek(fd, 0, SEEK_SET)
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
        }
        close(fd)
        let state: MasterState
        do {
            state = try MasterState.decode(bytes)
        } catch {
            DiagnosticPrinter.shared.alert("master: the state of the previous master image is malformed: \(error)")
            return nil
        }
        // Inherited descriptors become close-on-exec again: only workers get them, by message.
        for l in state.listeners { _ = hasp_set_cloexec(l.fd, 1) }
        for w in state.workers where w.ipcFD >= 0 { _ = hasp_set_cloexec(w.ipcFD, 1) }
        for c in state.cliListeners { _ = hasp_set_cloexec(c.fd, 1) }
        if state.reloadClientFD >= 0 { _ = hasp_set_cloexec(state.reloadClientFD, 1) }
        return state
    }

    // MARK: - Master CLI

    /// Binds the `-S` listeners on a first start (a re-executed image inherits them) and serves
    /// them from now on, so that `show proc` works while a worker loads.
    private func startCLI(isReload: Bool) {
        if state.cliListeners.isEmpty, !options.masterSockets.isEmpty {
            do {
                state.cliListeners = try MasterCLI.bind(options.masterSockets)
            } catch {
                printer.alert("\(error)")
                exit(1)
            }
        }
        publish()
        guard !state.cliListeners.isEmpty else { return }
        let made = MasterCLI(supervisor: self, table: table, listeners: state.cliListeners)
        cli = made
        made.start()
    }

    /// Copies what the master CLI reads into the shared table.
    private func publish() {
        let s = state
        table.publish { t in
            t.reloads = s.reloads
            t.failedReloads = s.failedReloads
            t.lastReloadFailed = s.lastReloadFailed
            t.lastReloadStatus = s.lastReloadStatus
            t.lastReloadDurationMs = s.lastReloadDurationMs
            t.lastReloadTime = s.lastReloadTime
            t.masterStartedAt = s.masterStartedAt
            t.workers = s.workers
        }
    }

    /// A master CLI `reload`: runs on the supervisor's queue; the client's descriptor survives
    /// the exec and gets the answer from the new image.
    func requestReload(client: Int32, hard: Bool) {
        queue.async { [self] in reload(client: client, hard: hard) }
    }

    /// Ends a load: records its outcome and answers the `reload` client, if any.
    private func loadFinished(isReload: Bool, success: Bool) {
        if isReload {
            state.lastReloadFailed = !success
            state.lastReloadStatus = success ? "Success" : "Failed"
            state.lastReloadTime = Int(time(nil))
            if state.reloadStartedMs > 0 { state.lastReloadDurationMs = max(0, WallClock.milliseconds() - state.reloadStartedMs) }
        }
        state.reloadStartedMs = 0
        state.hardReload = false
        state.runtimeState = RuntimeStateRecord()

        table.publish { $0.loading = false }
        publish()
        if state.reloadClientFD >= 0 {
            let fd = state.reloadClientFD
            state.reloadClientFD = -1
            var text = success ? "Success=1\n" : "Success=0\n"
            let logs = printer.startupLog
            if !logs.isEmpty { text += "--\n" + logs.map { $0 + "\n" }.joined() }
            _ = CLIConnection.writeAll(fd: fd, Array(text.utf8), timeoutMs: 2_000)
            close(fd)
        }
    }

    /// Asks the current worker what the CLI changed (bounded: a hung worker costs 2 s, and the
    /// reload goes on without its state). A protocol-1 worker answers on its channel; a worker
    /// of a protocol-0 binary answers the `_runtime_state` CLI command in text.
    private func fetchRuntimeState() -> RuntimeStateRecord {
        guard let current = state.workers.filter({ !$0.leaving }).min(by: { $0.reloads < $1.reloads }) else { return RuntimeStateRecord() }
        if current.protocolVersion == MasterWorkerProtocol.legacy {
            var answer: [UInt8] = []
            let outcome = WorkerCommand.run("_runtime_state\n", on: current.pid, table: table, timeoutMs: 2_000) { piece in
                answer.append(contentsOf: piece)
                return true
            }
            switch outcome {
            case .answered: return RuntimeStateRecord(legacyText: String(decoding: answer, as: UTF8.self))
            case .timedOut: break
            case .unreachable: return RuntimeStateRecord()
            }
        } else if let channel = current.channel {
            guard (try? channel.send(.runtimeStateRequest)) != nil else { return RuntimeStateRecord() }
            let deadline = MonotonicClock.milliseconds() + 2_000
            while case let left = deadline - MonotonicClock.milliseconds(), left > 0 {
                guard let received = try? channel.channel.receiveMessage(timeoutMs: Int32(left)) else { break }
                if case .runtimeState(let record) = received.message { return record }
                handle(received, from: current.pid)
            }
        } else {
            return RuntimeStateRecord()
        }
        printer.warning("master: the current worker (\(current.pid)) did not report its runtime state; reloading without it.")
        return RuntimeStateRecord()
    }

    // MARK: - Loading

    private func start(isReload: Bool) {
        table.publish { $0.loading = true }
        installSignals()
        if isReload {
            // Every existing worker is now an old one (until the load fails: then the ones that
            // were serving go on serving, and stay the current ones).
            servingBeforeReload = Set(state.workers.filter { !$0.leaving }.map(\.pid))
            for i in state.workers.indices {
                state.workers[i].reloads += 1
                state.workers[i].leaving = true
            }
            for w in state.workers { watch(w) }
            reapExited()
        }
        guard let (configuration, sources) = loadConfiguration() else {
            if !isReload { exit(1) }
            reloadFailed(reason: nil)
            loadFinished(isReload: true, success: false)
            return
        }
        noExitOnFailure = configuration.global.noExitOnFailure
        runtimeStateHandoff = configuration.global.runtimeStateHandoff
        // `stats timeout` also bounds the master CLI's waits.
        table.publish { $0.cliTimeoutMs = Int(clamping: configuration.global.statsTimeoutMs) }
        maxReloads = configuration.global.mworkerMaxReloads
        let listeners: [OwnedListener]
        do {
            listeners = try ListenerBinder.bind(configuration, existing: state.listeners)
        } catch {
            printer.alert("\(error)")
            if !isReload {
                printer.alert("[hasp.main()] Some protocols failed to start their listeners! Exiting.")
                exit(1)
            }
            reloadFailed(reason: nil)
            loadFinished(isReload: true, success: false)
            return
        }
        guard let worker = spawnWorker(sources: sources, listeners: listeners) else {
            if !isReload { exit(1) }
            // Nobody will accept on the sockets this attempt bound: close them (the ones the
            // running workers use are kept).
            let previous = Set(state.listeners.map(\.key))
            for l in listeners where !previous.contains(l.key) { close(l.fd) }
            reloadFailed(reason: nil)
            loadFinished(isReload: true, success: false)
            return
        }
        // The new worker serves: retire the old ones and the listeners nobody uses any more.
        let keep = Set(listeners.map(\.key))
        for l in state.listeners where !keep.contains(l.key) { close(l.fd) }
        state.listeners = listeners
        for i in state.workers.indices {
            let w = state.workers[i]
            if w.reloads > maxReloads || state.hardReload {
                kill(w.pid, SIGTERM)
            } else {
                kill(w.pid, SIGUSR1)
            }
        }
        state.workers.append(worker)
        watch(worker)
        deliverWaitingHandovers()
        printer.notice("Loading success.")
        if options.systemd { SystemdNotifier.notify("READY=1\nMAINPID=\(getpid())\nSTATUS=Ready.\n") }
        if let pidfile = options.pidfile ?? configuration.global.pidfile {
            PidFile.write(pidfile, pid: getpid())
        }
        if !isReload {
            for pid in options.softStopPids { kill(pid, SIGUSR1) }
            for pid in options.terminatePids { kill(pid, SIGTERM) }
        }
        Daemon.reportReady()
        loadFinished(isReload: isReload, success: true)
    }

    private func reloadFailed(reason: String?) {
        state.failedReloads += 1
        if options.systemd { SystemdNotifier.notify("READY=1\nSTATUS=Reload failed!\n") }
        if let reason { printer.warning(reason) }
        for i in state.workers.indices where servingBeforeReload.contains(state.workers[i].pid) {
            state.workers[i].leaving = false
        }
        deliverWaitingHandovers()
        let kept = state.workers.filter { !$0.leaving }.map { String($0.pid) }.joined(separator: ", ")
        printer.warning("Reload failed (\(state.failedReloads) failed reload(s) out of \(state.reloads)); the running worker(s) are kept: \(kept.isEmpty ? "none" : kept).")
    }

    /// Parses the files; on error prints the messages and returns nil.
    private func loadConfiguration() -> (Configuration, [ConfigParser.Source])? {
        let sources: [ConfigParser.Source]
        do {
            sources = try ConfigLoader.sources(for: options.configPaths)
        } catch {
            printer.alert(error.message)
            return nil
        }
        let result = ConfigParser.parse(sources)
        for d in result.diagnostics { printer.emit(d) }
        if result.hasErrors { return nil }
        if result.hasWarnings, options.zeroWarning || result.configuration.global.zeroWarning {
            printer.alert("Some warnings were found and 'zero-warning' is set. Aborting.")
            return nil
        }
        return (result.configuration, sources)
    }

    /// Starts a worker, hands it the configuration and listeners, waits for READY.
    private func spawnWorker(sources: [ConfigParser.Source], listeners: [OwnedListener]) -> WorkerRecord? {
        let masterEnd: IPCChannel
        let workerEnd: IPCChannel
        do {
            (masterEnd, workerEnd) = try IPCChannel.pair()
        } catch {
            printer.alert("master: \(error)")
            return nil
        }
        let pid: pid_t
        do {
            pid = try Spawner.spawn(path: state.binaryPath, arguments: arguments,
                                    extraEnvironment: [WorkerRole.channelVariable: "3", "HAPROXY_MWORKER": "1"],
                                    descriptors: [(workerEnd.fd, 3)], newSession: false)
        } catch {
            printer.alert("master: cannot start a worker: \(error)")
            masterEnd.close()
            workerEnd.close()
            return nil
        }
        workerEnd.close()
        printer.notice("Initializing new worker (\(pid))")
        let handoff = WorkerHandoff(sources: sources, listeners: listeners.map {
            WorkerHandoff.Listener(frontend: $0.frontend, address: $0.address, backlog: $0.backlog, fd: $0.fd)
        }, runtimeState: runtimeStateHandoff ? state.runtimeState : RuntimeStateRecord())
        var ready = false
        do {
            try handoff.send(over: masterEnd)
            if let reply = try masterEnd.receiveMessage(timeoutMs: 60_000), case .ready = reply.message {
                ready = true
            }
        } catch {
            // Reported below with the worker's exit status.
        }
        guard ready else {
            masterEnd.close()
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == 0 {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
            }
            let s = ProcessStatus(status)
            printer.warning("Failed to load worker (\(pid)) exited with code \(s.exitCode) (\(s.reason))")
            return nil
        }
        return WorkerRecord(pid: pid, ipcFD: masterEnd.fd, reloads: 0, startedAt: Int(time(nil)), leaving: false)
    }

    // MARK: - Reload (re-exec)

    private func reload(client: Int32 = -1, hard: Bool = false) {
        guard stopping == nil else {
            if client >= 0 {
                _ = CLIConnection.writeAll(fd: client, Array("Success=0\n--\nThe master is stopping.\n".utf8), timeoutMs: 1_000)
                close(client)
            }
            return
        }
        state.reloadClientFD = client
        state.hardReload = hard
        state.reloadStartedMs = WallClock.milliseconds()
        state.runtimeState = runtimeStateHandoff ? fetchRuntimeState() : RuntimeStateRecord()
        if client >= 0 { _ = hasp_set_cloexec(client, 0) }
        printer.notice("Reloading HAProxy")
        state.reloads += 1
        if options.systemd {
            SystemdNotifier.notify("RELOADING=1\nSTATUS=Reloading Configuration.\nMONOTONIC_USEC=\(SystemdNotifier.monotonicMicroseconds())\n")
        }
        let memfd = hasp_memfd("hasp-master-state")
        guard memfd >= 0, BackgroundWriter.writeAll(memfd, state.encoded()) else {
            if memfd >= 0 { close(memfd) }
            abandonReload("master: cannot create the state file for the reload: \(ConfigLoader.errorText(errno))")
            return
        }
        // These must survive exec; everything else stays close-on-exec.
        _ = hasp_set_cloexec(memfd, 0)
        for l in state.listeners { _ = hasp_set_cloexec(l.fd, 0) }
        for w in state.workers where w.ipcFD >= 0 { _ = hasp_set_cloexec(w.ipcFD, 0) }
        for c in state.cliListeners { _ = hasp_set_cloexec(c.fd, 0) }
        ProcessEnvironment.set(MasterState.variable, String(memfd))
        var argv: [UnsafeMutablePointer<CChar>?] = ([state.binaryPath] + arguments).map { strdup($0) } + [nil]
        // Signals arriving from here on wait, pending, for the new image's handlers.
        SignalRouter.blockForExec()
        _ = hasp_execv(state.binaryPath, &argv)
        SignalRouter.blockHandledSignals()
        // Still here: the exec failed. Keep running the old image.
        let code = errno
        for p in argv { free(p) }
        unsetenv(MasterState.variable)
        close(memfd)
        abandonReload("master: cannot re-execute \(state.binaryPath): \(ConfigLoader.errorText(code))")
    }

    /// A reload that could not reach the new image: the running image goes on with its workers,
    /// counts the failure, tells systemd it is ready again and answers the `reload` client.
    private func abandonReload(_ message: String) {
        for l in state.listeners { _ = hasp_set_cloexec(l.fd, 1) }
        for w in state.workers where w.ipcFD >= 0 { _ = hasp_set_cloexec(w.ipcFD, 1) }
        for c in state.cliListeners { _ = hasp_set_cloexec(c.fd, 1) }
        if state.reloadClientFD >= 0 { _ = hasp_set_cloexec(state.reloadClientFD, 1) }
        state.reloads -= 1
        state.failedReloads += 1
        printer.alert(message)
        if options.systemd { SystemdNotifier.notify("READY=1\nSTATUS=Reload failed!\n") }
        loadFinished(isReload: true, success: false)
    }

    // MARK: - Signals and children

    private func installSignals() {
        router.on(SIGUSR2, queue: queue) { [self] in reload() }
        router.on(SIGHUP, queue: queue) { [self] in reload() }
        router.on(SIGTERM, queue: queue) { [self] in stopAll(SIGTERM, exitCode: 0) }
        router.on(SIGUSR1, queue: queue) { [self] in stopAll(SIGUSR1, exitCode: 0) }
        router.on(SIGINT, queue: queue) { [self] in stopAll(SIGINT, exitCode: 130) }
        router.on(SIGTTOU, queue: queue) { [self] in forward(SIGTTOU) }
        router.on(SIGTTIN, queue: queue) { [self] in forward(SIGTTIN) }
        router.on(SIGCHLD, queue: queue) { [self] in reapExited() }
        router.on(SIGPIPE, queue: queue) {}
    }

    /// Listens to a worker's socketpair for idle connections it hands over while draining.
    private func watch(_ worker: WorkerRecord) {
        guard worker.ipcFD >= 0 else { return }
        let channel = IPCChannel(fd: worker.ipcFD)
        var decoder = MessageDecoder(version: worker.protocolVersion)
        let source = DispatchSource.makeReadSource(fileDescriptor: worker.ipcFD, queue: queue)
        source.setEventHandler { [self] in
            let datagram: (bytes: [UInt8], descriptors: [Int32])?
            do {
                datagram = try channel.receive(timeoutMs: 0)
            } catch {
                // Nothing to read after all (a wake-up without a message): not the end.
                return
            }
            guard let datagram else {
                // EOF: the worker is gone (its exit comes with SIGCHLD). Its descriptor closes in
                // the cancel handler; forget the number now so that no reload passes it on and
                // nothing closes it again once the number is reused.
                watchers[worker.pid]?.cancel()
                watchers[worker.pid] = nil
                if let i = state.workers.firstIndex(where: { $0.pid == worker.pid }) { state.workers[i].ipcFD = -1 }
                return
            }
            switch decoder.feed(datagram.bytes, descriptors: datagram.descriptors) {
            case .success(let received?): handle(received, from: worker.pid)
            case .success(nil): break
            case .failure(let error): printer.warning("master: malformed message from worker \(worker.pid): \(error)")
            }
        }
        publish()
        source.setCancelHandler { [table] in table.closeChannel(worker.ipcFD) }
        watchers[worker.pid] = source
        source.resume()
    }

    private func unwatch(_ worker: WorkerRecord) {
        if let source = watchers.removeValue(forKey: worker.pid) {
            // A worker's last messages can still be queued when its exit is reaped first (this
            // queue was busy with a reload meanwhile): connections it handed over are in them,
            // and closing the channel unread would close those connections.
            let channel = IPCChannel(fd: worker.ipcFD)
            while let received = try? channel.receiveMessage(version: worker.protocolVersion, timeoutMs: 0) {
                handle(received, from: worker.pid)
            }
            source.cancel()
        }
        // Without a source (EOF already seen) the descriptor was closed by its cancel handler.
    }

    /// A message a worker sent outside of its start: only hand-overs are expected there.
    private func handle(_ received: ReceivedMessage, from pid: pid_t) {
        guard case .handover(let frontend) = received.message else {
            for fd in received.descriptors { close(fd) }
            return
        }
        relay(frontend: frontend, fd: received.descriptors[0])
    }

    /// A draining worker's idle connection goes to the current worker, which adopts it.
    private func relay(frontend: String, fd: Int32) {
        guard let current = state.workers.last(where: { !$0.leaving && $0.ipcFD >= 0 }), let channel = current.channel else {
            // A reload is between its workers (every worker is an old one until the new one is
            // READY): closing the connection now would reset its client's next request.
            if stopping == nil {
                waitingHandovers.append((frontend, fd))
            } else {
                close(fd)
            }
            return
        }
        defer { close(fd) }
        _ = try? channel.send(.adopt(frontend: frontend), descriptors: [fd])
    }

    /// Hands the connections that waited for a current worker to it.
    private func deliverWaitingHandovers() {
        let waiting = waitingHandovers
        waitingHandovers = []
        for (frontend, fd) in waiting { relay(frontend: frontend, fd: fd) }
    }

    private func forward(_ sig: Int32) {
        for w in state.workers { kill(w.pid, sig) }
    }

    private func stopAll(_ sig: Int32, exitCode code: Int32) {
        if stopping == nil {
            if options.systemd { SystemdNotifier.notify("STOPPING=1") }
            printer.notice("Exiting Master process...")
            stopping = code
        }
        forward(sig)
        if state.workers.isEmpty { finish() }
    }

    private func reapExited() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { break }
            let s = ProcessStatus(status)
            guard let index = state.workers.firstIndex(where: { $0.pid == pid }) else {
                printer.warning("Process \(pid) exited with code \(s.exitCode) (\(s.reason))")
                continue
            }
            let worker = state.workers.remove(at: index)
            unwatch(worker)
            if worker.leaving {
                if worker.reloads > maxReloads, s.exitCode == 143 {
                    printer.warning("Former worker (\(pid)) exited with code \(s.exitCode) (\(s.reason)), as it exceeds max reloads (\(maxReloads))")
                } else {
                    printer.warning("Former worker (\(pid)) exited with code \(s.exitCode) (\(s.reason))")
                }
                continue
            }
            if s.exitCode < 128 {
                printer.warning("Current worker (\(pid)) exited with code \(s.exitCode) (\(s.reason))")
            } else {
                printer.alert("Current worker (\(pid)) exited with code \(s.exitCode) (\(s.reason))")
            }
            if stopping != nil { continue }
            if ![0, 130, 143].contains(s.exitCode) {
                printer.alert("A worker process unexpectedly died and this can only be explained by a bug in hasp or its dependencies.")
                if exitCode == 0 { exitCode = s.exitCode }
                if !noExitOnFailure {
                    printer.alert("exit-on-failure: killing every processes with SIGTERM")
                    stopping = exitCode
                    forward(SIGTERM)
                }
            }
        }
        publish()
        if stopping != nil, state.workers.isEmpty { finish() }
    }

    private func finish() {
        let code = exitCode != 0 ? exitCode : (stopping ?? 0)
        printer.warning("All workers exited. Exiting... (\(code))")
        exit(code)
    }
}
