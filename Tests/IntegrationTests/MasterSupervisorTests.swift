import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The master stays responsive while a reload waits for a slow worker, and keeps its workers
/// across a binary upgrade or a state it cannot read.
@Suite(.serialized) struct MasterSupervisorTests {
    /// A configuration whose worker cannot become READY until someone writes the server-state
    /// file: it is a FIFO, and a worker reads its server-state files before it serves (the
    /// master never reads them). A state file on a slow or blocking file system is a real reason
    /// for a worker to be slow to start.
    static func slowConfig(port: Int, fifo: String, body: String) -> String {
        returnConfig(port: port, body: body, global: "    server-state-file \(fifo)")
            + "\nbackend be\n    load-server-state-from-file global\n    server s 127.0.0.1:1\n"
    }

    /// Starts a master on `fast`, then reloads into `slowConfig`; returns once the new worker
    /// was started and handed its configuration (it now blocks on the FIFO).
    static func masterWithASlowReload(_ dir: TempDir, port: Int) throws -> (ChildProcess, old: Int32, new: Int32, fifo: String, socket: String) {
        let fifo = dir.path("state.fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        let cfg = try dir.write("slow.cfg", returnConfig(port: port, body: "before"))
        let socket = dir.path("master.sock")
        let master = try ChildProcess(HaspBinary.path, ["-W", "-S", socket, "-f", cfg], dir: dir, name: "master")
        try eventually("the first load") { master.stderr.contains("Loading success.") }
        let old = try #require(children(of: master.pid).first)
        _ = try dir.write("slow.cfg", slowConfig(port: port, fifo: fifo, body: "after"))
        master.signal(SIGUSR2)
        try eventually("the new worker to start") { children(of: master.pid).count == 2 && master.stderr.contains("Initializing new worker") }
        let new = try #require(children(of: master.pid).first { $0 != old })
        return (master, old, new, fifo, socket)
    }

    @Test func aStopIsNotDelayedByAWorkerSlowToStart() throws {
        let dir = try TempDir()
        let port = try Ports.free()
        let (master, old, new, _, _) = try Self.masterWithASlowReload(dir, port: port)
        defer { master.stop() }
        // The master would wait up to 60 s for READY; SIGTERM must act now.
        let started = Date()
        master.signal(SIGTERM)
        let exit = try master.waitExit(timeout: 10)
        #expect(exit.code == 0 && !exit.bySignal)
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(!isAlive(old) && !isAlive(new))
    }

    @Test func childrenAreReapedAndTheCLIAnswersWhileAWorkerIsSlowToStart() throws {
        let dir = try TempDir()
        let port = try Ports.free()
        let (master, old, new, fifo, socket) = try Self.masterWithASlowReload(dir, port: port)
        defer { master.stop() }
        kill(old, SIGKILL)
        try eventually("the old worker to be reaped") {
            master.stderr.contains("Former worker (\(old)) exited with code 137 (Killed)")
        }
        let processes = try CLIClient.ask(socket, "show proc", timeout: 10)
        #expect(!processes.contains("\(old) "), "\(processes)")
        // Once the file can be read, the load completes.
        let writer = open(fifo, O_WRONLY)
        #expect(writer >= 0)
        close(writer)
        try eventually(timeout: 20, "the slow worker to serve") { fetchOnce(port: port) == "after" }
        #expect(isAlive(new))
    }

    /// A state the new image cannot read: it keeps the workers it has, instead of starting
    /// afresh, failing to bind and taking them down. Simulated with a shell that starts a
    /// serving process (standing in for a worker: a child that serves) and then execs hasp with
    /// a state descriptor in a format this binary does not know.
    @Test func aMasterThatCannotReadItsStateKeepsItsWorkers() throws {
        let dir = try TempDir()
        let port = try Ports.free()
        let workerPort = try Ports.free()
        let cfg = try dir.write("lost.cfg", returnConfig(port: port, body: "x"))
        let workerCfg = try dir.write("worker.cfg", returnConfig(port: workerPort, body: "kept"))
        let garbage = try dir.write("state", "\u{0}HW\u{9}garbage")
        let script = "\(HaspBinary.path) -db -f \(workerCfg) & exec 7<\(garbage); exec env HASP_MASTER_STATE_FD=7 \(HaspBinary.path) -W -f \(cfg)"
        let master = try ChildProcess("/bin/sh", ["-c", script], dir: dir, name: "lost")
        defer { master.stop() }
        try eventually("the alert") { master.stderr.contains("cannot read the state of the previous master image") }
        let worker = try #require(children(of: master.pid).first)
        #expect(master.stderr.contains("the running workers (\(worker)) keep serving"))
        try eventually("the worker to serve") { fetchOnce(port: workerPort) == "kept" }
        // Reloads are refused; the worker is not touched.
        master.signal(SIGUSR2)
        try eventually("the refusal") { master.stderr.contains("reload refused") }
        #expect(isAlive(master.pid) && fetchOnce(port: workerPort) == "kept")
        // Stop signals reach it, and the master exits once it is gone.
        master.signal(SIGTERM)
        let exit = try master.waitExit(timeout: 10)
        #expect(exit.code == 0, "\(master.stderr)")
        #expect(!isAlive(worker))
    }

    /// A binary upgrade from the previous version (protocol 0): the new master reads the old
    /// text state, keeps the old worker, relays its hand-overs and retires it. Runs when
    /// `HASP_PREVIOUS_BINARY` names a build of that version.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["HASP_PREVIOUS_BINARY"] != nil))
    func anUpgradeFromThePreviousVersionKeepsServing() throws {
        let previous = try #require(ProcessInfo.processInfo.environment["HASP_PREVIOUS_BINARY"])
        let dir = try TempDir()
        let binary = dir.path("hasp-installed")
        try copyExecutable(previous, to: binary)
        let port = try Ports.free()
        let cfg = try dir.write("u.cfg", returnConfig(port: port, body: "old"))
        let socket = dir.path("master.sock")
        let master = try ChildProcess(binary, ["-W", "-S", socket, "-f", cfg], dir: dir, name: "master")
        defer { master.stop() }
        try eventually("the first load") { master.stderr.contains("Loading success.") }
        let oldWorker = try #require(children(of: master.pid).first)
        // An idle keep-alive connection on the old worker: it is handed over at the reload.
        let client = try RawClient(port: port, timeout: 5)
        try client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try client.readResponses(1)[0].hasSuffix("old"))
        // Upgrade: the new binary replaces the file, then a reload through the master CLI.
        let staged = dir.path("hasp-new")
        try copyExecutable(HaspBinary.path, to: staged)
        #expect(rename(staged, binary) == 0)
        _ = try dir.write("u.cfg", returnConfig(port: port, body: "new"))
        let answer = try CLIClient.ask(socket, "reload", timeout: 20)
        #expect(answer.hasPrefix("Success=1\n"), "\(answer.prefix(200))")
        // Until its soft stop closes its listeners, the old worker may still take a connection.
        try eventually("the new worker to serve") { fetchOnce(port: port) == "new" }
        // It exits once its idle connection has moved: the kept connection now reaches the new
        // worker, through the master (a protocol-0 hand-over relayed as a protocol-1 adoption).
        try eventually("the old worker to drain and exit") { !isAlive(oldWorker) }
        try client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try client.readResponses(1)[0].hasSuffix("new"))
        let processes = try CLIClient.ask(socket, "show proc", timeout: 10)
        #expect(processes.contains("1 [failed: 0]"), "\(processes)")
        // A second reload, now between two workers of the new binary.
        let answer2 = try CLIClient.ask(socket, "reload", timeout: 20)
        #expect(answer2.hasPrefix("Success=1\n"), "\(answer2.prefix(200))")
        #expect(fetchOnce(port: port) == "new")
    }

    /// An upgrade whose configuration fails: the previous version's worker stays current under
    /// the new master, which must then speak protocol 0 to it (a forwarded CLI command) and,
    /// at the next reload, read its runtime state in the old text form.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["HASP_PREVIOUS_BINARY"] != nil))
    func aFailedUpgradeKeepsThePreviousWorkerReachable() throws {
        let previous = try #require(ProcessInfo.processInfo.environment["HASP_PREVIOUS_BINARY"])
        let dir = try TempDir()
        let binary = dir.path("hasp-installed")
        try copyExecutable(previous, to: binary)
        let port = try Ports.free()
        let config = { (body: String) in returnConfig(port: port, body: body) + "\nbackend be\n    server s1 127.0.0.1:1\n" }
        let cfg = try dir.write("u.cfg", config("old"))
        let socket = dir.path("master.sock")
        let master = try ChildProcess(binary, ["-W", "-S", socket, "-f", cfg], dir: dir, name: "master")
        defer { master.stop() }
        try eventually("the first load") { master.stderr.contains("Loading success.") }
        let oldWorker = try #require(children(of: master.pid).first)
        #expect(try CLIClient.ask(socket, "@1 set server be/s1 weight 7") == "\n")
        let staged = dir.path("hasp-new")
        try copyExecutable(HaspBinary.path, to: staged)
        #expect(rename(staged, binary) == 0)
        _ = try dir.write("u.cfg", config("new") + "\n    bogus_keyword\n")
        #expect(try CLIClient.ask(socket, "reload", timeout: 20).hasPrefix("Success=0\n"))
        // The old worker serves on, and a command reaches it through the new master.
        #expect(fetchOnce(port: port) == "old" && isAlive(oldWorker))
        func weight(_ target: String = "@1") throws -> Substring? {
            try CLIClient.ask(socket, "\(target) show servers state be").split(separator: "\n").dropFirst(2).first?.split(separator: " ")[7]
        }
        #expect(try weight("@!\(oldWorker)") == "7")
        // The next reload carries its runtime change to the new binary's worker.
        _ = try dir.write("u.cfg", config("new"))
        #expect(try CLIClient.ask(socket, "reload", timeout: 20).hasPrefix("Success=1\n"))
        try eventually("the new worker to serve") { fetchOnce(port: port) == "new" }
        #expect(try weight() == "7")
        try eventually("the old worker to exit") { !isAlive(oldWorker) }
    }
}
