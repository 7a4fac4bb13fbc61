import Atomics
import Shared

/// A backend's servers as the lock-free pick sees them, published atomically by the backend
/// (rebuilt under its lock when the server list or a weight changes: `isStale`).
///
/// The common case needs no lock: with `roundrobin` and `static-rr`, the smooth weighted order
/// of the active servers (`order`) walked by one ticket shared by every event loop, so all
/// loops follow one rotation, as with HAProxy's locked balancer; with `leastconn`, `first`,
/// `random` and the map-based hashes (`source`, `uri`, `hdr`), the same choice the balancer
/// makes, computed from the servers' atomics. `pick` answers nil whenever the balancer must
/// decide under the lock: no active server can take the request (backups, queueing,
/// unavailability), a ticket lands on a server that cannot (down, maintenance, slow start,
/// full, weight changed), or the algorithm keeps state (`hash-type consistent` and its ring).
/// Slots are then taken by compare-and-swap against `maxconn` (`Backend.takeSlot`), so two
/// loops choosing at once never exceed it.
final class BalancerSnapshot: AtomicReference, Sendable {
    let servers: [Server]
    /// `roundrobin` / `static-rr`: indexes into `servers`, one per unit of weight, in smooth
    /// weighted order. Empty for the other algorithms.
    let order: [Int]
    /// The weight of each server when this snapshot was built.
    let weights: [Int]
    let algorithm: BalanceAlgorithm
    let hashType: HashType

    /// Longest order built: past it (huge weights on many servers) the locked balancer serves.
    static let maxOrder = 65_536

    init(servers: [Server], algorithm: BalanceAlgorithm, hashType: HashType) {
        self.servers = servers
        self.algorithm = algorithm
        self.hashType = hashType
        let weights = servers.map(\.weight)
        self.weights = weights
        switch algorithm {
        case .roundRobin, .staticRoundRobin:
            let active = servers.indices.map { servers[$0].isBackup ? 0 : weights[$0] }
            order = active.reduce(0, +) <= Self.maxOrder ? Self.smoothOrder(active) : []
        default:
            order = []
        }
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

    /// Whether `servers` (the backend's list now) or their weights differ from this snapshot.
    func isStale(_ servers: [Server]) -> Bool {
        guard servers.count == self.servers.count else { return true }
        for i in servers.indices where servers[i] !== self.servers[i] || servers[i].weight != weights[i] { return true }
        return false
    }

    /// The server for this request, chosen without a lock; nil sends it to the locked balancer.
    func pick(_ key: BalanceKey, ticket: ManagedAtomic<Int>) -> Server? {
        switch algorithm {
        case .roundRobin, .staticRoundRobin:
            return nextInRotation(ticket)
        case .leastConnections:
            return leastLoaded(rotation: ticket.loadThenWrappingIncrement(ordering: .relaxed))
        case .first:
            return servers.first { !$0.isBackup && Self.canTake($0) }
        case .random(let draws):
            return randomPick(draws: max(1, draws), seed: ticket.loadThenWrappingIncrement(ordering: .relaxed))
        case .source, .uri, .header:
            // Without what it hashes, the balancer falls back to its own rotation.
            guard hashType == .mapBased, let hash = LoadBalancer.keyHash(algorithm, key) else { return nil }
            return mapBased(hash)
        }
    }

    /// Usable, with a free slot (the slot itself is taken later, by compare-and-swap).
    private static func canTake(_ s: Server) -> Bool {
        guard s.isUsable, s.effectiveWeight > 0 else { return false }
        let limit = s.maxconn
        return limit == 0 || s.served.load(ordering: .relaxed) < limit
    }

    private func nextInRotation(_ ticket: ManagedAtomic<Int>) -> Server? {
        guard !order.isEmpty else { return nil }
        let t = UInt(bitPattern: ticket.loadThenWrappingIncrement(ordering: .relaxed))
        let index = order[Int(t % UInt(order.count))]
        let server = servers[index]
        guard server.isUsable, server.effectiveWeight == weights[index] else { return nil }
        return server
    }

    /// The active server with the fewest connections per unit of weight, ties broken by a
    /// rotating start.
    private func leastLoaded(rotation: Int) -> Server? {
        let n = servers.count
        guard n > 0 else { return nil }
        let start = Int(UInt(bitPattern: rotation) % UInt(n))
        var best: Server? = nil
        var bestScore = Int.max
        for k in 0..<n {
            let s = servers[(start + k) % n]
            guard !s.isBackup, Self.canTake(s) else { continue }
            let score = (s.served.load(ordering: .relaxed) + 1) * 256 / s.effectiveWeight
            if score < bestScore {
                bestScore = score
                best = s
            }
        }
        return best
    }

    /// `random(<draws>)`: that many weighted draws among the active servers that can take the
    /// request, the least loaded of them wins.
    private func randomPick(draws: Int, seed: Int) -> Server? {
        var total = 0
        for s in servers where !s.isBackup && Self.canTake(s) { total += s.effectiveWeight }
        guard total > 0 else { return nil }
        var random = SplitMix64(seed: UInt64(bitPattern: Int64(seed)) &* 0x9E37_79B9_7F4A_7C15)
        var best: Server? = nil
        for _ in 0..<draws {
            var r = Int(random.next() % UInt64(total))
            var chosen: Server? = nil
            for s in servers where !s.isBackup && Self.canTake(s) {
                let w = s.effectiveWeight
                if r < w { chosen = s; break }
                r -= w
            }
            guard let chosen else { continue }
            if let b = best {
                if chosen.served.load(ordering: .relaxed) * b.effectiveWeight < b.served.load(ordering: .relaxed) * chosen.effectiveWeight {
                    best = chosen
                }
            } else {
                best = chosen
            }
        }
        return best
    }

    /// `hash-type map-based`: the hash modulo the total weight of the usable active servers,
    /// walked in order, as the balancer does. A full server is the balancer's to queue for.
    private func mapBased(_ hash: UInt32) -> Server? {
        var total = 0
        for s in servers where !s.isBackup && s.isUsable { total += max(0, s.effectiveWeight) }
        guard total > 0 else { return nil }
        var slot = Int(hash % UInt32(total))
        for s in servers where !s.isBackup && s.isUsable {
            let w = max(0, s.effectiveWeight)
            if slot < w { return Self.canTake(s) ? s : nil }
            slot -= w
        }
        return nil
    }
}
