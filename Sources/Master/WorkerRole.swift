import Dispatch
import Shared
import Worker

#if canImport(Glibc)
import Glibc
#endif

/// The worker role: a process the master started with one end of a socketpair on fd 3.
/// It receives the validated configuration and the listening sockets, serves, reports READY,
/// and exits at once if the master goes away.
enum WorkerRole {
    static let channelVariable = "HASP_WORKER_FD"

    static var isWorker: Bool { ProcessEnvironment.get(channelVariable) != nil }

    static func run() -> Never {
        let printer = DiagnosticPrinter.shared
        guard let text = ProcessEnvironment.get(channelVariable), let fd = Int32(text) else { exit(1) }
        unsetenv(channelVariable)
        // Only the master talks to systemd.
        unsetenv(SystemdNotifier.variable)
        let channel = IPCChannel(fd: fd)
        let handoff: WorkerHandoff
        do {
            handoff = try WorkerHandoff.receive(over: channel)
        } catch {
            printer.alert("worker: cannot receive the configuration from the master: \(error)")
            exit(1)
        }
        // The worker runs with the master's arguments: `-L`, `-n` and `-N` apply here too.
        let options = (try? LaunchOptions.parse(Array(CommandLine.arguments.dropFirst()))) ?? LaunchOptions()
        // The master already printed the configuration's messages; only failures matter here.
        let result = ConfigParser.parse(handoff.sources, files: ConfigFiles(bundle: handoff.files), localPeer: options.localPeer)
        if result.hasErrors {
            printer.quiet = true
            for d in result.diagnostics where d.level == .alert { printer.emit(d) }
            exit(1)
        }
        result.environment.applyToProcess()
        var configuration = result.configuration
        options.applyLimits(to: &configuration)
        // Every file is read before the worker leaves root and enters its chroot, and the drop
        // comes before anything starts a thread (the signal router's dispatch sources, the
        // engine's event loops), so that every thread has the capabilities `setcap` asks for:
        // they are per thread, inherited at creation.
        let stateFiles = RuntimeAPI.readServerStateFiles(configuration)
        let statsSockets: [Int: Int32]
        do {
            statsSockets = try Engine.openWorkerStatsSockets(configuration)
        } catch {
            printer.alert("worker: cannot start listeners: \(error)")
            exit(1)
        }
        Hasp.dropPrivilegesOrExit(configuration.global, keepingCapabilities: true)
        let current = EngineSlot()
        let router = SignalRouter.forServingProcess(current)

        let engine = Engine(configuration: configuration)
        // Saved server states, then the previous worker's runtime changes, apply before the first
        // connection is accepted.
        engine.api.applyServerStateFiles(preloaded: stateFiles)
        if !handoff.runtimeState.isEmpty { engine.api.applyRuntimeState(handoff.runtimeState) }
        let listeners = handoff.listeners
        do {
            try engine.start(listeners: listeners)
            try engine.startStatsSockets(inWorker: true, passed: listeners, opened: statsSockets)
        } catch {
            printer.alert("worker: cannot start listeners: \(error)")
            exit(1)
        }
        current.engine = engine
        // Serving: from now on stderr is written off the event loops.
        printer.writeInBackground()
        // At soft-stop, idle keep-alive connections travel to the master, which hands them to
        // the new worker (the sink owns and closes the duplicate it is given). From an event
        // loop it never blocks: a full channel fails the hand-over, and the connection stays to
        // be answered here.
        let writer = ChannelWriter(channel)
        engine.setHandoverSink { fd, frontend, mayWait in
            defer { close(fd) }
            return (try? writer.send(.handover(frontend: frontend), descriptors: [fd], waiting: mayWait)) != nil
        }
        do {
            try writer.send(.ready(pid: getpid()))
        } catch {
            exit(1)
        }
        // The master holds the other end for the worker's whole life: EOF means it died.
        DispatchQueue.global().async {
            while true {
                let received: ReceivedMessage
                do {
                    guard let next = try channel.receiveMessage() else { exit(1) }
                    received = next
                } catch {
                    // A malformed message (its descriptors are closed): the next one may be fine.
                    continue
                }
                switch received.message {
                case .stop:
                    engine.softStop()
                case .cli:
                    // A master CLI command for this worker: a runtime-API session at admin level
                    // (the master injects the client's own level before the command).
                    engine.api.serve(fd: received.descriptors[0], level: .admin, exposesListeners: true, listenerName: "master")
                case .adopt(let frontend):
                    engine.adopt(fd: received.descriptors[0], frontend: frontend)
                case .runtimeStateRequest:
                    // A reload is starting: what the CLI changed here goes to the next worker.
                    _ = try? writer.send(.runtimeState(engine.api.runtimeState()))
                default:
                    for fd in received.descriptors { close(fd) }
                }
            }
        }
        let code = withExtendedLifetime(router) { (try? engine.exitFuture.wait()) ?? 1 }
        exit(code)
    }
}
