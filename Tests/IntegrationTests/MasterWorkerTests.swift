import Atomics
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

func returnConfig(port: Int, body: String, global: String = "") -> String {
    """
    global
        nbthread 1
    \(global)
    defaults
        mode http
        timeout connect 2s
        timeout client 5s
        timeout server 5s
    frontend fe
        bind 127.0.0.1:\(port)
        http-request return status 200 content-type text/plain string "\(body)"
    """
}

/// Sends one request on a new connection; returns the body or nil on any failure.
func fetchOnce(port: Int) -> String? {
    try? fetchOrExplain(port: port).get()
}

/// The body, or what went wrong (for the message of a test that counts failures).
func fetchOrExplain(port: Int) -> Result<String, HarnessError> {
    let client: RawClient
    do { client = try RawClient(port: port, timeout: 5) } catch { return .failure(HarnessError("connect: \(error)")) }
    do { try client.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") } catch {
        return .failure(HarnessError("send: \(error)"))
    }
    do {
        let response = try client.readResponses(1)[0]
        guard response.hasPrefix("HTTP/1.1 200") else { return .failure(HarnessError("answer: \(response.prefix(80))")) }
        return .success(response.components(separatedBy: "\r\n\r\n").last ?? "")
    } catch {
        return .failure(HarnessError("read: \(error)"))
    }
}

/// Starts `hasp -W` and waits for the first worker's READY: the master binds (so the port
/// accepts) before its worker serves.
func startMaster(config: String, port: Int) throws -> Hasp {
    let hasp = try Hasp(config: config, waitFor: [port], arguments: ["-W"])
    try eventually("the first load") { hasp.child.stderr.contains("Loading success.") }
    return hasp
}

@Suite(.serialized) struct MasterWorkerTests {
    @Test func reloadsSwapWorkersWithoutRefusingAnything() throws {
        let port = try Ports.free()
        let hasp = try startMaster(config: returnConfig(port: port, body: "gen0"), port: port)
        defer { hasp.stop() }
        let master = hasp.pid
        try eventually("one worker") { children(of: master).count == 1 }
        let first = children(of: master)[0]
        #expect(fetchOnce(port: port) == "gen0")

        // A client hammers the port with new connections during every reload.
        let failures = ManagedAtomic<Int>(0)
        let successes = ManagedAtomic<Int>(0)
        let running = ManagedAtomic<Bool>(true)
        let done = DispatchSemaphore(value: 0)
        let lastFailure = Mutex<String>("")
        Thread.detachNewThread {
            while running.load(ordering: .relaxed) {
                switch fetchOrExplain(port: port) {
                case .success: successes.wrappingIncrement(ordering: .relaxed)
                case .failure(let why):
                    failures.wrappingIncrement(ordering: .relaxed)
                    lastFailure.withLock { $0 = "\(why)" }
                }
            }
            done.signal()
        }
        // And a keep-alive client that sends request after request on one connection.
        let keepAliveFailures = ManagedAtomic<Int>(0)
        let keepAliveAnswers = ManagedAtomic<Int>(0)
        let keepAliveError = Mutex<String>("")
        Thread.detachNewThread {
            defer { done.signal() }
            guard let client = try? RawClient(port: port, timeout: 5) else {
                keepAliveFailures.wrappingIncrement(ordering: .relaxed)
                return
            }
            while running.load(ordering: .relaxed) {
                do {
                    try client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    let r = try client.readResponses(1)[0]
                    guard r.hasPrefix("HTTP/1.1 200") else { throw HarnessError("answer \(r)") }
                } catch {
                    keepAliveError.withLock { $0 = "\(error)" }
                    keepAliveFailures.wrappingIncrement(ordering: .relaxed)
                    return
                }
                keepAliveAnswers.wrappingIncrement(ordering: .relaxed)
            }
        }
        var previous = first
        for generation in 1...20 {
            _ = try hasp.dir.write("hasp.cfg", returnConfig(port: port, body: "gen\(generation)"))
            hasp.child.signal(SIGUSR2)
            try eventually(timeout: 20, "generation \(generation) to serve") { fetchOnce(port: port) == "gen\(generation)" }
            let workers = children(of: master).filter(isAlive)
            #expect(!workers.contains(previous) || workers.count == 2)
            try eventually("the previous worker to exit") { !isAlive(previous) }
            previous = try #require(children(of: master).filter(isAlive).first)
        }
        running.store(false, ordering: .relaxed)
        done.wait()
        done.wait()
        #expect(failures.load(ordering: .relaxed) == 0, "\(lastFailure.withLock { $0 })")
        #expect(keepAliveFailures.load(ordering: .relaxed) == 0, "\(keepAliveError.withLock { $0 })")
        #expect(keepAliveAnswers.load(ordering: .relaxed) > 20)
        #expect(successes.load(ordering: .relaxed) > 10)
        #expect(hasp.pid == master && isAlive(master))
        #expect(hasp.child.stderr.contains("Former worker (\(first)) exited with code 0 (Exit)"))
    }

    /// `stats socket fd@N`: a listener the master inherited (as VTest passes them) is held by
    /// the master and passed to its worker, which serves it (the worker does not inherit the
    /// master's descriptors).
    @Test func aStatsSocketOnAnInheritedListenerIsServedByTheWorker() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        #expect(bound && listen(listener, 16) == 0)
        let statsPort = Int(UInt16(bigEndian: address.sin_port))
        let port = try Ports.free()
        let dir = try TempDir()
        let config = try dir.write("h.cfg", returnConfig(port: port, body: "ok", global: "    stats socket fd@3 level admin"))
        let hasp = try ChildProcess(HaspBinary.path, ["-W", "-f", config], dir: dir, name: "hasp", descriptor3: listener)
        defer { hasp.stop() }
        try eventually("the first load") { hasp.stderr.contains("Loading success.") }
        let client = try RawClient(port: statsPort, timeout: 5)
        try client.send("show info\n")
        let answer = String(decoding: client.readToEnd(), as: UTF8.self)
        #expect(answer.hasPrefix("Name: Hasp\n"), "\(answer.prefix(80))")
        #expect(fetchOnce(port: port) == "ok")
    }

    @Test func badConfigurationOnReloadKeepsTheOldWorker() throws {
        let port = try Ports.free()
        let hasp = try startMaster(config: returnConfig(port: port, body: "good"), port: port)
        defer { hasp.stop() }
        try eventually("one worker") { children(of: hasp.pid).count == 1 }
        let worker = children(of: hasp.pid)[0]
        _ = try hasp.dir.write("hasp.cfg", returnConfig(port: port, body: "good") + "\n    bogus_keyword\n")
        hasp.child.signal(SIGUSR2)
        try eventually("the reload to fail") { hasp.child.stderr.contains("unknown keyword 'bogus_keyword'") }
        try eventually("the failure to be counted") {
            hasp.child.stderr.contains("Reload failed (1 failed reload(s) out of 1); the running worker(s) are kept: \(worker).")
        }
        #expect(fetchOnce(port: port) == "good")
        #expect(isAlive(worker))
        // The next good reload works.
        _ = try hasp.dir.write("hasp.cfg", returnConfig(port: port, body: "fixed"))
        hasp.child.signal(SIGUSR2)
        try eventually("the fixed configuration to serve") { fetchOnce(port: port) == "fixed" }
        try eventually("the old worker to exit") { !isAlive(worker) }
    }

    @Test func aWorkerThatCannotStartFailsTheReloadOnly() throws {
        let port = try Ports.free()
        let busy = try TestBackend()
        defer { busy.stop() }
        let hasp = try startMaster(config: returnConfig(port: port, body: "one"), port: port)
        defer { hasp.stop() }
        try eventually("one worker") { children(of: hasp.pid).count == 1 }
        // A second frontend on a port that is already taken: the master cannot bind it.
        _ = try hasp.dir.write("hasp.cfg", returnConfig(port: port, body: "two") + "\nfrontend other\n    bind 127.0.0.1:\(busy.port)\n    http-request return status 200\n")
        hasp.child.signal(SIGUSR2)
        try eventually("the failure to be logged") { hasp.child.stderr.contains("cannot bind socket") }
        #expect(fetchOnce(port: port) == "one")
    }

    @Test(arguments: [(SIGTERM, Int32(0)), (SIGUSR1, Int32(0)), (SIGINT, Int32(130))])
    func stopSignalsAndExitCodes(_ signal: Int32, _ expected: Int32) throws {
        let port = try Ports.free()
        let hasp = try startMaster(config: returnConfig(port: port, body: "x"), port: port)
        defer { hasp.stop() }
        try eventually("one worker") { children(of: hasp.pid).count == 1 }
        let worker = children(of: hasp.pid)[0]
        hasp.child.signal(signal)
        let exit = try hasp.child.waitExit(timeout: 10)
        #expect(exit.code == expected && !exit.bySignal)
        #expect(!isAlive(worker))
    }

    @Test func aCrashedWorkerStopsTheMasterUnlessNoExitOnFailure() throws {
        let port = try Ports.free()
        let hasp = try startMaster(config: returnConfig(port: port, body: "x"), port: port)
        defer { hasp.stop() }
        try eventually("one worker") { children(of: hasp.pid).count == 1 }
        kill(children(of: hasp.pid)[0], SIGKILL)
        let exit = try hasp.child.waitExit(timeout: 10)
        #expect(exit.code == 137)
        #expect(hasp.child.stderr.contains("exited with code 137 (Killed)"))
        #expect(hasp.child.stderr.contains("exit-on-failure: killing every processes with SIGTERM"))

        let port2 = try Ports.free()
        let tolerant = try startMaster(config: returnConfig(port: port2, body: "y", global: "    master-worker no-exit-on-failure"),
                                       port: port2)
        defer { tolerant.stop() }
        try eventually("one worker") { children(of: tolerant.pid).count == 1 }
        let worker = children(of: tolerant.pid)[0]
        kill(worker, SIGKILL)
        do {
            try eventually("the crash to be logged") { tolerant.child.stderr.contains("Current worker (\(worker)) exited with code 137 (Killed)") }
        } catch {
            Issue.record("\(error); stderr: \(tolerant.child.stderr)")
        }
        #expect(isAlive(tolerant.pid))
        // A reload brings a worker back.
        tolerant.child.signal(SIGUSR2)
        try eventually("a new worker to serve") { fetchOnce(port: port2) == "y" }
    }

    @Test func maxReloadsTerminatesTheOldestWorker() throws {
        let port = try Ports.free()
        let backend = try TestBackend()
        defer { backend.stop() }
        // Old workers stay alive while a slow request is in flight.
        let config = { (body: String) in
            """
            global
                nbthread 1
                mworker-max-reloads 1
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
            # \(body)
            """
        }
        let hasp = try startMaster(config: config("a"), port: port)
        defer { hasp.stop() }
        try eventually("one worker") { children(of: hasp.pid).count == 1 }
        let oldest = children(of: hasp.pid)[0]
        let held = try RawClient(port: port)
        try held.send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        try eventually("the request to reach the server") { backend.requests.load(ordering: .relaxed) == 1 }
        _ = try hasp.dir.write("hasp.cfg", config("b"))
        hasp.child.signal(SIGUSR2)
        try eventually("a second worker") { children(of: hasp.pid).filter(isAlive).count == 2 }
        #expect(isAlive(oldest))   // one reload: still within the limit
        _ = try hasp.dir.write("hasp.cfg", config("c"))
        hasp.child.signal(SIGUSR2)
        try eventually("the oldest worker to be terminated") { !isAlive(oldest) }
        try eventually("the log line") {
            hasp.child.stderr.contains("Former worker (\(oldest)) exited with code 143 (Terminated), as it exceeds max reloads (1)")
        }
    }

    @Test func aWorkerThatFailsClosesTheSocketsItsReloadBound() throws {
        let port = try Ports.free()
        let added = try Ports.free()
        let hasp = try startMaster(config: returnConfig(port: port, body: "one"), port: port)
        defer { hasp.stop() }
        try eventually("one worker") { children(of: hasp.pid).count == 1 }
        // The master binds the new port, then the worker cannot drop to a user that does not
        // exist and exits before READY.
        _ = try hasp.dir.write("hasp.cfg", returnConfig(port: port, body: "two", global: "    user hasp-no-such-user")
            + "\nfrontend other\n    bind 127.0.0.1:\(added)\n    http-request return status 200\n")
        hasp.child.signal(SIGUSR2)
        try eventually("the failed reload") { hasp.child.stderr.contains("Reload failed") }
        #expect(fetchOnce(port: port) == "one")
        // Nobody would ever accept there: the socket must not be left listening.
        #expect(!Ports.isAccepting(added))
        #expect(!holdsListener(pid: hasp.pid, port: added))
    }

    @Test func aReloadThatCannotExecKeepsTheMasterAndAnswersTheClient() throws {
        let dir = try TempDir()
        let binary = dir.path("hasp-copy")
        try copyExecutable(HaspBinary.path, to: binary)
        let port = try Ports.free()
        let cfg = try dir.write("r.cfg", returnConfig(port: port, body: "kept"))
        let socket = dir.path("master.sock")
        let master = try ChildProcess(binary, ["-W", "-S", socket, "-f", cfg], dir: dir, name: "master")
        defer { master.stop() }
        try eventually("the first load") { master.stderr.contains("Loading success.") }
        let worker = try #require(children(of: master.pid).first)
        // The binary is gone: the master cannot re-execute itself.
        #expect(unlink(binary) == 0)
        let answer = try CLIClient.ask(socket, "reload", timeout: 10)
        #expect(answer.hasPrefix("Success=0\n"), "\(answer.prefix(80).debugDescription)")
        #expect(master.stderr.contains("master: cannot re-execute \(binary)"))
        #expect(isAlive(master.pid) && isAlive(worker))
        #expect(fetchOnce(port: port) == "kept")
        let processes = try CLIClient.ask(socket, "show proc", timeout: 10)
        #expect(processes.contains("0 [failed: 1]"), "\(processes)")
    }

    @Test func reloadRunsAReplacedBinary() throws {
        let dir = try TempDir()
        let binary = dir.path("hasp-copy")
        try copyExecutable(HaspBinary.path, to: binary)
        let port = try Ports.free()
        let cfg = try dir.write("r.cfg", returnConfig(port: port, body: "bin"))
        let master = try ChildProcess(binary, ["-W", "-f", cfg], dir: dir, name: "master")
        defer { master.stop() }
        try eventually("the first load") { master.stderr.contains("Loading success.") }
        try eventually("one worker") { children(of: master.pid).count == 1 }
        // Replace the file at the same path (a new inode, as a package upgrade does).
        let staged = dir.path("hasp-new")
        try copyExecutable(HaspBinary.path, to: staged)
        #expect(rename(staged, binary) == 0)
        var info = stat()
        stat(binary, &info)
        let newInode = info.st_ino
        let oldWorker = children(of: master.pid)[0]
        master.signal(SIGUSR2)
        try eventually("the old worker to exit") { !isAlive(oldWorker) }
        try eventually("a new worker") { children(of: master.pid).filter(isAlive).count == 1 }
        let worker = children(of: master.pid).filter(isAlive)[0]
        for pid in [master.pid, worker] {
            var exe = stat()
            #expect(stat("/proc/\(pid)/exe", &exe) == 0)
            #expect(exe.st_ino == newInode, "process \(pid) runs the new file")
        }
        #expect(fetchOnce(port: port) == "bin")
    }
}

/// A datagram socket standing in for systemd's notification socket.
final class NotifySocket {
    let fd: Int32
    let path: String

    init(dir: TempDir) throws {
        path = dir.path("notify.sock")
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { dst in for (i, b) in bytes.enumerated() { dst[i] = b } }
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard rc == 0 else { throw HarnessError("bind notify socket failed") }
        var tv = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func next() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }

    deinit { close(fd) }
}

@Suite(.serialized) struct MasterLifecycleTests {
    @Test func systemdNotifications() throws {
        let dir = try TempDir()
        let notify = try NotifySocket(dir: dir)
        let port = try Ports.free()
        let cfg = try dir.write("s.cfg", returnConfig(port: port, body: "sd"))
        let master = try ChildProcess(HaspBinary.path, ["-Ws", "-f", cfg], dir: dir, name: "master",
                                      environment: ["NOTIFY_SOCKET": notify.path])
        defer { master.stop() }
        #expect(notify.next() == "READY=1\nMAINPID=\(master.pid)\nSTATUS=Ready.\n")
        master.signal(SIGUSR2)
        let reloading = notify.next() ?? ""
        #expect(reloading.hasPrefix("RELOADING=1\nSTATUS=Reloading Configuration.\nMONOTONIC_USEC="))
        #expect(reloading.hasSuffix("\n") && UInt64(reloading.split(separator: "=").last!.dropLast()) != nil)
        #expect(notify.next() == "READY=1\nMAINPID=\(master.pid)\nSTATUS=Ready.\n")
        _ = try dir.write("s.cfg", "global\n    bogus\n")
        master.signal(SIGUSR2)
        #expect(notify.next()?.hasPrefix("RELOADING=1\n") == true)
        #expect(notify.next() == "READY=1\nSTATUS=Reload failed!\n")
        master.signal(SIGTERM)
        #expect(notify.next() == "STOPPING=1")
        #expect(try master.waitExit().code == 0)
    }

    @Test func workersExitWhenTheMasterDies() throws {
        let port = try Ports.free()
        let hasp = try startMaster(config: returnConfig(port: port, body: "x"), port: port)
        defer { hasp.stop() }
        let worker = try #require(children(of: hasp.pid).first)
        kill(hasp.pid, SIGKILL)
        try eventually("the orphaned worker to exit") { !isAlive(worker) }
    }

    @Test(.timeLimit(.minutes(3)))
    func manyReloadsLeaveTheMasterWithConstantDescriptors() throws {
        let port = try Ports.free()
        let hasp = try startMaster(config: returnConfig(port: port, body: "r"), port: port)
        defer { hasp.stop() }
        func openFDs() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(hasp.pid)/fd").count) ?? -1 }
        func rssKB() -> Int {
            let status = (try? String(contentsOfFile: "/proc/\(hasp.pid)/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
        // Warm up once, then measure across many reloads.
        hasp.child.signal(SIGUSR2)
        try eventually("reload 1") { hasp.child.stderr.components(separatedBy: "Loading success.").count == 3 }
        try eventually("a single worker") { children(of: hasp.pid).filter(isAlive).count == 1 }
        let fdsBefore = openFDs()
        let rssBefore = rssKB()
        for n in 2...200 {
            hasp.child.signal(SIGUSR2)
            do {
                try eventually(timeout: 30, "reload \(n)") { hasp.child.stderr.components(separatedBy: "Loading success.").count == n + 2 }
            } catch {
                Issue.record("\(error): \(hasp.child.stderr.suffix(1500))")
                return
            }
        }
        try eventually("a single worker") { children(of: hasp.pid).filter(isAlive).count == 1 }
        // Old workers' socketpairs close as they are reaped: wait for that, then no growth.
        try eventually("the master's descriptors to settle") { openFDs() <= fdsBefore }
        #expect(rssKB() < rssBefore + 8_192, "RSS grew from \(rssBefore) kB to \(rssKB()) kB")
        #expect(fetchOnce(port: port) == "r")
    }
}
