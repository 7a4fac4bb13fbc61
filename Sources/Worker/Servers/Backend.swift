import Atomics
import NIOConcurrencyHelpers
import NIOCore
import Shared

/// A backend at run time: its servers, the balancer, and the queue of requests waiting for a
/// server slot (`maxconn`).
///
/// A request usually takes no lock at all: a `BalancerSnapshot` (the servers, and for
/// `roundrobin` their smooth weighted order walked by a shared ticket, published atomically)
/// names the server, and its slot is taken by compare-and-swap against `maxconn`. What the
/// snapshot leaves to the balancer (backups, a full or unusable choice, `hash-type consistent`,
/// a non-empty queue) goes through it under one short lock per backend, whose critical section
/// allocates nothing (the candidate list and the balancer's scratch lists are reused). Slots are
/// only ever taken by compare-and-swap, so the two paths never push a server past its `maxconn`.
///
/// Giving a slot back takes no lock unless requests wait: `queued` is announced
/// before a request re-checks for a slot and joins the queue, and read after a slot is freed,
/// both sequentially consistent, so either the releaser sees the waiter or the waiter sees the
/// free slot. `add server` and `del server` replace the list under the lock; a removed server
/// lives on while sessions still hold it.
public final class Backend: Sendable {
    public let settings: ProxySettings
    /// `cookie ... dynamic` and `dynamic-cookie-key`, as the runtime API may change them.
    let dynamicCookie: ManagedAtomic<DynamicCookieState>
    /// Its rules, by reference.
    let rules: ProxyRuleSet

    private struct State {
        var servers: [Server]
        var balancer: LoadBalancer
        var queue: [QueuedRequest] = []
        var nextTicket: UInt64 = 0
        /// Ids handed out so far, so that a new server never takes a live id.
        var lastServerID: Int
        /// Configured servers deleted at run time (they stay deleted across a reload).
        var deletedConfigured: [String] = []
        /// What the balancer is shown, refreshed in place at each pick.
        var candidates: [BalancerCandidate] = []

        mutating func refreshCandidates() {
            candidates.removeAll(keepingCapacity: true)
            for (index, s) in servers.enumerated() {
                candidates.append(BalancerCandidate(index: index, weight: s.effectiveWeight, isBackup: s.isBackup, isUsable: s.isUsable,
                                                    served: s.served.load(ordering: .relaxed), maxconn: s.maxconn, hashID: s.id))
            }
        }
    }

    /// A request waiting for a server. `grant` runs on the requester's event loop.
    struct QueuedRequest {
        var ticket: UInt64
        var key: BalanceKey
        var eventLoop: EventLoop
        var grant: @Sendable (Server) -> Void
    }

    private let state: NIOLockedValueBox<State>
    /// What the lock-free pick reads (`BalancerSnapshot`), and the ticket its rotation walks.
    private let snapshot: ManagedAtomic<BalancerSnapshot>
    private let ticket = ManagedAtomic<Int>(0)
    let totalSessions = ManagedAtomic<Int>(0)
    let currentSessions = ManagedAtomic<Int>(0)
    let queued = ManagedAtomic<Int>(0)
    let counters = ProxyCounters()
    /// Times the backend lost its last usable server (`chkdown` of the BACKEND row).
    let downTransitions = ManagedAtomic<Int>(0)
    let loopCount: Int

    /// The global settings servers take their TLS defaults from.
    let global: GlobalSettings

    init(settings: ProxySettings, loopCount: Int, firstServerID: Int, global: GlobalSettings = GlobalSettings()) {
        self.settings = settings
        self.global = global
        rules = ProxyRuleSet(settings)
        self.loopCount = loopCount
        var servers: [Server] = []
        for (i, s) in settings.servers.enumerated() {
            servers.append(Server(settings: s, backendName: settings.name, id: s.id ?? (i + 1), loopCount: loopCount, global: global,
                                  backendSource: settings.source))
        }
        state = NIOLockedValueBox(State(servers: servers,
                                        balancer: LoadBalancer(algorithm: settings.balance, hashType: settings.hashType,
                                                               hashBalanceFactor: settings.hashBalanceFactor,
                                                               allBackups: settings.options.allBackups,
                                                               seed: UInt64(truncatingIfNeeded: firstServerID &+ 0x5bd1e995)),
                                        lastServerID: servers.map(\.id).max() ?? 0))
        snapshot = ManagedAtomic(BalancerSnapshot(servers: servers, algorithm: settings.balance, hashType: settings.hashType))
        dynamicCookie = ManagedAtomic(DynamicCookieState(enabled: settings.cookie?.dynamic ?? false, key: settings.dynamicCookieKey))
    }

    /// Changes the dynamic cookie state (CLI sessions may do so at once: compare and swap).
    func updateDynamicCookie(enabled: Bool? = nil, key: String? = nil) {
        var current = dynamicCookie.load(ordering: .acquiring)
        while true {
            let next = DynamicCookieState(enabled: enabled ?? current.enabled, key: key ?? current.key)
            let (exchanged, original) = dynamicCookie.compareExchange(expected: current, desired: next, ordering: .acquiringAndReleasing)
            if exchanged { return }
            current = original
        }
    }

    /// The key dynamic cookies are made with, nil while they are off (or without a key).
    var dynamicCookieKey: String? {
        let state = dynamicCookie.load(ordering: .acquiring)
        return state.enabled ? state.key : nil
    }

    public var name: String { settings.name }

    /// The current servers, in order.
    public var servers: [Server] { state.withLockedValue { $0.servers } }

    public func server(named name: String) -> Server? {
        if name.hasPrefix("#"), let id = Int(name.dropFirst()) { return servers.first { $0.id == id } }
        return servers.first { $0.name == name }
    }

    /// Whether servers can be added and removed at run time: HAProxy refuses it for algorithms
    /// whose state depends on the server list being fixed.
    public var supportsDynamicServers: Bool {
        switch settings.balance {
        case .roundRobin, .leastConnections, .first, .random: return true
        case .staticRoundRobin: return false
        case .source, .uri, .header: return settings.hashType == .consistent
        }
    }

    public enum Acquisition {
        case server(Server)
        case queued(ticket: UInt64)
        case unavailable
    }

    /// Picks a server and takes one of its slots, or queues the request. `makeGrant` is called
    /// only when the request has to wait: the usual acquisition, which finds a slot at once,
    /// allocates no callback.
    func acquire(key: BalanceKey, eventLoop: EventLoop, makeGrant: () -> @Sendable (Server) -> Void) -> Acquisition {
        // Without the lock, unless requests wait (a newcomer may not overtake the queue).
        if queued.load(ordering: .relaxed) == 0, let server = snapshot.load(ordering: .acquiring).pick(key, ticket: ticket),
           takeSlot(server) {
            return .server(server)
        }
        return state.withLockedValue { st in
            refreshSnapshot(st.servers)
            // Requests already waiting go first: a newcomer may not overtake the queue.
            if st.queue.isEmpty {
                switch pickAndTake(&st, key: key) {
                case .server(let index):
                    return .server(st.servers[index])
                case .unavailable:
                    return .unavailable
                case .queue:
                    // Announce the waiter before looking again: a slot freed meanwhile by a
                    // lock-free `release` is either seen now or dispatched by that release.
                    let waiting = queued.wrappingIncrementThenLoad(ordering: .sequentiallyConsistent)
                    atomicMemoryFence(ordering: .sequentiallyConsistent)
                    if case .server(let index) = pickAndTake(&st, key: key) {
                        queued.wrappingDecrement(ordering: .sequentiallyConsistent)
                        return .server(st.servers[index])
                    }
                    return enqueue(&st, key: key, eventLoop: eventLoop, grant: makeGrant(), waiting: waiting)
                }
            } else if !st.servers.contains(where: \.isUsable) {
                return .unavailable
            }
            let waiting = queued.wrappingIncrementThenLoad(ordering: .sequentiallyConsistent)
            return enqueue(&st, key: key, eventLoop: eventLoop, grant: makeGrant(), waiting: waiting)
        }
    }

    private func enqueue(_ st: inout State, key: BalanceKey, eventLoop: EventLoop, grant: @escaping @Sendable (Server) -> Void,
                         waiting: Int) -> Acquisition {
        st.nextTicket &+= 1
        st.queue.append(QueuedRequest(ticket: st.nextTicket, key: key, eventLoop: eventLoop, grant: grant))
        counters.noteQueue(waiting)
        return .queued(ticket: st.nextTicket)
    }

    /// Withdraws a queued request (queue timeout, client gone). False if it was already granted.
    func cancel(ticket: UInt64) -> Bool {
        state.withLockedValue { st in
            guard let i = st.queue.firstIndex(where: { $0.ticket == ticket }) else { return false }
            st.queue.remove(at: i)
            queued.wrappingDecrement(ordering: .relaxed)
            return true
        }
    }

    /// Returns a slot; hands it straight to the oldest queued request that can use it.
    func release(_ server: Server) {
        server.served.wrappingDecrement(ordering: .sequentiallyConsistent)
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        // Nobody waits: no lock (see the type's comment for why no waiter is missed).
        guard queued.load(ordering: .sequentiallyConsistent) > 0 else { return }
        dispatchQueue()
    }

    /// Gives free slots to queued requests (after a release, or when a server comes back).
    func dispatchQueue() {
        while true {
            let granted: (QueuedRequest, Server)? = state.withLockedValue { st in
                guard !st.queue.isEmpty else { return nil }
                let waiting = st.queue[0]
                guard case .server(let index) = pickAndTake(&st, key: waiting.key) else { return nil }
                st.queue.removeFirst()
                queued.wrappingDecrement(ordering: .relaxed)
                return (waiting, st.servers[index])
            }
            guard let (request, next) = granted else { return }
            request.eventLoop.execute { request.grant(next) }
        }
    }

    /// A pick by the balancer whose slot is taken; a server filled meanwhile by the lock-free
    /// path is picked around (a few times at most, then the request queues).
    private func pickAndTake(_ st: inout State, key: BalanceKey) -> LoadBalancer.Outcome {
        for _ in 0..<4 {
            st.refreshCandidates()
            let outcome = st.balancer.pick(st.candidates, key: key)
            guard case .server(let index) = outcome else { return outcome }
            if takeSlot(st.servers[index]) { return outcome }
        }
        return .queue
    }

    /// Rebuilds the snapshot when the server list or a weight changed (under the lock).
    private func refreshSnapshot(_ servers: [Server]) {
        guard snapshot.load(ordering: .relaxed).isStale(servers) else { return }
        snapshot.store(BalancerSnapshot(servers: servers, algorithm: settings.balance, hashType: settings.hashType),
                       ordering: .releasing)
    }

    /// Takes one of `server`'s slots unless it is at its `maxconn`: a compare-and-swap, so the
    /// lock-free and the locked paths can never both take the last slot.
    /// A slot on a server named by a rule (`use-server`), under its `maxconn`.
    func takeSlotFor(_ server: Server) -> Bool { takeSlot(server) }

    /// Whether this backend has `http-response` or `http-after-response` rules.
    var hasResponseRules: Bool { rules.hasResponseRules }
    /// Requests may go to a server chosen by persistence (cookie, `use-server`, stick rules)
    /// rather than by the balancer.
    var persists: Bool {
        settings.cookie != nil || !rules.useServers.isEmpty || !rules.stickRules.isEmpty || !rules.persistRules.isEmpty
    }

    private func takeSlot(_ server: Server) -> Bool {
        let limit = server.maxconn
        var current = server.served.load(ordering: .relaxed)
        while true {
            if limit > 0, current >= limit { return false }
            let (done, original) = server.served.weakCompareExchange(expected: current, desired: current + 1,
                                                                     ordering: .acquiringAndReleasing)
            if done { break }
            current = original
        }
        let now = current + 1
        if now > server.maxServed.load(ordering: .relaxed) { server.maxServed.store(now, ordering: .relaxed) }
        server.totalSessions.wrappingIncrement(ordering: .relaxed)
        server.counters.noteSessions(now)
        server.counters.sessionRate.tick()
        counters.sessionRate.tick()
        counters.noteSessions(currentSessions.load(ordering: .relaxed) + 1)
        server.counters.lastSession.store(WallClock.seconds(), ordering: .relaxed)
        return true
    }

    /// Another server for a retry with `option redispatch`, avoiding `excluded` when possible.
    func redispatch(excluding excluded: Server, key: BalanceKey) -> Server? {
        state.withLockedValue { st in
            st.refreshCandidates()
            var list = st.candidates
            if let position = st.servers.firstIndex(where: { $0 === excluded }),
               list.contains(where: { $0.index != position && $0.isUsable }) {
                list[position].isUsable = false
            }
            guard case .server(let index) = st.balancer.pick(list, key: key) else { return nil }
            let server = st.servers[index]
            return takeSlot(server) ? server : nil
        }
    }

    // MARK: - Dynamic servers

    /// Adds a server built by `make` with a fresh id (unless the settings carry one); nil and the
    /// reason when the name or id is taken.
    func add(_ settings: ServerSettings, arguments: [String] = []) -> Result<Server, DynamicServerError> {
        state.withLockedValue { st in
            if st.servers.contains(where: { $0.name == settings.name }) { return .failure(.nameTaken) }
            if let id = settings.id, st.servers.contains(where: { $0.id == id }) { return .failure(.idTaken) }
            let id = settings.id ?? (st.lastServerID + 1)
            st.lastServerID = max(st.lastServerID, id)
            let server = Server(settings: settings, backendName: name, id: id, loopCount: loopCount, isDynamic: true,
                                addArguments: arguments, global: global, backendSource: self.settings.source)
            st.servers.append(server)
            st.balancer.reset()
            refreshSnapshot(st.servers)
            return .success(server)
        }
    }

    /// Removes a server if it passes the removability check at this very moment.
    func remove(_ server: Server) -> RemovalCheck {
        state.withLockedValue { st in
            let check = Self.removability(server, queued: 0)
            guard check == .removable, let index = st.servers.firstIndex(where: { $0 === server }) else { return check }
            st.servers.remove(at: index)
            st.balancer.reset()
            refreshSnapshot(st.servers)
            server.deleted.store(true, ordering: .relaxed)
            if !server.isDynamic { st.deletedConfigured.append(server.name) }
            return .removable
        }
    }

    var deletedConfiguredServers: [String] { state.withLockedValue { $0.deletedConfigured } }

    /// HAProxy's `del server` conditions after the lookups, in its order.
    enum RemovalCheck: Equatable {
        case removable
        case notInMaintenance
        /// Transient: connections or streams still use it.
        case busy

        var message: String {
            switch self {
            case .removable: return "Server deleted."
            case .notInMaintenance: return "Only servers in maintenance mode can be deleted."
            case .busy: return "Server still has connections attached to it, cannot remove it."
            }
        }
    }

    static func removability(_ server: Server, queued: Int) -> RemovalCheck {
        guard server.adminState.inMaintenance else { return .notInMaintenance }
        if server.usedConnections.load(ordering: .relaxed) > 0 || server.served.load(ordering: .relaxed) > 0
            || server.idleConnections.load(ordering: .relaxed) > 0 || queued > 0 {
            return .busy
        }
        return .removable
    }
}

enum DynamicServerError: Error {
    case nameTaken, idTaken
}

/// Whether a backend makes dynamic persistence cookies, and with which key (replaced whole by
/// `enable|disable dynamic-cookie backend` and `set dynamic-cookie-key backend`).
final class DynamicCookieState: AtomicReference, Sendable {
    let enabled: Bool
    let key: String?

    init(enabled: Bool, key: String?) {
        self.enabled = enabled
        self.key = key
    }
}
