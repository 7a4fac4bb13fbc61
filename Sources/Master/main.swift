import Dispatch
import Shared
import Worker

#if canImport(Glibc)
import Glibc
#endif

/// Entry point of the `hasp` binary.
enum Hasp {
    static let printer = DiagnosticPrinter.shared

    static func run() -> Never {
        if WorkerRole.isWorker { WorkerRole.run() }
        let arguments = Array(CommandLine.arguments.dropFirst())
        var options: LaunchOptions
        do {
            options = try LaunchOptions.parse(arguments)
        } catch {
            switch error {
            case .usage:
                StandardStreams.writeError(VersionBanner.short + LaunchOptions.usage)
            case .alert(let message):
                printer.alert(message)
            }
            exit(1)
        }
        printer.quiet = options.quiet

        if let request = options.versionRequest {
            StandardStreams.writeOutput(VersionBanner.text(for: request))
            exit(0)
        }
        if let condition = options.checkCondition {
            do {
                exit(try ConditionEvaluator().evaluate(condition) ? 0 : 1)
            } catch {
                printer.alert("Failed to evaluate condition: \(error.message)")
                exit(2)
            }
        }
        if let dir = options.chdir, chdir(dir) != 0 {
            printer.alert("Cannot change to directory \(dir) : \(ConfigLoader.errorText(errno))")
            exit(1)
        }
        if options.configPaths.isEmpty {
            printer.alert("No configuration file specified")
            StandardStreams.writeError(VersionBanner.short + LaunchOptions.usage)
            exit(1)
        }
        // `master-worker` in the global section asks for the same as -W.
        // A master re-executing itself for a reload stays the master whatever the new file says.
        if !options.masterWorker, !options.checkOnly,
           ProcessEnvironment.get(MasterState.variable) != nil || configuredGlobal(options)?.masterWorker == true {
            options.masterWorker = true
        }
        if !options.masterSockets.isEmpty, !options.masterWorker, !options.checkOnly {
            printer.alert("a master CLI socket was defined, but master-worker mode (-W) is not enabled.")
            exit(1)
        }

        if options.masterWorker && !options.checkOnly {
            let isReexec = ProcessEnvironment.get(MasterState.variable) != nil
            // `daemon` in the global section counts like -D (the master reads it again later).
            let wantsDaemon = options.daemon || daemonKeyword(options)
            if wantsDaemon && options.systemd && !isReexec {
                printer.warning("'daemon' is not compatible with -Ws (master-worker mode for systemd), ignoring.")
            }
            if wantsDaemon && !options.foreground && !options.systemd && !isReexec {
                Daemon.detach(options: options)
            }
            Supervisor.run(options: options, arguments: arguments)
        }
        let configuration = loadConfiguration(options)
        if options.checkOnly {
            exit(0)
        }
        runStandalone(configuration, options: options)
    }

    /// Applies `chroot`, `group` and `user` once the sockets are held; a failure ends the process.
    /// `setcap` applies only where no thread has started yet (a worker): capabilities are per
    /// thread, and a process whose event loops run already could only give them to one thread.
    static func dropPrivilegesOrExit(_ global: GlobalSettings, keepingCapabilities: Bool) {
        if !keepingCapabilities && !global.capabilities.isEmpty && global.user != nil {
            printer.warning("'setcap' only applies to workers in master-worker mode (-W): this process keeps no capability once it runs as '\(global.user!)'.")
        }
        do {
            try Privileges.drop(user: global.user, group: global.group, chroot: global.chroot,
                                keeping: keepingCapabilities ? global.capabilities : [])
        } catch {
            printer.alert(error.description)
            exit(1)
        }
    }

    /// Whether the configuration asks for `daemon`, without printing anything.
    static func daemonKeyword(_ options: LaunchOptions) -> Bool {
        configuredGlobal(options)?.daemon ?? false
    }

    /// The global section of the files, read before the role is chosen (nil if unreadable:
    /// the real load reports why).
    static func configuredGlobal(_ options: LaunchOptions) -> GlobalSettings? {
        guard let sources = try? ConfigLoader.sources(for: options.configPaths) else { return nil }
        return ConfigParser.parse(sources, localPeer: options.localPeer).configuration.global
    }

    /// Parses the files; prints the messages; exits 1 on errors (and on warnings with -dW).
    /// In check mode it also prints the verdict.
    static func loadConfiguration(_ options: LaunchOptions) -> Configuration {
        let sources: [ConfigParser.Source]
        do {
            sources = try ConfigLoader.sources(for: options.configPaths)
        } catch {
            printer.alert(error.message)
            exit(1)
        }
        let result = ConfigParser.parse(sources, localPeer: options.localPeer)
        var configuration = result.configuration
        if configuration.global.quiet && !options.verbose { printer.quiet = true }
        for diagnostic in result.diagnostics { printer.emit(diagnostic) }
        if result.hasErrors { exit(1) }
        let zeroWarning = options.zeroWarning || configuration.global.zeroWarning
        if result.hasWarnings, zeroWarning {
            printer.alert("Some warnings were found and 'zero-warning' is set. Aborting.")
            exit(1)
        }
        result.environment.applyToProcess()
        if options.checkOnly {
            if !printer.quiet, result.hasWarnings { StandardStreams.writeOutput("Warnings were found.\n") }
            // As haproxy: a configuration that would listen nowhere (no bound proxy, stats
            // socket, master CLI or peers listener) is valid but exits 2.
            let listens = !configuration.global.statsSockets.isEmpty || !configuration.peersListeners.isEmpty
                || (options.masterWorker && !options.masterSockets.isEmpty)
                || configuration.proxies.contains { $0.kind != .defaults && !$0.disabled && !$0.binds.isEmpty }
            if !listens {
                if !printer.quiet { StandardStreams.writeOutput("Configuration file has no error but will not start (no listener) => exit(2).\n") }
                exit(2)
            }
            if !printer.quiet { StandardStreams.writeOutput("Configuration file is valid\n") }
        }
        options.applyLimits(to: &configuration)
        return configuration
    }

    static func runStandalone(_ configuration: Configuration, options: LaunchOptions) -> Never {
        if let lines = Privileges.missingNetworkAdmin(configuration, capabilitiesKept: false) {
            for line in lines { printer.alert(line) }
            exit(1)
        }
        if (options.daemon || configuration.global.daemon) && !options.foreground {
            Daemon.detach(options: options)
        }
        // Signal handling is in place before anything listens, so no early signal is lost.
        let current = EngineSlot()
        let router = SignalRouter.forServingProcess(current)
        var inherited: [String: Int32] = [:]
        if let path = options.socketTransfer, path != "/dev/null" {
            do {
                for l in try SocketTransfer.fetch(from: path) { inherited[l.address] = l.fd }
            } catch {
                printer.alert("Failed to get the sockets from the old process! (\(error))")
                exit(1)
            }
        }
        let listeners: [AdoptedListener]
        do {
            listeners = try Engine.bindAll(configuration, inherited: inherited)
        } catch {
            printer.alert("\(error)")
            printer.alert("[hasp.main()] Some protocols failed to start their listeners! Exiting.")
            exit(1)
        }
        let engine = Engine(configuration: configuration)
        engine.api.applyServerStateFiles()
        do {
            try engine.start(listeners: listeners)
            try engine.startStatsSockets(inWorker: false)
        } catch {
            printer.alert("Failed to start listeners: \(error)")
            exit(1)
        }
        // -sf/-st: the previous process may stop now that this one serves.
        for pid in options.softStopPids { kill(pid, SIGUSR1) }
        for pid in options.terminatePids { kill(pid, SIGTERM) }
        current.engine = engine
        // Serving: from now on stderr is written off the event loops.
        printer.writeInBackground()
        if let pidfile = options.pidfile ?? configuration.global.pidfile {
            PidFile.write(pidfile, pid: getpid())
        }
        dropPrivilegesOrExit(configuration.global, keepingCapabilities: false)
        Daemon.reportReady()
        // The router must outlive the wait: Swift may otherwise release it (and its signal
        // sources) right after its last use above.
        let code = withExtendedLifetime(router) { (try? engine.exitFuture.wait()) ?? 1 }
        exit(code)
    }
}

/// The engine once it runs, for signal handlers that may fire before.
final class EngineSlot: @unchecked Sendable {
    private let lock = NSLockLike()
    private var value: Engine?
    var engine: Engine? {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}

/// A pthread mutex, enough for the few cross-thread handoffs of the launcher.
final class NSLockLike: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    func withLock<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}

Hasp.run()
