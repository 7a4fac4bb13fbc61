import CHaspSys
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// A listening socket handed to the engine: already bound (by this process, the master or a
/// previous process).
public typealias AdoptedListener = PassedListener

/// The proxy engine of one process: event loops, listeners, sessions, and the stop sequences.
public final class Engine: Sendable {
    public let runtime: WorkerRuntime
    private let serverChannels = NIOLockedValueBox<[Channel]>([])
    private let finished: EventLoopPromise<Int32>
    private let stopState = NIOLockedValueBox(false)
    private let handoverSink = NIOLockedValueBox<HandoverSink?>(nil)

    /// Where idle keep-alive connections go at soft-stop (the master, in a worker).
    public func setHandoverSink(_ sink: HandoverSink?) {
        handoverSink.withLockedValue { $0 = sink }
    }

    func currentHandoverSink() -> HandoverSink? {
        handoverSink.withLockedValue { $0 }
    }

    public init(configuration: Configuration) {
        // Connections come and go by the thousand: keep freed heap instead of returning it to
        // the kernel and growing it again (each round trip costs mprotect/brk calls).
        hasp_tune_malloc()
        let threads = configuration.global.nbthread ?? System.coreCount
        runtime = WorkerRuntime(configuration: configuration, threads: max(1, threads))
        finished = runtime.group.next().makePromise(of: Int32.self)
        _ = api
    }

    /// Binds every `bind` line of the configuration itself (standalone mode).
    /// `inherited` are sockets taken from a previous process (`-x`), by address: they are used
    /// instead of binding again; the ones nobody claims are closed.
    public static func bindAll(_ configuration: Configuration, inherited: [String: Int32] = [:]) throws -> [AdoptedListener] {
        var result: [AdoptedListener] = []
        var unclaimed = inherited
        defer { for fd in unclaimed.values { close(fd) } }
        do {
            for proxy in configuration.proxies where proxy.capabilities.contains(.frontend) && !proxy.disabled {
                for bind in proxy.binds {
                    let backlog = Int32(clamping: bind.backlog ?? bind.maxconn ?? proxy.maxconn ?? 4096)
                    for address in bind.addresses {
                        if let fd = unclaimed.removeValue(forKey: address.description) {
                            ListenerSocket.relisten(fd, backlog: backlog)
                            result.append(AdoptedListener(frontend: proxy.name, address: address.description, backlog: backlog, fd: fd))
                            continue
                        }
                        do {
                            let fd = try ListenerSocket.open(address, backlog: backlog, unixMode: bind.unixMode,
                                                       unixUser: bind.unixUser, unixGroup: bind.unixGroup,
                                                       transparent: bind.transparent, freebind: bind.freebind)
                            result.append(AdoptedListener(frontend: proxy.name, address: address.description, backlog: backlog, fd: fd))
                        } catch {
                            throw StartupError("Starting \(proxy.kind == .listen ? "proxy" : "frontend") \(proxy.name): \(error)")
                        }
                    }
                }
            }
            for (section, address) in configuration.peersListeners {
                let name = Configuration.peersListenerName(section)
                if let fd = unclaimed.removeValue(forKey: address.description) {
                    result.append(AdoptedListener(frontend: name, address: address.description, backlog: 64, fd: fd))
                    continue
                }
                do {
                    let fd = try ListenerSocket.open(address, backlog: 64)
                    result.append(AdoptedListener(frontend: name, address: address.description, backlog: 64, fd: fd))
                } catch {
                    throw StartupError("Starting peers \(section): \(error)")
                }
            }
        } catch {
            for l in result { close(l.fd) }
            throw error
        }
        return result
    }

    private let adopted = NIOLockedValueBox<[AdoptedListener]>([])
    private let statsSockets = NIOLockedValueBox<[StatsSocketServer]>([])

    private let apiBox = NIOLockedValueBox<RuntimeAPI?>(nil)

    /// The runtime API (stats sockets, sessions forwarded by the master).
    public var api: RuntimeAPI {
        apiBox.withLockedValue { box in
            if let api = box { return api }
            let made = RuntimeAPI(runtime: runtime, engine: self)
            box = made
            runtime.runtimeAPI.withLockedValue { $0 = made }
            return made
        }
    }

    public func adoptedListeners() -> [AdoptedListener] {
        adopted.withLockedValue { $0 }
    }

    /// The name under which the master passes the listener of a TCP `stats socket` (a worker
    /// cannot bind it itself: two generations of workers would need the same port).
    public static func statsListenerName(_ index: Int) -> String { "#stats:\(index)" }

    /// Opens the `stats socket` listeners. In a worker, TCP ones come from the master in
    /// `passed`, under `statsListenerName`; unix ones are bound here.
    /// Binds the `stats socket`s a worker binds itself (unix ones: each worker takes over the
    /// path), by stats socket index. A worker does this before it leaves root and enters its
    /// `chroot`, where the path may not be reachable or writable any more.
    public static func openWorkerStatsSockets(_ configuration: Configuration) throws -> [Int: Int32] {
        var opened: [Int: Int32] = [:]
        for (index, settings) in configuration.global.statsSockets.enumerated() {
            guard case .unix = settings.address else { continue }
            opened[index] = try ListenerSocket.open(settings.address, backlog: 64, unixMode: settings.mode,
                                                    unixUser: settings.user, unixGroup: settings.group)
        }
        return opened
    }

    /// `opened`: sockets `openWorkerStatsSockets` bound earlier, by index.
    public func startStatsSockets(inWorker: Bool, passed: [AdoptedListener] = [], opened: [Int: Int32] = [:]) throws {
        for (index, settings) in runtime.configuration.global.statsSockets.enumerated() {
            // Bound already (a worker's unix sockets), passed by the master (a worker's TCP
            // ones), or bound here.
            var inherited = opened[index]
            var isUnix = false
            if case .unix = settings.address { isUnix = true }
            if inherited == nil, inWorker, !isUnix {
                guard let fd = passed.first(where: { $0.frontend == Self.statsListenerName(index) })?.fd else { continue }
                inherited = fd
            }
            let server = try StatsSocketServer(settings: settings, inheritedFD: inherited)
            server.start(api: api)
            statsSockets.withLockedValue { $0.append(server) }
        }
    }

    /// Adopts the listeners and starts accepting.
    public func start(listeners: [AdoptedListener]) throws {
        adopted.withLockedValue { $0 = listeners }
        for listener in listeners {
            guard let frontend = runtime.frontends.first(where: { $0.name == listener.frontend }) else { continue }
            let runtime = self.runtime
            let isHTTP = frontend.servesHTTP
            // `bind ... maxconn`: this listener's own limit, on top of the frontend's.
            let bindIndex = frontend.settings.binds.firstIndex { $0.addresses.contains { $0.description == listener.address } }
            let bind = bindIndex.map { frontend.settings.binds[$0] }
            let listenerGate = bind?.maxconn.map { AcceptGate(limit: $0) }
            let acceptProxy = bind?.acceptProxy ?? false
            // `bind ... ssl`: TLS below the session, with the bind's current contexts.
            let tls: TLSBindSlot?
            do {
                tls = try bindIndex.flatMap { index in bind?.tls.enabled == true ? try runtime.tlsSlot(frontend, bindIndex: index) : nil }
            } catch {
                throw StartupError("\(error)")
            }
            let handshakeTimeout = frontend.settings.timeouts.client.map { TimeAmount.milliseconds($0) }
            // One listening channel per event loop, each on its own duplicate of the socket, as
            // HAProxy's threads each poll the listener: a connection is accepted, set up and
            // registered by the loop that serves it. With one channel for all loops, NIO sets a
            // child up on its loop and then hops back to the listener's loop, and drops the
            // child there if the listener closed meanwhile, which a soft stop does: the client's
            // request, already sent, was answered with a reset.
            for (index, loop) in runtime.loops.enumerated() {
                let fd = index == 0 ? listener.fd : dup(listener.fd)
                guard fd >= 0 else { throw StartupError("Starting frontend \(frontend.name): cannot duplicate the listening socket (errno \(errno))") }
                let bootstrap = ServerBootstrap(group: loop)
                    .serverChannelOption(.backlog, value: listener.backlog)
                    .serverChannelOption(.maxMessagesPerRead, value: 32)
                    // The `maxconn` gates know the channel before it accepts anything: a session
                    // opened before they did would pass a limit they could not apply to it.
                    .serverChannelInitializer { channel in
                        frontend.gate.attach(channel)
                        runtime.globalGate.attach(channel)
                        listenerGate?.attach(channel)
                        return channel.eventLoop.makeSucceededVoidFuture()
                    }
                    .childChannelInitializer { channel in
                        do {
                            // Set here rather than as bootstrap child options: NIO applies those
                            // through a chain of futures, about 7,000 instructions each per
                            // connection (bench/RESULTS.md), against some 700 for a direct set.
                            // HTTP sessions keep reading on (NIO's default) and switch it off only
                            // for back-pressure; TCP sessions start reading once their server
                            // connection is up.
                            if let options = channel.syncOptions {
                                try options.setOption(.allowRemoteHalfClosure, value: true)
                                if !isHTTP { try options.setOption(.autoRead, value: false) }
                            }
                            let ops = channel.pipeline.syncOperations
                            if let tls {
                                // With TLS, the PROXY header (in clear, first) is read below it.
                                if acceptProxy { try ops.addHandler(ProxyHeaderReader(), name: "hasp.proxy-header") }
                                let handler = TLSHandler(role: .server(tls.context), handshakeTimeout: handshakeTimeout)
                                handler.onFailure = TLSFailureLog.reporter(frontend: frontend, bind: tls, channel: channel, handler: handler)
                                try ops.addHandler(handler, name: "hasp.tls")
                            }
                            let sessionReadsProxyHeader = acceptProxy && tls == nil
                            if isHTTP {
                                try ops.addHandler(HTTPSession(runtime: runtime, frontend: frontend, listenerGate: listenerGate, acceptProxy: sessionReadsProxyHeader), name: "hasp.session")
                            } else {
                                try ops.addHandler(TCPSession(runtime: runtime, frontend: frontend, listenerGate: listenerGate, acceptProxy: sessionReadsProxyHeader), name: "hasp.session")
                            }
                            return channel.eventLoop.makeSucceededVoidFuture()
                        } catch {
                            return channel.eventLoop.makeFailedFuture(error)
                        }
                    }
                // The channel owns the descriptor from here on, also when this fails.
                let channel = try bootstrap.withBoundSocket(fd).wait()
                serverChannels.withLockedValue { $0.append(channel) }
            }
            ListenerSocket.relisten(listener.fd, backlog: listener.backlog)
        }
        runtime.startChecks()
        runtime.startStickTablePurge()
        runtime.peers.start(listeners: listeners)
        runtime.resolvers.start(runtime: runtime)
    }

    /// `shutdown frontend`: closes its listeners; its open connections go on.
    func shutDown(_ frontend: Frontend) {
        guard frontend.shutDown.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        frontend.gate.closeChannels()
        reportStopped(frontend)
    }

    /// HAProxy's line when a proxy stops accepting.
    private func reportStopped(_ frontend: Frontend) {
        let backendSessions = frontend.backend?.totalSessions.load(ordering: .relaxed) ?? 0
        DiagnosticPrinter.shared.warning("Proxy \(frontend.name) stopped (cumulated conns: FE: \(frontend.totalSessions.load(ordering: .relaxed)), BE: \(backendSessions)).")
    }

    /// A future that completes with the exit code once the engine has stopped.
    public var exitFuture: EventLoopFuture<Int32> { finished.futureResult }

    /// SIGUSR1: stop accepting, close idle client connections, finish what is in flight.
    public func softStop() {
        let first = stopState.withLockedValue { stopped -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        let sink = runtime.configuration.global.idleConnectionHandover ? handoverSink.withLockedValue { $0 } : nil
        // Sessions that start an exchange before their loop runs the stop below must not answer
        // with `Connection: close`: they will be handed over once their exchange is over.
        runtime.handingOver.store(sink != nil, ordering: .relaxed)
        runtime.stopping.store(true, ordering: .relaxed)
        let channels = serverChannels.withLockedValue { list -> [Channel] in
            defer { list = [] }
            return list
        }
        let listenersClosed = channels.map { channel in
            channel.close().recover { _ in }
        }
        for server in statsSockets.withLockedValue({ $0 }) { server.stop() }
        // The next process shares the tables with the peers from now on.
        runtime.peers.stop()
        for frontend in runtime.frontends { reportStopped(frontend) }
        let table = sink == nil ? nil : SocketTable.build()
        for (index, loop) in runtime.loops.enumerated() {
            let sessions = runtime.loopSessions[index]
            loop.execute {
                sessions.draining = true
                for session in sessions.all() {
                    if let sink, let table, let http = session as? HTTPSession {
                        if !http.handOver(table, to: sink) { http.beginSoftStop(handingOverTo: (table, sink)) }
                        continue
                    }
                    session.beginSoftStop()
                }
            }
        }
        if let hardStop = runtime.configuration.global.hardStopAfterMs {
            runtime.group.next().scheduleTask(in: .milliseconds(hardStop)) { [self] in
                DiagnosticPrinter.shared.warning("soft-stop: hard-stop-after reached, closing \(activeSessions()) remaining connection(s).")
                finish(code: 0)
            }
        }
        // Counting sessions only means something once no listener can accept any more, and
        // once every connection accepted before that is registered: NIO registers an accepted
        // connection in a task of its loop, queued behind the listener's close; one more task
        // on each loop, queued after the closes, runs after those registrations.
        let loop = runtime.group.next()
        EventLoopFuture.andAllComplete(listenersClosed, on: loop).flatMap { [runtime] in
            EventLoopFuture.andAllComplete(runtime.loops.map { $0.submit {} }, on: loop)
        }.whenComplete { [self] _ in pollUntilIdle() }
    }

    private func pollUntilIdle() {
        runtime.group.next().scheduleTask(in: .milliseconds(20)) { [self] in
            if activeSessions() == 0, runtime.pendingAdoptions.load(ordering: .relaxed) == 0 {
                finish(code: 0)
            } else {
                pollUntilIdle()
            }
        }
    }

    /// Open client connections over all frontends.
    public func activeSessions() -> Int {
        runtime.frontends.reduce(0) { $0 + $1.currentSessions.load(ordering: .relaxed) }
    }

    /// SIGTERM/SIGINT: stop at once.
    public func hardStop(code: Int32 = 0) {
        runtime.stopping.store(true, ordering: .relaxed)
        finish(code: code)
    }

    private let completed = NIOLockedValueBox(false)

    private func finish(code: Int32) {
        let first = completed.withLockedValue { done -> Bool in
            defer { done = true }
            return !done
        }
        if first {
            runtime.stopBackgroundWork()
            finished.succeed(code)
        }
    }
}

public struct StartupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
