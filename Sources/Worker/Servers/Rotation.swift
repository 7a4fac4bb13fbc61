import Atomics

/// The lock-free path of `roundrobin` and `static-rr`: the smooth weighted order of a backend's
/// active servers, computed once from their weights, walked by one ticket shared by every
/// event loop. All loops follow one rotation, as with HAProxy's locked balancer, without
/// taking a lock per request.
///
/// The order is rebuilt under the backend's lock when the server list or a weight changes
/// (`isStale`). A ticket that lands on a server that cannot take the request (down, in
/// maintenance, slow-starting, full, or its weight changed) falls back to the locked balancer,
/// which also covers backups and the queue.
final class Rotation: AtomicReference, Sendable {
    let servers: [Server]
    /// Indexes into `servers`, one per unit of weight, in smooth weighted order.
    let order: [Int]
    /// The weight of each server when the order was built.
    let weights: [Int]

    /// Longest order built: past it (huge weights on many servers) the locked balancer serves.
    static let maxOrder = 65_536

    init(servers: [Server]) {
        self.servers = servers
        let weights = servers.map(\.weight)
        self.weights = weights
        let active = servers.indices.map { servers[$0].isBackup ? 0 : weights[$0] }
        order = active.reduce(0, +) <= Self.maxOrder ? Self.smoothOrder(active) : []
    }

    /// The smooth weighted round-robin sequence over one full cycle: each index appears as many
    /// times as its weight, spread out (the same sequence `LoadBalancer` produces).
    static func smoothOrder(_ weights: [Int]) -> [Int] {
        let total = weights.reduce(0) { $0 + max(0, $1) }
        guard total > 0 else { return [] }
        var current = [Int](repeating: 0, count: weights.count)
        var order: [Int] = []
        order.reserveCapacity(total)
        for _ in 0..<total {
            var best = -1
            for i in weights.indices where weights[i] > 0 {
                current[i] += weights[i]
                if best < 0 || current[i] > current[best] { best = i }
            }
            current[best] -= total
            order.append(best)
        }
        return order
    }

    /// Whether `servers` (the backend's list now) or their weights differ from what this order
    /// was built from.
    func isStale(_ servers: [Server]) -> Bool {
        guard servers.count == self.servers.count else { return true }
        for i in servers.indices where servers[i] !== self.servers[i] || servers[i].weight != weights[i] { return true }
        return false
    }

    /// The server the next ticket names, if it can take a request now; nil sends the request to
    /// the locked balancer.
    func next(_ ticket: ManagedAtomic<Int>) -> Server? {
        guard !order.isEmpty else { return nil }
        let t = UInt(bitPattern: ticket.loadThenWrappingIncrement(ordering: .relaxed))
        let index = order[Int(t % UInt(order.count))]
        let server = servers[index]
        guard server.isUsable, server.effectiveWeight == weights[index] else { return nil }
        return server
    }
}
