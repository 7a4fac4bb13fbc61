import Atomics
import NIOCore
import NIOPosix
import Shared
import Testing
@testable import Worker

/// The backend's slots under contention from several event loops: `release` takes no lock
/// when nothing waits, so a request that queues while a slot is being freed must still get it.
@Suite struct BackendQueueTests {
    func backend(maxconn: Int, servers: Int = 1, loops: Int) -> Backend {
        var settings = ProxySettings(kind: .backend, name: "be", location: SourceLocation(file: "t.cfg", line: 1))
        for i in 0..<servers {
            var server = ServerSettings(name: "s\(i)", address: .inet(host: "127.0.0.1", port: 9000 + i),
                                        location: SourceLocation(file: "t.cfg", line: 2 + i))
            server.maxconn = maxconn
            settings.servers.append(server)
        }
        return Backend(settings: settings, loopCount: loops, firstServerID: 0)
    }

    /// Every request, on two loops at once, gets a slot (at once or from the queue) and gives
    /// it back; none is left waiting, and no slot leaks.
    @Test func noQueuedRequestIsForgottenWhileSlotsAreFreedWithoutTheLock() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let be = backend(maxconn: 1, loops: 2)
        let perLoop = 20_000
        let done = ManagedAtomic<Int>(0)
        for loop in [group.next(), group.next()] {
            loop.execute { Self.request(perLoop, backend: be, loop: loop, done: done) }
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while done.load(ordering: .relaxed) < 2 * perLoop, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(60))
        }
        #expect(done.load(ordering: .relaxed) == 2 * perLoop)
        #expect(be.queued.load(ordering: .relaxed) == 0)
        #expect(be.servers[0].served.load(ordering: .relaxed) == 0)
        try await group.shutdownGracefully()
    }

    /// One request: a slot now or from the queue, given back at once; then the next one.
    @Sendable static func request(_ remaining: Int, backend be: Backend, loop: EventLoop, done: ManagedAtomic<Int>) {
        guard remaining > 0 else { return }
        let finish: @Sendable (Server) -> Void = { server in
            be.release(server)
            done.wrappingIncrement(ordering: .relaxed)
            loop.execute { request(remaining - 1, backend: be, loop: loop, done: done) }
        }
        switch be.acquire(key: BalanceKey(), eventLoop: loop, grant: finish) {
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
        guard case .server(let first) = be.acquire(key: BalanceKey(), eventLoop: loop, grant: { _ in }),
              case .server(let second) = be.acquire(key: BalanceKey(), eventLoop: loop, grant: { _ in }) else {
            Issue.record("expected two slots")
            return
        }
        #expect(first !== second)
        let granted = ManagedAtomic<Int>(0)
        guard case .queued(let ticket) = be.acquire(key: BalanceKey(), eventLoop: loop, grant: { _ in granted.wrappingIncrement(ordering: .relaxed) }) else {
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
}
