import Atomics
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A standalone hasp with an admin socket and a frontend on `port`, running `sections`.
struct CheckFixture {
    let hasp: Hasp
    let port: Int
    var admin: String { hasp.dir.path("admin.sock") }

    init(_ sections: String, defaults: String = "option log-health-checks", global: String = "") throws {
        port = try Ports.free()
        let config = """
        global
            nbthread 2
            stats socket @DIR@/admin.sock level admin
        \(global)
        defaults
            mode http
            timeout connect 1s
            timeout client 10s
            timeout server 10s
            \(defaults)
        frontend fe
            bind 127.0.0.1:\(port)
            default_backend be
        \(sections)
        """
        hasp = try Hasp(config: config, waitFor: [port])
        try eventually("the stats socket") { Ports.isAccepting(unixPath: hasp.dir.path("admin.sock")) }
    }

    func ask(_ line: String) throws -> String { try CLIClient.ask(admin, line) }

    func stat(_ proxy: String, _ service: String, _ column: String) throws -> String {
        try statCell(try ask("show stat"), proxy, service, column)
    }

    func waitStat(_ proxy: String, _ service: String, _ column: String, _ value: String, timeout: Double = 10) throws {
        try eventually(timeout: timeout, "\(proxy)/\(service) \(column) = \(value)") { try stat(proxy, service, column) == value }
    }

    /// The log lines (stderr) after `(pid) : `, with check durations blanked.
    var log: [String] {
        hasp.child.stderr.split(separator: "\n").map { line in
            var text = String(line)
            if let r = text.range(of: ") : ") { text = String(text[r.upperBound...]) }
            return Self.blankDurations(text)
        }
    }

    static func blankDurations(_ text: String) -> String {
        guard let r = text.range(of: "check duration: ") else { return text }
        let rest = text[r.upperBound...].drop { $0.isNumber }
        return String(text[..<r.upperBound]) + "N" + rest
    }

    func waitLog(_ line: String, timeout: Double = 10) throws {
        try eventually(timeout: timeout, "log line \(line)") { log.contains(line) }
    }

    /// Body of `GET <path>` on a new connection, or nil.
    func get(_ path: String = "/") -> String? {
        let r = try? curl(["http://127.0.0.1:\(port)\(path)"], timeout: 5)
        guard let r, r.status == 0 else { return nil }
        return r.stdout
    }

    func stop() { hasp.stop() }
}

/// Gaps between successive arrivals from index `from`.
func gaps(_ times: [Int], from: Int, count: Int) -> [Int] {
    guard times.count > from + count else { return [] }
    return (from..<(from + count)).map { times[$0 + 1] - times[$0] }
}

@Suite(.serialized) struct HealthCheckTests {
    @Test func downAfterFallUpAfterRiseOnTheirIntervals() throws {
        let target = try CheckTarget(.http(200, "fine"))
        defer { target.stop() }
        let f = try CheckFixture("""
        backend be
            option httpchk GET /health
            server a 127.0.0.1:\(target.port) check inter 300ms fastinter 100ms downinter 700ms rise 2 fall 3
        """)
        defer { f.stop() }
        try f.waitStat("be", "a", "check_status", "L7OK")
        #expect(try f.stat("be", "a", "status") == "UP")
        #expect(try f.stat("be", "a", "check_code") == "200")
        #expect(try f.stat("be", "a", "last_chk") == "")
        #expect(try f.stat("be", "a", "check_desc") == "Layer7 check passed")
        #expect(try f.stat("be", "a", "check_health") == "4")
        #expect(target.paths.allSatisfy { $0 == "/health" })

        // Steady: one check every `inter`.
        let steadyFrom = target.arrivals.count
        try eventually("4 steady checks") { target.arrivals.count >= steadyFrom + 4 }
        for gap in gaps(target.arrivals, from: steadyFrom, count: 3) { #expect((250...650).contains(gap), "inter gap \(gap)") }

        // Failing: `fall` failed checks, `fastinter` apart, then DOWN.
        let failingFrom = target.arrivals.count
        target.set(.http(503, "no"))
        try f.waitLog("Server be/a is DOWN. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.")
        let failed = "Health check for server be/a failed, reason: Layer7 wrong status, code: 503, info: \"Service Unavailable\", check duration: Nms, status: "
        let lines = f.log.filter { $0.contains("be/a") || $0.contains("no server available") }
        let start = try #require(lines.firstIndex(of: failed + "2/3 UP."))
        #expect(Array(lines[start...].prefix(5)) == [
            failed + "2/3 UP.", failed + "1/3 UP.", failed + "0/2 DOWN.",
            "Server be/a is DOWN. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
            "backend 'be' has no server available!",
        ])
        let arrivals = target.arrivals
        let firstFailure = try #require(arrivals.indices.first { $0 >= failingFrom })
        for gap in gaps(arrivals, from: firstFailure, count: 2) { #expect((70...300).contains(gap), "fastinter gap \(gap)") }
        #expect(try f.stat("be", "a", "status") == "DOWN")
        #expect(try f.stat("be", "a", "chkfail") == "3")
        #expect(try f.stat("be", "a", "chkdown") == "1")
        #expect(try f.stat("be", "BACKEND", "status") == "DOWN")

        // Down: one check every `downinter`.
        let downFrom = target.arrivals.count
        try eventually("2 checks while down") { target.arrivals.count >= downFrom + 2 }
        for gap in gaps(target.arrivals, from: downFrom, count: 1) { #expect((600...1200).contains(gap), "downinter gap \(gap)") }

        // Recovering: `rise` good checks, then UP.
        target.set(.http(200, "fine"))
        try f.waitLog("Server be/a is UP. 1 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.")
        let passed = "Health check for server be/a succeeded, reason: Layer7 check passed, code: 200, check duration: Nms, status: "
        let after = f.log.filter { $0.contains("be/a") }
        let up = try #require(after.firstIndex(of: passed + "1/2 DOWN."))
        #expect(Array(after[up...].prefix(3)) == [passed + "1/2 DOWN.", passed + "3/3 UP.",
                                                  "Server be/a is UP. 1 active and 0 backup servers online. 0 sessions requeued, 0 total in queue."])
        #expect(f.get() == "fine")
    }

    @Test func eachCheckTypePassesAndFailsOnTheRightAnswers() throws {
        let ok = try CheckTarget(.http(200, "alive"))
        let unavailable = try CheckTarget(.http(503, "busy"))
        let dead = try CheckTarget(.http(200, "dead"))
        let pong = try CheckTarget(.text("+PONG\r\n"))
        let error = try CheckTarget(.text("-ERR wrong\r\n"))
        let silent = try CheckTarget(.silent)
        let closedPort = try Ports.free()
        defer { for t in [ok, unavailable, dead, pong, error, silent] { t.stop() } }
        let f = try CheckFixture("""
        backend be
            server s 127.0.0.1:\(ok.port) check inter 100ms
        backend tcp_dead
            server s 127.0.0.1:\(closedPort) check inter 100ms
        backend http_ok
            option httpchk GET /h
            http-check expect status 200
            server s 127.0.0.1:\(ok.port) check inter 100ms
        backend http_bad
            option httpchk
            server s 127.0.0.1:\(unavailable.port) check inter 100ms
        backend body_ok
            option httpchk GET /
            http-check expect string alive
            server s 127.0.0.1:\(ok.port) check inter 100ms
        backend body_bad
            option httpchk GET /
            http-check expect rstring ^ali
            server s 127.0.0.1:\(dead.port) check inter 100ms
        backend redis_ok
            option tcp-check
            tcp-check send PING\\r\\n
            tcp-check expect string +PONG
            server s 127.0.0.1:\(pong.port) check inter 100ms
        backend redis_bad
            option tcp-check
            tcp-check send PING\\r\\n
            tcp-check expect string +PONG
            server s 127.0.0.1:\(error.port) check inter 100ms
        backend redis_silent
            timeout check 200ms
            option tcp-check
            tcp-check send PING\\r\\n
            tcp-check expect string +PONG
            server s 127.0.0.1:\(silent.port) check inter 300ms
        backend redis_dead
            option tcp-check
            tcp-check send PING\\r\\n
            server s 127.0.0.1:\(closedPort) check inter 100ms
        backend sequence_dead
            option tcp-check
            tcp-check connect port \(closedPort)
            server s 127.0.0.1:\(ok.port) check inter 100ms
        """)
        defer { f.stop() }
        let expected: [(String, String, String, String, String)] = [
            ("be", "UP", "L4OK", "", ""),
            ("tcp_dead", "DOWN", "L4CON", "", "Connection refused"),
            ("http_ok", "UP", "L7OK", "200", ""),
            ("http_bad", "DOWN", "L7STS", "503", "Service Unavailable"),
            ("body_ok", "UP", "L7OK", "200", ""),
            ("body_bad", "DOWN", "L7RSP", "", "HTTP content check did not match"),
            ("redis_ok", "UP", "L7OK", "0", "(tcp-check)"),
            ("redis_bad", "DOWN", "L7RSP", "", "TCPCHK did not match content '+PONG' at step 2"),
            ("redis_silent", "DOWN", "L7TOUT", "", " at step 2 of tcp-check (expect string '+PONG')"),
            ("redis_dead", "DOWN", "L4CON", "", "Connection refused at initial connection step of tcp-check"),
            ("sequence_dead", "DOWN", "L4CON", "", "Connection refused at step 1 of tcp-check (connect port \(closedPort))"),
        ]
        for (backend, status, check, code, info) in expected {
            try f.waitStat(backend, "s", "check_status", check)
            try f.waitStat(backend, "s", "status", status)
            #expect(try f.stat(backend, "s", "check_code") == code, "\(backend)")
            #expect(try f.stat(backend, "s", "last_chk") == info, "\(backend)")
        }
        #expect(ok.paths.contains("/h") && ok.paths.contains("/"))
        #expect(unavailable.paths.allSatisfy { $0 == "/" })
        let duration = try #require(Int(try f.stat("redis_silent", "s", "check_duration")))
        #expect((150...1000).contains(duration), "timeout check bounds the wait: \(duration)")
    }

    @Test func agentRepliesChangeStateAndWeight() throws {
        let server = try CheckTarget(.http(200, "s"))
        let agent = try CheckTarget(.text("up 50%\n"))
        defer { server.stop(); agent.stop() }
        let f = try CheckFixture("""
        backend be
            server s 127.0.0.1:\(server.port) weight 10 check inter 100ms agent-check agent-port \(agent.port) agent-inter 100ms
        """)
        defer { f.stop() }
        try eventually("weight from the agent") { try f.ask("get weight be/s") == "5 (initial 10)\n\n" }
        #expect(try f.stat("be", "s", "agent_status") == "L7OK")
        agent.set(.text("drain\n"))
        try f.waitStat("be", "s", "status", "DRAIN (agent)")
        agent.set(.text("ready 100%\n"))
        try f.waitStat("be", "s", "status", "UP")
        #expect(try f.ask("get weight be/s") == "10 (initial 10)\n\n")
        agent.set(.text("down # maintenance window\n"))
        try f.waitStat("be", "s", "status", "DOWN (agent)")
        #expect(try f.stat("be", "s", "agent_status") == "L7STS")
        #expect(try f.stat("be", "s", "last_agt") == "via agent : down (maintenance window)")
        #expect(f.get() == nil || f.get()?.contains("503") == true)
        agent.set(.text("up\n"))
        try f.waitStat("be", "s", "status", "UP")
        // An agent that cannot be reached does not take the server down.
        agent.pause()
        try f.waitStat("be", "s", "agent_status", "L4CON")
        #expect(try f.stat("be", "s", "status") == "UP")
        #expect(try f.ask("set server be/s agent down") == "\n")
        #expect(try f.stat("be", "s", "status") == "DOWN (agent)")
        #expect(f.log.contains("Server be/s is DOWN, changed from CLI. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue."))
    }

    @Test func trackingPropagatesBothWays() throws {
        let a = try CheckTarget(.http(200, "a"))
        let b = try CheckTarget(.http(200, "b"))
        defer { a.stop(); b.stop() }
        let f = try CheckFixture("""
        backend be
            server a 127.0.0.1:\(a.port) check inter 100ms
            server b 127.0.0.1:\(b.port) track a
        backend other
            server c 127.0.0.1:\(b.port) track be/b
        """, defaults: "")
        defer { f.stop() }
        try f.waitStat("be", "a", "check_status", "L4OK")
        #expect(try f.stat("be", "b", "tracked") == "be/a")
        #expect(try f.stat("other", "c", "status") == "UP")
        a.pause()
        try f.waitStat("other", "c", "status", "DOWN")
        #expect(try f.stat("be", "b", "status") == "DOWN")
        try f.waitLog("Server be/b is DOWN via be/a. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.")
        try f.waitLog("Server other/c is DOWN via be/b. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.")
        try a.resume()
        try f.waitStat("other", "c", "status", "UP")
        #expect(try f.stat("be", "b", "status") == "UP")
        #expect(try f.ask("disable server be/a") == "\n")
        #expect(try f.stat("be", "b", "status") == "MAINT (via be/a)")
        #expect(try f.stat("other", "c", "status") == "MAINT (via be/b)")
        #expect(try f.ask("set server be/b health down") == "cannot change health on a tracking server.\n\n")
        #expect(try f.ask("enable server be/a") == "\n")
        try f.waitStat("other", "c", "status", "UP")
        // A tracker added and deleted at run time leaves the chain intact.
        #expect(try f.ask("add server other/d 127.0.0.1:\(b.port) track be/a") == "New server registered.\n\n")
        #expect(try f.ask("del server other/d") == "Server deleted.\n\n")
        a.pause()
        try f.waitStat("other", "c", "status", "DOWN")
    }

    @Test func backupServersTakeOverAndGiveBack() throws {
        let active = try CheckTarget(.http(200, "active"))
        let backup1 = try CheckTarget(.http(200, "backup1"))
        let backup2 = try CheckTarget(.http(200, "backup2"))
        defer { active.stop(); backup1.stop(); backup2.stop() }
        let allPort = try Ports.free()
        let f = try CheckFixture("""
        backend be
            option redispatch
            retries 2
            server a 127.0.0.1:\(active.port) check inter 100ms
            server b1 127.0.0.1:\(backup1.port) check inter 100ms backup
            server b2 127.0.0.1:\(backup2.port) check inter 100ms backup
        frontend all
            bind 127.0.0.1:\(allPort)
            default_backend every
        backend every
            option allbackups
            server a 127.0.0.1:\(active.port) check inter 100ms
            server b1 127.0.0.1:\(backup1.port) check inter 100ms backup
            server b2 127.0.0.1:\(backup2.port) check inter 100ms backup
        """)
        defer { f.stop() }
        try f.waitStat("be", "a", "check_status", "L4OK")
        #expect((0..<6).map { _ in f.get() } == Array(repeating: "active", count: 6))
        active.pause()
        try f.waitLog("Server be/a is DOWN. 0 active and 2 backup servers left. Running on backup. 0 sessions active, 0 requeued, 0 remaining in queue.")
        #expect((0..<6).map { _ in f.get() } == Array(repeating: "backup1", count: 6))
        let every = (0..<8).compactMap { _ in try? curl(["http://127.0.0.1:\(allPort)/"], timeout: 5).stdout }
        try eventually("every backend to see a down") { try f.stat("every", "a", "status") == "DOWN" }
        let shared = (0..<8).compactMap { _ in try? curl(["http://127.0.0.1:\(allPort)/"], timeout: 5).stdout }
        #expect(Set(shared) == ["backup1", "backup2"], "allbackups: \(shared) after \(every)")
        try active.resume()
        try f.waitLog("Server be/a is UP. 1 active and 2 backup servers online. 0 sessions requeued, 0 total in queue.")
        #expect((0..<6).map { _ in f.get() } == Array(repeating: "active", count: 6))
    }

    @Test func slowstartRampsTheWeight() throws {
        let target = try CheckTarget(.http(200, "s"))
        defer { target.stop() }
        let f = try CheckFixture("""
        backend be
            server s 127.0.0.1:\(target.port) weight 100 check inter 100ms rise 1 slowstart 3s
        """)
        defer { f.stop() }
        try f.waitStat("be", "s", "check_status", "L4OK")
        // A server up from the start takes its full weight.
        #expect(try f.stat("be", "s", "weight") == "100")
        target.pause()
        try f.waitStat("be", "s", "status", "DOWN")
        try target.resume()
        try f.waitStat("be", "s", "status", "UP")
        let first = try #require(Int(try f.stat("be", "s", "weight")))
        let throttle = try #require(Int(try f.stat("be", "s", "throttle")))
        #expect(first < 100 && throttle < 100, "weight \(first), throttle \(throttle)")
        try eventually("the weight to grow") { (Int(try f.stat("be", "s", "weight")) ?? 0) > first }
        try eventually(timeout: 10, "full weight") { try f.stat("be", "s", "weight") == "100" && f.stat("be", "s", "throttle") == "" }
        #expect(try f.stat("be", "s", "uweight") == "100")
    }

    @Test func observeLayer7MarksAServerDownOnA5xxBurst() throws {
        let target = try CheckTarget(.http(200, "s"), routes: ["/boom": .http(500, "boom")])
        defer { target.stop() }
        let f = try CheckFixture("""
        backend be
            option httpchk GET /health
            server s 127.0.0.1:\(target.port) check inter 20s fastinter 20s observe layer7 error-limit 3 on-error mark-down
        """)
        defer { f.stop() }
        try f.waitStat("be", "s", "check_status", "L7OK")
        #expect(f.get("/boom") == "boom")
        #expect(f.get("/") == "s")  // a good answer resets the count
        #expect(f.get("/boom") == "boom")
        #expect(f.get("/boom") == "boom")
        #expect(try f.stat("be", "s", "status") == "UP")
        #expect(f.get("/boom") == "boom")
        try f.waitLog("Health check for server be/s failed, reason: Health analyze, info: \"Detected 3 consecutive errors, last one was: Wrong http response\", status: 0/2 DOWN.")
        // The request that tipped it over is still in flight.
        try f.waitLog("Server be/s is DOWN. 0 active and 0 backup servers left. 1 sessions active, 0 requeued, 0 remaining in queue.")
        #expect(try f.stat("be", "s", "hanafail") == "1")
        #expect(try f.stat("be", "s", "status").hasPrefix("DOWN"))
    }

    @Test func noRequestGoesToADownServerAndNoneFailWhileAnotherIsUp() throws {
        let a = try CheckTarget(.http(200, "a"), routes: ["/health": .http(200, "ok")])
        let b = try CheckTarget(.http(200, "b"), routes: ["/health": .http(200, "ok")])
        defer { a.stop(); b.stop() }
        let f = try CheckFixture("""
        backend be
            option redispatch
            retries 3
            option httpchk GET /health
            server a 127.0.0.1:\(a.port) check inter 100ms
            server b 127.0.0.1:\(b.port) check inter 100ms
        """)
        defer { f.stop() }
        try f.waitStat("be", "a", "check_status", "L7OK")
        try f.waitStat("be", "b", "check_status", "L7OK")
        let traffic = TrafficLoop(port: f.port)
        defer { try? traffic.stop() }
        func done() -> Int { traffic.sent.load(ordering: .relaxed) }
        func served(_ t: CheckTarget) -> Int { t.paths.filter { $0 == "/hello" }.count }
        try eventually("traffic on both") { served(a) > 0 && served(b) > 0 }
        a.set("/health", .http(503, "sick"))
        try eventually("a down") { f.log.contains { $0.hasPrefix("Server be/a is DOWN. 1 active and 0 backup servers left.") } }
        // Requests already routed may land; from the next ones on, none reaches a.
        let settled = done()
        try eventually("20 more requests") { done() >= settled + 20 }
        let count = served(a)
        let mark = done()
        try eventually("200 more requests") { done() >= mark + 200 }
        #expect(served(a) == count)
        try traffic.stop()
        #expect(traffic.failed.load(ordering: .relaxed) == 0, "\(traffic.lastFailure.withLockedValue { $0 })")
        // a stops listening while its checks still say UP: redispatch hides the refused
        // connections. (Traffic pauses meanwhile: a request already in a's accept queue when it
        // dies would get HAProxy's 502 too.)
        a.set("/health", .http(200, "ok"))
        try f.waitStat("be", "a", "status", "UP")
        a.pause()
        let after = TrafficLoop(port: f.port)
        defer { try? after.stop() }
        try eventually("200 requests with a gone") { after.sent.load(ordering: .relaxed) >= 200 }
        try after.stop()
        #expect(after.failed.load(ordering: .relaxed) == 0, "\(after.lastFailure.withLockedValue { $0 })")
        #expect(try f.stat("be", "a", "wredis") != "0")
    }

    @Test func cliAndMaintenanceDriveTheChecks() throws {
        let target = try CheckTarget(.http(200, "s"))
        defer { target.stop() }
        let f = try CheckFixture("""
        backend be
            server s 127.0.0.1:\(target.port) check inter 1500ms rise 2
            server plain 127.0.0.1:\(target.port)
        """)
        defer { f.stop() }
        try f.waitStat("be", "s", "check_status", "L4OK")
        #expect(try f.stat("be", "plain", "status") == "no check")
        #expect(try f.ask("set server be/s health down") == "\n")
        #expect(try f.stat("be", "s", "status") == "DOWN")
        try f.waitLog("Server be/s is DOWN, changed from CLI. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.")
        #expect(try f.ask("set server be/s health up") == "\n")
        #expect(try f.stat("be", "s", "status") == "UP")
        #expect(try f.ask("set server be/s health stopping") == "\n")
        #expect(try f.stat("be", "s", "status") == "NOLB")
        #expect(try f.ask("set server be/s health up") == "\n")
        #expect(try f.ask("enable agent be/s") == "Agent was not configured on this server, cannot enable.\n\n")
        #expect(try f.ask("enable health be/plain") == "Health check was not configured on this server, cannot enable.\n\n")
        #expect(try f.ask("set server be/s agent up") == "agent checks are not enabled on this server.\n\n")
        #expect(try f.ask("disable health be/s") == "\n")
        #expect(try f.stat("be", "s", "status") == "no check")
        #expect(try f.ask("enable health be/s") == "\n")
        try f.waitStat("be", "s", "status", "UP")

        // Maintenance pauses the checks; leaving it checks at once.
        let disabledAt = Int(DispatchTime.now().uptimeNanoseconds / 1_000_000)
        #expect(try f.ask("disable server be/s") == "\n")
        // A paused check shows no result in show stat (as in HAProxy); its health is 0.
        #expect(try f.stat("be", "s", "check_status") == "")
        let stateLine = try f.ask("show servers state be").split(separator: "\n").first { $0.split(separator: " ").dropFirst(3).first == "s" }
        let fields = try #require(stateLine).split(separator: " ")
        #expect(fields[12] == "0" && fields[13] == "14", "health 0, check configured+enabled+paused: \(fields)")
        let started = Date()
        try eventually("two check intervals") { Date().timeIntervalSince(started) > 3.2 }
        // A check already connecting when the command ran may still land just after it.
        let lateArrivals = target.arrivals.filter { $0 > disabledAt + 300 }
        #expect(lateArrivals.isEmpty, "no check while in maintenance")
        let paused = target.arrivals.count
        let resumed = Date()
        #expect(try f.ask("enable server be/s") == "\n")
        try eventually("a check right after leaving maintenance") { target.arrivals.count > paused }
        #expect(Date().timeIntervalSince(resumed) < 1.2)
        try f.waitStat("be", "s", "check_health", "4")
        #expect(try f.stat("be", "s", "status") == "UP")
    }

    @Test func dynamicServersAreCheckedOnceEnabled() throws {
        let target = try CheckTarget(.http(200, "x"))
        defer { target.stop() }
        let f = try CheckFixture("""
        backend be
            server s 127.0.0.1:\(target.port) check inter 5s
        """)
        defer { f.stop() }
        #expect(try f.ask("add server be/x 127.0.0.1:\(target.port) check inter 100ms") == "New server registered.\n\n")
        #expect(try f.stat("be", "x", "status") == "MAINT")
        #expect(try f.stat("be", "x", "check_status") == "")
        #expect(try f.ask("enable health be/x") == "\n")
        #expect(try f.ask("enable server be/x") == "\n")
        try f.waitStat("be", "x", "check_status", "L4OK")
        try f.waitStat("be", "x", "check_health", "4")
        #expect(try f.ask("disable server be/x") == "\n")
        try eventually("x removable") { try f.ask("del server be/x") == "Server deleted.\n\n" }
        let count = target.arrivals.count
        let started = Date()
        try eventually("some intervals") { Date().timeIntervalSince(started) > 0.5 }
        // Only s (inter 5s) may still check: at most one arrival.
        #expect(target.arrivals.count <= count + 1)
    }

    @Test func checkPortAddressAndProxyHeader() throws {
        let ok = try CheckTarget(.http(200, "ok"))
        defer { ok.stop() }
        let closed = try Ports.free()
        let f = try CheckFixture("""
        backend be
            server byport 127.0.0.1:\(closed) check port \(ok.port) inter 100ms
            server byaddr 127.0.0.2:\(closed) check addr 127.0.0.1 port \(ok.port) inter 100ms
        backend proxied
            option httpchk GET /proxied
            server s 127.0.0.1:\(ok.port) check check-send-proxy inter 100ms
        backend sequence
            option tcp-check
            tcp-check connect port \(ok.port)
            server s 127.0.0.1:\(closed) check inter 100ms
        """)
        defer { f.stop() }
        for (backend, server) in [("be", "byport"), ("be", "byaddr"), ("sequence", "s")] {
            try f.waitStat(backend, server, "check_status", "L4OK")
            #expect(try f.stat(backend, server, "status") == "UP")
        }
        #expect(try f.stat("sequence", "s", "last_chk") == "(tcp-check)")
        #expect(try f.stat("be", "byport", "last_chk") == "")
        try f.waitStat("proxied", "s", "check_status", "L7OK")
        #expect(ok.firstLines.contains { $0.hasPrefix("PROXY TCP4 127.0.0.1 127.0.0.1 ") && $0.hasSuffix(" \(ok.port)") })
        #expect(try f.ask("show servers state be").contains(" \(ok.port) - - 0\n"))
    }

    @Test func markedDownKillsSessionsAndMarkedUpKillsBackupSessions() throws {
        let active = try CheckTarget(.http(200, "active"), routes: ["/hold": .silent])
        let backup = try CheckTarget(.http(200, "backup"), routes: ["/hold": .silent])
        defer { active.stop(); backup.stop() }
        let f = try CheckFixture("""
        backend be
            server a 127.0.0.1:\(active.port) check inter 100ms on-marked-down shutdown-sessions on-marked-up shutdown-backup-sessions
            server b 127.0.0.1:\(backup.port) check inter 100ms backup
        """)
        defer { f.stop() }
        try f.waitStat("be", "a", "check_status", "L4OK")
        try f.waitStat("be", "b", "check_status", "L4OK")
        // A request held by a is cut when a goes down.
        let first = try RawClient(port: f.port, timeout: 8)
        try first.send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        try eventually("the request on a") { active.paths.contains("/hold") }
        let downAt = Date()
        active.pause()
        _ = first.readToEnd()
        #expect(Date().timeIntervalSince(downAt) < 5, "cut by shutdown-sessions, not by timeout server")
        try f.waitStat("be", "a", "status", "DOWN")
        // A request on the backup is cut when a comes back.
        let second = try RawClient(port: f.port, timeout: 8)
        try second.send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        try eventually("the request on the backup") { backup.paths.contains("/hold") }
        let upAt = Date()
        try active.resume()
        _ = second.readToEnd()
        #expect(Date().timeIntervalSince(upAt) < 5, "cut by shutdown-backup-sessions")
        #expect(try f.stat("be", "a", "status") == "UP")
    }
}
