import Dispatch
import Atomics
import NIOCore
import NIOPosix
import Shared
import Testing
@testable import Worker

/// The backend's slots under contention from several event loops: `release` takes no lock
/// when nothing waits, so a request that queues while a slot is being freed must still get it.
@Suite struct BackendQueueTests {
    func backend(maxconn: Int, servers: Int = 1, weights: [Int]? = nil, loops: Int,
                 balance: BalanceAlgorithm = .roundRobin, hashType: HashType = .mapBased) -> Backend {
        var settings = ProxySettings(kind: .backend, name: "be", location: SourceLocation(file: "t.cfg", line: 1))
        settings.balance = balance
        settings.hashType = hashType
        for i in 0..<servers {
            var server = ServerSettings(name: "s\(i)", address: .inet(host: "127.0.0.1", port: 9000 + i),
                                        location: SourceLocation(file: "t.cfg", line: 2 + i))
            server.maxconn = maxconn
            if let weights { server.weight = weights[i] }
            settings.servers.append(server)
        }
        return Backend(settings: settings, loopCount: loops, firstServerID: 0)
    }

    /// Every request, on two loops at once, gets a slot (at once or from the queue) and gives
    /// it back; none is left waiting, and no slot leaks.
    @Test func noQueuedRequestIsForgottenWhileSlotsAreFreedWithoutTheLock() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { try? group.syncShutdownGracefully() }
        let be = backend(maxconn: 1, loops: 2)
        let perLoop = 20_000
        let done = ManagedAtomic<Int>(0)
        // Signalled by the last completion: a forgotten waiter leaves it unsignalled.
        let finished = DispatchSemaphore(value: 0)
        for loop in [group.next(), group.next()] {
            loop.execute { Self.request(perLoop, backend: be, loop: loop, done: done, total: 2 * perLoop, finished: finished) }
        }
        _ = finished.wait(timeout: .now() + 60)
        #expect(done.load(ordering: .relaxed) == 2 * perLoop)
        #expect(be.queued.load(ordering: .relaxed) == 0)
        #expect(be.servers[0].served.load(ordering: .relaxed) == 0)
        // The lock-free path and the locked one never both took the last slot.
        #expect(be.servers[0].maxServed.load(ordering: .relaxed) == 1)
    }

    /// One request: a slot now or from the queue, given back at once; then the next one.
    @Sendable static func request(_ remaining: Int, backend be: Backend, loop: EventLoop, done: ManagedAtomic<Int>,
                                  total: Int, finished: DispatchSemaphore) {
        guard remaining > 0 else { return }
        let finish: @Sendable (Server) -> Void = { server in
            be.release(server)
            if done.wrappingIncrementThenLoad(ordering: .relaxed) == total { finished.signal() }
            loop.execute { request(remaining - 1, backend: be, loop: loop, done: done, total: total, finished: finished) }
        }
        switch be.acquire(key: BalanceKey(), eventLoop: loop, makeGrant: { finish }) {
        case .server(let server): finish(server)
        case .queued: break
        case .unavailable: Issue.record("unavailable")
        }
    }

    @Test func aRequestQueuesOnlyWhenEveryServerIsFull() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let be = backend(maxconn: 1, servers: 2, loops: 1)
        let loop = group.next()
        guard case .server(let first) = be.acquire(key: BalanceKey(), eventLoop: loop, makeGrant: { { _ in } }),
              case .server(let second) = be.acquire(key: BalanceKey(), eventLoop: loop, makeGrant: { { _ in } }) else {
            Issue.record("expected two slots")
            return
        }
        #expect(first !== second)
        let granted = ManagedAtomic<Int>(0)
        guard case .queued(let ticket) = be.acquire(key: BalanceKey(), eventLoop: loop, makeGrant: { { _ in granted.wrappingIncrement(ordering: .relaxed) } }) else {
            Issue.record("expected to queue")
            return
        }
        #expect(be.queued.load(ordering: .relaxed) == 1)
        be.release(first)
        try loop.submit {}.wait()
        #expect(granted.load(ordering: .relaxed) == 1)
        #expect(!be.cancel(ticket: ticket))
        #expect(be.queued.load(ordering: .relaxed) == 0)
    }

    // MARK: - The lock-free rotation

    /// Takes and gives back `count` slots; how many each server got.
    func spread(_ be: Backend, _ count: Int, loop: EventLoop) -> [Int] {
        var counts = [Int](repeating: 0, count: be.servers.count)
        for _ in 0..<count {
            guard case .server(let server) = be.acquire(key: BalanceKey(), eventLoop: loop, makeGrant: { { _ in } }) else { continue }
            counts[be.servers.firstIndex { $0 === server }!] += 1
            be.release(server)
        }
        return counts
    }

    @Test func theRotationIsTheBalancersSmoothOrder() {
        let order = BalancerSnapshot.smoothOrder([1, 2, 3])
        var balancer = LoadBalancer(algorithm: .roundRobin)
        let candidates = [1, 2, 3].enumerated().map { BalancerCandidate(index: $0.offset, weight: $0.element) }
        let picked = (0..<6).compactMap { _ -> Int? in
            if case .server(let i) = balancer.pick(candidates) { return i }
            return nil
        }
        #expect(order == picked)
        #expect(BalancerSnapshot.smoothOrder([0, 0]).isEmpty)
    }

    @Test func roundRobinFollowsWeightsWithoutTheLockAndAroundUnusableServers() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()
        let be = backend(maxconn: 0, servers: 3, weights: [1, 2, 3], loops: 1)
        #expect(spread(be, 600, loop: loop) == [100, 200, 300])
        // A server in maintenance gets nothing; the others share by weight.
        be.servers[2].updateAdmin { $0.insert(.forcedMaint) }
        let without = spread(be, 300, loop: loop)
        #expect(without[2] == 0 && without[0] + without[1] == 300)
        #expect(abs(without[1] - 2 * without[0]) <= 3)
        be.servers[2].updateAdmin { $0.remove(.forcedMaint) }
        // A new weight takes effect within one cycle.
        be.servers[0].setWeight(3)
        _ = spread(be, 10, loop: loop)
        let after = spread(be, 800, loop: loop)
        #expect(abs(after[0] - 300) <= 3 && abs(after[1] - 200) <= 3 && abs(after[2] - 300) <= 3, "\(after)")
    }

    @Test func aFullServerIsSkippedAndTheRequestQueuesOnlyWhenAllAreFull() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()
        let be = backend(maxconn: 2, servers: 2, loops: 1)
        var held: [Server] = []
        for _ in 0..<4 {
            guard case .server(let s) = be.acquire(key: BalanceKey(), eventLoop: loop, makeGrant: { { _ in } }) else {
                Issue.record("expected a slot")
                return
            }
            held.append(s)
        }
        #expect(be.servers.map { $0.served.load(ordering: .relaxed) } == [2, 2])
        guard case .queued = be.acquire(key: BalanceKey(), eventLoop: loop, makeGrant: { { _ in } }) else {
            Issue.record("expected to queue")
            return
        }
    }

    // MARK: - The lock-free choice of the other algorithms

    func snapshot(_ be: Backend) -> BalancerSnapshot {
        BalancerSnapshot(servers: be.servers, algorithm: be.settings.balance, hashType: be.settings.hashType)
    }

    func candidates(_ be: Backend) -> [BalancerCandidate] {
        be.servers.enumerated().map {
            BalancerCandidate(index: $0.offset, weight: $0.element.effectiveWeight, isBackup: $0.element.isBackup,
                              isUsable: $0.element.isUsable, served: $0.element.served.load(ordering: .relaxed),
                              maxconn: $0.element.maxconn, hashID: $0.element.id)
        }
    }

    /// `balance source` must send a client to the same server whichever path chooses.
    @Test func mapBasedHashesChooseWhatTheBalancerChooses() {
        let be = backend(maxconn: 0, servers: 3, weights: [1, 2, 3], loops: 1, balance: .source)
        let fast = snapshot(be)
        let ticket = ManagedAtomic(0)
        var balancer = LoadBalancer(algorithm: .source)
        var seen = Set<Int>()
        for last in 1...60 {
            let key = BalanceKey(sourceAddress: [10, 0, 0, UInt8(last)])
            guard case .server(let index) = balancer.pick(candidates(be), key: key),
                  let chosen = fast.pick(key, ticket: ticket) else {
                Issue.record("no choice for 10.0.0.\(last)")
                return
            }
            #expect(chosen === be.servers[index])
            seen.insert(index)
        }
        #expect(seen.count == 3)
        // Without a key the balancer's own rotation decides; with a consistent ring, the ring.
        #expect(fast.pick(BalanceKey(), ticket: ticket) == nil)
        let ring = backend(maxconn: 0, servers: 3, loops: 1, balance: .source, hashType: .consistent)
        #expect(snapshot(ring).pick(BalanceKey(sourceAddress: [10, 0, 0, 1]), ticket: ticket) == nil)
    }

    @Test func leastconnFirstAndRandomChooseWithoutTheLock() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()
        let ticket = ManagedAtomic(0)
        // leastconn: the emptiest server per unit of weight.
        let lc = backend(maxconn: 0, servers: 3, loops: 1, balance: .leastConnections)
        for (i, n) in [3, 1, 2].enumerated() {
            for _ in 0..<n { lc.servers[i].served.wrappingIncrement(ordering: .relaxed) }
        }
        #expect(snapshot(lc).pick(BalanceKey(), ticket: ticket) === lc.servers[1])
        // first: the first server with a free slot; none left means the balancer queues.
        let first = backend(maxconn: 1, servers: 2, loops: 1, balance: .first)
        #expect(snapshot(first).pick(BalanceKey(), ticket: ticket) === first.servers[0])
        guard case .server = first.acquire(key: BalanceKey(), eventLoop: loop, makeGrant: { { _ in } }) else {
            Issue.record("expected a slot")
            return
        }
        #expect(snapshot(first).pick(BalanceKey(), ticket: ticket) === first.servers[1])
        first.servers[1].served.wrappingIncrement(ordering: .relaxed)
        #expect(snapshot(first).pick(BalanceKey(), ticket: ticket) == nil)
        // random: weighted, never an unusable server.
        let random = backend(maxconn: 0, servers: 3, weights: [1, 1, 2], loops: 1, balance: .random(draws: 1))
        random.servers[0].updateAdmin { $0.insert(.forcedMaint) }
        var counts = [0, 0, 0]
        let fast = snapshot(random)
        for _ in 0..<3_000 {
            let s = try #require(fast.pick(BalanceKey(), ticket: ticket))
            counts[random.servers.firstIndex { $0 === s }!] += 1
        }
        #expect(counts[0] == 0)
        #expect(counts[2] > counts[1] * 3 / 2 && counts[2] < counts[1] * 5 / 2, "\(counts)")
    }

    /// Backups are the balancer's: the snapshot never picks one.
    @Test func backupsAreLeftToTheBalancer() {
        var settings = ProxySettings(kind: .backend, name: "be", location: SourceLocation(file: "t.cfg", line: 1))
        var active = ServerSettings(name: "a", address: .inet(host: "127.0.0.1", port: 9000), location: SourceLocation(file: "t.cfg", line: 2))
        var backup = ServerSettings(name: "b", address: .inet(host: "127.0.0.1", port: 9001), location: SourceLocation(file: "t.cfg", line: 3))
        backup.backup = true
        active.disabled = false
        settings.servers = [active, backup]
        let be = Backend(settings: settings, loopCount: 1, firstServerID: 0)
        be.servers[0].updateAdmin { $0.insert(.forcedMaint) }
        let ticket = ManagedAtomic(0)
        #expect(snapshot(be).pick(BalanceKey(), ticket: ticket) == nil)
    }
}
