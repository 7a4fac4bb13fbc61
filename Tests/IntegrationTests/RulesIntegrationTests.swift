import Foundation
import Shared
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One answer as the tests compare it: status line, the headers asked for, the body.
struct Answer: Equatable, CustomStringConvertible {
    var status: String
    var headers: [String: String]
    var body: String

    /// Parses a raw HTTP/1.1 response, keeping the headers named in `keep` (lowercased).
    init(_ raw: String, keep: [String]) {
        let parts = raw.components(separatedBy: "\r\n\r\n")
        let lines = parts[0].components(separatedBy: "\r\n")
        status = lines.first ?? ""
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            guard keep.contains(name) else { continue }
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            headers[name] = headers[name].map { $0 + ", " + value } ?? value
        }
        self.headers = headers
        body = parts.dropFirst().joined(separator: "\r\n\r\n")
    }

    var description: String { "\(status) \(headers.sorted { $0.key < $1.key }) \(body.debugDescription)" }
}

/// Sends one request on a fresh connection and reads the whole answer (`Connection: close`).
func exchange(_ port: Int, _ request: String) throws -> String {
    let client = try RawClient(port: port)
    try client.send(request)
    return String(decoding: client.readToEnd(), as: UTF8.self)
}

/// Configurations in the style of real ones: routing by host, path and map, redirects, deny
/// lists, header rewriting both ways, basic auth. What the client gets and what the backend
/// receives are checked.
@Suite(.serialized) struct RulesIntegrationTests {
    static let sha512 = "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1"

    /// The same configuration serves the integration test and the differential one.
    static func config(port: Int, app: Int, api: Int, statics: Int, dir: String, socket: String? = nil) -> String {
        """
        global
        \(socket.map { "    stats socket \($0) level admin" } ?? "")
        defaults
            mode http
            timeout connect 2s
            timeout client 5s
            timeout server 5s
            timeout tarpit 200ms
        userlist admins
            group ops
            user admin insecure-password s3cret
            user ops password \(sha512) groups ops
        frontend www
            bind 127.0.0.1:\(port)
            monitor-uri /healthz
            acl host_api hdr(host) -i api.example.com
            acl is_static path_beg /static /images
            acl is_static path_end .css .js
            acl bad_agent hdr_sub(user-agent) -i -f \(dir)/bad-agents.lst
            acl admin_ok http_auth(admins)
            http-request deny if bad_agent
            http-request redirect scheme https code 301 if { path /login } !{ ssl_fc }
            http-request redirect prefix /v2 drop-query if { path_beg /v1/ }
            http-request deny deny_status 429 if { path_beg /limited }
            http-request auth realm Admin if { path_beg /admin } !admin_ok
            http-request return status 200 content-type text/plain lf-string "pong from %[fe_name] for %[path]\\n" if { path /ping }
            http-request tarpit if { path /tarpit }
            http-request set-header X-Client %[src]
            http-request add-header X-Path %[path]
            http-request del-header X-Remove
            http-request replace-header X-Token ^Bearer\\ (.*)$ token=\\1
            http-request replace-path ^/old/(.*) /echo/\\1
            http-request set-var(txn.host) hdr(host),lower
            http-request set-query q=1 if { path /echo/query }
            http-response set-header X-Host-Seen %[var(txn.host)]
            http-response replace-header X-Backend (.*) be-\\1
            http-response set-status 202 if { status 200 } { var(txn.host) -m str accepted.example.com }
            http-after-response set-header X-After %[status]
            use_backend api if host_api
            use_backend static if is_static
            use_backend %[req.hdr(x-pool),lower,map(\(dir)/pools.map)] if { req.hdr(x-pool) -m found }
            default_backend app
        backend app
            server a 127.0.0.1:\(app)
        backend api
            server a 127.0.0.1:\(api)
        backend static
            server a 127.0.0.1:\(statics)

        """
    }

    static func writeFiles(_ dir: TempDir) throws {
        _ = try dir.write("bad-agents.lst", "# scanners\nsqlmap\nNikto\n")
        _ = try dir.write("pools.map", "blue api\ngreen static\n")
    }

    /// The requests both proxies get, and the headers compared.
    static let requests: [String] = [
        "GET /echo/plain HTTP/1.1\r\nHost: www.example.com\r\nX-Remove: yes\r\nX-Token: Bearer abc\r\nConnection: close\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: API.example.com\r\nConnection: close\r\n\r\n",
        "GET /static/logo.png HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: www.example.com\r\nX-Pool: Blue\r\nConnection: close\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: www.example.com\r\nX-Pool: GREEN\r\nConnection: close\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: www.example.com\r\nX-Pool: none\r\nConnection: close\r\n\r\n",
        "GET /login?next=/x HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
        "GET /v1/users?id=3 HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
        "GET /limited/x HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
        "GET /admin HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
        "GET /admin HTTP/1.1\r\nHost: www.example.com\r\nAuthorization: Basic YWRtaW46czNjcmV0\r\nConnection: close\r\n\r\n",
        "GET /admin HTTP/1.1\r\nHost: www.example.com\r\nAuthorization: Basic b3BzOnMzY3JldA==\r\nConnection: close\r\n\r\n",
        "GET /admin HTTP/1.1\r\nHost: www.example.com\r\nAuthorization: Basic b3BzOndyb25n\r\nConnection: close\r\n\r\n",
        "GET /ping HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
        "HEAD /ping HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
        "GET /old/rewritten?x=1 HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
        "GET /echo/query?a=b HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: SQLMap/1.0\r\nConnection: close\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: accepted.example.com\r\nConnection: close\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
        "GET /tarpit HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
    ]
    static let compared = ["location", "x-backend", "x-host-seen", "x-after", "www-authenticate", "content-type",
                           "content-length", "cache-control", "set-cookie"]

    @Test func routingRewritingAndLocalAnswers() throws {
        let app = try TestBackend(name: "app"), api = try TestBackend(name: "api"), statics = try TestBackend(name: "static")
        defer { for b in [app, api, statics] { b.stop() } }
        let port = try Ports.free()
        let dir = try TempDir()
        try Self.writeFiles(dir)
        let hasp = try Hasp(config: Self.config(port: port, app: app.port, api: api.port, statics: statics.port, dir: dir.url.path),
                            waitFor: [port])
        defer { hasp.stop() }
        func get(_ i: Int) throws -> Answer { Answer(try exchange(port, Self.requests[i]), keep: Self.compared) }

        // What the backend received: the rewritten request.
        let echoed = try get(0)
        #expect(echoed.status == "HTTP/1.1 200 OK")
        #expect(echoed.body.hasPrefix("GET /echo/plain\n"))
        #expect(echoed.body.contains("x-client: 127.0.0.1"))
        #expect(echoed.body.contains("x-path: /echo/plain"))
        #expect(echoed.body.contains("x-token: token=abc"))
        #expect(!echoed.body.contains("x-remove"))
        #expect(echoed.headers["x-backend"] == "be-app")
        #expect(echoed.headers["x-host-seen"] == "www.example.com")
        #expect(echoed.headers["x-after"] == "200")

        #expect(try get(1).headers["x-backend"] == "be-api")
        #expect(try get(2).headers["x-backend"] == "be-static")
        #expect(try get(3).headers["x-backend"] == "be-api")
        #expect(try get(4).headers["x-backend"] == "be-static")
        #expect(try get(5).headers["x-backend"] == "be-app")

        let https = try get(6)
        #expect(https.status == "HTTP/1.1 301 Moved Permanently")
        #expect(https.headers["location"] == "https://www.example.com/login?next=/x")
        let prefix = try get(7)
        #expect(prefix.status == "HTTP/1.1 302 Found" && prefix.headers["location"] == "/v2/v1/users")
        let limited = try get(8)
        #expect(limited.status == "HTTP/1.1 429 Too Many Requests" && limited.headers["x-after"] == "429")
        #expect(limited.body.contains("You have sent too many requests"))
        let challenge = try get(9)
        #expect(challenge.status == "HTTP/1.1 401 Unauthorized" && challenge.headers["www-authenticate"] == "Basic realm=\"Admin\"")
        #expect(try get(10).headers["x-backend"] == "be-app")
        #expect(try get(11).headers["x-backend"] == "be-app")
        #expect(try get(12).status == "HTTP/1.1 401 Unauthorized")
        let pong = try get(13)
        #expect(pong.status == "HTTP/1.1 200 OK" && pong.body == "pong from www for /ping\n" && pong.headers["content-type"] == "text/plain")
        #expect(try get(14).body == "")
        #expect(try get(15).body.hasPrefix("GET /echo/rewritten?x=1\n"))
        #expect(try get(16).body.hasPrefix("GET /echo/query?q=1\n"))
        #expect(try get(17).status == "HTTP/1.1 403 Forbidden")
        #expect(try get(18).status == "HTTP/1.1 202 Accepted")
        #expect(try get(19).status == "HTTP/1.1 200 OK")
        let start = Date()
        let tarpitted = try get(20)
        #expect(tarpitted.status == "HTTP/1.1 500 Internal Server Error")
        #expect(Date().timeIntervalSince(start) >= 0.19)
        // Denied and tarpitted requests never reached a backend.
        #expect(app.requests.load(ordering: .relaxed) + api.requests.load(ordering: .relaxed)
            + statics.requests.load(ordering: .relaxed) == 11)
    }

    @Test func keepAliveSurvivesLocalAnswers() throws {
        let app = try TestBackend(name: "app")
        defer { app.stop() }
        let port = try Ports.free()
        let dir = try TempDir()
        try Self.writeFiles(dir)
        let hasp = try Hasp(config: Self.config(port: port, app: app.port, api: app.port, statics: app.port, dir: dir.url.path),
                            waitFor: [port])
        defer { hasp.stop() }
        let client = try RawClient(port: port)
        for path in ["/ping", "/limited", "/hello", "/v1/x", "/hello"] {
            try client.send("GET \(path) HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
            let response = try client.readResponses(1)[0]
            #expect(!response.lowercased().contains("connection: close"), "\(path): \(response)")
        }
        #expect(app.requests.load(ordering: .relaxed) == 2)
    }

    @Test func badRulesAreRefusedAtLoadWithFileAndLine() throws {
        let dir = try TempDir()
        let path = try dir.write("bad.cfg", """
        frontend f
            mode http
            bind 127.0.0.1:0
            acl a path_reg (abc
            http-request deny if nosuch

        """)
        let result = try run(HaspBinary.path, ["-c", "-f", path])
        #expect(result.status == 1)
        #expect(result.stderr.contains("parsing [\(path):4] : error detected while parsing ACL 'a' : regex '(abc' is invalid (error=missing closing parenthesis, erroffset=4)."))
        #expect(result.stderr.contains("parsing [\(path):5] : error detected while parsing an 'http-request deny' condition : no such ACL : 'nosuch'."))
    }

    @Test func tcpModeRoutesOnTheTLSServerName() throws {
        // SNI routing without terminating TLS: the ClientHello is inspected, then relayed.
        let a = try RawServer { fd in
            var buffer = [UInt8](repeating: 0, count: 4096)
            _ = recv(fd, &buffer, buffer.count, 0)
            try? sendAll(fd, Array("backend-a".utf8))
        }
        let b = try RawServer { fd in
            var buffer = [UInt8](repeating: 0, count: 4096)
            _ = recv(fd, &buffer, buffer.count, 0)
            try? sendAll(fd, Array("backend-b".utf8))
        }
        defer { a.stop(); b.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: """
        defaults
            mode tcp
            timeout connect 2s
            timeout client 5s
            timeout server 5s
        frontend tls
            bind 127.0.0.1:\(port)
            tcp-request inspect-delay 2s
            tcp-request content reject if { src 192.0.2.1 }
            tcp-request content accept if { req_ssl_hello_type 1 }
            use_backend b if { req.ssl_sni -i b.example.com }
            default_backend a
        backend a
            server a 127.0.0.1:\(a.port)
        backend b
            server b 127.0.0.1:\(b.port)

        """, waitFor: [port])
        defer { hasp.stop() }
        for (name, expected) in [("b.example.com", "backend-b"), ("other.example.com", "backend-a")] {
            let client = try RawClient(port: port)
            try client.send(TLSHello.clientHello(serverName: name))
            #expect(String(decoding: client.readToEnd(), as: UTF8.self) == expected)
        }
    }

    @Test func declaredCapturesAreReadByFetches() throws {
        let app = try TestBackend(name: "app")
        defer { app.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: httpConfig(port: port, servers: [("a", app.port)], frontendExtra: """
            capture request header User-Agent len 5
            capture request header Host len 32
            http-request capture req.hdr(x-id) len 8
            capture response header X-Backend len 16
            http-request set-header X-Seen "%[capture.req.hdr(0)]|%[capture.req.hdr(1)]|%[capture.req.hdr(2)]"
            http-response set-header X-Resp "%[capture.res.hdr(0)]"
        """), waitFor: [port])
        defer { hasp.stop() }
        let answer = try exchange(port, "GET /echo/c HTTP/1.1\r\nHost: example\r\nUser-Agent: curl/8.0\r\nX-Id: 1234567890\r\nConnection: close\r\n\r\n")
        #expect(answer.contains("x-seen: curl/|example|12345678"), "\(answer)")
        #expect(Answer(answer, keep: ["x-resp"]).headers["x-resp"] == "app")
    }

    @Test func forwardforExceptAndIfNone() throws {
        let app = try TestBackend(name: "app")
        defer { app.stop() }
        let port = try Ports.free(), port2 = try Ports.free()
        let hasp = try Hasp(config: """
        defaults
            mode http
            timeout connect 2s
            timeout client 5s
            timeout server 5s
        frontend local
            bind 127.0.0.1:\(port)
            option forwardfor except 127.0.0.0/8
            option originalto except 127.0.0.0/8
            default_backend app
        frontend ifnone
            bind 127.0.0.1:\(port2)
            option forwardfor if-none
            option originalto header X-Dst
            default_backend app
        backend app
            server a 127.0.0.1:\(app.port)

        """, waitFor: [port, port2])
        defer { hasp.stop() }
        let excepted = try exchange(port, "GET /echo/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        #expect(excepted.contains("GET /echo/x") && !excepted.contains("x-forwarded-for") && !excepted.contains("x-original-to"))
        let kept = try exchange(port2, "GET /echo/x HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 192.0.2.7\r\nConnection: close\r\n\r\n")
        #expect(kept.components(separatedBy: "x-forwarded-for").count == 2 && kept.contains("x-forwarded-for: 192.0.2.7"))
        let added = try exchange(port2, "GET /echo/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        #expect(added.contains("x-forwarded-for: 127.0.0.1") && added.contains("x-dst: 127.0.0.1"))
    }

    @Test func tcpConnectionRulesRejectBeforeAnyByte() throws {
        let app = try TestBackend(name: "app")
        defer { app.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: httpConfig(port: port, servers: [("a", app.port)],
                                               frontendExtra: "    tcp-request connection reject if { src 127.0.0.1 }"),
                            waitFor: [port])
        defer { hasp.stop() }
        let client = try RawClient(port: port)
        try? client.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(client.readToEnd().isEmpty)
        #expect(app.requests.load(ordering: .relaxed) == 0)
    }
}

/// The same configuration and requests through Debian's haproxy and through hasp: the answers
/// must be the same (status line, the compared headers, body).
@Suite(.serialized) struct RulesDifferentialTests {
    static let haproxy = "/usr/sbin/haproxy"
    static let available = FileManager.default.fileExists(atPath: haproxy)

    /// What haproxy and hasp answer to `requests` (each on a new connection), keeping the
    /// headers named in `keep`; `sections` writes the configuration after the shared preamble
    /// from the proxy's port and the test backend's.
    static func bothAnswer(global: [String] = [], keep: [String], requests: [String],
                           sections: (_ port: Int, _ backend: Int) -> String) throws -> (theirs: [Answer], ours: [Answer]) {
        let app = try TestBackend(name: "app")
        defer { app.stop() }
        func answers(_ binary: String) throws -> [Answer] {
            let run = try ProxyRun(binary) { port, socket in preamble(socket, global: global) + "\n" + sections(port, app.port) }
            defer { run.stop() }
            return try requests.map { Answer(try exchange(run.port, $0), keep: keep) }
        }
        return (try answers(haproxy), try answers(HaspBinary.path))
    }

    /// The global and defaults sections the comparisons share: a stats socket (how `ProxyRun`
    /// knows the proxy is up), HTTP mode, short timeouts.
    static func preamble(_ socket: String, global: [String] = []) -> String {
        (["global", "    stats socket \(socket) level admin"] + global.map { "    " + $0 }
            + ["defaults", "    mode http", "    timeout client 2s", "    timeout server 2s", "    timeout connect 2s"])
            .joined(separator: "\n")
    }

    @Test(.enabled(if: RulesDifferentialTests.available, "needs Debian's haproxy"))
    func answersMatchHAProxy() throws {
        let app = try TestBackend(name: "app"), api = try TestBackend(name: "api"), statics = try TestBackend(name: "static")
        defer { for b in [app, api, statics] { b.stop() } }
        let dir = try TempDir()
        try RulesIntegrationTests.writeFiles(dir)
        func answers(_ binary: String) throws -> [Answer] {
            let run = try ProxyRun(binary) { port, socket in
                RulesIntegrationTests.config(port: port, app: app.port, api: api.port, statics: statics.port, dir: dir.url.path,
                                             socket: socket)
            }
            defer { run.stop() }
            let port = run.port
            return try RulesIntegrationTests.requests.map { Answer(try exchange(port, $0), keep: RulesIntegrationTests.compared) }
        }
        let theirs = try answers(Self.haproxy)
        let ours = try answers(HaspBinary.path)
        // Both really served: every request answered, the routed ones by the right backend.
        #expect(theirs.count == RulesIntegrationTests.requests.count && ours.count == theirs.count)
        #expect(theirs[1].headers["x-backend"] == "be-api" && theirs[6].status.contains("301"))
        for (index, (a, b)) in zip(theirs, ours).enumerated() {
            #expect(a == b, "request \(index): \(RulesIntegrationTests.requests[index].debugDescription)\nhaproxy: \(a)\nhasp:    \(b)")
        }
    }
}

extension RulesDifferentialTests {
    /// `hdr()` and `cookie()` read the request in request rules and the response in response
    /// rules, the same ACL included.
    @Test(.enabled(if: RulesDifferentialTests.available, "needs Debian's haproxy"))
    func hdrAndCookieReadTheMessageOfTheRulesDirection() throws {
        let app = try TestBackend(name: "app")
        defer { app.stop() }
        func answers(_ binary: String) throws -> [Answer] {
            let run = try ProxyRun(binary) { port, socket in
                """
                \(Self.preamble(socket))
                frontend f
                    bind 127.0.0.1:\(port)
                    acl has_backend_header hdr(x-backend) -m found
                    acl app_answered hdr(x-backend) -m str app
                    http-request set-var(txn.req_b) str(yes) if has_backend_header
                    http-request set-var(txn.req_sid) cookie(sid)
                    http-response set-header X-Resp-B %[hdr(x-backend)] if has_backend_header
                    http-response set-header X-Req-B %[var(txn.req_b)]
                    http-response set-header X-Sid %[cookie(sid)]
                    http-response set-header X-Req-Sid %[var(txn.req_sid)]
                    http-response set-header X-From-App yes if app_answered
                    http-after-response set-header X-After %[hdr(x-backend)]
                    default_backend b
                backend b
                    http-response add-header set-cookie sid=resp42
                    server s 127.0.0.1:\(app.port)

                """
            }
            defer { run.stop() }
            let port = run.port
            return try ["Cookie: sid=req7\r\n", "X-Backend: client\r\n"].map {
                Answer(try exchange(port, "GET /hello HTTP/1.1\r\nHost: h\r\n\($0)Connection: close\r\n\r\n"),
                       keep: ["x-resp-b", "x-req-b", "x-sid", "x-req-sid", "x-from-app", "x-after", "set-cookie"])
            }
        }
        let theirs = try answers(Self.haproxy), ours = try answers(HaspBinary.path)
        // Samples read the rule's direction; the ACL forms of `hdr` read the request, which
        // response rules no longer have: they never match there (HAProxy warns so).
        #expect(theirs.count == 2 && theirs[0].headers["x-after"] == "app" && theirs[0].headers["x-sid"] == "resp42"
                && theirs[0].headers["x-req-sid"] == "req7" && theirs[1].headers["x-req-b"] == "yes"
                && theirs[1].headers["x-resp-b"] == nil && theirs[1].headers["x-from-app"] == nil, "\(theirs)")
        for (a, b) in zip(theirs, ours) { #expect(a == b, "haproxy: \(a)\nhasp:    \(b)") }
    }

    /// `http-errors` sections, `errorfiles` and `http-error`: the proxy's own pages.
    /// Global `set-var`, the converters and fetches HAProxy's own regression tests use
    /// (digests, HMAC, base64url, be2dec/be2hex, iif, add_item, crc32c, bin), the server a
    /// response came from, a redirect written `code` first and skipped by `ignore-empty`.
    @Test(.enabled(if: RulesDifferentialTests.available, "needs Debian's haproxy"))
    func convertersGlobalVariablesAndServerFetchesMatchHAProxy() throws {
        let samples = [
            "str(abc),crc32c", "str(abc),crc32c(1)", "bin(01020304050607),be2dec(:,2)", "bin(01020304050607),be2dec(-,2,1)",
            "bin(01020304050607),be2hex", "bin(0102030405060708),be2hex(,3,1)", "str(abc),sha1,hex", "str(abc),sha2(384),hex",
            "str(abc),digest(md5),hex", "str(abc),hmac(sha256,a2V5),hex", "str(abc),hmac(sha1,txn.key),base64",
            "str(>>>?),ub64enc", "str(Pj4-Pw),ub64dec", "str(abc),sha1,base64",
            "int(1),iif(yes,no)", "int(0),iif(yes,no)", "str(x),add_item(',',,sfx)", "str(),add_item(',',proc.a,sfx)",
            "var(proc.a)", "var(proc.f)", "str(abc),secure_memcmp(txn.same)", "str(abd),secure_memcmp(txn.same)",
            "var(txn.first)", "var(txn.b)", "fe_id", "be_id", "var(txn.re)",
        ]
        let requests = ["Cookie: a=1; b=2; b=3\r\nX-Re: a12b\r\n", "X-To: /elsewhere\r\n"].map {
            "GET /hello HTTP/1.1\r\nHost: h\r\n\($0)Connection: close\r\n\r\n"
        }
        let (theirs, ours) = try Self.bothAnswer(global: ["set-var proc.a str(A1)", "set-var-fmt proc.f \"v=%[var(proc.a)]\""],
                                                 keep: samples.indices.map { "x-s\($0)" } + ["x-srv", "location"],
                                                 requests: requests) { port, backend in
            """
            frontend f
                bind 127.0.0.1:\(port)
                http-request set-var(txn.key) str(a2V5)
                http-request set-var(txn.same) str(abc)
                http-request set-var(txn.first) req.cook
                http-request set-var(txn.b) req.cook(b)
                http-request set-var(txn.re) hdr(x-re),regsub(\\d+,N)
                http-request redirect code 301 location %[hdr(x-to)] ignore-empty
            \(samples.enumerated().map { "    http-response set-header X-S\($0.offset) \"%[\($0.element)]\"" }.joined(separator: "\n"))
                http-response set-header X-Srv "%[srv_name] %[srv_id]"
                default_backend b
            backend b
                server s 127.0.0.1:\(backend) id 7

            """
        }
        #expect(theirs.count == 2 && theirs[0].headers["x-srv"] == "s 7" && theirs[0].headers["x-s18"] == "A1"
                && theirs[1].status.contains("301") && theirs[1].headers["location"] == "/elsewhere", "\(theirs)")
        for (a, b) in zip(theirs, ours) { #expect(a == b, "haproxy: \(a)\nhasp:    \(b)") }
    }

    /// `option http-restrict-req-hdr-names`: the frontend's `delete`, a backend's `reject`, a
    /// `preserve` backend; what the client gets and what the server receives.
    @Test(.enabled(if: RulesDifferentialTests.available, "needs Debian's haproxy"))
    func restrictedHeaderNamesMatchHAProxy() throws {
        let requests = ["cleaned", "strict", "loose"].map {
            "GET /headers HTTP/1.1\r\nHost: h\r\nX-Route: \($0)\r\nX_Forwarded_For: 6.6.6.6\r\nX-Ok: 1\r\nX.Dot: 2\r\nConnection: close\r\n\r\n"
        }
        let (theirs, ours) = try Self.bothAnswer(keep: ["content-length"], requests: requests) { port, backend in
            """
            frontend f
                bind 127.0.0.1:\(port)
                use_backend strict if { req.hdr(x-route) strict }
                use_backend loose if { req.hdr(x-route) loose }
                default_backend cleaned
            backend cleaned
                option http-restrict-req-hdr-names delete
                server s 127.0.0.1:\(backend)
            backend strict
                option http-restrict-req-hdr-names reject
                server s 127.0.0.1:\(backend)
            backend loose
                server s 127.0.0.1:\(backend)

            """
        }
        #expect(theirs.count == 3 && theirs[1].status.contains("403") && !theirs[0].body.contains("x_forwarded_for")
                && theirs[0].body.contains("x-ok: 1") && theirs[2].body.contains("x_forwarded_for"), "\(theirs)")
        for (a, b) in zip(theirs, ours) { #expect(a == b, "haproxy: \(a)\nhasp:    \(b)") }
    }

    @Test(.enabled(if: RulesDifferentialTests.available, "needs Debian's haproxy"))
    func errorPagesMatchHAProxy() throws {
        let dir = try TempDir()
        let page = try dir.write("403.http", "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 9\r\n\r\nno entry\n")
        func answers(_ binary: String) throws -> [Answer] {
            let run = try ProxyRun(binary) { port, socket in
                """
                global
                    stats socket \(socket) level admin
                http-errors site
                    errorfile 403 \(page)
                defaults
                    mode http
                    timeout client 2s
                    timeout server 2s
                    timeout connect 2s
                frontend f
                    bind 127.0.0.1:\(port)
                    errorfiles site
                    http-error status 429 content-type text/plain string "slow down" hdr x-why limit
                    http-request deny if { path /d }
                    http-request deny deny_status 429 if { path /l }
                    http-request return status 429 default-errorfiles if { path /r }
                    http-request deny deny_status 404 if { path /n }

                """
            }
            defer { run.stop() }
            let port = run.port
            return try ["/d", "/l", "/r", "/n"].map {
                Answer(try exchange(port, "GET \($0) HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
                       keep: ["content-type", "content-length", "x-why", "cache-control"])
            }
        }
        let theirs = try answers(Self.haproxy), ours = try answers(HaspBinary.path)
        #expect(theirs.count == 4 && theirs[0].body == "no entry\n" && theirs[1].body == "slow down")
        for (a, b) in zip(theirs, ours) { #expect(a == b, "haproxy: \(a)\nhasp:    \(b)") }
    }
}

/// A minimal TLS 1.2 ClientHello carrying a server name, enough for SNI inspection.
enum TLSHello {
    static func clientHello(serverName: String) -> [UInt8] {
        let name = Array(serverName.utf8)
        var sni: [UInt8] = [0, 0]  // extension type server_name
        let listLength = name.count + 3
        sni += be16(listLength + 2) + be16(listLength) + [0] + be16(name.count) + name
        var body: [UInt8] = [3, 3] + [UInt8](repeating: 7, count: 32) + [0]  // version, random, no session id
        body += be16(2) + [0x13, 0x01] + [1, 0]  // one cipher suite, null compression
        body += be16(sni.count) + sni
        let handshake: [UInt8] = [1] + [0] + be16(body.count) + body
        return [22, 3, 1] + be16(handshake.count) + handshake
    }

    static func be16(_ n: Int) -> [UInt8] { [UInt8(n >> 8), UInt8(n & 0xff)] }
}
