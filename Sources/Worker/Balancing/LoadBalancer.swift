import NIOCore
import Shared

/// What the balancer needs to know about one server at pick time.
public struct BalancerCandidate: Sendable, Equatable {
    public var index: Int
    public var weight: Int
    public var isBackup: Bool
    public var isUsable: Bool
    public var served: Int
    public var maxconn: Int
    /// What places the server on a consistent-hash ring: stable while servers come and go.
    public var hashID: Int

    public init(index: Int, weight: Int, isBackup: Bool = false, isUsable: Bool = true, served: Int = 0, maxconn: Int = 0,
                hashID: Int? = nil) {
        self.index = index
        self.hashID = hashID ?? index
        self.weight = weight
        self.isBackup = isBackup
        self.isUsable = isUsable
        self.served = served
        self.maxconn = maxconn
    }

    var hasFreeSlot: Bool { maxconn == 0 || served < maxconn }
}

/// The request properties hash-based algorithms use.
public struct BalanceKey: Sendable {
    public var sourceAddress: [UInt8]?
    public var uri: Substring?
    public var headerValue: Substring?
    /// The raw IP address bytes `balance source` hashes; nil for other kinds of address.
    static func addressBytes(_ address: SocketAddress?) -> [UInt8]? {
        switch address {
        case .v4(let a)?: return withUnsafeBytes(of: a.address.sin_addr) { Array($0) }
        case .v6(let a)?: return withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }
        default: return nil
        }
    }

    public init(sourceAddress: [UInt8]? = nil, uri: Substring? = nil, headerValue: Substring? = nil) {
        self.sourceAddress = sourceAddress
        self.uri = uri
        self.headerValue = headerValue
    }
}

/// HAProxy's load-balancing algorithms over a list of candidates. Pure state machine: the caller
/// provides current counts and serialises calls (the backend holds a lock around `pick`).
public struct LoadBalancer: Sendable {
    public enum Outcome: Equatable, Sendable {
        case server(Int)
        /// Usable servers exist but none has a free slot: the request waits in the queue.
        case queue
        /// No usable server.
        case unavailable
    }

    public let algorithm: BalanceAlgorithm
    public let hashType: HashType
    /// `hash-balance-factor`: bounded-load consistent hashing (0: off).
    public let hashBalanceFactor: Int
    /// `option allbackups`: every usable backup server shares the load, not only the first.
    public let allBackups: Bool
    private var smoothWeights: [Int] = []
    private var rotation = 0
    private var random: SplitMix64
    private var ring: [(hash: UInt32, index: Int)] = []
    private var ringSignature: [Int] = []
    // Scratch lists reused by every pick: the backend calls `pick` under its lock, and an
    // allocation there would lengthen what every loop waits for.
    private var pool: [BalancerCandidate] = []
    private var free: [BalancerCandidate] = []

    public init(algorithm: BalanceAlgorithm, hashType: HashType = .mapBased, hashBalanceFactor: Int = 0, allBackups: Bool = false,
                seed: UInt64 = 0x9E37_79B9_7F4A_7C15) {
        self.algorithm = algorithm
        self.hashType = hashType
        self.hashBalanceFactor = hashBalanceFactor
        self.allBackups = allBackups
        self.random = SplitMix64(seed: seed)
    }

    /// Forgets per-position state after the server list changed.
    public mutating func reset() {
        smoothWeights = []
        ringSignature = []
    }

    public mutating func pick(_ all: [BalancerCandidate], key: BalanceKey = BalanceKey()) -> Outcome {
        // Active servers first; backups only when no active server is usable (the first backup
        // only, as HAProxy does without `option allbackups`).
        pool.removeAll(keepingCapacity: true)
        for c in all where c.isUsable && !c.isBackup && c.weight > 0 { pool.append(c) }
        if pool.isEmpty, allBackups {
            for c in all where c.isUsable && c.isBackup && c.weight > 0 { pool.append(c) }
            if pool.isEmpty { return .unavailable }
        } else if pool.isEmpty {
            if let firstBackup = all.first(where: { $0.isUsable && $0.isBackup && $0.weight > 0 }) {
                pool.append(firstBackup)
            } else {
                return .unavailable
            }
        }
        if smoothWeights.count < all.count {
            smoothWeights.append(contentsOf: repeatElement(0, count: all.count - smoothWeights.count))
        }
        switch algorithm {
        case .roundRobin, .staticRoundRobin:
            return smoothRoundRobin(pool)
        case .leastConnections:
            return leastConnections(pool)
        case .first:
            if let c = pool.first(where: \.hasFreeSlot) { return .server(c.index) }
            return .queue
        case .random(let draws):
            return randomPick(pool, draws: max(1, draws))
        case .source, .uri, .header:
            // Without what the algorithm hashes, the request is balanced round-robin.
            guard let hash = Self.keyHash(algorithm, key) else { return smoothRoundRobin(pool) }
            return hashed(pool, hash: hash)
        }
    }

    /// What a hash-based algorithm hashes for this request; nil without it (or for the others).
    static func keyHash(_ algorithm: BalanceAlgorithm, _ key: BalanceKey) -> UInt32? {
        switch algorithm {
        case .source:
            return key.sourceAddress.map(sdbm)
        case .uri(let depth, let length, let whole):
            guard let uri = key.uri else { return nil }
            return sdbm(Array(uriPart(uri, depth: depth, length: length, whole: whole).utf8))
        case .header(_, let domainOnly):
            guard let value = key.headerValue, !value.isEmpty else { return nil }
            var text = value
            if domainOnly {
                // The longest dot-separated label, as HAProxy does for `use_domain_only`.
                text = value.split(separator: ".").max(by: { $0.count < $1.count }) ?? value
            }
            return sdbm(Array(text.utf8))
        default:
            return nil
        }
    }

    /// The pool's candidates with a free slot, in `free`.
    private mutating func collectFree(_ pool: [BalancerCandidate]) {
        free.removeAll(keepingCapacity: true)
        for c in pool where c.hasFreeSlot { free.append(c) }
    }

    private mutating func smoothRoundRobin(_ pool: [BalancerCandidate]) -> Outcome {
        collectFree(pool)
        let free = self.free
        guard !free.isEmpty else { return .queue }
        var total = 0
        var best: BalancerCandidate? = nil
        for c in free {
            smoothWeights[c.index] += c.weight
            total += c.weight
            if best == nil || smoothWeights[c.index] > smoothWeights[best!.index] { best = c }
        }
        smoothWeights[best!.index] -= total
        return .server(best!.index)
    }

    private mutating func leastConnections(_ pool: [BalancerCandidate]) -> Outcome {
        collectFree(pool)
        let free = self.free
        guard !free.isEmpty else { return .queue }
        rotation &+= 1
        var best: BalancerCandidate? = nil
        var bestScore = Int.max
        for offset in 0..<free.count {
            let c = free[(offset + rotation) % free.count]
            // Connections per unit of weight, scaled to keep integer precision.
            let score = (c.served + 1) * 256 / c.weight
            if score < bestScore {
                bestScore = score
                best = c
            }
        }
        return .server(best!.index)
    }

    private mutating func randomPick(_ pool: [BalancerCandidate], draws: Int) -> Outcome {
        collectFree(pool)
        let free = self.free
        guard !free.isEmpty else { return .queue }
        let total = free.reduce(0) { $0 + $1.weight }
        var best: BalancerCandidate? = nil
        for _ in 0..<draws {
            var r = Int(random.next() % UInt64(total))
            var chosen = free[0]
            for c in free {
                if r < c.weight { chosen = c; break }
                r -= c.weight
            }
            if best == nil || chosen.served * best!.weight < best!.served * chosen.weight { best = chosen }
        }
        return .server(best!.index)
    }

    private mutating func hashed(_ pool: [BalancerCandidate], hash: UInt32) -> Outcome {
        let chosen: BalancerCandidate
        switch hashType {
        case .mapBased:
            let total = pool.reduce(0) { $0 + $1.weight }
            var slot = Int(hash % UInt32(total))
            var pick = pool[0]
            for c in pool {
                if slot < c.weight { pick = c; break }
                slot -= c.weight
            }
            chosen = pick
        case .consistent:
            if !Self.sameRing(ringSignature, pool) {
                let signature = pool.flatMap { [$0.index, $0.hashID, $0.weight] }
                ring = []
                for c in pool {
                    for replica in 0..<(c.weight * 16) {
                        ring.append((Self.avalanche(UInt32(truncatingIfNeeded: c.hashID &* 0x10000 &+ replica)), c.index))
                    }
                }
                ring.sort { $0.hash < $1.hash }
                ringSignature = signature
            }
            let h = Self.avalanche(hash)
            var low = 0
            var high = ring.count
            while low < high {
                let mid = (low + high) / 2
                if ring[mid].hash < h { low = mid + 1 } else { high = mid }
            }
            var position = low == ring.count ? 0 : low
            if hashBalanceFactor > 0 {
                // Bounded load: walk the ring past servers above their share, once round.
                for _ in 0..<ring.count where !isWithinBalanceFactor(ring[position].index, pool) {
                    position = (position + 1) % ring.count
                }
            }
            let index = ring[position].index
            chosen = pool.first { $0.index == index }!
        }
        return chosen.hasFreeSlot ? .server(chosen.index) : .queue
    }

    /// HAProxy's bounded-load rule: the requests in progress plus this one, times the factor,
    /// are shared out by weight (whole slots per unit of weight, the rest in proportion to the
    /// cumulative weights); a server may take the request below its share (at least one).
    private func isWithinBalanceFactor(_ index: Int, _ pool: [BalancerCandidate]) -> Bool {
        var totalWeight = 0, served = 0, cumulative = 0
        var candidate: BalancerCandidate?
        for c in pool {
            if c.index == index { candidate = c; cumulative = totalWeight }
            totalWeight += c.weight
            served += c.served
        }
        guard let candidate, totalWeight > 0 else { return true }
        let slots = ((served + 1) * hashBalanceFactor + 99) / 100
        let perWeight = slots / totalWeight, remainder = slots % totalWeight
        var share = candidate.weight * perWeight
        share += (cumulative + candidate.weight) * remainder / totalWeight - cumulative * remainder / totalWeight
        return candidate.served < max(1, share)
    }

    /// Whether the ring was built for these candidates (compared without building a list).
    private static func sameRing(_ signature: [Int], _ pool: [BalancerCandidate]) -> Bool {
        guard signature.count == pool.count * 3 else { return false }
        for (i, c) in pool.enumerated() where signature[3 * i] != c.index || signature[3 * i + 1] != c.hashID || signature[3 * i + 2] != c.weight {
            return false
        }
        return true
    }

    static func uriPart(_ uri: Substring, depth: Int?, length: Int?, whole: Bool) -> Substring {
        var part = uri
        if !whole, let q = part.firstIndex(of: "?") { part = part[..<q] }
        if let depth {
            var slashes = 0
            var end = part.endIndex
            for i in part.indices where part[i] == "/" {
                slashes += 1
                if slashes > depth { end = i; break }
            }
            part = part[..<end]
        }
        if let length, part.count > length { part = part.prefix(length) }
        return part
    }

    /// The sdbm hash HAProxy uses by default for map-based hashing.
    public static func sdbm(_ bytes: [UInt8]) -> UInt32 { Hashes.sdbm(bytes) }

    /// Spreads hash bits so that ring positions are uniform.
    static func avalanche(_ value: UInt32) -> UInt32 { Hashes.wangMix(value) }
}

/// Small deterministic generator: tests can seed it and get repeatable distributions.
struct SplitMix64: Sendable {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(1, n))) }
}
