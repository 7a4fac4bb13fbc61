import Atomics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Shared

/// A frontend at run time.
final class Frontend: Sendable {
    let settings: ProxySettings
    /// The backend requests go to when no `use_backend` rule picks one: `default_backend`,
    /// else the proxy itself when it is a `listen` section with servers.
    let backend: Backend?
    /// Requests go through rules (`http-request`, `use_backend`, `monitor-uri`...) before a
    /// backend is chosen; without any, the default backend is taken at once.
    let routesRequests: Bool
    /// `tcp-request connection` / `session` rules run when a connection is accepted.
    let hasConnectionRules: Bool
    /// `http-response` / `http-after-response` rules or response captures of the frontend.
    var hasResponseRules: Bool { rules.hasResponseRules }
    /// A TCP frontend buffers the first bytes for its content rules (`tcp-request inspect-delay`).
    let inspectsContent: Bool
    /// HTTP requests read their body before rules and routing: `option http-buffer-request`
    /// (until `timeout http-request`, then 408) or a `wait-for-body` rule (its time, then on).
    let bodyWait: (milliseconds: Int64, continues: Bool)?
    /// Its rules, by reference.
    let rules: ProxyRuleSet
    /// The `stats uri` of every statistics page a request here may reach: a POST to one reads
    /// its body (the admin form) before the rules.
    let statsURIs: [String]
    /// Its connections are parsed as HTTP: `mode http`, or a TCP frontend whose backend is in
    /// `mode http` (HAProxy upgrades such a stream to HTTP).
    let servesHTTP: Bool
    let totalSessions = ManagedAtomic<Int>(0)
    let currentSessions = ManagedAtomic<Int>(0)
    let counters = ProxyCounters()
    let shutDown = ManagedAtomic<Bool>(false)
    /// Traffic lines logged so far (`%lc`).
    private let logLines = ManagedAtomic<Int>(0)
    func nextLogLine() -> Int { logLines.loadThenWrappingIncrement(ordering: .relaxed) }
    /// This frontend's `maxconn`, and the process-wide one (shared by every frontend).
    let gate: AcceptGate
    let globalGate: AcceptGate
    /// Its `log` targets, if any (looked up once, not per connection).
    let logger: ProxyLogger?

    init(settings: ProxySettings, backend: Backend?, globalGate: AcceptGate, logger: ProxyLogger? = nil,
         statsURIs: [String] = []) {
        self.settings = settings
        self.statsURIs = statsURIs
        self.backend = backend
        self.logger = logger
        gate = AcceptGate(limit: settings.maxconn ?? 0)
        self.globalGate = globalGate
        servesHTTP = settings.mode == .http || backend?.settings.mode == .http
        // A `listen` section is its own backend: one rule set for both roles.
        if let backend, backend.settings.kind == .listen, backend.name == settings.name {
            self.rules = backend.rules
        } else {
            self.rules = ProxyRuleSet(settings)
        }
        let rules = settings.rules
        let backendRules = backend?.settings.rules
        routesRequests = !rules.httpRequest.isEmpty || !rules.useBackends.isEmpty || rules.monitorURI != nil
            || settings.options.bufferRequest
            || rules.requestCaptures.contains { $0.name != nil }
            || rules.tcpRequest.contains { $0.phase == .content }
            || !(backendRules?.httpRequest.isEmpty ?? true) || !(backendRules?.useServers.isEmpty ?? true)
            || !(backendRules?.stickRules.isEmpty ?? true)
            || (backendRules?.tcpRequest.contains { $0.phase == .content } ?? false)
            || (settings.mode == .http && settings.stats != nil) || (backend?.settings.mode == .http && backend?.settings.stats != nil)
        hasConnectionRules = rules.tcpRequest.contains { $0.phase != .content }
        let requestTimeout = settings.timeouts.httpRequest ?? settings.timeouts.client ?? 0
        var waitRule: Int64? = nil
        for rule in rules.httpRequest + (backendRules?.httpRequest ?? []) {
            if case .waitForBody(let ms, _) = rule.action { waitRule = ms; break }
        }
        if settings.options.bufferRequest || backend?.settings.options.bufferRequest == true {
            bodyWait = (requestTimeout, false)
        } else if let waitRule {
            bodyWait = (waitRule, true)
        } else {
            bodyWait = nil
        }
        inspectsContent = (rules.inspectDelay ?? 0) > 0 && (rules.tcpRequest.contains { $0.phase == .content } || !rules.useBackends.isEmpty)
    }

    enum ConnectionVerdict {
        case reject
        /// `expectProxy`: `expect-proxy layer4` asked for a PROXY header first.
        case accept(expectProxy: Bool)
    }

    /// `tcp-request connection` then `tcp-request session` rules.
    func acceptsConnection(_ context: StreamContext) -> ConnectionVerdict {
        var expectProxy = false
        for phase in [TCPRule.Phase.connection, .session] {
            rules: for rule in settings.rules.tcpRequest where rule.phase == phase {
                if let condition = rule.condition, !condition.matches(context) { continue }
                switch TCPRuleRunner.apply(rule, context) {
                case .next: continue
                case .expectProxy: expectProxy = true
                case .accept: break rules
                case .reject:
                    counters.deniedRequests.wrappingIncrement(ordering: .relaxed)
                    return .reject
                }
            }
        }
        // The connection is a session now: its trackers count it.
        context.stickCounters?.countSession()
        return .accept(expectProxy: expectProxy)
    }

    var name: String { settings.name }
    var isShutDown: Bool { shutDown.load(ordering: .relaxed) }

    func sessionOpened() {
        counters.noteSessions(currentSessions.wrappingIncrementThenLoad(ordering: .relaxed))
        totalSessions.wrappingIncrement(ordering: .relaxed)
        counters.sessionRate.tick()
        globalGate.noteSession()
        gate.opened()
        globalGate.opened()
    }

    func sessionClosed() {
        currentSessions.wrappingDecrement(ordering: .relaxed)
        gate.closed()
        globalGate.closed()
    }
}

/// Something a soft-stop must reach: an open client connection.
protocol StoppableSession: AnyObject {
    /// Called on the session's loop when the process starts draining.
    func beginSoftStop()
    func abort()
    /// Whether the session holds a slot on `server` (`shutdown sessions server`).
    func isAttached(to server: Server) -> Bool
    /// Closes an idle connection to `server` the session keeps for its next request.
    func dropIdleConnection(to server: Server)
}

/// Sessions open on one event loop; only that loop touches it.
final class LoopSessions: @unchecked Sendable {
    private var sessions: [ObjectIdentifier: StoppableSession] = [:]
    /// The soft stop has gone over this loop's sessions: one that opens later (an accepted
    /// connection registered just after, an adopted one) is told to stop by itself.
    var draining = false

    func add(_ s: StoppableSession) { sessions[ObjectIdentifier(s)] = s }
    func remove(_ s: StoppableSession) { sessions.removeValue(forKey: ObjectIdentifier(s)) }
    func all() -> [StoppableSession] { Array(sessions.values) }
}

/// Everything a worker shares between its event loops. Immutable after start, apart from atomics.
public final class WorkerRuntime: Sendable {
    public let configuration: Configuration
    let group: MultiThreadedEventLoopGroup
    let loops: [EventLoop]
    private let loopIndexes: [ObjectIdentifier: Int]
    let backends: [String: Backend]
    let frontends: [Frontend]
    let loopSessions: [LoopSessions]
    /// Where each loop's server connections come from.
    let connectors: [ServerConnector]
    /// The time the HTTP exchanges see (a test clock in unit tests).
    let clock: ExchangeClock
    let stopping = ManagedAtomic<Bool>(false)
    /// Set with `stopping` when idle connections will be handed to the next worker.
    let handingOver = ManagedAtomic<Bool>(false)
    /// Connections handed over by a draining worker that are not yet open sessions here.
    let pendingAdoptions = ManagedAtomic<Int>(0)
    let bufferSize: Int
    /// `tune.http.maxhdr`, read on every head parsed.
    let maxHeaders: Int
    let globalGate: AcceptGate
    let errorCaptures = ErrorCaptures()
    /// Each proxy's `log` targets (absent when it logs nowhere).
    let loggers: [String: ProxyLogger]
    /// The in-memory event sinks: `buf0` and the `ring` sections (`show events`).
    let eventRings: [EventRing]
    /// The running checks of each server (by server identity).
    let checkers = NIOLockedValueBox<[ObjectIdentifier: [HealthChecker]]>([:])
    /// `proc.` variables.
    let processVariables = ProcessVariables()
    /// `tune.vars.*-max-size`.
    let variableLimits: [VariableScope: Int]
    /// Streams (HTTP requests, TCP sessions) started so far: `%rt`.
    private let streams = ManagedAtomic<Int>(0)
    func nextStreamID() -> Int { streams.loadThenWrappingIncrement(ordering: .relaxed) }
    /// The process's start (`Uptime`, `Start_time_sec`).
    let startedAt = WallClock.seconds()
    let startedAtMs = MonotonicClock.milliseconds()
    /// Where work that must not run on an event loop goes (the statistics page reads counters
    /// that live on every loop, and may list thousands of servers): one thread, started on
    /// first use.
    private let backgroundPool = NIOLockedValueBox<NIOThreadPool?>(nil)
    /// The runtime API, once the engine made it: the statistics page renders its reports.
    let runtimeAPI = NIOLockedValueBox<RuntimeAPI?>(nil)
    /// The TLS contexts of the `bind ... ssl` lines, built when their listeners start.
    let tlsBinds = NIOLockedValueBox<[TLSBindSlot]>([])
    /// What the runtime API changes in them (`set ssl cert`...).
    let tlsCertificates: TLSCertificateStore
    /// The stick tables, shared by every loop.
    let stickTables: StickTableRegistry
    /// The `peers` sections sharing them with other processes.
    let peers: PeersService
    /// DNS resolution of the servers of `resolvers` sections.
    let resolvers: ResolversService

    /// The TLS slot of a bind line (shared by its addresses), built on first use.
    func tlsSlot(_ frontend: Frontend, bindIndex: Int) throws(TLSBuildError) -> TLSBindSlot {
        let bind = frontend.settings.binds[bindIndex]
        if let existing = tlsBinds.withLockedValue({ $0.first { $0.frontend == frontend.name && $0.bindIndex == bindIndex } }) {
            return existing
        }
        let context = try TLSServerContext.build(bind, proxy: frontend.name, global: configuration.global.tls)
        let slot = TLSBindSlot(frontend: frontend.name, bindIndex: bindIndex, bind: bind, context: context)
        tlsBinds.withLockedValue { $0.append(slot) }
        return slot
    }

    /// Runs `work` off the event loops; the result comes back on `loop`.
    func offLoop<T: Sendable>(on loop: EventLoop, _ work: @escaping @Sendable () -> T) -> EventLoopFuture<T> {
        let pool = backgroundPool.withLockedValue { pool in
            if let pool { return pool }
            let made = NIOThreadPool(numberOfThreads: 1)
            made.start()
            pool = made
            return made
        }
        return pool.runIfActive(eventLoop: loop, work)
    }

    /// Stops the background thread (the engine is done).
    func stopBackgroundWork() {
        let pool = backgroundPool.withLockedValue { pool in
            defer { pool = nil }
            return pool
        }
        pool?.shutdownGracefully { _ in }
        resolvers.stop()
        runtimeAPI.withLockedValue { $0 = nil }
    }

    public convenience init(configuration: Configuration, threads: Int) {
        self.init(configuration: configuration, threads: threads, connector: nil, clock: MonotonicExchangeClock())
    }

    /// `connector`, when given, serves every loop (unit tests); `clock` is what exchanges read.
    init(configuration: Configuration, threads: Int, connector: ServerConnector?, clock: ExchangeClock) {
        self.clock = clock
        self.configuration = configuration
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        self.group = group
        var loops: [EventLoop] = []
        var indexes: [ObjectIdentifier: Int] = [:]
        for loop in group.makeIterator() {
            indexes[ObjectIdentifier(loop)] = loops.count
            loops.append(loop)
        }
        self.loops = loops
        loopIndexes = indexes
        loopSessions = loops.map { _ in LoopSessions() }
        connectors = loops.map { _ in connector ?? LoopConnectors() }
        bufferSize = configuration.global.bufferSize
        variableLimits = configuration.global.variableLimits
        maxHeaders = configuration.global.maxHeaders
        var backends: [String: Backend] = [:]
        var serverID = 0
        for proxy in configuration.proxies where proxy.capabilities.contains(.backend) {
            backends[proxy.name] = Backend(settings: proxy, loopCount: loops.count, firstServerID: serverID, global: configuration.global)
            serverID += proxy.servers.count
        }
        self.backends = backends
        var sinks: [String: LogSink] = [:]
        // HAProxy's own `buf0` ring (for traces; empty here) and the `ring` sections.
        let rings = [EventRing(RingSettings(name: "buf0"))]
            + configuration.rings.values.sorted { $0.name < $1.name }.map { EventRing($0) }
        eventRings = rings
        let ringsByName = Dictionary(uniqueKeysWithValues: rings.map { ($0.name, $0) })
        var loggers: [String: ProxyLogger] = [:]
        for proxy in configuration.proxies where proxy.kind != .defaults {
            loggers[proxy.name] = ProxyLogger.make(for: proxy, global: configuration.global.logTargets, sinks: &sinks,
                                                   tag: configuration.global.logTag, hostname: configuration.global.logHostname,
                                                   rings: ringsByName)
        }
        self.loggers = loggers
        let globalGate = AcceptGate(limit: configuration.global.maxconn ?? 0)
        self.globalGate = globalGate
        let statsURIs = Set(configuration.proxies.compactMap { $0.kind != .defaults && $0.mode == .http ? $0.stats?.uri : nil }).sorted()
        frontends = configuration.proxies.filter { $0.capabilities.contains(.frontend) }.map { proxy in
            let target = proxy.defaultBackend
            var backend = target.flatMap { backends[$0] }
            if backend == nil, proxy.kind == .listen, !proxy.servers.isEmpty { backend = backends[proxy.name] }
            return Frontend(settings: proxy, backend: backend, globalGate: globalGate, logger: loggers[proxy.name],
                            statsURIs: statsURIs)
        }
        let binds = tlsBinds
        tlsCertificates = TLSCertificateStore(slots: { binds.withLockedValue { $0 } })
        stickTables = StickTableRegistry(configuration.stickTables)
        peers = PeersService(configuration: configuration, tables: stickTables, loop: loops[0])
        resolvers = ResolversService(configuration: configuration, backends: backends)
        linkTrackedServers()
        setGlobalVariables()
    }

    /// The global section's `set-var`/`set-var-fmt`, in order: each may read those before it.
    private func setGlobalVariables() {
        guard !configuration.global.variables.isEmpty else { return }
        let context = CLISampleContext(runtime: self)
        for setting in configuration.global.variables {
            if let value = setting.evaluate(context) { processVariables.set(setting.name.name, value) }
        }
    }

    /// Removes expired stick table entries, a bounded batch per table and lock hold, so a
    /// purge never keeps the loops waiting on a table for long.
    func purgeStickTables() {
        for table in stickTables.tables where table.definition.expire != nil {
            let now = table.now
            for _ in 0..<64 {
                if table.withStorage({ $0.purge(now: now, limit: 1_000) }) < 1_000 { break }
            }
        }
    }

    /// Purges the tables every second on the first loop (a purge takes short lock holds).
    func startStickTablePurge() {
        guard !stickTables.isEmpty, let loop = loops.first else { return }
        loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [weak self] task in
            guard let self else { task.cancel(); return }
            self.purgeStickTables()
        }
    }

    func loopIndex(of loop: EventLoop) -> Int {
        loopIndexes[ObjectIdentifier(loop)] ?? 0
    }

    func sessions(on loop: EventLoop) -> LoopSessions {
        loopSessions[loopIndex(of: loop)]
    }

    public var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// Closes every idle connection to `server` on every event loop, asynchronously: pooled
    /// ones and the ones sessions keep for their next request.
    func purgeIdleConnections(of server: Server) {
        for (index, loop) in loops.enumerated() {
            let sessions = loopSessions[index]
            loop.execute {
                server.pools[index].closeAll(server: server)
                for session in sessions.all() { session.dropIdleConnection(to: server) }
            }
        }
    }

    /// `shutdown sessions server`: ends every stream on `server`, on each loop.
    func shutdownSessions(of server: Server) {
        for (index, loop) in loops.enumerated() {
            let sessions = loopSessions[index]
            loop.execute {
                for session in sessions.all() where session.isAttached(to: server) { session.abort() }
            }
        }
    }
}
