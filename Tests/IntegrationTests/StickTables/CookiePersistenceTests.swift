import Foundation
import Testing

/// Cookie persistence (`cookie ... insert|rewrite|prefix`, `server ... cookie`), run through
/// Debian's haproxy and Hasp with the same configuration, ports and requests: the response
/// headers the client gets, what the server sees of the `Cookie` header, which server answered,
/// and the `%tsc` log flags must be the same.
@Suite(.serialized, .enabled(if: StickTableTests.haproxyAvailable, "needs Debian's haproxy"))
struct CookiePersistenceTests {
    /// Each app answers with its name, then how many `Cookie` lines it got and the last one.
    static func app(_ name: String, port: Int) -> String {
        let body = "lf-string \"\(name) %[req.fhdr_cnt(cookie)] %[req.fhdr(cookie)]\\n\""
        return """
            listen app\(name)
                bind 127.0.0.1:@PORT\(port)@
                http-request return status 200 content-type text/plain hdr set-cookie "JSESSIONID=abc; Path=/" \(body) if { path_beg /w } || { path_beg /p }
                http-request return status 200 content-type text/plain hdr etag "\\"x\\"" \(body) if { path_beg /i/etag } || { path_beg /o }
                http-request return status 200 content-type text/plain hdr set-cookie "SRV=own" hdr cache-control "max-age=0" \(body) if { path_beg /i/own } || { path_beg /k }
                http-request return status 200 content-type text/plain \(body)
            """
    }

    static let config = """
        \(StickTableTests.common)
        frontend fe
            bind 127.0.0.1:@PORT0@
            log stdout format raw local0
            log-format "LOG %b/%s %ST %tsc"
            use_backend ins if { path_beg /i }
            use_backend rw if { path_beg /w }
            use_backend pfx if { path_beg /p }
            use_backend dyn if { path_beg /d }
            use_backend red if { path_beg /r }
            use_backend post if { path_beg /o }
            use_backend keep if { path_beg /k }
            default_backend ins
        backend ins
            balance roundrobin
            cookie SRV insert indirect nocache httponly secure domain .example.com domain .example.org attr SameSite=Lax
            force-persist if { req.hdr(x-force) -m found }
            ignore-persist if { path_beg /i/ignore }
            server s1 127.0.0.1:@PORT1@ cookie c1
            server s2 127.0.0.1:@PORT2@ cookie c2
            server s3 127.0.0.1:@PORT2@ backup
        backend rw
            cookie JSESSIONID rewrite
            server s1 127.0.0.1:@PORT1@ cookie c1
            server s2 127.0.0.1:@PORT2@ cookie c2
        backend pfx
            cookie JSESSIONID prefix nocache
            server s1 127.0.0.1:@PORT1@ cookie c1
            server s2 127.0.0.1:@PORT2@ cookie c2
        backend dyn
            cookie SRV insert dynamic
            dynamic-cookie-key some-secret
            server s1 127.0.0.1:@PORT1@
            server s2 127.0.0.1:@PORT2@
        backend red
            option persist
            option redispatch
            retries 1
            cookie SRV insert indirect
            server dead 127.0.0.1:@PORT3@ cookie c0
            server s2 127.0.0.1:@PORT2@ cookie c2
        backend post
            cookie SRV insert postonly
            server s1 127.0.0.1:@PORT1@ cookie c1
        backend keep
            cookie SRV insert preserve
            server s1 127.0.0.1:@PORT1@ cookie c1
        \(app("1", port: 1))
        \(app("2", port: 2))
        """

    /// `ports`: the frontend, the two apps, and one where nothing listens.
    static func answers(_ binary: String, ports: [Int]) throws -> (answers: [String], logs: [String]) {
        let text = config.replacingOccurrences(of: "@PORT3@", with: String(ports[3]))
        let proxy = try StickTableTests.start(binary, text, on: Array(ports.prefix(3)))
        defer { proxy.stop() }
        let port = proxy.ports[0]
        var out: [String] = []
        func get(_ path: String, _ options: [String] = []) throws {
            let response = try curl(["-si"] + options + ["http://127.0.0.1:\(port)\(path)"]).stdout
            let kept = response.replacingOccurrences(of: "\r", with: "").split(separator: "\n").filter { line in
                let l = line.lowercased()
                return !l.hasPrefix("date:") && !l.hasPrefix("content-length:") && !l.hasPrefix("content-type:")
            }
            out.append("\(path) \(options.joined(separator: " ")) -> " + kept.joined(separator: " | "))
        }
        // Insert, indirect, nocache: new clients get a cookie, returning ones none, the server
        // never sees it; `Cache-control: private` only on a cacheable response.
        try get("/i")
        try get("/i")
        try get("/i", ["-H", "Cookie: SRV=c2"])
        try get("/i", ["-H", "Cookie: a=1; SRV=c1; b=2"])
        try get("/i", ["-H", "Cookie: SRV=c1; b=2"])
        try get("/i", ["-H", "Cookie: a=1;SRV=c1"])
        try get("/i", ["-H", "Cookie: x=\"a;b\", SRV=c2, y=1"])
        try get("/i", ["-H", "Cookie: SRV=c2", "-H", "Cookie: SRV=c1"])
        try get("/i", ["-H", "Cookie: SRV=zz"])
        try get("/i", ["-H", "Cookie: SRV="])
        try get("/i/etag")
        try get("/i/etag", ["-X", "POST"])
        try get("/i/etag", ["-H", "Cookie: SRV=c1"])
        try get("/i/own")
        try get("/i/own", ["-H", "Cookie: SRV=c1"])
        try get("/i/ignore", ["-H", "Cookie: SRV=c1"])
        // A server that is down: the cookie is refused and the balancer picks another...
        out.append(try CLIClient.ask(proxy.socket, "disable server ins/s1"))
        try get("/i", ["-H", "Cookie: SRV=c1"])
        // ... unless persistence is forced.
        try get("/i", ["-H", "Cookie: SRV=c1", "-H", "x-force: 1"])
        out.append(try CLIClient.ask(proxy.socket, "disable server ins/s2"))
        try get("/i")
        out.append(try CLIClient.ask(proxy.socket, "enable server ins/s1"))
        out.append(try CLIClient.ask(proxy.socket, "enable server ins/s2"))
        // Rewrite and prefix: the application's own cookie carries the server.
        try get("/w")
        try get("/w", ["-H", "Cookie: JSESSIONID=c2"])
        try get("/p")
        try get("/p", ["-H", "Cookie: JSESSIONID=c2~abc; x=y"])
        try get("/p", ["-H", "Cookie: JSESSIONID=abc"])
        // Dynamic cookies: a hash of the key and the server's address; the runtime API turns
        // them off and on and changes the key.
        try get("/d")
        try get("/d")
        for command in ["disable dynamic-cookie backend dyn", "disable dynamic-cookie backend", "disable dynamic-cookie backend nosuch"] {
            out.append(try CLIClient.ask(proxy.socket, command))
        }
        try get("/d")
        for command in ["set dynamic-cookie-key backend dyn other-secret", "set dynamic-cookie-key backend dyn",
                        "set dynamic-cookie-key backend nosuch k", "enable dynamic-cookie backend dyn", "enable dynamic-cookie backend"] {
            out.append(try CLIClient.ask(proxy.socket, command))
        }
        try get("/d")
        // `option persist` sends the client to its dead server; `option redispatch` then
        // gives it another one, which inserts its own cookie.
        try get("/r", ["-H", "Cookie: SRV=c0"])
        try get("/r", ["-H", "Cookie: SRV=c2"])
        try get("/o")
        try get("/o", ["-X", "POST"])
        try get("/k")
        try get("/k", ["-H", "Cookie: SRV=c1"])
        // `show stat`: the backend's cookie name and each server's cookie.
        let stat = try CLIClient.ask(proxy.socket, "show stat").split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        if let header = stat.first, let column = header.firstIndex(of: "cookie") {
            for row in stat.dropFirst() where row.count > column && ["ins", "dyn", "rw"].contains(row[0]) {
                out.append("stat \(row[0])/\(row[1]) cookie=\(row[column])")
            }
        } else {
            out.append("no cookie column")
        }
        let expected = out.filter { $0.contains(" -> ") }.count
        try eventually("\(binary): a log line per request") {
            proxy.child.stdout.split(separator: "\n").filter { $0.hasPrefix("LOG ") && !$0.contains("<NOSRV>") }.count >= expected
        }
        let logs = proxy.child.stdout.split(separator: "\n").filter { $0.hasPrefix("LOG ") && !$0.contains("<NOSRV>") }.map(String.init)
        return (out, logs)
    }

    @Test func cookiePersistenceMatchesHAProxy() throws {
        let ports = try (0..<4).map { _ in try Ports.free() }
        let theirs = try Self.answers(StickTableTests.haproxy, ports: ports)
        let ours = try Self.answers(HaspBinary.path, ports: ports)
        #expect(theirs.answers.count == ours.answers.count)
        for (a, b) in zip(theirs.answers, ours.answers) { #expect(a == b, "\nhaproxy: \(a)\nhasp:    \(b)") }
        #expect(theirs.logs == ours.logs, "\nhaproxy:\n\(theirs.logs.joined(separator: "\n"))\nhasp:\n\(ours.logs.joined(separator: "\n"))")
        // The test means something: cookies were inserted, sent clients back, and were
        // rewritten and prefixed.
        let text = ours.answers.joined(separator: "\n")
        for needle in ["set-cookie: SRV=c1; path=/; domain=.example.com; domain=.example.org; HttpOnly; Secure; SameSite=Lax | cache-control: private",
                       "Cookie: a=1; SRV=c1; b=2 -> HTTP/1.1 200 OK | 1 1 a=1; b=2",
                       "set-cookie: JSESSIONID=c1; Path=/", "set-cookie: JSESSIONID=c2~abc; Path=/",
                       "Cookie: SRV=c0 -> HTTP/1.1 200 OK | set-cookie: SRV=c2; path=/ | 2 0"] {
            #expect(text.contains(needle), "\(needle)\n\(text)")
        }
        #expect(ours.logs.contains { $0.hasSuffix("--VN") } && ours.logs.contains { $0.hasSuffix("--NI") }, "\(ours.logs)")
    }

    @Test func cookieConfigurationErrorsMatchHAProxy() throws {
        let head = "defaults\n  mode http\n  timeout client 1s\n  timeout server 1s\n  timeout connect 1s\nbackend be\n"
        let cases = [
            "  cookie\n", "  cookie SRV bogus\n", "  cookie SRV rewrite indirect\n", "  cookie SRV insert prefix\n",
            "  cookie SRV preserve\n", "  cookie SRV insert domain\n", "  cookie SRV insert domain ex/ample.com\n",
            "  cookie SRV insert maxidle\n", "  cookie SRV insert maxidle 10x\n", "  cookie SRV insert maxlife 1x\n",
            "  cookie SRV insert attr\n", "  cookie SRV insert attr \"a;b\"\n", "  dynamic-cookie-key\n", "  force-persist\n",
            "  ignore-persist foo\n", "  server s1 127.0.0.1:80 cookie\n",
        ]
        func alerts(_ binary: String, _ text: String) throws -> [String] {
            let dir = try TempDir()
            let path = try dir.write("c.cfg", text)
            let result = try run(binary, ["-c", "-f", path])
            return result.stderr.split(separator: "\n").filter { $0.contains("[ALERT]") && !$0.contains("Fatal errors") && !$0.contains("Error(s) found") }
                .map { $0.components(separatedBy: "config : ").dropFirst().joined(separator: "config : ").replacingOccurrences(of: path, with: "CFG") }
        }
        for body in cases {
            let theirs = try alerts(StickTableTests.haproxy, head + body)
            let ours = try alerts(HaspBinary.path, head + body)
            #expect(!theirs.isEmpty, "\(body)")
            #expect(theirs == ours, "\(body)\nhaproxy: \(theirs)\nhasp:    \(ours)")
        }
        let dir = try TempDir()
        let path = try dir.write("ok.cfg", head + "  cookie SRV insert indirect nocache maxidle 30m maxlife 8h domain .a.b attr SameSite=Strict\n"
                                   + "  force-persist if { src 10.0.0.0/8 }\n  server s1 127.0.0.1:80 cookie s1\n"
                                   + "frontend fe\n  bind 127.0.0.1:1\n  default_backend be\n")
        let result = try run(HaspBinary.path, ["-c", "-f", path])
        #expect(result.status == 0, "\(result.stderr)")
    }
}
