import NIOCore
import NIOPosix
import Shared

/// What a session does with the dialer's outcomes. Called on the session's loop.
protocol ServerDialerClient: AnyObject {
    /// A slot was granted after waiting in the queue; the session reuses a connection or calls
    /// `connect()`.
    func dialerGranted(_ server: Server)
    /// An attempt starts (for the log: server, retries).
    func dialerConnecting(to server: Server, attempt: Int)
    func dialerConnected(_ channel: Channel, to server: Server)
    /// Every attempt failed (retries and redispatch included): the session answers 503 or closes.
    func dialerFailed()
    /// The TLS server name (SNI) to send to a server with `ssl` and `sni <expression>`.
    func dialerServerName(for server: Server) -> String?
    /// The client's address, for `source ... usesrc client|clientip` and the PROXY header.
    var dialerClientAddress: SocketAddress? { get }
    /// The address the client connected to (the PROXY header's destination).
    var dialerFrontendAddress: SocketAddress? { get }
}

extension ServerDialerClient {
    func dialerServerName(for server: Server) -> String? { nil }
    var dialerClientAddress: SocketAddress? { nil }
    var dialerFrontendAddress: SocketAddress? { nil }
}

/// The local address a server connection is made from (`source`), resolved for one connection.
struct SourceBinding {
    var address: SocketAddress
    /// `usesrc`: a foreign address, bound with `IP_TRANSPARENT`.
    var transparent: Bool

    /// What the server's `source` asks for, given the client's address (nil: the kernel
    /// chooses). Fixed addresses were parsed once, with the server; only a client's address is
    /// taken per connection.
    init?(for server: Server, client: SocketAddress?) {
        guard let source = server.connectionSource else { return nil }
        switch source.transparent {
        case nil:
            guard let plain = server.sourceAddress else { return nil }
            self.init(address: plain, transparent: false)
        case .address:
            guard let foreign = server.foreignSourceAddress else { return nil }
            self.init(address: foreign, transparent: true)
        case .client, .clientIP:
            // A client on a unix socket has no address to borrow: the plain `source` applies.
            if let client, let borrowed = Self.address(client, keepingPort: source.transparent == .client) {
                self.init(address: borrowed, transparent: true)
            } else if let plain = server.sourceAddress {
                self.init(address: plain, transparent: false)
            } else {
                return nil
            }
        }
    }

    /// The client's IP address, with its port or with port 0 (any).
    private static func address(_ client: SocketAddress, keepingPort: Bool) -> SocketAddress? {
        switch client {
        case .v4(let a):
            var raw = a.address
            if !keepingPort { raw.sin_port = 0 }
            return SocketAddress(raw, host: "")
        case .v6(let a):
            var raw = a.address
            if !keepingPort { raw.sin6_port = 0 }
            return SocketAddress(raw, host: "")
        default:
            return nil
        }
    }

    init(address: SocketAddress, transparent: Bool) {
        self.address = address
        self.transparent = transparent
    }
}

/// Where server connections come from. Production opens sockets (`LoopConnectors`); unit
/// tests hand out embedded channels.
protocol ServerConnector: AnyObject, Sendable {
    func connect(to address: SocketAddress, from source: SourceBinding?, for backend: Backend, kind: ServerDialer.Kind, loop: EventLoop) -> EventLoopFuture<Channel>
}

/// Finds a server for a request (HTTP) or a stream (TCP) and connects to it, the same way for
/// both: a slot from the backend's balancer or a place in its queue (`maxconn`), then
/// connection attempts with HAProxy's `retries`, turn-around pause and `option redispatch`.
/// One per session, on the session's loop; `reset` prepares it for the session's next request.
final class ServerDialer {
    enum Kind {
        /// The channel carries `ServerConnectionHandler` and reads at once.
        case http
        /// The channel reads on demand and supports half-close (for the relay).
        case tcp
    }

    enum Acquisition {
        case server(Server)
        /// Waiting in the backend's queue; `ServerDialerClient.dialerGranted` follows.
        case queued
        case unavailable
    }

    let runtime: WorkerRuntime
    let loop: EventLoop
    let kind: Kind
    /// The session, held strongly (a weak reference costs a side table per connection) until
    /// `detach`, which the session calls when its channel goes: outcomes arriving later find
    /// no client and a stale generation.
    private(set) var client: ServerDialerClient?
    private let connector: ServerConnector

    private(set) var backend: Backend?
    /// The server whose slot is held, if any.
    private(set) var server: Server?
    private(set) var queueTicket: UInt64?
    private(set) var attempts = 0
    private(set) var redispatched = false
    private var key = BalanceKey()
    /// Bumped whenever pending work (a connect, a retry pause) stops mattering.
    private var generation = 0
    private var connecting = false

    init(runtime: WorkerRuntime, loop: EventLoop, kind: Kind, connector: ServerConnector, client: ServerDialerClient) {
        self.runtime = runtime
        self.loop = loop
        self.kind = kind
        self.connector = connector
        self.client = client
    }

    /// The session is gone: give everything back and never call it again.
    func detach() {
        release()
        client = nil
    }

    /// A connection that finished after its session stopped waiting for it: an HTTP one goes
    /// to the idle pool for others, a TCP one is closed.
    private func orphan(_ channel: Channel, _ server: Server) {
        switch kind {
        case .http: HTTPSession.poolOrphan(channel, server: server, runtime: runtime)
        case .tcp: channel.close(promise: nil)
        }
    }

    /// The held slot: its backend and server.
    var slot: (backend: Backend, server: Server)? {
        guard let server, let backend else { return nil }
        return (backend, server)
    }

    /// Takes a slot on a server of `backend` chosen with `key`, or queues.
    func acquire(_ backend: Backend, key: BalanceKey) -> Acquisition {
        release()
        self.backend = backend
        self.key = key
        attempts = 0
        redispatched = false
        let generation = self.generation
        switch backend.acquire(key: key, eventLoop: loop, makeGrant: {
            let bound = NIOLoopBound(self, eventLoop: loop)
            return { server in bound.value.granted(server, backend: backend, generation: generation) }
        }) {
        case .server(let server):
            hold(server, on: backend, counted: true)
            return .server(server)
        case .queued(let ticket):
            queueTicket = ticket
            return .queued
        case .unavailable:
            return .unavailable
        }
    }

    /// Persistence (cookie, `use-server`, stick table): that server when it has a free slot,
    /// else the balancer's pick with `key`. The caller checked the server may take the request
    /// (running, or persistence forced: a draining server keeps its persistent clients).
    func acquire(_ backend: Backend, forcing server: Server, key: BalanceKey) -> Acquisition {
        guard backend.takeSlotFor(server) else { return acquire(backend, key: key) }
        release()
        self.backend = backend
        self.key = key
        attempts = 0
        redispatched = false
        hold(server, on: backend, counted: true)
        return .server(server)
    }

    private func granted(_ server: Server, backend: Backend, generation: Int) {
        guard generation == self.generation, queueTicket != nil, let client else {
            // The session went away or left the queue meanwhile: give the slot back.
            backend.release(server)
            return
        }
        queueTicket = nil
        hold(server, on: backend, counted: true)
        client.dialerGranted(server)
    }

    private func hold(_ server: Server, on backend: Backend, counted: Bool) {
        self.server = server
        backend.currentSessions.wrappingIncrement(ordering: .relaxed)
        if counted { backend.totalSessions.wrappingIncrement(ordering: .relaxed) }
    }

    /// Withdraws from the queue; false if the slot was granted already.
    func leaveQueue() -> Bool {
        guard let ticket = queueTicket, let backend else { return false }
        guard backend.cancel(ticket: ticket) else { return false }
        queueTicket = nil
        return true
    }

    /// Gives the slot back (or leaves the queue) and forgets pending attempts.
    func release() {
        generation &+= 1
        connecting = false
        if queueTicket != nil { _ = leaveQueue() }
        queueTicket = nil
        if let server, let backend {
            self.server = nil
            backend.currentSessions.wrappingDecrement(ordering: .relaxed)
            backend.release(server)
        }
    }

    /// Where a connection to the server goes: its address, or for a server at the any address
    /// the client's destination (its port when the server has none).
    static func target(of server: Server, _ configured: SocketAddress, destination: SocketAddress?) -> SocketAddress? {
        guard server.forwardsToClientDestination else { return configured }
        guard let destination, let ip = destination.ipAddress else { return nil }
        let port = configured.port.flatMap { $0 == 0 ? nil : $0 } ?? destination.port ?? 0
        return try? SocketAddress(ipAddress: ip, port: port)
    }

    /// Connects to the held server; the outcome comes through the client.
    func connect() {
        guard let server, let backend else { return }
        // An attempt without an address counts too, so that `retries` ends it.
        attempts += 1
        guard let configured = server.socketAddress, !server.tlsUnusable,
              let address = Self.target(of: server, configured, destination: client?.dialerFrontendAddress) else {
            failed(server)
            return
        }
        connecting = true
        server.connectAttempts.wrappingIncrement(ordering: .relaxed)
        client?.dialerConnecting(to: server, attempt: attempts)
        let generation = self.generation
        let bound = NIOLoopBound(self, eventLoop: loop)
        let source = SourceBinding(for: server, client: client?.dialerClientAddress)
        connector.connect(to: address, from: source, for: backend, kind: kind, loop: loop).whenComplete { result in
            let dialer = bound.value
            let current = generation == dialer.generation && dialer.connecting && dialer.server === server
            switch result {
            case .success(let channel):
                // A channel that already closed (its inactive event went by unseen) is a failure.
                guard channel.isActive else {
                    channel.close(promise: nil)
                    if current { dialer.failed(server) }
                    return
                }
                // `send-proxy`: the header goes first, below TLS.
                if let version = server.settings.sendProxy {
                    let header = ProxyHeader.encode(version, source: dialer.client?.dialerClientAddress,
                                                    destination: dialer.client?.dialerFrontendAddress)
                    channel.writeAndFlush(ByteBuffer(bytes: header), promise: nil)
                }
                if let tls = server.tls, server.settings.tls.enabled {
                    dialer.startTLS(tls, on: channel, to: server, generation: generation)
                    return
                }
                dialer.established(channel, to: server, current: current)
            case .failure:
                dialer.connectFailed(server, current: current)
            }
        }
    }

    /// `server ... ssl`: the connection counts as made once its handshake succeeded; a failed
    /// handshake is a failed attempt (retries, redispatch, 503).
    private func startTLS(_ tls: TLSClientContext, on channel: Channel, to server: Server, generation: Int) {
        let name = client?.dialerServerName(for: server)
        let loopIndex = runtime.loopIndex(of: loop)
        // `timeout connect` bounds the handshake too, as in HAProxy.
        let timeout = backend?.settings.timeouts.connect.map { TimeAmount.milliseconds(max(1, $0)) }
        let handler = TLSHandler(role: .client(tls, serverName: name, session: tls.sessions[loopIndex]),
                                 handshakeTimeout: timeout)
        do {
            try channel.pipeline.syncOperations.addHandler(handler, name: "hasp.tls", position: .first)
        } catch {
            channel.close(promise: nil)
            connectFailed(server, current: generation == self.generation && connecting && self.server === server)
            return
        }
        let bound = NIOLoopBound(self, eventLoop: loop)
        handler.handshakeFuture(on: loop).whenComplete { result in
            let dialer = bound.value
            let current = generation == dialer.generation && dialer.connecting && dialer.server === server
            switch result {
            case .success:
                dialer.established(channel, to: server, current: current)
            case .failure:
                channel.close(promise: nil)
                dialer.connectFailed(server, current: current)
            }
        }
    }

    private func established(_ channel: Channel, to server: Server, current: Bool) {
        server.usedConnections.wrappingIncrement(ordering: .relaxed)
        // The connect promise succeeds before the channel is fully active; a close in
        // that window fires no channelInactive, so the close future settles the count.
        channel.closeFuture.whenComplete { _ in server.usedConnections.wrappingDecrement(ordering: .relaxed) }
        if server.settings.checks.observe == .layer4 {
            runtime.observe(server, layer: .layer4, error: false, what: "")
        }
        guard current, let client else {
            orphan(channel, server)
            return
        }
        connecting = false
        client.dialerConnected(channel, to: server)
    }

    private func connectFailed(_ server: Server, current: Bool) {
        server.connectionErrors.wrappingIncrement(ordering: .relaxed)
        if server.settings.checks.observe != nil {
            runtime.observe(server, layer: .layer4, error: true, what: "L4 unsuccessful connection")
        }
        if current { failed(server) }
    }

    /// What to do after a failed attempt, as HAProxy does: up to `retries` more attempts, the
    /// same server after the turn-around pause, or (with `option redispatch`) another server on
    /// the last retry, or at once when the server has no address.
    enum RetryDecision: Equatable {
        case sameServer(afterMs: Int64)
        case redispatch
        case giveUp
    }

    static func retryDecision(attempts: Int, retries: Int, redispatch: Bool, serverHasAddress: Bool,
                              pauseMs: Int64) -> RetryDecision {
        guard attempts <= retries else { return .giveUp }
        if redispatch, attempts == retries || !serverHasAddress { return .redispatch }
        return .sameServer(afterMs: pauseMs)
    }

    private func failed(_ server: Server) {
        connecting = false
        guard let backend else { return }
        switch Self.retryDecision(attempts: attempts, retries: backend.settings.retries,
                                  redispatch: backend.settings.options.redispatch,
                                  serverHasAddress: server.socketAddress != nil,
                                  pauseMs: backend.settings.timeouts.retryPauseMs) {
        case .giveUp:
            release()
            client?.dialerFailed()
        case .redispatch:
            server.counters.retries.wrappingIncrement(ordering: .relaxed)
            backend.counters.retries.wrappingIncrement(ordering: .relaxed)
            release()
            guard let other = backend.redispatch(excluding: server, key: key) else {
                client?.dialerFailed()
                return
            }
            redispatched = true
            server.counters.redispatches.wrappingIncrement(ordering: .relaxed)
            backend.counters.redispatches.wrappingIncrement(ordering: .relaxed)
            hold(other, on: backend, counted: false)
            connect()
        case .sameServer(let pause):
            server.counters.retries.wrappingIncrement(ordering: .relaxed)
            backend.counters.retries.wrappingIncrement(ordering: .relaxed)
            let generation = self.generation
            let bound = NIOLoopBound(self, eventLoop: loop)
            loop.scheduleTask(in: .milliseconds(pause)) {
                let dialer = bound.value
                guard generation == dialer.generation, dialer.server === server else { return }
                dialer.connect()
            }
        }
    }
}

/// Client bootstraps for server connections, one per backend and kind, kept per event loop
/// (only that loop touches it) so that a connection costs no bootstrap set-up.
final class LoopConnectors: ServerConnector, @unchecked Sendable {
    private var http: [ObjectIdentifier: ClientBootstrap] = [:]
    private var tcp: [ObjectIdentifier: ClientBootstrap] = [:]

    func connect(to address: SocketAddress, from source: SourceBinding?, for backend: Backend, kind: ServerDialer.Kind, loop: EventLoop) -> EventLoopFuture<Channel> {
        guard let source else { return bootstrap(for: backend, kind: kind, loop: loop).connect(to: address) }
        // A bootstrap's bind address is its own state: a connection from a chosen address gets a
        // bootstrap of its own (only backends with `source` pay for it).
        var made = Self.makeBootstrap(for: backend, kind: kind, loop: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
        if source.address.port == 0 {
            // IP_BIND_ADDRESS_NO_PORT (24): the port is chosen at connect(), per destination, so
            // source-bound connections do not share one pool of ephemeral ports.
            let noPort = ChannelOptions.Types.SocketOption(level: NIOBSDSocket.OptionLevel(rawValue: Int32(IPPROTO_IP)),
                                                            name: NIOBSDSocket.Option(rawValue: 24))
            made = made.channelOption(noPort, value: 1)
        }
        if source.transparent {
            // Without cap_net_admin or cap_net_raw the option is refused and the connection fails.
            let v6 = source.address.protocol == .inet6
            let option = ChannelOptions.Types.SocketOption(
                level: NIOBSDSocket.OptionLevel(rawValue: v6 ? Int32(IPPROTO_IPV6) : Int32(IPPROTO_IP)),
                name: NIOBSDSocket.Option(rawValue: v6 ? 75 /* IPV6_TRANSPARENT */ : 19 /* IP_TRANSPARENT */))
            made = made.channelOption(option, value: 1)
        }
        return made.bind(to: source.address).connect(to: address)
    }

    private func bootstrap(for backend: Backend, kind: ServerDialer.Kind, loop: EventLoop) -> ClientBootstrap {
        let id = ObjectIdentifier(backend)
        switch kind {
        case .http:
            if let existing = http[id] { return existing }
            let made = Self.makeBootstrap(for: backend, kind: kind, loop: loop)
            http[id] = made
            return made
        case .tcp:
            if let existing = tcp[id] { return existing }
            let made = Self.makeBootstrap(for: backend, kind: kind, loop: loop)
            tcp[id] = made
            return made
        }
    }

    private static func makeBootstrap(for backend: Backend, kind: ServerDialer.Kind, loop: EventLoop) -> ClientBootstrap {
        // The bootstrap carries no channel options: NIO applies those through a chain of
        // futures, some 20,000 instructions per connection for its default TCP_NODELAY alone
        // (bench/RESULTS.md), where setting them on the new channel directly costs a few
        // hundred. Enabling MPTCP is the one public way to drop that default (NIO removes it,
        // since the two did not mix in older kernels); disabling it again keeps plain TCP.
        var made = ClientBootstrap(group: loop).enableMPTCP(true).enableMPTCP(false)
        switch kind {
        case .http:
            made = made.channelInitializer { channel in
                do {
                    try channel.syncOptions?.setOption(.tcpOption(.tcp_nodelay), value: 1)
                    try channel.pipeline.syncOperations.addHandler(ServerConnectionHandler(), name: "hasp.server")
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        case .tcp:
            made = made.channelInitializer { channel in
                do {
                    if let options = channel.syncOptions {
                        try options.setOption(.tcpOption(.tcp_nodelay), value: 1)
                        try options.setOption(.autoRead, value: false)
                        try options.setOption(.allowRemoteHalfClosure, value: true)
                    }
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        }
        if let ms = backend.settings.timeouts.connect, ms > 0 { made = made.connectTimeout(.milliseconds(ms)) }
        return made
    }
}
