import Atomics
import NIOConcurrencyHelpers
import NIOCore
import Shared

/// A backend at run time: its servers, the balancer, and the queue of requests waiting for a
/// server slot (`maxconn`). Slot accounting and the balancer share one short lock; nothing else
/// on the request path locks.
public final class Backend: Sendable {
    public let settings: ProxySettings
    public let servers: [Server]

    private struct State {
        var balancer: LoadBalancer
        var queue: [QueuedRequest] = []
        var nextTicket: UInt64 = 0
    }

    /// A request waiting for a server. `grant` runs on the requester's event loop.
    struct QueuedRequest {
        var ticket: UInt64
        var key: BalanceKey
        var eventLoop: EventLoop
        var grant: @Sendable (Server) -> Void
    }

    private let state: NIOLockedValueBox<State>
    let totalSessions = ManagedAtomic<Int>(0)
    let currentSessions = ManagedAtomic<Int>(0)
    let queued = ManagedAtomic<Int>(0)
    let counters = ProxyCounters()

    init(settings: ProxySettings, loopCount: Int, firstServerID: Int) {
        self.settings = settings
        var servers: [Server] = []
        for (i, s) in settings.servers.enumerated() {
            servers.append(Server(settings: s, backendName: settings.name, id: s.id ?? (i + 1), index: i, loopCount: loopCount))
        }
        self.servers = servers
        state = NIOLockedValueBox(State(balancer: LoadBalancer(algorithm: settings.balance, hashType: settings.hashType,
                                                               seed: UInt64(truncatingIfNeeded: firstServerID &+ 0x5bd1e995))))
    }

    public var name: String { settings.name }

    public enum Acquisition {
        case server(Server)
        case queued(ticket: UInt64)
        case unavailable
    }

    /// Picks a server and takes one of its slots, or queues the request.
    func acquire(key: BalanceKey, eventLoop: EventLoop, grant: @escaping @Sendable (Server) -> Void) -> Acquisition {
        state.withLockedValue { st in
            // Requests already waiting go first: a newcomer may not overtake the queue.
            if st.queue.isEmpty {
                switch st.balancer.pick(candidates(), key: key) {
                case .server(let index):
                    let server = servers[index]
                    takeSlot(server)
                    return .server(server)
                case .unavailable:
                    return .unavailable
                case .queue:
                    break
                }
            } else if !servers.contains(where: \.isUsable) {
                return .unavailable
            }
            st.nextTicket &+= 1
            st.queue.append(QueuedRequest(ticket: st.nextTicket, key: key, eventLoop: eventLoop, grant: grant))
            counters.noteQueue(queued.wrappingIncrementThenLoad(ordering: .relaxed))
            return .queued(ticket: st.nextTicket)
        }
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
        let granted: (QueuedRequest, Server)? = state.withLockedValue { st in
            server.served.wrappingDecrement(ordering: .relaxed)
            guard !st.queue.isEmpty else { return nil }
            let waiting = st.queue[0]
            guard case .server(let index) = st.balancer.pick(candidates(), key: waiting.key) else { return nil }
            st.queue.removeFirst()
            queued.wrappingDecrement(ordering: .relaxed)
            let next = servers[index]
            takeSlot(next)
            return (waiting, next)
        }
        if let (request, next) = granted {
            request.eventLoop.execute { request.grant(next) }
        }
    }

    private func takeSlot(_ server: Server) {
        let now = server.served.wrappingIncrementThenLoad(ordering: .relaxed)
        if now > server.maxServed.load(ordering: .relaxed) { server.maxServed.store(now, ordering: .relaxed) }
        server.totalSessions.wrappingIncrement(ordering: .relaxed)
        server.counters.noteSessions(now)
        server.counters.sessionRate.tick()
        counters.sessionRate.tick()
        counters.noteSessions(currentSessions.load(ordering: .relaxed) + 1)
        server.counters.lastSession.store(WallClock.seconds(), ordering: .relaxed)
    }

    private func candidates() -> [BalancerCandidate] {
        servers.map {
            BalancerCandidate(index: $0.index, weight: $0.weight, isBackup: $0.isBackup, isUsable: $0.isUsable,
                              served: $0.served.load(ordering: .relaxed), maxconn: $0.settings.maxconn)
        }
    }

    /// Another server for a retry with `option redispatch`, avoiding `excluded` when possible.
    func redispatch(excluding excluded: Server, key: BalanceKey) -> Server? {
        state.withLockedValue { st in
            var list = candidates()
            if list.contains(where: { $0.index != excluded.index && $0.isUsable }) {
                list[excluded.index].isUsable = false
            }
            guard case .server(let index) = st.balancer.pick(list, key: key) else { return nil }
            let server = servers[index]
            takeSlot(server)
            return server
        }
    }
}
