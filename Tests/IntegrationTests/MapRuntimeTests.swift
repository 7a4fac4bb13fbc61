import Foundation
import Testing

/// Maps and ACLs changed through the runtime API: what the event loops see at once, and the
/// answers, compared with Debian's haproxy.
@Suite(.serialized) struct MapRuntimeTests {
    static func config(port: Int, app: Int, api: Int, dir: String, socket: String) -> String {
        """
        global
            stats socket \(socket) level admin
        defaults
            mode http
            timeout connect 2s
            timeout client 5s
            timeout server 5s
        frontend www
            bind 127.0.0.1:\(port)
            acl bad hdr_sub(user-agent) -i -f \(dir)/bad-agents.lst
            acl blocked path_beg /a /b
            http-request deny if bad || blocked
            use_backend %[req.hdr(x-pool),lower,map(\(dir)/pools.map)]
            http-request set-header X-Tier %[path,map_beg(\(dir)/pools.map,none)]
            default_backend app
        backend app
            server a 127.0.0.1:\(app)
        backend api
            server a 127.0.0.1:\(api)

        """
    }

    static func files(_ dir: TempDir) throws {
        _ = try dir.write("bad-agents.lst", "sqlmap\nNikto\n")
        _ = try dir.write("pools.map", "blue api\ngreen app\n")
    }

    /// Commands whose answers both proxies must give alike (entry ids aside).
    static func commands(_ dir: String) -> [String] {
        let map = "\(dir)/pools.map", acl = "\(dir)/bad-agents.lst"
        return [
            "show map", "show acl", "show map \(map)", "show acl \(acl)", "show acl #1", "show acl #2",
            "get map \(map) blue", "get map \(map) nothing", "get acl #0 sqlmap", "get acl #0 curl", "get acl #2 /a/b",
            "add map \(map) red api", "show map \(map)", "set map \(map) red app", "show map \(map)",
            "del map \(map) red", "del map \(map) red", "show map /nonexist", "add acl #2 /c", "show acl #2",
            "del acl #2 /a", "del acl #2 /zz", "clear acl #2", "show acl #2",
            "add acl \(map) z", "prepare map \(map)", "add map @1 \(map) x app", "show map @1 \(map)",
            "commit map \(map)", "commit map @5 \(map)", "commit map @1 \(map)", "show map \(map)",
            "set map \(map) nokey v", "add map \(map)", "get map", "get acl #2", "add acl #2", "del map #3",
            "set map #3", "get var proc.x", "set var proc.x int(3)",
            "experimental-mode on; set var proc.x int(3); get var proc.x",
            "experimental-mode on; set var proc.y str(abc),upper; get var proc.y",
            "experimental-mode on; set var txn.x int(3)",
        ]
    }

    /// The answer with entry ids (`0x...`) blanked, and HAProxy's internal httpclient ACLs left out.
    static func normalized(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.contains("'httpclient'") }.map { line in
            line.hasPrefix("0x") ? "0x? " + line.drop { $0 != " " }.dropFirst() : String(line)
        }.joined(separator: "\n")
    }

    @Test(.enabled(if: RulesDifferentialTests.available, "needs Debian's haproxy"))
    func answersMatchHAProxy() throws {
        let app = try TestBackend(name: "app")
        defer { app.stop() }
        func answers(_ binary: String) throws -> [String] {
            let dir = try TempDir()
            try Self.files(dir)
            let run = try ProxyRun(binary) { port, socket in
                Self.config(port: port, app: app.port, api: app.port, dir: dir.url.path, socket: socket)
            }
            defer { run.stop() }
            // Same file names on both sides: the directory differs, so it is blanked.
            return try Self.commands(dir.url.path).map {
                Self.normalized(try run.ask($0)).replacingOccurrences(of: dir.url.path, with: "DIR")
                    .replacingOccurrences(of: run.dir.path("proxy.cfg"), with: "CFG")
            }
        }
        let theirs = try answers(RulesDifferentialTests.haproxy)
        let ours = try answers(HaspBinary.path)
        let commands = Self.commands("DIR")
        #expect(theirs.count == commands.count && ours.count == theirs.count)
        for (index, (a, b)) in zip(theirs, ours).enumerated() {
            #expect(a == b, "\(commands[index])\nhaproxy: \(a.debugDescription)\nhasp:    \(b.debugDescription)")
        }
    }

    @Test func updatesReachEveryEventLoopAtOnce() throws {
        let app = try TestBackend(name: "app"), api = try TestBackend(name: "api")
        defer { app.stop(); api.stop() }
        let dir = try TempDir()
        try Self.files(dir)
        let port = try Ports.free()
        let socket = dir.path("admin.sock")
        let hasp = try Hasp(config: "global\n    nbthread 2\n" + Self.config(port: port, app: app.port, api: api.port, dir: dir.url.path, socket: socket)
            .replacingOccurrences(of: "global\n", with: ""), waitFor: [port])
        defer { hasp.stop() }
        try eventually("the stats socket") { FileManager.default.fileExists(atPath: socket) }
        func backend(pool: String) throws -> String {
            let answer = Answer(try exchange(port, "GET /x HTTP/1.1\r\nHost: h\r\nX-Pool: \(pool)\r\nConnection: close\r\n\r\n"),
                                keep: ["x-backend"])
            return answer.headers["x-backend"] ?? answer.status
        }
        #expect(try backend(pool: "blue") == "api")
        #expect(try backend(pool: "purple") == "app")
        #expect(try CLIClient.ask(socket, "add map \(dir.path("pools.map")) purple api") == "\n")
        // Several connections land on both event loops: every one sees the new entry.
        for _ in 0..<8 { #expect(try backend(pool: "purple") == "api") }
        #expect(try CLIClient.ask(socket, "del map \(dir.path("pools.map")) blue") == "\n")
        for _ in 0..<8 { #expect(try backend(pool: "blue") == "app") }
        // An ACL entry added at run time denies at once; a cleared one no longer does.
        #expect(try CLIClient.ask(socket, "add acl #2 /secret") == "\n")
        #expect(Answer(try exchange(port, "GET /secret HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"), keep: []).status == "HTTP/1.1 403 Forbidden")
        #expect(try CLIClient.ask(socket, "clear acl #2") == "\n")
        #expect(try CLIClient.ask(socket, "show acl #2") == "\n")
        #expect(try CLIClient.ask(socket, "get acl #2 /a") == "type=beg, case=sensitive, match=no\n\n")
        #expect(try backend(pool: "none") == "app")
        // (The test backend has no route /a: a 404 from it means the request got through.)
        #expect(Answer(try exchange(port, "GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"), keep: []).status == "HTTP/1.1 404 Not Found")
        // A whole new version replaces the map atomically.
        let map = dir.path("pools.map")
        #expect(try CLIClient.ask(socket, "prepare map \(map)") == "New version created: 1\n\n")
        #expect(try CLIClient.ask(socket, "add map @1 \(map) purple app") == "\n")
        #expect(try backend(pool: "purple") == "api")
        #expect(try CLIClient.ask(socket, "commit map @1 \(map)") == "\n")
        #expect(try backend(pool: "purple") == "app")
    }
}
