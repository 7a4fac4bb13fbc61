import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Stick tables survive a reload: the old worker's entries, counters and server mappings reach
/// the new worker (through the master) before it serves.
@Suite(.serialized) struct StickTableReloadTests {
    static func config(port: Int, apps: (Int, Int), userTable: String = "type string len 16", marker: String = "") -> String {
        """
        \(StickTableTests.common.replacingOccurrences(of: "@SOCK@", with: "@DIR@/admin.sock"))
        frontend fe
            bind 127.0.0.1:\(port)
            stick-table type ip size 1k expire 60s store http_req_cnt,http_req_rate(60s)\(marker)
            http-request track-sc0 src
            http-request deny deny_status 429 if { sc_http_req_rate(0) gt 5 }
            default_backend be
        backend be
            balance roundrobin
            stick-table \(userTable) size 1k expire 60s
            stick on req.hdr(x-user)
            server s1 127.0.0.1:\(apps.0)
            server s2 127.0.0.1:\(apps.1)
        listen app1
            bind 127.0.0.1:\(apps.0)
            http-request return status 200 content-type text/plain string s1
        listen app2
            bind 127.0.0.1:\(apps.1)
            http-request return status 200 content-type text/plain string s2
        """
    }

    @Test func ratesAndPersistenceOutliveAReload() throws {
        let port = try Ports.free()
        let apps = (try Ports.free(), try Ports.free())
        let hasp = try startMaster(config: Self.config(port: port, apps: apps), port: port)
        defer { hasp.stop() }
        let socket = hasp.dir.path("admin.sock")
        func get(_ user: String) throws -> String {
            let r = try curl(["-s", "-w", " %{http_code}", "-H", "x-user: \(user)", "http://127.0.0.1:\(port)/"])
            return r.stdout
        }
        for app in [apps.0, apps.1] { try eventually("app \(app)") { Ports.isAccepting(app) } }
        let first = try get("ann")
        #expect(first == "s1 200", "\(first)")
        #expect(try get("bob") == "s2 200")
        #expect(try get("ann") == "s1 200")
        let before = try CLIClient.ask(socket, "show table fe")
        #expect(before.contains("http_req_cnt=3"), "\(before)")

        func reload(to text: String) throws {
            let workers = children(of: hasp.pid)
            _ = try hasp.dir.write("hasp.cfg", text.replacingOccurrences(of: "@DIR@", with: hasp.dir.url.path))
            hasp.child.signal(SIGUSR2)
            try eventually("the old worker to exit") { workers.allSatisfy { !isAlive($0) } && children(of: hasp.pid).count == 1 }
        }
        try reload(to: Self.config(port: port, apps: apps))
        let after = try CLIClient.ask(socket, "show table fe")
        #expect(after.contains("http_req_cnt=3") && after.contains("http_req_rate(60000)=3"), "\(after)")
        // A fresh round-robin would send bob to s1: the table still says s2.
        #expect(try get("bob") == "s2 200")
        #expect(try get("ann") == "s1 200")
        // The rate counted before the reload still counts: the sixth request is refused.
        #expect(try get("cid").hasSuffix(" 429"))
        let users = try CLIClient.ask(socket, "show table be")
        #expect(users.contains("key=bob ") && users.contains("server_key=s2"), "\(users)")

        // A table whose stored data changed keeps what both definitions store; one whose key
        // type changed starts empty, with a warning.
        try reload(to: Self.config(port: port, apps: apps, userTable: "type integer", marker: ",gpc0"))
        let converted = try CLIClient.ask(socket, "show table fe")
        #expect(converted.contains("http_req_cnt=6") && converted.contains("gpc0=0"), "\(converted)")
        #expect(try CLIClient.ask(socket, "show table be").contains("used:0"))
        try eventually("the warning") { hasp.child.stderr.contains("Stick table 'be' starts empty: its key type changed from 'string len 16' to 'integer'.") }
    }
}
