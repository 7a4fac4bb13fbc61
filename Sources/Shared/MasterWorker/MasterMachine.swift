#if canImport(Glibc)
import Glibc
#endif

/// The master's decisions, as a state machine with no I/O: the supervisor feeds it events
/// (signals, child exits, worker messages, timers, the outcome of its own I/O) and carries out
/// the actions each transition returns. Nothing here waits, so a reload in progress never
/// delays a stop signal, a child's reaping or a hand-over relay: each is one more event.
///
/// Phases:
///
///     idle ─started─▶ loading ─loaded─▶ startingWorker ─READY─▶ serving
///                        │                    │ (timeout, EOF, exit, send failure: the
///                        └─loadFailed─────────┴─▶ worker is killed, awaited, then serving
///                                                 with the previous workers, or exit 1)
///     serving ─reload─▶ fetchingRuntimeState ─state/timeout─▶ reexecuting ─execFailed─▶ serving
///
/// A stop (`stopping`) is orthogonal: it can start in any phase, and the master exits once no
/// worker (nor a worker being started) is left.
public struct MasterMachine {
    public struct Settings: Equatable, Sendable {
        public var maxReloads = 50
        public var noExitOnFailure = false
        public var runtimeStateHandoff = true

        public init(maxReloads: Int = 50, noExitOnFailure: Bool = false, runtimeStateHandoff: Bool = true) {
            self.maxReloads = maxReloads
            self.noExitOnFailure = noExitOnFailure
            self.runtimeStateHandoff = runtimeStateHandoff
        }
    }

    /// What the command line asked for that the machine acts on.
    public struct Options: Sendable {
        public var systemd = false
        /// `-sf` and `-st`: signalled once the first worker serves.
        public var softStopPids: [pid_t] = []
        public var terminatePids: [pid_t] = []

        public init(systemd: Bool = false, softStopPids: [pid_t] = [], terminatePids: [pid_t] = []) {
            self.systemd = systemd
            self.softStopPids = softStopPids
            self.terminatePids = terminatePids
        }
    }

    /// A reload asked for by a signal (`client` -1) or the master CLI.
    public struct ReloadRequest: Equatable, Sendable {
        public var client: Int32
        public var hard: Bool
        /// Wall-clock milliseconds when it was asked for.
        public var startedMs: Int
    }

    public enum Timer: Equatable, Hashable, Sendable {
        /// The current worker's runtime state, before a re-exec (2 s).
        case runtimeState
        /// A new worker's acknowledgement of a listener batch (10 s).
        case acknowledgement
        /// A new worker's READY after the hand-off (60 s).
        case ready
    }

    public static let runtimeStateTimeoutMs = 2_000
    public static let acknowledgementTimeoutMs = 10_000
    public static let readyTimeoutMs = 60_000

    /// What a configuration load produced, for the worker to start.
    public struct Load: Sendable {
        public var sources: [ConfigParser.Source]
        /// The TLS files the configuration names, read by the master.
        public var files: ConfigFiles.Bundle
        public var listeners: [OwnedListener]
        public var settings: Settings

        public init(sources: [ConfigParser.Source], files: ConfigFiles.Bundle = ConfigFiles.Bundle(),
                    listeners: [OwnedListener], settings: Settings) {
            self.sources = sources
            self.files = files
            self.listeners = listeners
            self.settings = settings
        }
    }

    /// A worker from its spawn to its READY.
    public struct NewWorker: Sendable {
        public var load: Load
        public var isReload: Bool
        public var pid: pid_t = 0
        public var channel: Int32 = -1
        /// Listener batches sent so far; the last one sent waits for its ACK.
        public var batchesSent = 0
        public var goSent = false
        /// Set once it failed: it is being killed, and its exit ends the load.
        public var failure: String?
    }

    public enum Phase: Sendable {
        case idle
        case loading(isReload: Bool)
        case startingWorker(NewWorker)
        case serving
        case fetchingRuntimeState(ReloadRequest, from: pid_t)
        case reexecuting(ReloadRequest)
    }

    public enum Event: Sendable {
        /// The image starts, first or after a re-exec (then `state` holds the inherited workers).
        case started(isReload: Bool)
        /// The image was re-executed but cannot read the state it was given: `children` are
        /// the workers it still has, whose channels and sockets it no longer knows.
        case startedWithoutState(children: [pid_t])
        /// The configuration or its listeners failed (the messages are printed).
        case loadFailed
        case loaded(Load)
        case spawned(pid: pid_t, channel: Int32)
        case spawnFailed
        case message(from: pid_t, ReceivedMessage)
        /// A message to this worker could not be sent (its descriptors are closed).
        case sendFailed(to: pid_t)
        /// EOF on a worker's channel.
        case channelClosed(pid: pid_t)
        case timerFired(Timer)
        case childExited(pid: pid_t, status: ProcessStatus)
        case signal(Int32)
        case reloadRequested(client: Int32, hard: Bool)
        /// A protocol-0 worker's `_runtime_state` answer (nil: it could not be asked).
        case legacyRuntimeState(RuntimeStateRecord?)
        case execFailed(String)
    }

    public enum Level: Sendable, Equatable { case notice, warning, alert }

    public enum Action: Equatable, Sendable {
        case log(Level, String)
        case notifySystemd(String)
        /// Read this worker's channel from now on, in its protocol.
        case watch(pid: pid_t, channel: Int32, version: UInt8)
        /// Stop reading: deliver what is still queued, then close the channel once every send
        /// queued for it is done.
        case unwatch(pid: pid_t)
        case spawnWorker
        /// `closing`: descriptors the master gives away, closed once sent (or not).
        case send(to: pid_t, MasterWorkerMessage, descriptors: [Int32], closing: Bool)
        case fetchLegacyRuntimeState(pid: pid_t)
        case arm(Timer, milliseconds: Int)
        case disarm(Timer)
        case signal(pid: pid_t, Int32)
        case close(Int32)
        /// Write `state` for the next image and execute it.
        case reexec
        case answerReloadClient(Int32, success: Bool)
        case refuseReload(Int32, reason: String)
        case writePidfile
        case reportReady
        case exit(Int32)
    }

    public internal(set) var state: MasterState
    public internal(set) var phase: Phase = .idle
    public internal(set) var settings = Settings()
    let options: Options
    /// The stop in progress: the code to exit with.
    public internal(set) var stopping: Int32?
    var exitCode: Int32 = 0
    /// Workers that served before this reload: they serve on if it fails.
    var servingBeforeReload: Set<pid_t> = []
    /// Connections handed over while no worker could take them (within a reload).
    public internal(set) var waitingHandovers: [(frontend: String, fd: Int32)] = []
    /// Set when the image could not read its predecessor's state: it serves on with what runs,
    /// and refuses reloads, which would need the sockets it lost.
    public internal(set) var lostState = false
    /// A reload asked for while a load was in progress: it runs once the master serves.
    public internal(set) var deferredReload: ReloadRequest?
    /// Wall-clock milliseconds (injected, for tests).
    let now: () -> Int
    var actions: [Action] = []

    public init(state: MasterState, options: Options = Options(), now: @escaping () -> Int) {
        self.state = state
        self.options = options
        self.now = now
    }

    /// The master CLI listeners bound at a first start.
    public mutating func adoptCLIListeners(_ listeners: [MasterCLIListener]) {
        state.cliListeners = listeners
    }

    /// True while a configuration loads or a worker starts (`show proc`, `show info`).
    public var isLoading: Bool {
        switch phase {
        case .idle, .loading, .startingWorker: true
        default: false
        }
    }

    /// The worker being started, if any.
    public var newWorker: NewWorker? {
        if case .startingWorker(let w) = phase { return w }
        return nil
    }

    /// The newest serving worker: the one that adopts hand-overs and reports its runtime state.
    var currentWorker: WorkerRecord? { state.workers.last(where: { !$0.leaving && $0.ipcFD >= 0 }) }

    /// The single entry point: one event in, the actions to carry out (in order) out.
    public mutating func handle(_ event: Event) -> [Action] {
        actions = []
        switch event {
        case .started(let isReload): started(isReload: isReload)
        case .startedWithoutState(let children): startedWithoutState(children: children)
        case .loadFailed: loadFailed()
        case .loaded(let load): loaded(load)
        case .spawned(let pid, let channel): spawned(pid: pid, channel: channel)
        case .spawnFailed: failNewWorker(nil, spawned: false)
        case .message(let pid, let received): message(received, from: pid)
        case .sendFailed(let pid): sendFailed(to: pid)
        case .channelClosed(let pid): channelClosed(pid: pid)
        case .timerFired(let timer): timerFired(timer)
        case .childExited(let pid, let status): childExited(pid: pid, status: status)
        case .signal(let signal): received(signal: signal)
        case .reloadRequested(let client, let hard): reloadRequested(ReloadRequest(client: client, hard: hard, startedMs: now()))
        case .legacyRuntimeState(let record): legacyRuntimeState(record)
        case .execFailed(let message): execFailed(message)
        }
        return actions
    }

    mutating func emit(_ action: Action) { actions.append(action) }

    mutating func log(_ level: Level, _ text: String) { emit(.log(level, text)) }

    mutating func notify(_ text: String) {
        if options.systemd { emit(.notifySystemd(text)) }
    }
}
