import Atomics
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct HandoverTests {
    /// Sends one keep-alive request on `client` and returns the body.
    func ask(_ client: RawClient) throws -> String {
        try client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return try client.readResponses(1)[0].components(separatedBy: "\r\n\r\n").last ?? ""
    }

    @Test func anIdleKeepAliveConnectionMovesToTheNewWorker() throws {
        let port = try Ports.free()
        let hasp = try startMaster(config: returnConfig(port: port, body: "old"), port: port)
        defer { hasp.stop() }
        let oldWorker = try #require(children(of: hasp.pid).first)
        let client = try RawClient(port: port)
        #expect(try ask(client) == "old")
        _ = try hasp.dir.write("hasp.cfg", returnConfig(port: port, body: "new"))
        hasp.child.signal(SIGUSR2)
        // The old worker is gone before the next request: nothing kept it alive.
        try eventually("the old worker to exit") { !isAlive(oldWorker) }
        #expect(try ask(client) == "new")
        #expect(try ask(client) == "new")
    }

    @Test func withoutHandoverIdleConnectionsCloseAtTheReload() throws {
        let port = try Ports.free()
        let config = { (body: String) in returnConfig(port: port, body: body, global: "    hasp.idle-handover off") }
        let hasp = try startMaster(config: config("old"), port: port)
        defer { hasp.stop() }
        let client = try RawClient(port: port, timeout: 3)
        #expect(try ask(client) == "old")
        _ = try hasp.dir.write("hasp.cfg", config("new"))
        // Watch for the close on another thread while this one notes when the new worker is READY.
        let closedAt = Mutex<Date?>(nil)
        let watcher = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            if client.isClosedByPeer() { closedAt.withLock { $0 = Date() } }
            watcher.signal()
        }
        let loads = hasp.child.stderr.components(separatedBy: "Loading success.").count
        hasp.child.signal(SIGUSR2)
        try eventually("the new worker's READY") { hasp.child.stderr.components(separatedBy: "Loading success.").count > loads }
        let readyAt = Date()
        watcher.wait()
        let closed = try #require(closedAt.withLock { $0 }, "the idle connection was not closed")
        #expect(closed.timeIntervalSince(readyAt) < 1, "closed \(closed.timeIntervalSince(readyAt)) s after READY")
        let fresh = try RawClient(port: port)
        #expect(try ask(fresh) == "new")
    }

    @Test func hardStopAfterEndsAStuckConnection() throws {
        let port = try Ports.free()
        let backend = try TestBackend()
        defer { backend.stop() }
        let config = """
        global
            nbthread 1
            hard-stop-after 2s
        defaults
            mode http
            timeout connect 2s
            timeout client 30s
            timeout server 30s
        frontend fe
            bind 127.0.0.1:\(port)
            default_backend be
        backend be
            server s 127.0.0.1:\(backend.port)
        """
        let hasp = try startMaster(config: config, port: port)
        defer { hasp.stop() }
        let oldWorker = try #require(children(of: hasp.pid).first)
        let stuck = try RawClient(port: port, timeout: 10)
        try stuck.send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        try eventually("the request to reach the server") { backend.requests.load(ordering: .relaxed) == 1 }
        let reloaded = Date()
        hasp.child.signal(SIGUSR2)
        try eventually(timeout: 10, "the old worker to be stopped by hard-stop-after") { !isAlive(oldWorker) }
        let elapsed = Date().timeIntervalSince(reloaded)
        #expect(elapsed >= 1.8 && elapsed < 3.5, "stopped after \(elapsed) s")
    }
}

@Suite(.serialized) struct MasterOptionsTests {
    @Test(.enabled(if: getuid() == 0, "changing user needs root"))
    func workersDropPrivileges() throws {
        let port = try Ports.free()
        let hasp = try startMaster(config: returnConfig(port: port, body: "p", global: "    user nobody\n    group nogroup"), port: port)
        defer { hasp.stop() }
        let worker = try #require(children(of: hasp.pid).first)
        let status = try String(contentsOfFile: "/proc/\(worker)/status", encoding: .utf8)
        let uidLine = status.split(separator: "\n").first { $0.hasPrefix("Uid:") } ?? ""
        #expect(uidLine.split(separator: "\t").dropFirst().allSatisfy { $0 == "65534" }, "\(uidLine)")
        #expect(fetchOnce(port: port) == "p")
        // The master keeps its privileges: it must still bind new ports on reload.
        let masterStatus = try String(contentsOfFile: "/proc/\(hasp.pid)/status", encoding: .utf8)
        #expect(masterStatus.contains("Uid:\t0\t0\t0\t0"))
    }

    @Test func idleCloseOnResponseKeepsIdleConnectionsUntilTheirNextResponse() throws {
        let port = try Ports.free()
        let config = { (body: String) in
            returnConfig(port: port, body: body, global: "    hasp.idle-handover off")
                .replacingOccurrences(of: "    mode http", with: "    mode http\n    option idle-close-on-response")
        }
        let hasp = try startMaster(config: config("old"), port: port)
        defer { hasp.stop() }
        let oldWorker = try #require(children(of: hasp.pid).first)
        let client = try RawClient(port: port)
        try client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try client.readResponses(1)
        _ = try hasp.dir.write("hasp.cfg", config("new"))
        hasp.child.signal(SIGUSR2)
        try eventually("the new worker") { children(of: hasp.pid).filter(isAlive).count == 2 }
        try eventually("the new worker to serve") { fetchOnce(port: port) == "new" }
        // The master tells the old worker to stop once the new one is ready; wait until it has.
        #expect(holdsListener(pid: hasp.pid, port: port), "the probe finds the listener")
        try eventually("the old worker to stop accepting") { !holdsListener(pid: oldWorker, port: port) }
        #expect(isAlive(oldWorker))
        try client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let last = try client.readResponses(1)[0]
        #expect(last.hasSuffix("old"))
        #expect(last.contains("connection: close"))
        try eventually("the old worker to exit") { !isAlive(oldWorker) }
    }

    @Test func slowRequestFinishesOnTheOldWorker() throws {
        let port = try Ports.free()
        let backend = try TestBackend(threads: 2)
        defer { backend.stop() }
        let config = """
        global
            nbthread 1
        defaults
            mode http
            timeout connect 2s
            timeout client 10s
            timeout server 10s
        frontend fe
            bind 127.0.0.1:\(port)
            default_backend be
        backend be
            server s 127.0.0.1:\(backend.port)
        """
        let hasp = try startMaster(config: config, port: port)
        defer { hasp.stop() }
        let oldWorker = try #require(children(of: hasp.pid).first)
        let slow = try RawClient(port: port)
        try slow.send("GET /slow/1000 HTTP/1.1\r\nHost: x\r\n\r\n")
        try eventually("the request to reach the server") { backend.requests.load(ordering: .relaxed) == 1 }
        hasp.child.signal(SIGUSR2)
        try eventually("a new worker") { children(of: hasp.pid).filter(isAlive).count == 2 }
        // New connections reach the new worker while the old one finishes.
        let fresh = try RawClient(port: port)
        try fresh.send("GET /conn HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try fresh.readResponses(1)[0].hasPrefix("HTTP/1.1 200"))
        let response = try slow.readResponses(1)[0]
        #expect(response.hasPrefix("HTTP/1.1 200") && response.hasSuffix("slept 1000"))
        // The finished connection moves to the new worker instead of being closed.
        #expect(!response.contains("connection: close"))
        try eventually("the old worker to exit") { !isAlive(oldWorker) }
        try slow.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try slow.readResponses(1)[0].hasSuffix("b1"))
    }

    @Test func daemonMasterAndSoftStopOfAPreviousProcess() throws {
        let dir = try TempDir()
        let oldPort = try Ports.free()
        let previous = try Hasp(config: returnConfig(port: oldPort, body: "previous"), waitFor: [oldPort])
        defer { previous.stop() }
        let port = try Ports.free()
        let pidfile = dir.path("m.pid")
        let cfg = try dir.write("d.cfg", returnConfig(port: port, body: "daemon"))
        let launcher = try run(HaspBinary.path, ["-W", "-D", "-p", pidfile, "-f", cfg, "-sf", String(previous.pid)], timeout: 20)
        #expect(launcher.status == 0, "\(launcher.stderr)")
        let master = try #require(Int32((try String(contentsOfFile: pidfile, encoding: .utf8)).trimmingCharacters(in: .newlines)))
        defer { kill(master, SIGKILL) }
        #expect(fetchOnce(port: port) == "daemon")
        #expect(children(of: master).count == 1)
        // -sf: the previous process got SIGUSR1 once the new worker was ready.
        let exit = try previous.child.waitExit(timeout: 10)
        #expect(exit.code == 0 && !exit.bySignal)
        kill(master, SIGTERM)
        try eventually("the daemon master to exit") { kill(master, 0) != 0 }
    }
}

@Suite(.serialized) struct SocketTransferTests {
    @Test func standaloneReloadWithDashXTakesTheOldListeners() throws {
        let dir = try TempDir()
        let port = try Ports.free()
        let statsPath = dir.path("stats.sock")
        let config = { (body: String) in
            returnConfig(port: port, body: body, global: "    stats socket \(statsPath) mode 600 level admin expose-fd listeners")
        }
        let old = try Hasp(config: config("old"), waitFor: [port])
        defer { old.stop() }
        #expect(fetchOnce(port: port) == "old")
        // A client opens new connections the whole time.
        let failures = ManagedAtomic<Int>(0)
        let running = ManagedAtomic<Bool>(true)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            while running.load(ordering: .relaxed) {
                if fetchOnce(port: port) == nil { failures.wrappingIncrement(ordering: .relaxed) }
            }
            done.signal()
        }
        let cfg = try dir.write("new.cfg", config("new"))
        let new = try ChildProcess(HaspBinary.path, ["-db", "-f", cfg, "-x", statsPath, "-sf", String(old.pid)], dir: dir, name: "new")
        defer { new.stop() }
        let exit = try old.child.waitExit(timeout: 10)
        #expect(exit.code == 0 && !exit.bySignal)
        try eventually("the new process to answer") { fetchOnce(port: port) == "new" }
        running.store(false, ordering: .relaxed)
        done.wait()
        #expect(failures.load(ordering: .relaxed) == 0)
        #expect(new.isRunning)
    }

    @Test func aMissingOldSocketIsFatal() throws {
        let dir = try TempDir()
        let port = try Ports.free()
        let cfg = try dir.write("x.cfg", returnConfig(port: port, body: "x"))
        let r = try run(HaspBinary.path, ["-db", "-f", cfg, "-x", dir.path("nothing.sock")])
        #expect(r.status == 1)
        #expect(r.stderr.contains("Failed to get the sockets from the old process!"))
    }
}
