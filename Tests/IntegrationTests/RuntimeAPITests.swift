import Atomics
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The exact `show stat` header (HAProxy's 119 columns, then the module marker).
let statHeader = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,srid,sess_other,h1sess,h2sess,h3sess,req_other,h1req,h2req,h3req,proto,priv_idle_cur,reqbin,reqbout,resbin,resbout,cache_hint_hits,-,\n"

let serversStateHeader = "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"

/// One cell of a `show stat` answer.
func statCell(_ answer: String, _ proxy: String, _ service: String, _ column: String) throws -> String {
    let names = statHeader.dropFirst(2).split(separator: ",").map(String.init)
    let index = try #require(names.firstIndex(of: column))
    for line in answer.split(separator: "\n") {
        let cells = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        if cells.count > index, cells[0] == proxy, cells[1] == service { return cells[index] }
    }
    throw HarnessError("no \(proxy)/\(service) row in \(answer.count) bytes: \(answer.prefix(300).debugDescription)")
}

/// A standalone hasp with an admin and an operator stats socket, in front of a test backend.
struct RuntimeFixture {
    let backend: TestBackend
    let hasp: Hasp
    let port: Int
    var admin: String { hasp.dir.path("admin.sock") }
    var operatorSocket: String { hasp.dir.path("operator.sock") }

    init(extraGlobal: String = "") throws {
        backend = try TestBackend()
        port = try Ports.free()
        let config = """
        global
            nbthread 1
            stats socket @DIR@/admin.sock level admin
            stats socket @DIR@/operator.sock
        \(extraGlobal)
        defaults
            mode http
            timeout connect 2s
            timeout client 10s
            timeout server 10s
        frontend fe
            bind 127.0.0.1:\(port)
            default_backend be
        backend be
            server s1 127.0.0.1:\(backend.port)
        """
        hasp = try Hasp(config: config, waitFor: [], arguments: ["-db"])
        try eventually("hasp to listen") { Ports.isAccepting(port) && Ports.isAccepting(unixPath: hasp.dir.path("operator.sock")) }
    }

    func ask(_ line: String, socket: String? = nil) throws -> String {
        try CLIClient.ask(socket ?? admin, line)
    }

    /// One request to the backend's /hello on a new connection; nil on failure.
    func fetch() -> String? {
        guard let client = try? RawClient(port: port, timeout: 5),
              (try? client.send("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) != nil,
              let response = try? client.readResponses(1).first, response.hasPrefix("HTTP/1.1 200") else { return nil }
        return response
    }

    /// One `show stat` cell.
    func stat(_ proxy: String, _ service: String, _ column: String) throws -> String {
        try statCell(try ask("show stat"), proxy, service, column)
    }

    func stop() {
        hasp.stop()
        backend.stop()
    }
}

@Suite(.serialized) struct RuntimeAPITests {
    @Test func showInfoAndShowStatCountTraffic() throws {
        let f = try RuntimeFixture()
        defer { f.stop() }
        for _ in 0..<3 { #expect(f.fetch() != nil) }
        let info = try f.ask("show info")
        #expect(info.hasPrefix("Name: Hasp\nVersion: "))
        #expect(info.contains("\nProcess_num: 1\n") && info.contains("\nPid: \(f.hasp.pid)\n"))
        #expect(info.contains("\nCumReq: 3\n") && info.contains("\nStopping: 0\n"))
        #expect(info.hasSuffix("\n\n"))

        let stat = try f.ask("show stat")
        #expect(stat.hasPrefix(statHeader))
        let rows = stat.dropFirst(statHeader.count).split(separator: "\n")
        #expect(rows.count == 3)
        for row in rows {
            // 119 fields, each followed by a comma, then the `-,` marker.
            #expect(row.filter { $0 == "," }.count == 120)
            #expect(row.hasSuffix(",-,"))
        }
        let fields = rows.map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let column = { (name: String) in statHeader.dropFirst(2).split(separator: ",").firstIndex(of: Substring(name))! }
        #expect(fields[0][0] == "fe" && fields[0][1] == "FRONTEND" && fields[0][column("status")] == "OPEN")
        // The readiness probe of the fixture is a session too (without a request).
        #expect(Int(fields[0][column("stot")])! >= 3 && fields[0][column("conn_tot")] == fields[0][column("stot")])
        #expect(fields[0][column("hrsp_2xx")] == "3" && fields[0][column("req_tot")] == "3")
        #expect(fields[1][1] == "s1" && fields[1][column("type")] == "2" && fields[1][column("stot")] == "3")
        #expect(fields[1][column("addr")] == "127.0.0.1:\(f.backend.port)" && fields[1][column("status")] == "no check")
        #expect(fields[2][1] == "BACKEND" && fields[2][column("status")] == "UP" && fields[2][column("algo")] == "roundrobin")
        #expect(fields[2][column("hrsp_2xx")] == "3")

        // One proxy, servers only.
        let servers = try f.ask("show stat be 4 -1")
        #expect(servers.split(separator: "\n").count == 2)
        #expect(try f.ask("show stat nope 1 -1") == "No such proxy.\n\n")

        let typed = try f.ask("show stat typed")
        #expect(typed.hasPrefix("F.2.0.0.pxname.1:KNS:str:fe\nF.2.0.1.svname.1:KNS:str:FRONTEND\n"))
        #expect(typed.contains("\nS.3.1.1.svname.1:KNS:str:s1\n"))
        let typedInfo = try f.ask("show info typed desc")
        #expect(typedInfo.hasPrefix("0.Name.1:POS:str:Hasp:\""))
        #expect(typedInfo.contains("\n6.Pid.1:SGP:u32:\(f.hasp.pid):\""))

        let statJSON = try f.ask("show stat json")
        let objects = try #require(try JSONSerialization.jsonObject(with: Data(statJSON.utf8)) as? [[[String: Any]]])
        #expect(objects.count == 3)
        #expect((objects[0][0]["objType"] as? String) == "Frontend")
        let infoJSON = try f.ask("show info json")
        let infos = try #require(try JSONSerialization.jsonObject(with: Data(infoJSON.utf8)) as? [[String: Any]])
        #expect(((infos[0]["value"] as? [String: Any])?["value"] as? String) == "Hasp")
    }

    @Test func serversStateConnectionsAndBackends() throws {
        let f = try RuntimeFixture()
        defer { f.stop() }
        // A keep-alive exchange leaves one idle server connection in the pool.
        do {
            let client = try RawClient(port: f.port)
            try client.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            _ = try client.readResponses(1)
            try client.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            _ = try client.readResponses(1)
            // Between requests the client's session keeps the connection (idle_sess, priv_idle_cur).
            let held = try #require(try f.ask("show servers conn be").split(separator: "\n").dropFirst().first).split(separator: " ")
            #expect(held[10] == "1")
            #expect(try f.stat("be", "s1", "priv_idle_cur") == "1")
        }
        // The client is gone: its server connection waits in the pool.
        try eventually("the server connection to be idle") { try f.stat("be", "s1", "srv_icur") == "1" }

        let state = try f.ask("show servers state")
        let lines = state.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0] == "1" && lines[1] + "\n" == serversStateHeader)
        let row = lines[2].split(separator: " ").map(String.init)
        #expect(row.count == 25)
        #expect(Array(row[0..<9]) == ["3", "be", "1", "s1", "127.0.0.1", "2", "0", "1", "1"])
        #expect(Array(row[10...]) == ["1", "0", "2", "0", "0", "0", "0", "-", "\(f.backend.port)", "-", "0", "0", "-", "-", "0"])
        #expect(state.hasSuffix("\n\n"))
        #expect(try f.ask("show servers state nope") == "Can't find backend.\n\n")
        // (Column 10 counts seconds since the server's last change: a second can tick between
        // the two answers.)
        func withoutSeconds(_ text: String) -> String {
            text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
                var fields = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
                if fields.count == 25 { fields[9] = "S" }
                return fields.joined(separator: " ")
            }.joined(separator: "\n")
        }
        #expect(withoutSeconds(try f.ask("show servers state be")) == withoutSeconds(state))

        let conn = try f.ask("show servers conn be")
        #expect(conn.hasPrefix("# bkname/svname bkid/svid addr port - purge_delay served used_cur used_max need_est idle_sess unsafe_nb safe_nb idle_lim idle_cur idle_per_thr[1]\n"))
        let connRow = try #require(conn.split(separator: "\n").dropFirst().first).split(separator: " ").map(String.init)
        #expect(Array(connRow[0..<6]) == ["be/s1", "3/1", "127.0.0.1", "\(f.backend.port)", "-", "5000"])
        // idle_lim (-1: no limit), idle_cur and the per-loop count: the connection is idle.
        #expect(Array(connRow.suffix(3)) == ["-1", "1", "1"])
        #expect(try f.ask("show backend") == "# name\nbe\n\n")
    }

    @Test func levelsAndErrorMessages() throws {
        let f = try RuntimeFixture()
        defer { f.stop() }
        #expect(try f.ask("show cli level", socket: f.operatorSocket) == "operator\n\n")
        #expect(try f.ask("disable frontend fe", socket: f.operatorSocket) == "Permission denied\n\n")
        #expect(try f.ask("show cli level") == "admin\n\n")
        #expect(try f.ask("operator; show cli level; user; operator") == "\noperator\n\n\nPermission denied\n\n")
        #expect(try f.ask("expert-mode") == "expert-mode is OFF\n\n")
        #expect(try f.ask("expert-mode on; expert-mode") == "\nexpert-mode is ON\n\n")
        #expect(try f.ask("set maxconn frontend") == "A frontend name is expected.\n\n")
        #expect(try f.ask("disable frontend nope") == "No such frontend.\n\n")
        #expect(try f.ask("echo a\\;b  c") == "a;b c\n\n")
        let unknown = try f.ask("show inf")
        #expect(unknown.hasPrefix("Unknown command: 'show', but maybe one of the following ones is a better match:\n"))
        #expect(unknown.contains("  show info [desc|json|typed|float]*      : report information about the running process\n"))
        #expect(try f.ask("set severity-output string; disable frontend nope") == "\n[err]: No such frontend.\n\n")
        let help = try f.ask("help", socket: f.operatorSocket)
        #expect(help.hasPrefix("The following commands are valid at this level:\n"))
        #expect(!help.contains("disable frontend") && help.contains("  show stat "))
        #expect(try f.ask("show cli sockets") == "# socket lvl thread\nunix@\(f.admin) admin all\nunix@\(f.operatorSocket) operator all\n\n")
    }

    @Test func disableEnableAndMaxconnFrontend() throws {
        let f = try RuntimeFixture()
        defer { f.stop() }
        #expect(try f.ask("disable frontend fe") == "\n")
        #expect(try f.ask("show stat fe 1 -1").contains("\nfe,FRONTEND,"))
        #expect(try f.stat("fe", "FRONTEND", "status") == "PAUSED")
        // The kernel still queues the connection; nobody reads it while the frontend is paused.
        let waiting = try RawClient(port: f.port, timeout: 0.5)
        try waiting.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(throws: (any Error).self) { try waiting.readResponses(1) }
        #expect(try f.ask("disable frontend fe") == "Frontend is already disabled.\n\n")
        #expect(try f.ask("enable frontend fe") == "\n")
        let late = try RawClient(port: f.port, timeout: 5)
        try late.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try late.readResponses(1)[0].hasPrefix("HTTP/1.1 200"))
        #expect(try f.ask("set maxconn frontend fe 7") == "\n")
        #expect(try f.stat("fe", "FRONTEND", "slim") == "7")
        #expect(try f.stat("fe", "FRONTEND", "status") == "OPEN")
        #expect(try f.ask("set maxconn global 100") == "\n")
        #expect(try f.ask("show info").contains("\nMaxconn: 100\n"))
    }

    @Test func showErrorsKeepsTheMalformedRequest() throws {
        let f = try RuntimeFixture()
        defer { f.stop() }
        #expect(try f.ask("show errors").hasSuffix(" : 0\n\n"))
        let client = try RawClient(port: f.port)
        try client.send("GE\u{1}T / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try client.readResponses(1)[0].hasPrefix("HTTP/1.1 400"))
        let errors = try f.ask("show errors")
        #expect(errors.hasPrefix("Total events captured on ["))
        #expect(errors.contains("] : 1\n\n["))
        #expect(errors.contains("] frontend fe (#2): invalid request\n  backend <NONE> (#-1), server <NONE> (#-1), event #1, src 127.0.0.1:"))
        #expect(errors.contains("\n  00000  GE\\x01T / HTTP/1.1\\r\\n\n  00017  Host: x\\r\\n\n  00026  \\r\\n\n"))
        #expect(try f.ask("show errors fe response").hasSuffix(" : 1\n\n"))
        #expect(try f.ask("show errors nope") == "No such proxy.\n\n")
    }

    @Test func showSessListsOpenStreams() throws {
        let f = try RuntimeFixture()
        defer { f.stop() }
        let slow = try RawClient(port: f.port)
        try slow.send("GET /slow/1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        try eventually("the slow request to reach the backend") { f.backend.requests.load(ordering: .relaxed) == 1 }
        let sess = try f.ask("show sess")
        #expect(sess.contains(": proto=tcpv4 src=127.0.0.1:"))
        #expect(sess.contains(" fe=fe be=be srv=s1 ts=00 epoch=0 age="))
        #expect(sess.contains(": proto=unix_stream src=unix:1 fe=GLOBAL be=<NONE> srv=<none> "))
        #expect(try f.ask("show sess", socket: f.operatorSocket).contains("fe=fe"))
        _ = try slow.readResponses(1)
    }

    @Test func interactiveSessionsPromptsAndWait() throws {
        let f = try RuntimeFixture()
        defer { f.stop() }
        let c = try CLIClient(path: f.admin)
        try c.send("prompt\n")
        #expect(try c.read(until: "> ") == "\n> ")
        try c.send("show cli level\n")
        #expect(try c.read(until: "\n> ") == "admin\n\n> ")
        // `wait` runs to its end while the client keeps its input open.
        try c.send("wait 200ms\n")
        #expect(try c.read(until: "\n> ") == "Done.\n\n> ")
        try c.send("wait -h\n")
        #expect(try c.read(until: "\n> ").hasPrefix("Usage: wait {-h|<duration>} [condition [args...]]\n"))
        try c.send("quit\n")
        #expect(try c.readToEnd() == "")
        // With its input closed, a wait stops at once.
        let started = Date()
        #expect(try f.ask("wait 5s") == "Interrupted.\n\n")
        #expect(Date().timeIntervalSince(started) < 2)
    }

    @Test func idleSessionsCloseAfterTheStatsTimeout() throws {
        let f = try RuntimeFixture(extraGlobal: "    stats timeout 300ms")
        defer { f.stop() }
        let c = try CLIClient(path: f.admin)
        try c.send("prompt i\n")
        let started = Date()
        #expect(try c.readToEnd(timeout: 5) == "\n")
        #expect(Date().timeIntervalSince(started) < 3)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/hatop")
                   && FileManager.default.isExecutableFile(atPath: "/usr/bin/tmux"), "needs hatop and tmux"))
    func hatopShowsBackendsAndServers() throws {
        let f = try RuntimeFixture()
        defer { f.stop() }
        #expect(f.fetch() != nil)
        // tmux through popen: Foundation's Process never sees the tmux client exit (it forks
        // its server first), so `run` would wait forever.
        let server = "hasp-test-\(getpid())"
        defer { _ = shell("/usr/bin/tmux -L \(server) kill-server") }
        #expect(shell("/usr/bin/tmux -L \(server) new-session -d -x 160 -y 40 'hatop -s \(f.admin)'") != nil)
        var screen = ""
        try eventually("hatop to draw the backend") {
            screen = shell("/usr/bin/tmux -L \(server) capture-pane -p") ?? ""
            return screen.contains(">>> be") && screen.contains("BACKEND")
        }
        #expect(screen.contains("Hasp Version: "))
        #expect(screen.contains(">>> fe") && screen.contains("FRONTEND"))
        #expect(screen.contains("s1 "))
    }
}

/// Runs a shell command line; its standard output, or nil if it failed.
func shell(_ command: String) -> String? {
    guard let pipe = popen(command + " 2>/dev/null", "r") else { return nil }
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buffer, 1, buffer.count, pipe)
        if n <= 0 { break }
        output.append(contentsOf: buffer[0..<n])
    }
    return pclose(pipe) == 0 ? String(decoding: output, as: UTF8.self) : nil
}
