import CHaspSys
import Dispatch
import Shared
import Worker

#if canImport(Glibc)
import Glibc
#endif

/// The master's I/O shell around `MasterMachine`: it turns signals, child exits, channel reads
/// and timers into events on one serial queue, `hasp.master`, and carries out the actions the
/// machine returns. Nothing on the queue waits for a worker: sends go through each worker's
/// outbox (`WorkerLink`), waits are timers, and answers to clients are written off the queue.
final class Supervisor: @unchecked Sendable {
    let options: LaunchOptions
    let arguments: [String]
    var machine: MasterMachine
    let queue = DispatchQueue(label: "hasp.master")
    let router = SignalRouter.shared
    let printer = DiagnosticPrinter.shared
    /// One link per watched worker channel, the worker being started included.
    var links: [pid_t: WorkerLink] = [:]
    var timers: [MasterMachine.Timer: DispatchSourceTimer] = [:]
    /// Which arming of each timer may still fire (a firing queued before a cancel is ignored).
    var timerGenerations: [MasterMachine.Timer: Int] = [:]
    var timerGeneration = 0
    /// What the master CLI sees of the processes.
    let table = ProcessTable()
    var cli: MasterCLI?
    /// The pidfile the loaded configuration names.
    var configuredPidfile: String?
    private var pendingEvents: [MasterMachine.Event] = []
    private var applying = false

    init(options: LaunchOptions, arguments: [String], state: MasterState) {
        self.options = options
        self.arguments = arguments
        machine = MasterMachine(
            state: state,
            options: MasterMachine.Options(systemd: options.systemd, softStopPids: options.softStopPids, terminatePids: options.terminatePids),
            now: { WallClock.milliseconds() })
    }

    // MARK: - Entry point

    /// First start, or start after a re-exec (then with the previous image's state).
    static func run(options: LaunchOptions, arguments: [String]) -> Never {
        SignalRouter.blockHandledSignals()
        var inherited: InheritedState = .none
        if let text = ProcessEnvironment.get(MasterState.variable), let fd = Int32(text) {
            unsetenv(MasterState.variable)
            inherited = readState(fd)
        }
        switch inherited {
        case .state(let state):
            let supervisor = Supervisor(options: options, arguments: arguments, state: state)
            supervisor.startCLI(isReload: true)
            supervisor.queue.sync { supervisor.start(isReload: true) }
            withExtendedLifetime(supervisor) { dispatchMain() }
        case .unreadable(let error):
            let supervisor = Supervisor(options: options, arguments: arguments, state: MasterState(binaryPath: Spawner.currentExecutable()))
            supervisor.queue.sync { supervisor.keepServingWithoutState(error) }
            withExtendedLifetime(supervisor) { dispatchMain() }
        case .none:
            let supervisor = Supervisor(options: options, arguments: arguments, state: MasterState(binaryPath: Spawner.currentExecutable()))
            supervisor.startCLI(isReload: false)
            supervisor.queue.sync { supervisor.start(isReload: false) }
            withExtendedLifetime(supervisor) { dispatchMain() }
        }
    }

    // MARK: - Events

    /// Runs an event through the machine and carries out its actions. Events that arise while
    /// actions run (a drained channel, a spawn) queue behind, so each transition completes
    /// before the next begins. On the queue only.
    func apply(_ event: MasterMachine.Event) {
        pendingEvents.append(event)
        guard !applying else { return }
        applying = true
        while !pendingEvents.isEmpty {
            let next = pendingEvents.removeFirst()
            for action in machine.handle(next) { perform(action) }
        }
        applying = false
        publish()
    }

    /// From any thread.
    func post(_ event: MasterMachine.Event) {
        queue.async { [self] in apply(event) }
    }

    /// A master CLI `reload`: the client's descriptor survives the exec and gets the answer from
    /// the new image.
    func requestReload(client: Int32, hard: Bool) {
        post(.reloadRequested(client: client, hard: hard))
    }

    /// Copies what the master CLI reads into the shared table.
    func publish() {
        let s = machine.state
        let loading = machine.isLoading
        table.publish { t in
            t.reloads = s.reloads
            t.failedReloads = s.failedReloads
            t.lastReloadFailed = s.lastReloadFailed
            t.lastReloadStatus = s.lastReloadStatus
            t.lastReloadDurationMs = s.lastReloadDurationMs
            t.lastReloadTime = s.lastReloadTime
            t.masterStartedAt = s.masterStartedAt
            t.workers = s.workers
            t.loading = loading
        }
    }

    // MARK: - Loading

    private func start(isReload: Bool) {
        installSignals()
        apply(.started(isReload: isReload))
        if isReload { reapExited() }
        guard let (configuration, sources, files) = loadConfiguration() else {
            apply(.loadFailed)
            return
        }
        // `stats timeout` also bounds the master CLI's waits.
        table.publish { $0.cliTimeoutMs = Int(clamping: configuration.global.statsTimeoutMs) }
        configuredPidfile = configuration.global.pidfile
        let listeners: [OwnedListener]
        do {
            listeners = try ListenerBinder.bind(configuration, existing: machine.state.listeners)
        } catch {
            printer.alert("\(error)")
            if !isReload { printer.alert("[hasp.main()] Some protocols failed to start their listeners! Exiting.") }
            apply(.loadFailed)
            return
        }
        let settings = MasterMachine.Settings(maxReloads: configuration.global.mworkerMaxReloads,
                                              noExitOnFailure: configuration.global.noExitOnFailure,
                                              runtimeStateHandoff: configuration.global.runtimeStateHandoff)
        apply(.loaded(MasterMachine.Load(sources: sources, files: files, listeners: listeners, settings: settings)))
    }

    /// Parses the files; on error prints the messages and returns nil.
    private func loadConfiguration() -> (Configuration, [ConfigParser.Source], ConfigFiles.Bundle)? {
        let sources: [ConfigParser.Source]
        do {
            sources = try ConfigLoader.sources(for: options.configPaths)
        } catch {
            printer.alert(error.message)
            return nil
        }
        let files = ConfigFiles()
        let result = ConfigParser.parse(sources, files: files, localPeer: options.localPeer)
        for d in result.diagnostics { printer.emit(d) }
        if result.hasErrors { return nil }
        if result.hasWarnings, options.zeroWarning || result.configuration.global.zeroWarning {
            printer.alert("Some warnings were found and 'zero-warning' is set. Aborting.")
            return nil
        }
        if let lines = Privileges.missingNetworkAdmin(result.configuration) {
            for line in lines { printer.alert(line) }
            return nil
        }
        result.environment.applyToProcess()
        return (result.configuration, sources, files.recorded)
    }

    /// Starts a worker process with one end of a new channel on its fd 3; the hand-off follows
    /// as the machine's sends.
    func spawnWorker() {
        let masterEnd: IPCChannel
        let workerEnd: IPCChannel
        do {
            (masterEnd, workerEnd) = try IPCChannel.pair()
        } catch {
            printer.alert("master: \(error)")
            apply(.spawnFailed)
            return
        }
        do {
            let pid = try Spawner.spawn(path: machine.state.binaryPath, arguments: arguments,
                                        extraEnvironment: [WorkerRole.channelVariable: "3", "HAPROXY_MWORKER": "1"],
                                        descriptors: [(workerEnd.fd, 3)], newSession: false)
            workerEnd.close()
            apply(.spawned(pid: pid, channel: masterEnd.fd))
        } catch {
            printer.alert("master: cannot start a worker: \(error)")
            masterEnd.close()
            workerEnd.close()
            apply(.spawnFailed)
        }
    }

    // MARK: - Signals and children

    func installSignals() {
        for sig in [SIGUSR2, SIGHUP, SIGTERM, SIGUSR1, SIGINT, SIGTTOU, SIGTTIN] {
            router.on(sig, queue: queue) { [self] in apply(.signal(sig)) }
        }
        router.on(SIGCHLD, queue: queue) { [self] in reapExited() }
        router.on(SIGPIPE, queue: queue) {}
    }

    func reapExited() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { break }
            apply(.childExited(pid: pid, status: ProcessStatus(status)))
        }
    }
}
