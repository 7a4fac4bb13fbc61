import Atomics
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The master CLI's `help` at admin level, as HAProxy prints it.
let masterHelp = """
The following commands are valid at this level:
  @!<pid>                                 : send a command to the <pid> process
  @<relative pid>                         : send a command to the <relative pid> process
  @master                                 : send a command to the master process
  echo <text>                             : print text to the output
  hard-reload                             : achieve a hard-reload (-st) of haproxy
  operator                                : lower the level of the current CLI session to operator
  reload                                  : achieve a soft-reload (-sf) of haproxy
  show cli level                          : display the level of the current CLI session
  show cli sockets                        : dump list of cli sockets
  show env [var]                          : dump environment variables known to the process
  show proc                               : show processes status
  show startup-logs                       : report logs emitted during HAProxy startup
  show version                            : show version of the current process
  user                                    : lower the level of the current CLI session to user
  help [<command>]                        : list matching or all commands
  prompt [help | n | i | p | timed ]*     : toggle interactive mode with prompt
  quit                                    : disconnect


"""

/// `hasp -W -S <dir>/master.sock[,options]` in front of a test backend.
struct MasterFixture {
    let backend: TestBackend
    let hasp: Hasp
    let port: Int
    var socket: String { hasp.dir.path("master.sock") }

    init(masterOptions: String = "", global: String = "") throws {
        backend = try TestBackend(threads: 2)
        port = try Ports.free()
        hasp = try Hasp(config: Self.config(port: port, backendPort: backend.port, global: global), waitFor: [port],
                        arguments: ["-W", "-S", "@DIR@/master.sock" + masterOptions])
        let hasp = self.hasp
        try eventually("the first load") { hasp.child.stderr.contains("Loading success.") }
    }

    static func config(port: Int, backendPort: Int, global: String = "", extra: String = "") -> String {
        """
        global
            nbthread 1
            stats timeout 2s
        \(global)
        defaults
            mode http
            timeout connect 2s
            timeout client 10s
            timeout server 10s
        frontend fe
            bind 127.0.0.1:\(port)
            default_backend be
        \(extra)
        backend be
            server s1 127.0.0.1:\(backendPort)
        """
    }

    func ask(_ line: String, timeout: Double = 10) throws -> String {
        try CLIClient.ask(socket, line, timeout: timeout)
    }

    var currentWorker: Int32? { children(of: hasp.pid).filter(isAlive).max() }

    func stop() {
        hasp.stop()
        for pid in children(of: hasp.pid) { kill(pid, SIGKILL) }
        backend.stop()
    }
}

/// `show proc` lines are fixed-width: each field padded to 15 columns, one space between.
func procLine(_ fields: [String]) -> String {
    fields.map { $0.count >= 15 ? $0 : $0 + String(repeating: " ", count: 15 - $0.count) }.joined(separator: " ")
}

/// Masks the uptime column (`0d00h00m02s`) of `show proc` output.
func maskUptimes(_ text: String) -> String {
    text.replacingOccurrences(of: #"\d+d\d\dh\d\dm\d\ds"#, with: "0d00h00m00s", options: .regularExpression)
}

@Suite(.serialized) struct MasterCLITests {
    @Test func helpAndShowProcMatchHAProxy() throws {
        let f = try MasterFixture()
        defer { f.stop() }
        #expect(try f.ask("help") == masterHelp)
        let worker = try #require(f.currentWorker)
        let version = try #require(try f.ask("show version").split(separator: "\n").first).description
        let expected = "#<PID>         " + " " + procLine(["<type>", "<reloads>", "<uptime>", "<version>"]) + "\n"
            + procLine(["\(f.hasp.pid)", "master", "0 [failed: 0]", "0d00h00m00s", version]) + "\n"
            + "# workers\n"
            + procLine(["\(worker)", "worker", "0", "0d00h00m00s", version]) + "\n\n"
        #expect(maskUptimes(try f.ask("show proc")) == expected)
        #expect(try f.ask("show proc bogus") == "'show proc' only supports 'debug' as argument\n\n")
        let debug = try f.ask("show proc debug")
        #expect(debug.hasPrefix("#<PID>          <type>          <reloads>       <uptime>        <version>      \t\t <ipc_fd[0]>     <ipc_fd[1]>    \n"))
        #expect(try f.ask("show cli level") == "admin\n\n")
        #expect(try f.ask("show cli sockets") == "# socket lvl thread\nunix@\(f.socket) admin all\n\n")
        #expect(try f.ask("echo hello world") == "hello world\n\n")
        #expect(try f.ask("show startup-logs").contains("Loading success.\n"))
    }

    @Test func commandsReachTheCurrentWorker() throws {
        let f = try MasterFixture()
        defer { f.stop() }
        let worker = try #require(f.currentWorker)
        let info = try f.ask("@1 show info")
        #expect(info.contains("\nProcess_num: 1\n") && info.contains("\nPid: \(worker)\n"))
        #expect(try f.ask("@!\(worker) show cli level") == "admin\n\n")
        #expect(try f.ask("@5 show info") == "Can't find the target PID matching the prefix '@5'\n")
        #expect(try f.ask("@!1 show info") == "Can't find the target PID matching the prefix '@!1'\n")
        // The session's level and modes travel with the command.
        #expect(try f.ask("operator; @1 show cli level") == "operator\n\n")
        #expect(try f.ask("expert-mode on; @1 expert-mode") == "expert-mode is ON\n\n")
        // A prefix alone changes the default target; `@` returns to the master.
        #expect(try f.ask("operator; @1; show cli level; echo x; @; show cli level") == "operator\n\nx\n\noperator\n\n")
        let switched = try f.ask("@1; show servers state; @master; show cli level")
        #expect(switched.hasPrefix("1\n# be_id be_name"))
        #expect(switched.hasSuffix("\nadmin\n\n"))
        #expect(try f.ask("@0 show cli level") == "admin\n\n")
        let master = try f.ask("@master show info")
        #expect(master.contains("\nPid: \(f.hasp.pid)\n") && master.contains("\nReloads: 0\n"))
    }

    @Test func bidirectionalSessionsKeepWaitRunning() throws {
        let f = try MasterFixture()
        defer { f.stop() }
        let c = try CLIClient(path: f.socket)
        try c.send("@@1 show cli level; echo hello; wait 300; echo world\n")
        #expect(try c.read(until: "world\n\n") == "admin\n\nhello\n\nDone.\n\nworld\n\n")
        // The session is back on the master.
        try c.send("show cli level\n")
        #expect(try c.read(until: "\n\n") == "admin\n\n")
        c.shutdownWrite()
        #expect(try c.readToEnd() == "")
        // A single `@` closes the worker's input after the command: the wait is interrupted.
        let started = Date()
        #expect(try f.ask("@1 wait 5s") == "Interrupted.\n\n")
        #expect(Date().timeIntervalSince(started) < 3)
        // An interactive worker session, then back to the master prompt.
        let i = try CLIClient(path: f.socket)
        try i.send("prompt\n")
        #expect(try i.read(until: "master> ") == "master> ")
        try i.send("@@1\n")
        #expect(try i.read(until: "> ") == "> ")
        try i.send("show cli level\n")
        #expect(try i.read(until: "\n> ") == "admin\n\n> ")
        try i.send("quit\n")
        #expect(try i.read(until: "master> ") == "master> ")
    }

    @Test func oldWorkersStayReachableByPid() throws {
        let f = try MasterFixture()
        defer { f.stop() }
        let old = try #require(f.currentWorker)
        let slow = try RawClient(port: f.port)
        try slow.send("GET /slow/3000 HTTP/1.1\r\nHost: x\r\n\r\n")
        try eventually("the slow request to reach the backend") { f.backend.requests.load(ordering: .relaxed) == 1 }
        #expect(try f.ask("reload", timeout: 30).hasPrefix("Success=1\n--\n"))
        let proc = try f.ask("show proc")
        #expect(proc.contains("# old workers\n" + procLine(["\(old)", "worker", "1"]) + " "))
        // The old worker learns of its soft stop by a signal, which may still be on its way
        // when the reload is answered.
        try eventually("the old worker to report its soft stop") {
            let info = try f.ask("@!\(old) show info")
            return info.contains("\nPid: \(old)\n") && info.contains("\nStopping: 1\n")
        }
        let current = try #require(try f.ask("@1 show info").split(separator: "\n").first { $0.hasPrefix("Pid: ") })
        #expect(current != "Pid: \(old)")
        _ = try slow.readResponses(1)
    }

    @Test func reloadReportsSuccessAndFailure() throws {
        let f = try MasterFixture()
        defer { f.stop() }
        let good = try String(contentsOfFile: f.hasp.configPath, encoding: .utf8)
        let first = try f.ask("reload", timeout: 30)
        #expect(first.hasPrefix("Success=1\n--\n") && first.contains("Loading success.\n"))
        try (good + "\n    bogus_keyword\n").write(toFile: f.hasp.configPath, atomically: true, encoding: .utf8)
        let failed = try f.ask("reload", timeout: 30)
        #expect(failed.hasPrefix("Success=0\n--\n"))
        #expect(failed.contains("unknown keyword 'bogus_keyword' in 'backend' section"))
        #expect(failed.contains("Reload failed (1 failed reload(s) out of 2)"))
        #expect(try f.ask("show proc").contains(" 2 [failed: 1] "))
        let c = try CLIClient(path: f.socket)
        try c.send("prompt\n")
        #expect(try c.read(until: "> ") == "master[ReloadFailed]> ")
        c.shutdownWrite()
        let info = try f.ask("show info")
        #expect(info.contains("\nReloads: 2\nFailedReloads: 1\nLastReloadStatus: Failed\n"))
        // The worker still serves, and is still the current one.
        #expect(try f.ask("@1 show cli level") == "admin\n\n")
        try good.write(toFile: f.hasp.configPath, atomically: true, encoding: .utf8)
        #expect(try f.ask("hard-reload", timeout: 30).hasPrefix("Success=1\n"))
        #expect(try f.ask("show proc").contains(" 3 [failed: 0] "))
        #expect(try f.ask("show info").contains("\nLastReloadStatus: Success\n"))
        #expect(try f.ask("user; reload") == "Permission denied\n\n")
    }

    @Test func aFrozenWorkerTimesOutWhileTheMasterAnswers() throws {
        let f = try MasterFixture()
        defer { f.stop() }
        let worker = try #require(f.currentWorker)
        kill(worker, SIGSTOP)
        defer { kill(worker, SIGCONT) }
        let started = Date()
        let answer = try f.ask("@1 show info", timeout: 10)
        #expect(answer.contains("Timed out after 2000 ms waiting for process \(worker) to answer"))
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(try f.ask("show proc").contains("# workers\n\(worker) "))
        kill(worker, SIGCONT)
        try eventually("the worker to answer again") { (try? f.ask("@1 show cli level")) == "admin\n\n" }
    }

    @Test func clientsThatVanishLeaveNothingBehind() throws {
        let f = try MasterFixture()
        defer { f.stop() }
        let worker = try #require(f.currentWorker)
        func fds(_ pid: Int32) -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1 }
        func threads(_ pid: Int32) -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").count) ?? -1 }
        _ = try f.ask("@1 show info")
        let (masterFDs, workerFDs, masterThreads) = (fds(f.hasp.pid), fds(worker), threads(f.hasp.pid))
        for i in 0..<100 {
            let c = try CLIClient(path: f.socket)
            switch i % 4 {
            case 0: break
            case 1: try c.send("@1 show in")
            case 2: try c.send("@@1 wait 10s\n")
            default: try c.send("prompt\n@1\n")
            }
        }
        try eventually("the master and the worker to release every session") {
            fds(f.hasp.pid) <= masterFDs && fds(worker) <= workerFDs && threads(f.hasp.pid) <= masterThreads
        }
        #expect(try f.ask("@1 show cli level") == "admin\n\n")
    }

    @Test func listenerLevelsAndModes() throws {
        let f = try MasterFixture(masterOptions: ",level,operator")
        defer { f.stop() }
        #expect(try f.ask("show cli level") == "operator\n\n")
        #expect(try f.ask("expert-mode on") == "Permission denied!\n")
        #expect(try f.ask("@1 show cli level") == "operator\n\n")
        #expect(try f.ask("@1 disable frontend fe") == "Permission denied\n\n")
        #expect(try f.ask("user; show cli level; operator") == "user\n\nPermission denied!\n")
        #expect(try f.ask("show proc").contains("# workers\n"))
    }

    @Test func runtimeChangesSurviveAReload() throws {
        let f = try MasterFixture()
        defer { f.stop() }
        let port = f.backend.port
        let setup = try f.ask("@1 add server be/d1 127.0.0.1:\(port) weight 9; @1 enable server be/d1; @1 set server be/s1 weight 7; "
                              + "@1 add server be/d2 127.0.0.1:\(port)")
        #expect(setup == "New server registered.\n\n\n\nNew server registered.\n\n")
        func servers() throws -> [String: [Substring]] {
            var rows: [String: [Substring]] = [:]
            for line in try f.ask("@1 show servers state be").split(separator: "\n").dropFirst(2) {
                let fields = line.split(separator: " ")
                rows[String(fields[3])] = fields
            }
            return rows
        }
        let good = try String(contentsOfFile: f.hasp.configPath, encoding: .utf8)
        #expect(try f.ask("reload", timeout: 30).hasPrefix("Success=1"))
        var after = try servers()
        // Added servers, their state and weights, and the weight change are all still there.
        #expect(after["d1"].map { [$0[6], $0[7]] } == ["0", "9"])
        #expect(after["d2"].map { [$0[6], $0[7]] } == ["1", "1"])
        #expect(after["s1"].map { [$0[7], $0[8]] } == ["7", "1"])
        // The added server serves: drain s1 and every request reaches d1's backend.
        #expect(try f.ask("@1 set server be/s1 state drain") == "\n")
        #expect(fetchStatus(f.port) == "HTTP/1.1 200")
        // A configuration edit of the same value wins over the runtime change.
        try good.replacingOccurrences(of: "server s1 127.0.0.1:\(port)", with: "server s1 127.0.0.1:\(port) weight 3")
            .write(toFile: f.hasp.configPath, atomically: true, encoding: .utf8)
        #expect(try f.ask("reload", timeout: 30).hasPrefix("Success=1"))
        after = try servers()
        #expect(after["s1"].map { [$0[6], $0[7], $0[8]] } == ["8", "3", "3"])
        #expect(after["d1"] != nil && after["d2"] != nil)
        // Switched off, the next worker starts from the configuration alone.
        try (good + "\nglobal\n    hasp.runtime-state-handoff off\n").write(toFile: f.hasp.configPath, atomically: true, encoding: .utf8)
        #expect(try f.ask("reload", timeout: 30).hasPrefix("Success=1"))
        #expect(try f.ask("reload", timeout: 30).hasPrefix("Success=1"))
        after = try servers()
        #expect(after["d1"] == nil && after["s1"]?[7] == "1")
    }

    @Test func tcpMasterCLIListener() throws {
        let cliPort = try Ports.free()
        let backend = try TestBackend()
        defer { backend.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: MasterFixture.config(port: port, backendPort: backend.port), waitFor: [port, cliPort],
                            arguments: ["-W", "-S", "ipv4@127.0.0.1:\(cliPort),level,user"])
        defer { hasp.stop() }
        try eventually("the first load") { hasp.child.stderr.contains("Loading success.") }
        let c = try RawClient(port: cliPort)
        try c.send("show cli level; @1 show cli level\n")
        c.shutdownWrite()
        #expect(String(decoding: c.readToEnd(), as: UTF8.self) == "user\n\nuser\n\n")
    }

    @Test func tcpStatsSocketsFollowTheCurrentWorker() throws {
        let statsPort = try Ports.free()
        let f = try MasterFixture(global: "    stats socket ipv4@127.0.0.1:\(statsPort) level admin")
        defer { f.stop() }
        func askTCP(_ line: String) throws -> String {
            let c = try RawClient(port: statsPort)
            try c.send(line + "\n")
            return String(decoding: c.readToEnd(), as: UTF8.self)
        }
        let first = try #require(f.currentWorker)
        #expect(try askTCP("show info").contains("\nPid: \(first)\n"))
        #expect(try f.ask("reload", timeout: 30).hasPrefix("Success=1"))
        try eventually("the old worker to exit") { !isAlive(first) }
        let second = try #require(f.currentWorker)
        #expect(second != first)
        #expect(try askTCP("show info").contains("\nPid: \(second)\n"))
    }
}
