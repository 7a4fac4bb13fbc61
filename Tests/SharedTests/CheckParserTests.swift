import Testing
@testable import Shared

@Suite struct CheckParserTests {
    func backend(_ r: ConfigParser.Result, _ name: String = "be") -> ProxySettings? {
        r.configuration.proxies.first { $0.name == name }
    }

    @Test func serverCheckKeywords() throws {
        let r = parse("""
        backend be
            server a 127.0.0.1:80 check inter 1s fastinter 200ms downinter 5s rise 3 fall 2 port 8080 addr 127.0.0.2 slowstart 10s observe layer7 error-limit 5 on-error mark-down on-marked-down shutdown-sessions on-marked-up shutdown-backup-sessions agent-check agent-port 9999 agent-inter 3s agent-send "hello\\n" check-send-proxy
        """)
        #expect(alerts(r).isEmpty)
        let s = try #require(backend(r)?.servers.first)
        #expect(s.check && s.interMs == 1000 && s.rise == 3 && s.fall == 2)
        let c = s.checks
        #expect(c.fastinterMs == 200 && c.downinterMs == 5000 && c.port == 8080 && c.address == "127.0.0.2")
        #expect(c.slowstartMs == 10_000 && c.observe == .layer7 && c.errorLimit == 5 && c.onError == .markDown)
        #expect(c.shutdownSessionsOnDown && c.shutdownBackupSessionsOnUp && c.sendProxy)
        #expect(c.agent && c.agentPort == 9999 && c.agentInterMs == 3000 && c.agentSend == "hello\n")
    }

    @Test func badServerCheckValuesNameTheLine() {
        #expect(alerts(parse("backend be\n    server a 127.0.0.1:80 observe layer9\n")) ==
                ["config : [t.cfg:2] : 'server be/a' : 'observe' expects one of 'none', 'layer4', 'layer7' but got 'layer9'.",
                 "config : Error(s) found in configuration file : t.cfg", "config : Fatal errors found in configuration."])
        #expect(alerts(parse("backend be\n    server a 127.0.0.1:80 on-error explode\n")).first?.contains("'on-error' expects one of 'fastinter', 'fail-check', 'sudden-death' or 'mark-down' but got 'explode'.") == true)
        #expect(alerts(parse("backend be\n    server a 127.0.0.1:80 check agent-check\n")).first?.contains("agent-check enabled but no agent-port configured") == true)
        #expect(alerts(parse("backend be\n    server a 127.0.0.1:80 port 70000\n")).first?.contains("invalid value '70000' for 'port'") == true)
    }

    @Test func httpchkOptionForms() throws {
        let plain = try #require(backend(parse("backend be\n    option httpchk\n")))
        #expect(plain.checks.kind == .http)
        #expect(String(decoding: HTTPCheckRequest().completed(by: plain.checks.httpRequest).bytes, as: UTF8.self) == "OPTIONS / HTTP/1.0\r\n\r\n")
        let uri = try #require(backend(parse("backend be\n    option httpchk /health\n")))
        #expect(uri.checks.httpRequest.uri == "/health" && uri.checks.httpRequest.method == nil)
        let full = try #require(backend(parse("backend be\n    option httpchk GET /up HTTP/1.1\\r\\nHost:\\ example.org\n")))
        let request = full.checks.httpRequest
        #expect(request.method == "GET" && request.uri == "/up" && request.version == "HTTP/1.1")
        #expect(request.headers == [HTTPCheckHeader(name: "Host", value: "example.org")])
        #expect(String(decoding: request.bytes, as: UTF8.self) == "GET /up HTTP/1.1\r\nHost: example.org\r\ncontent-length: 0\r\n\r\n")
    }

    @Test func httpCheckRulesCompleteTheOption() throws {
        let p = try #require(backend(parse("""
        backend be
            option httpchk GET /
            http-check send meth HEAD uri /ping ver HTTP/1.1 hdr Host www
            http-check expect status 200-299,304
        """)))
        let steps = p.checks.steps
        #expect(steps.count == 3)
        guard case .httpSend(let request) = steps[1], case .expect(let e) = steps[2] else {
            Issue.record("unexpected steps \(steps)")
            return
        }
        #expect(request.method == "HEAD" && request.uri == "/ping" && request.headers.map(\.name) == ["Host"])
        #expect(e.match == .status([200...299, 304...304]))
    }

    @Test func httpCheckDefaultsToTwoOrThreeHundreds() {
        let p = backend(parse("backend be\n    option httpchk\n"))
        #expect(p?.checks.steps.last == .expect(CheckExpectation(match: .status([200...399]), label: "expect status 200-399")))
    }

    @Test func tcpCheckSequence() throws {
        let p = try #require(backend(parse("""
        backend be
            option tcp-check
            tcp-check connect port 6379
            tcp-check send PING\\r\\n
            tcp-check expect string +PONG
            tcp-check send-binary 50494e47
            tcp-check expect ! rstring ^-ERR
        """)))
        #expect(p.checks.kind == .tcpCheck)
        let steps = p.checks.steps
        #expect(steps.count == 5)
        #expect(steps[0] == .connect(port: 6379, address: nil, sendProxy: false))
        #expect(steps[1] == .send(Array("PING\r\n".utf8)))
        #expect(steps[3] == .send(Array("PING".utf8)))
        if case .expect(let e) = steps[4] { #expect(e.negated && e.match == .stringPattern("^-ERR")) } else { Issue.record("no expect") }
    }

    @Test func checkRulesFromDefaultsAreReplacedByTheProxysOwn() throws {
        let r = parse("""
        defaults
            option tcp-check
            tcp-check send A
        backend inherits
        backend own
            tcp-check send B
        """)
        #expect(backend(r, "inherits")?.checks.tcpSteps == [.send([65])])
        #expect(backend(r, "own")?.checks.tcpSteps == [.send([66])])
    }

    @Test func badCheckRules() {
        #expect(alerts(parse("backend be\n    http-check expect status abc\n")).first?.contains("invalid status range 'abc'") == true)
        #expect(alerts(parse("backend be\n    tcp-check expect rstring (\n")).first?.contains("invalid regex '('") == true)
        #expect(alerts(parse("backend be\n    tcp-check send-binary 4G\n")).first?.contains("is not a valid hexadecimal string") == true)
        #expect(alerts(parse("backend be\n    tcp-check frobnicate\n")).first?.contains("unknown check rule 'frobnicate'") == true)
    }

    @Test func trackingIsCrossChecked() {
        #expect(alerts(parse("backend be\n    server a 127.0.0.1:80\n    server b 127.0.0.1:81 track a\n")).first ==
                "config : backend 'be', server 'b': unable to use be/a for tracking as it does not have any check nor agent enabled.")
        #expect(alerts(parse("backend be\n    server b 127.0.0.1:81 track nope/a\n")).first ==
                "config : backend 'be', server 'b': unable to find required proxy 'nope' for tracking.")
        #expect(alerts(parse("backend be\n    server b 127.0.0.1:81 track zz\n")).first ==
                "config : backend 'be', server 'b': unable to find required server 'zz' for tracking.")
        #expect(alerts(parse("backend be\n    server a 127.0.0.1:80 check\n    server b 127.0.0.1:81 track a\n    server c 127.0.0.1:82 track b\n")).isEmpty)
    }

    @Test func spreadChecksAndOptions() {
        let r = parse("global\n    spread-checks 5\nbackend be\n    option allbackups\n    option log-health-checks\n")
        #expect(r.configuration.global.spreadChecks == 5)
        #expect(backend(r)?.options.allBackups == true && backend(r)?.options.logHealthChecks == true)
        #expect(alerts(parse("global\n    spread-checks 80\n")).first?.contains("'spread-checks' needs a positive value in range 0..50.") == true)
        #expect(warnings(parse("backend be\n    option mysql-check\n")).first?.contains("is not supported by Hasp yet") == true)
    }

    @Test func errorfileArguments() {
        #expect(alerts(parse("backend be\n    errorfile 503\n")).first == "config : parsing [t.cfg:2] : errorfile : expects <status_code> and <file> as arguments.")
        #expect(alerts(parse("backend be\n    errorfile 503 /a /b\n")).first == "config : parsing [t.cfg:2] : errorfile : expects exactly two arguments.")
        #expect(alerts(parse("backend be\n    errorfile 999 /etc/hostname\n")).first == "config : parsing [t.cfg:2] : errorfile : status code '999' not handled.")
        #expect(alerts(parse("backend be\n    errorfile 503 /nonexistent/503.http\n")).first == "config : parsing [t.cfg:2] : errorfile : error opening file '/nonexistent/503.http'.")
    }
}
