import Atomics
import NIOCore
import NIOPosix
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// The `peers` sections this worker takes part in: each shares its tables with the other
/// peers over HAProxy's peers protocol.
final class PeersService: Sendable {
    let sections: [PeersSection]

    init(configuration: Configuration, tables: StickTableRegistry, loop: EventLoop) {
        sections = configuration.peers.values.sorted { $0.location.line < $1.location.line }.filter(\.isActive).map {
            PeersSection(settings: $0, configuration: configuration, registry: tables, loop: loop)
        }
    }

    /// Starts listening (on the socket passed under the section's name) and connecting.
    func start(listeners: [AdoptedListener]) {
        for section in sections {
            let fd = listeners.first { $0.frontend == Configuration.peersListenerName(section.name) }?.fd
            section.loop.execute { section.start(listenerFD: fd) }
        }
    }

    /// Soft stop: the next process takes over the sessions.
    func stop() {
        for section in sections { section.loop.execute { section.stop() } }
    }

    /// `ActivePeers` and `ConnectedPeers` of `show info`: sessions opening or open, and open.
    var activePeers: Int { sections.reduce(0) { $0 + $1.activeCount.load(ordering: .relaxed) } }
    var connectedPeers: Int { sections.reduce(0) { $0 + $1.connectedCount.load(ordering: .relaxed) } }

    /// The tables came from the previous worker: nothing to learn from the peers at start.
    func markSynchronised() {
        for section in sections { section.loop.execute { section.synchronised = true } }
    }

    /// `show peers [dict|-] [<section>]`.
    func report(section name: String?, dictionaries: Bool) -> String? {
        let chosen = name.map { n in sections.filter { $0.name == n } } ?? sections
        if name != nil, chosen.isEmpty { return nil }
        return chosen.map { section in
            (try? section.loop.submit { section.report(dictionaries: dictionaries) }.wait()) ?? ""
        }.joined(separator: "\n")
    }
}

/// A remote peer of a section: where it is, its session (one at a time) and what it
/// acknowledged, which outlives sessions (pushing resumes after it).
final class PeerLink {
    let name: String
    let addressText: String?
    let address: SocketAddress?
    var session: PeerSession?
    var reconnectAt: NIODeadline = .now()
    /// Per shared table, the newest local change the peer acknowledged.
    var acknowledged: [UInt64]
    /// It answered a resync with "partial": not asked again.
    var notUpToDate = false
    var lastStatus = "NONE"
    var lastHandshake: NIODeadline?
    var lastHeartbeatSent: NIODeadline?
    var sentHeartbeats = 0, receivedHeartbeats = 0, missedHeartbeats = 0
    var newConnections = 0, protocolErrors = 0, collisions = 0, confirms = 0

    init(_ settings: PeerSettings, tables: Int) {
        name = settings.name
        addressText = settings.address
        address = settings.address.flatMap(Self.resolve)
        acknowledged = Array(repeating: 0, count: tables)
    }

    /// `<host>:<port>` (an IPv6 host may be in brackets), resolved once at start.
    static func resolve(_ text: String) -> SocketAddress? {
        let expanded = LineLexer().expandVariables(text)
        guard let colon = expanded.lastIndex(of: ":"), let port = Int(expanded[expanded.index(after: colon)...]),
              (1...65535).contains(port) else { return nil }
        var host = String(expanded[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.hasPrefix("ipv4@") || host.hasPrefix("ipv6@") { host = String(host.dropFirst(5)) }
        if host.isEmpty || host == "*" { host = "127.0.0.1" }
        return (try? SocketAddress(ipAddress: host, port: port)) ?? (try? SocketAddress.makeAddressResolvingHost(host, port: port))
    }
}

/// One `peers` section at run time. Everything here lives on `loop`: the sessions, the timers
/// and the links.
final class PeersSection: @unchecked Sendable {
    /// A table this section shares, with its id in definitions and its name on the wire
    /// (`/<t>` for a `table` line, the proxy's name for a proxy's table).
    struct SharedTable {
        let table: StickTable
        let wireName: String
        let id: UInt64
    }

    static let reconnectDelay = TimeAmount.seconds(5)
    static let heartbeatInterval = TimeAmount.seconds(3)
    /// A session silent this long is dead (HAProxy: 5 to 10 s).
    static let silenceLimit = TimeAmount.seconds(6)
    /// How long a new process waits for a peer to teach it the tables.
    static let resyncTimeout = TimeAmount.seconds(5)

    let name: String
    let localName: String
    let loop: EventLoop
    let tables: [SharedTable]
    let links: [PeerLink]
    let listenAddress: String?
    private var listener: Channel?
    private var ticker: RepeatedTask?
    private(set) var stopped = false
    /// Whether the tables are considered complete (learned, handed over, or nobody to ask).
    var synchronised = false
    private var resyncDeadline = NIODeadline.now() + PeersSection.resyncTimeout
    /// The session asked to teach the tables, while it does.
    weak var teacher: PeerSession?
    let startedAt = NIODeadline.now()
    private var ticks = 0
    /// Inbound connections still in their hello, bounded (each holds a descriptor).
    private var handshaking: [ObjectIdentifier: PeerSession] = [:]
    static let maxHandshaking = 32
    /// Read from other threads (`show info`), written each tick.
    let activeCount = ManagedAtomic(0)
    let connectedCount = ManagedAtomic(0)

    init(settings: PeersSettings, configuration: Configuration, registry: StickTableRegistry, loop: EventLoop) {
        name = settings.name
        localName = configuration.localPeer
        self.loop = loop
        listenAddress = settings.listenAddress(localPeer: configuration.localPeer)
        var shared: [SharedTable] = []
        for definition in settings.tables {
            guard let table = registry[definition.name] else { continue }
            shared.append(SharedTable(table: table, wireName: "/" + definition.name.dropFirst(settings.name.count + 1), id: UInt64(shared.count + 1)))
        }
        for proxy in configuration.proxies where proxy.stickTable?.peers == settings.name {
            guard let table = registry[proxy.name] else { continue }
            shared.append(SharedTable(table: table, wireName: proxy.name, id: UInt64(shared.count + 1)))
        }
        tables = shared
        for item in shared { item.table.withStorage { $0.recordUpdates() } }
        // A name listed twice is one peer (the first line), as HAProxy finds it by name.
        var seen: Set<String> = []
        links = settings.remotePeers(localPeer: configuration.localPeer).filter { seen.insert($0.name).inserted }
            .map { PeerLink($0, tables: shared.count) }
    }

    func start(listenerFD: Int32?) {
        resyncDeadline = .now() + Self.resyncTimeout
        if let listenerFD {
            let bootstrap = ServerBootstrap(group: loop)
                .serverChannelOption(.backlog, value: 64)
                .childChannelOption(.allowRemoteHalfClosure, value: false)
                .childChannelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(PeerSession(section: self, link: nil))
                    }
                }
            bootstrap.withBoundSocket(listenerFD).whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    if stopped { channel.close(promise: nil) } else { listener = channel }
                case .failure(let error):
                    DiagnosticPrinter.shared.alert("Peers \(name): cannot listen: \(error)")
                }
            }
        }
        ticker = loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(100)) { [weak self] _ in self?.tick() }
    }

    func stop() {
        stopped = true
        ticker?.cancel()
        ticker = nil
        listener?.close(promise: nil)
        listener = nil
        for link in links { link.session?.close() }
        for session in handshaking.values { session.close() }
    }

    /// An inbound connection starts its hello; false when too many already are.
    func register(handshaking session: PeerSession) -> Bool {
        guard !stopped, handshaking.count < Self.maxHandshaking else { return false }
        handshaking[ObjectIdentifier(session)] = session
        return true
    }

    private func tick() {
        ticks += 1
        let now = NIODeadline.now()
        for session in handshaking.values { session.tick(now: now) }
        for link in links {
            if let session = link.session {
                session.tick(now: now)
            } else if !stopped, now >= link.reconnectAt, let address = link.address {
                connect(link, to: address)
            }
        }
        activeCount.store(links.count { $0.session != nil }, ordering: .relaxed)
        connectedCount.store(links.count { $0.session?.isEstablished == true }, ordering: .relaxed)
        guard !synchronised else { return }
        if teacher == nil, let session = links.lazy.compactMap({ $0.session }).first(where: { $0.isEstablished && !$0.link!.notUpToDate }) {
            teacher = session
            session.requestResync()
        } else if teacher == nil, now >= resyncDeadline {
            // Nobody to learn from in time: what we have is the table.
            synchronised = true
        }
    }

    private func connect(_ link: PeerLink, to address: SocketAddress) {
        link.reconnectAt = .now() + Self.reconnectDelay
        link.newConnections += 1
        link.lastStatus = "CONN"
        let session = PeerSession(section: self, link: link)
        link.session = session
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(session) }
            }
            .connect(to: address)
            .whenFailure { _ in session.connectFailed() }
    }

    /// A hello named `peer`: its session from now on (the newest connection wins, as in
    /// HAProxy); nil when the name is not a remote peer of the section.
    func adopt(_ session: PeerSession, as peer: String) -> PeerLink? {
        handshaking.removeValue(forKey: ObjectIdentifier(session))
        guard let link = links.first(where: { $0.name == peer }) else { return nil }
        if let existing = link.session, existing !== session {
            link.collisions += 1
            existing.close(collision: true)
        }
        link.session = session
        link.newConnections += 1
        return link
    }

    func sessionClosed(_ session: PeerSession, collision: Bool) {
        handshaking.removeValue(forKey: ObjectIdentifier(session))
        if teacher === session { teacher = nil }
        guard let link = session.link, link.session === session else { return }
        link.session = nil
        // After a collision both sides retry soon, at random, so one of them wins.
        link.reconnectAt = .now() + (collision ? .milliseconds(Int64.random(in: 50...2049)) : Self.reconnectDelay)
    }

    /// The teacher finished: complete, or not up to date (another peer is asked).
    func resyncEnded(by session: PeerSession, complete: Bool) {
        guard teacher === session else { return }
        teacher = nil
        if complete {
            synchronised = true
        } else {
            session.link?.notUpToDate = true
            resyncDeadline = .now() + Self.resyncTimeout
        }
    }

    func index(ofLocalID id: UInt64) -> Int? {
        id >= 1 && id <= UInt64(tables.count) ? Int(id - 1) : nil
    }

    // MARK: - show peers

    func report(dictionaries: Bool) -> String {
        let now = NIODeadline.now()
        var flags = 0
        if synchronised { flags |= 0x3 }
        if teacher != nil { flags |= 0x4 }
        var out = "\(Self.pointer(self)): [\(LogDate.haproxy(WallClock.microseconds()).prefix(20))] id=\(name) disabled=0 flags=0x\(String(flags, radix: 16)) "
        out += "resync_timeout=\(synchronised ? "<NEVER>" : Self.delay(resyncDeadline, now)) task_calls=\(ticks)\n"
        for link in links {
            let active = link.session?.isEstablished == true
            out += "  \(Self.pointer(link)): id=\(link.name)(remote,\(active ? "active" : "inactive")) addr=\(link.addressText ?? "-")"
            out += " last_status=\(link.lastStatus) last_hdshk=\(link.lastHandshake.map { Self.age($0, now) } ?? "<NEVER>")\n"
            let reconnect = link.session == nil ? Self.delay(link.reconnectAt, now) : "<NEVER>"
            let heartbeat = link.session?.nextHeartbeat.map { Self.delay($0, now) } ?? "<NEVER>"
            out += "        reconnect=\(reconnect) heartbeat=\(heartbeat) confirm=\(link.confirms) tx_hbt=\(link.sentHeartbeats)"
            out += " rx_hbt=\(link.receivedHeartbeats) no_hbt=\(link.missedHeartbeats) new_conn=\(link.newConnections)"
            out += " proto_err=\(link.protocolErrors) coll=\(link.collisions)\n"
            out += "        flags=0x\(String(link.session?.flags ?? 0, radix: 16))"
            if let session = link.session { out += session.channelDescription }
            out += "\n"
            out += "        shared tables:\n"
            for (index, shared) in tables.enumerated() {
                let pushed = link.session?.pushCursor(index) ?? link.acknowledged[index]
                let last = shared.table.withStorage { $0.lastLocalChange }
                out += "          \(Self.pointer(shared.table)) local_id=\(shared.id) remote_id=\(link.session?.remoteID(of: index) ?? 0)"
                out += " flags=0x0 remote_data=0x\(String(link.session?.remoteData(of: index) ?? 0, radix: 16))\n"
                out += "              last_acked=\(UInt32(truncatingIfNeeded: link.acknowledged[index])) last_pushed=\(UInt32(truncatingIfNeeded: pushed))"
                out += " last_get=\(link.session?.lastReceived(of: index) ?? 0) teaching_origin=0 update=\(UInt32(truncatingIfNeeded: last))\n"
                out += "              table:\(Self.pointer(shared.table)) id=\(shared.table.name) update=\(UInt32(truncatingIfNeeded: last))"
                out += " localupdate=\(UInt32(truncatingIfNeeded: last)) commitupdate=\(UInt32(truncatingIfNeeded: last)) refcnt=1\n"
            }
            out += dictionaries ? "        Dictionary cache dumped only for established sessions\n"
                                : "        Dictionary cache not dumped (use \"show peers dict\")\n"
        }
        return out
    }

    static func pointer(_ object: AnyObject) -> String {
        "0x" + String(UInt(bitPattern: ObjectIdentifier(object).hashValue), radix: 16)
    }

    /// HAProxy's human time: two units at most (`1m5s`).
    static func human(_ ms: Int64) -> String {
        guard ms >= 0 else { return "?" }
        var s = ms / 1000
        let d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60
        s %= 60
        let parts = [(d, "d"), (h, "h"), (m, "m"), (s, "s")].drop { $0.0 == 0 }
        guard !parts.isEmpty else { return "0s" }
        return parts.prefix(2).map { "\($0.0)\($0.1)" }.joined()
    }

    static func delay(_ deadline: NIODeadline, _ now: NIODeadline) -> String {
        deadline <= now ? "<PAST>" : human((deadline - now).nanoseconds / 1_000_000)
    }

    static func age(_ date: NIODeadline, _ now: NIODeadline) -> String {
        human((now - date).nanoseconds / 1_000_000)
    }
}
