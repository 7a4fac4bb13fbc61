import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The statistics page (`stats enable`...) and the Prometheus exporter, served by the real
/// binary in front of a real backend and a dead server, read with curl and raw sockets.
@Suite(.serialized) struct StatsPageTests {
    /// `stats` listener on `ports[0]`, the application behind `web` on `ports[1]`, the
    /// exporter on `ports[2]`, a second page without admin rights on `ports[3]`.
    static func config(ports: [Int], app: Int, dead: Int, socket: String) -> String {
        """
        global
            stats socket \(socket) level admin
            node edge-1
            description front tier
        defaults
            mode http
            timeout connect 2s
            timeout client 5s
            timeout server 5s
        listen stats
            bind 127.0.0.1:\(ports[0])
            stats enable
            stats uri /stats
            stats refresh 10s
            stats auth admin:s3cret
            stats realm Ops
            stats admin if TRUE
            stats show-legends
            stats show-node
            stats show-desc
        frontend web
            bind 127.0.0.1:\(ports[1])
            default_backend app
        backend app
            server s1 127.0.0.1:\(app) check inter 200ms
            server s2 127.0.0.1:\(dead) check inter 200ms
            server s3 127.0.0.1:\(app) backup
        frontend prom
            bind 127.0.0.1:\(ports[2])
            http-request use-service prometheus-exporter if { path /metrics }
        frontend readonly
            bind 127.0.0.1:\(ports[3])
            stats enable
            default_backend app

        """
    }

    struct Fixture {
        let backend: TestBackend
        let run: ProxyRun
        /// The page, the application, the exporter, the page without admin rights.
        let ports: [Int]
        var port: Int { ports[0] }

        init(_ binary: String = HaspBinary.path) throws {
            backend = try TestBackend(name: "app")
            var ports: [Int] = []
            while ports.count < 5 {
                let p = try Ports.free()
                if !ports.contains(p) { ports.append(p) }
            }
            let dead = ports.removeLast()
            self.ports = ports
            let app = backend.port
            run = try ProxyRun(binary) { _, socket in StatsPageTests.config(ports: ports, app: app, dead: dead, socket: socket) }
            for p in ports {
                try eventually("port \(p)") { Ports.isAccepting(p) }
            }
            // The checks settle: s1 up, s2 down.
            try eventually("s2 to be seen down") {
                try statCell(try run.ask("show stat"), "app", "s2", "status").hasPrefix("DOWN")
            }
        }

        func stop() {
            run.stop()
            backend.stop()
        }

        func get(_ path: String, auth: Bool = true, port: Int? = nil, method: String = "GET", body: String? = nil) throws -> String {
            var request = "\(method) \(path) HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
            if auth { request += "Authorization: Basic \(Data("admin:s3cret".utf8).base64EncodedString())\r\n" }
            if let body { request += "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.utf8.count)\r\n" }
            request += "\r\n" + (body ?? "")
            return try exchange(port ?? self.port, request)
        }
    }

    static func headerValue(_ raw: String, _ name: String) -> String? {
        let head = raw.components(separatedBy: "\r\n\r\n")[0]
        for line in head.components(separatedBy: "\r\n").dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == name { return parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return nil
    }

    /// The body of a raw answer, de-chunked when it is chunked (the exporter's, the page's).
    static func body(_ raw: String) -> String {
        let bytes = Array(raw.utf8)
        guard let end = (0..<max(0, bytes.count - 3)).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 && bytes[$0 + 2] == 13 && bytes[$0 + 3] == 10 }) else {
            return ""
        }
        var rest = Array(bytes[(end + 4)...])
        guard headerValue(raw, "transfer-encoding") == "chunked" else { return String(decoding: rest, as: UTF8.self) }
        var out: [UInt8] = []
        while let lineEnd = (0..<max(0, rest.count - 1)).first(where: { rest[$0] == 13 && rest[$0 + 1] == 10 }),
              let size = Int(String(decoding: rest[..<lineEnd], as: UTF8.self), radix: 16), size > 0,
              rest.count >= lineEnd + 2 + size + 2 {
            out += rest[(lineEnd + 2)..<(lineEnd + 2 + size)]
            rest = Array(rest[(lineEnd + 2 + size + 2)...])
        }
        return String(decoding: out, as: UTF8.self)
    }

    @Test func authenticationGuardsThePage() throws {
        let f = try Fixture()
        defer { f.stop() }
        let denied = try f.get("/stats", auth: false)
        #expect(denied.hasPrefix("HTTP/1.1 401 Unauthorized\r\n"))
        #expect(Self.headerValue(denied, "www-authenticate") == "Basic realm=\"Ops\"")
        let wrong = try exchange(f.port, "GET /stats;csv HTTP/1.1\r\nHost: h\r\nAuthorization: Basic \(Data("admin:nope".utf8).base64EncodedString())\r\nConnection: close\r\n\r\n")
        #expect(wrong.hasPrefix("HTTP/1.1 401"))
        // Other methods are not the page: the listen has no server, so 503.
        let put = try exchange(f.port, "PUT /stats HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        #expect(put.hasPrefix("HTTP/1.1 503"))
        // A page without `stats auth` is open, at the default URI.
        let open = try f.get("/haproxy?stats;csv", auth: false, port: f.ports[3])
        #expect(open.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(Self.body(open).hasPrefix("# pxname,svname,"))
    }

    @Test func htmlPageShowsEveryProxyAndServerState() throws {
        let f = try Fixture()
        defer { f.stop() }
        let raw = try f.get("/stats")
        #expect(raw.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(Self.headerValue(raw, "refresh") == "10")
        #expect(Self.headerValue(raw, "cache-control") == "no-cache")
        #expect(Self.headerValue(raw, "content-type")?.hasPrefix("text/html") == true)
        let page = Self.body(raw)
        #expect(Self.headerValue(raw, "content-length") == String(page.utf8.count))
        #expect(page.contains("<title>Statistics Report for Hasp on edge-1</title>"))
        #expect(page.contains("front tier"))
        for proxy in ["stats", "web", "app", "prom", "readonly"] { #expect(page.contains("id=\"\(proxy)\"")) }
        // Row colours: s1 up, s2 down, s3 backup without check.
        #expect(page.contains("<tr class=\"active_up\"><td class=\"pick\"><input type=\"checkbox\" name=\"s\" value=\"s1\">"))
        #expect(page.contains("<tr class=\"active_down\"><td class=\"pick\"><input type=\"checkbox\" name=\"s\" value=\"s2\">"))
        #expect(page.contains("<tr class=\"backup_no_check\"><td class=\"pick\"><input type=\"checkbox\" name=\"s\" value=\"s3\">"))
        // The admin form of the backend, with every action HAProxy's page posts.
        for action in ["ready", "drain", "maint", "dhlth", "ehlth", "hrunn", "hnolb", "hdown", "dagent", "eagent", "arunn", "adown", "shutdown"] {
            #expect(page.contains("<option value=\"\(action)\">"))
        }
        // Legends: the server's address in its tooltip.
        #expect(page.contains("title=\"address 127.0.0.1:\(f.backend.port)"))
        // `;up` hides the dead server and counts the usable ones; `;norefresh` drops the header.
        let up = try f.get("/stats;up;norefresh")
        #expect(Self.headerValue(up, "refresh") == nil)
        #expect(!Self.body(up).contains("value=\"s2\""))
        #expect(Self.body(up).contains("value=\"s1\""))
        // The scope box keeps proxies whose name holds the text, whatever the case.
        let scoped = Self.body(try f.get("/stats?scope=APP"))
        #expect(scoped.contains("id=\"app\"") && !scoped.contains("id=\"web\""))
    }

    @Test func exportsAreShowStatFormats() throws {
        let f = try Fixture()
        defer { f.stop() }
        // Keep-alive: the page, then its CSV, on one connection.
        let client = try RawClient(port: f.port)
        let auth = "Authorization: Basic \(Data("admin:s3cret".utf8).base64EncodedString())\r\n"
        try client.send("GET /stats HTTP/1.1\r\nHost: h\r\n\(auth)\r\nGET /stats;csv HTTP/1.1\r\nHost: h\r\n\(auth)Connection: close\r\n\r\n")
        let both = String(decoding: client.readToEnd(), as: UTF8.self)
        #expect(both.components(separatedBy: "HTTP/1.1 200 OK\r\n").count == 3 && both.contains("\n# pxname,svname,"))
        let csv = Self.body(try f.get("/stats;csv;norefresh"))
        let stat = try f.run.ask("show stat")
        #expect(csv.split(separator: "\n").first == stat.split(separator: "\n").first)
        #expect(try statCell(csv, "app", "s2", "status").hasPrefix("DOWN"))
        #expect(try statCell(csv, "app", "s1", "status") == "UP")
        let upCSV = Self.body(try f.get("/stats;csv;up"))
        #expect(try statCell(upCSV, "app", "BACKEND", "status") == "UP (2/3)")
        let json = try f.get("/stats;json")
        #expect(Self.headerValue(json, "content-type") == "application/json")
        let objects = try #require(try JSONSerialization.jsonObject(with: Data(Self.body(json).utf8)) as? [[[String: Any]]])
        #expect(objects.count == csv.split(separator: "\n").count - 1)
        let schema = try f.get("/stats;json-schema")
        #expect((try JSONSerialization.jsonObject(with: Data(Self.body(schema).utf8)) as? [String: Any])?["$schema"] != nil)
        let typed = Self.body(try f.get("/stats;typed"))
        #expect(typed.contains(".svname.1:KNS:str:s2\n"))
    }

    @Test func adminFormChangesServersAsTheRuntimeAPIDoes() throws {
        let f = try Fixture()
        defer { f.stop() }
        let appID = try statCell(try f.run.ask("show stat"), "app", "BACKEND", "iid")
        // The form the page posts: checked servers, the action, the backend by id.
        let done = try f.get("/stats;up?scope=app", method: "POST", body: "s=s1&s=s3&action=maint&b=%23\(appID)")
        #expect(done.hasPrefix("HTTP/1.1 303 See Other\r\n"))
        #expect(Self.headerValue(done, "location") == "/stats;st=DONE;up?scope=app")
        let state = try f.run.ask("show servers state app")
        let admin = state.split(separator: "\n").dropFirst(2).map { $0.split(separator: " ").map(String.init) }
            .reduce(into: [String: String]()) { $0[$1[3]] = $1[6] }
        #expect(admin["s1"] == "1" && admin["s3"] == "1" && admin["s2"] == "0")
        let page = Self.body(try f.get("/stats;st=DONE"))
        #expect(page.contains("<tr class=\"maintain\"><td class=\"pick\"><input type=\"checkbox\" name=\"s\" value=\"s1\">"))
        #expect(page.contains("class=\"banner ok\""))
        // Outcomes: some names unknown, none known, nothing asked, a bad action, a bad backend.
        let cases: [(String, String)] = [
            ("s=s1&s=nosuch&action=ready&b=app", "PART"), ("s=nosuch&action=ready&b=app", "ERRP"),
            ("action=ready&b=app", "NONE"), ("s=s1&action=explode&b=app", "ERRP"), ("s=s1&action=ready&b=nosuch", "ERRP"),
            ("s=s1&action=arunn&b=app", "NONE"),
        ]
        for (body, outcome) in cases {
            let answer = try f.get("/stats", method: "POST", body: body)
            #expect(Self.headerValue(answer, "location") == "/stats;st=\(outcome)", "\(body)")
        }
        #expect(try statCell(try f.run.ask("show stat"), "app", "s1", "status") != "MAINT")
        // Without `stats admin`, posts are refused and change nothing.
        let denied = try f.get("/haproxy?stats", auth: false, port: f.ports[3], method: "POST", body: "s=s1&action=maint&b=app")
        #expect(Self.headerValue(denied, "location") == "/haproxy?stats;st=DENY")
        #expect(try statCell(try f.run.ask("show stat"), "app", "s1", "status") != "MAINT")
    }

    @Test func prometheusExporterServesHAProxysFamilies() throws {
        let f = try Fixture()
        defer { f.stop() }
        for _ in 0..<3 { _ = try exchange(f.ports[1], "GET /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n") }
        let raw = try exchange(f.ports[2], "GET /metrics HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        #expect(raw.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(Self.headerValue(raw, "content-type") == "text/plain; version=0.0.4")
        #expect(Self.headerValue(raw, "transfer-encoding") == "chunked")
        let text = Self.body(raw)
        #expect(text.hasPrefix("# HELP haproxy_process_nbthread "))
        #expect(text.contains("haproxy_frontend_http_requests_total{proxy=\"web\"} 3\n"))
        #expect(text.contains("haproxy_server_status{proxy=\"app\",server=\"s1\",state=\"UP\"} 1\n"))
        #expect(text.contains("haproxy_server_status{proxy=\"app\",server=\"s2\",state=\"DOWN\"} 1\n"))
        #expect(text.contains("haproxy_server_check_status{proxy=\"app\",server=\"s2\",state=\"L4CON\"} 1\n"))
        #expect(text.contains("haproxy_backend_agg_server_status{proxy=\"app\",state=\"UP\"} 2\n"))
        #expect(text.contains("haproxy_server_limit_sessions{proxy=\"app\",server=\"s1\"} NaN\n"))
        // Scopes and filters.
        let servers = Self.body(try exchange(f.ports[2], "GET /metrics?scope=server HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
        #expect(servers.hasPrefix("# HELP haproxy_server_") && !servers.contains("haproxy_frontend_"))
        let none = try exchange(f.ports[2], "GET /metrics?scope= HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        #expect(none.hasSuffix("\r\n\r\n0\r\n\r\n"))
        let bad = try exchange(f.ports[2], "GET /metrics?scope=bogus HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        #expect(bad.hasPrefix("HTTP/1.1 400"))
        _ = try f.run.ask("disable server app/s3")
        let noMaint = Self.body(try exchange(f.ports[2], "GET /metrics?scope=server&no-maint HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
        #expect(!noMaint.contains("server=\"s3\"") && noMaint.contains("server=\"s1\""))
        // HTTP/1.0: the text up to the close, no chunks.
        let old = try exchange(f.ports[2], "GET /metrics?scope=global HTTP/1.0\r\n\r\n")
        #expect(Self.headerValue(old, "transfer-encoding") == nil && Self.body(old).contains("haproxy_process_build_info{version="))
        // What Prometheus' own linter says (`make test-deps` fetches promtool).
        let promtool = try #require(PromTool.path, "promtool not found: run make test-deps")
        let dir = try TempDir()
        let file = try dir.write("metrics.txt", text)
        let result = try run("/bin/sh", ["-c", "\(promtool) check metrics < \(file)"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
    }

    @Test func exporterKeepsTheConnectionAndSurvivesAHalfClose() throws {
        let f = try Fixture()
        defer { f.stop() }
        // Keep-alive: two scrapes on one connection.
        let client = try RawClient(port: f.ports[2])
        try client.send("GET /metrics?scope=backend HTTP/1.1\r\nHost: h\r\n\r\nGET /metrics?scope=frontend HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let both = String(decoding: client.readToEnd(), as: UTF8.self)
        #expect(both.components(separatedBy: "HTTP/1.1 200 OK").count == 3)
        #expect(both.contains("haproxy_backend_status{") && both.contains("haproxy_frontend_status{"))
        // A client that half-closes after its request still gets the whole answer.
        let half = try RawClient(port: f.ports[2])
        try half.send("GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n")
        half.shutdownWrite()
        let answer = String(decoding: half.readToEnd(), as: UTF8.self)
        #expect(answer.hasSuffix("\r\n0\r\n\r\n") && answer.contains("haproxy_server_uweight"))
    }
}

/// Prometheus' `promtool`: on the PATH, or where `make test-deps` puts it.
enum PromTool {
    static var path: String? {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let local = root.appendingPathComponent(".build/tools/promtool").path
        if FileManager.default.isExecutableFile(atPath: local) { return local }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(dir)/promtool"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}

/// The same configuration and requests through Debian's haproxy and hasp: the exporter's
/// families, types and label sets, the values that do not depend on timing, and the outcome of
/// the same admin forms.
@Suite(.serialized) struct StatsDifferentialTests {
    static let available = FileManager.default.fileExists(atPath: RulesDifferentialTests.haproxy)

    /// Family name -> TYPE, and the sample lines of the families whose values are exact.
    static func scrape(_ binary: String) throws -> (types: [String: String], labels: Set<String>, exact: [String]) {
        let f = try StatsPageTests.Fixture(binary)
        defer { f.stop() }
        for _ in 0..<3 { _ = try exchange(f.ports[1], "GET /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n") }
        try eventually("the requests to be counted") {
            try statCell(try f.run.ask("show stat"), "web", "FRONTEND", "hrsp_2xx") == "3"
        }
        let text = StatsPageTests.body(try exchange(f.ports[2], "GET /metrics HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
        var types: [String: String] = [:]
        var labels = Set<String>()
        var exact: [String] = []
        let exactFamilies = ["haproxy_server_status", "haproxy_backend_status", "haproxy_frontend_status", "haproxy_server_check_status",
                             "haproxy_backend_agg_server_status", "haproxy_backend_agg_check_status", "haproxy_server_weight",
                             "haproxy_server_uweight", "haproxy_backend_active_servers", "haproxy_backend_backup_servers",
                             "haproxy_frontend_http_responses_total", "haproxy_server_limit_sessions", "haproxy_server_queue_limit"]
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                types[String(parts[2])] = String(parts[3])
            } else if !line.hasPrefix("#") {
                let sample = line.split(separator: " ")[0]
                let name = String(sample.prefix { $0 != "{" })
                if name == "haproxy_process_build_info" { continue }
                labels.insert(String(sample))
                // HAProxy counts a 4xx for a connection closed before its first request (the
                // readiness probes); Hasp counts no response it did not send.
                if exactFamilies.contains(name), !sample.contains("proxy=\"prom\""), !sample.contains("proxy=\"stats\""),
                   !sample.contains("code=\"4xx\"") {
                    exact.append(String(line))
                }
            }
        }
        return (types, labels, exact)
    }

    @Test(.enabled(if: StatsDifferentialTests.available, "needs Debian's haproxy"))
    func exporterMatchesHAProxy() throws {
        let theirs = try Self.scrape(RulesDifferentialTests.haproxy)
        let ours = try Self.scrape(HaspBinary.path)
        #expect(theirs.types.count > 150)
        // Hasp declares this one a gauge: HAProxy's counter lacks the `_total` suffix promtool asks for.
        var expected = theirs.types
        expected["haproxy_process_failed_resolutions"] = "gauge"
        #expect(ours.types == expected, "families only in haproxy: \(Set(expected.keys).subtracting(ours.types.keys).sorted()); only in hasp: \(Set(ours.types.keys).subtracting(expected.keys).sorted())")
        #expect(ours.labels == theirs.labels, "only in haproxy: \(theirs.labels.subtracting(ours.labels).sorted().prefix(20)); only in hasp: \(ours.labels.subtracting(theirs.labels).sorted().prefix(20))")
        #expect(ours.exact == theirs.exact, "haproxy:\n\(theirs.exact.joined(separator: "\n"))\nhasp:\n\(ours.exact.joined(separator: "\n"))")
    }

    @Test(.enabled(if: StatsDifferentialTests.available, "needs Debian's haproxy"))
    func adminOutcomesMatchHAProxy() throws {
        let bodies = ["s=s3&action=drain&b=app", "s=s3&action=ready&b=app", "s=s1&s=nosuch&action=maint&b=app",
                      "s=nosuch&action=ready&b=app", "action=ready&b=app", "s=s1&action=explode&b=app", "s=s1&action=ready&b=nosuch",
                      "s=s1&action=arunn&b=app", "s=s1&action=ready&b=app", "s=s2&action=hdown&b=app", ""]
        func outcomes(_ binary: String) throws -> [String] {
            let f = try StatsPageTests.Fixture(binary)
            defer { f.stop() }
            var out: [String] = []
            for body in bodies {
                let answer = try f.get("/stats;norefresh", method: "POST", body: body)
                out.append("\(answer.components(separatedBy: "\r\n")[0]) \(StatsPageTests.headerValue(answer, "location") ?? "-")")
                out += try f.run.serverStates("app").map { String($0.split(separator: " ").prefix(3).joined(separator: " ")) }
            }
            out.append(StatsPageTests.headerValue(try f.get("/stats", auth: false), "www-authenticate") ?? "-")
            return out
        }
        let theirs = try outcomes(RulesDifferentialTests.haproxy), ours = try outcomes(HaspBinary.path)
        #expect(theirs.first == "HTTP/1.1 303 See Other /stats;st=DONE;norefresh")
        #expect(ours == theirs, "haproxy:\n\(theirs.joined(separator: "\n"))\nhasp:\n\(ours.joined(separator: "\n"))")
    }
}
