import Testing
@testable import Shared

/// Parses one in-memory file named `t.cfg` with a fixed environment.
func parse(_ text: String, env: [String: String] = [:]) -> ConfigParser.Result {
    let lexer = LineLexer(environment: { env[$0] })
    let conditions = ConditionEvaluator(isDefined: { env[$0] != nil }, features: ["THREAD"], version: "3.3")
    return ConfigParser.parse([ConfigParser.Source(name: "t.cfg", text: text)], lexer: lexer, conditions: conditions)
}

func alerts(_ r: ConfigParser.Result) -> [String] { r.diagnostics.filter { $0.level == .alert }.map(\.text) }
func warnings(_ r: ConfigParser.Result) -> [String] { r.diagnostics.filter { $0.level == .warning }.map(\.text) }

@Suite struct ParserGoodInputTests {
    static let full = """
    global
        maxconn 2000
        nbthread 2
        pidfile /run/hasp.pid
        daemon
        log /dev/log local0 notice
        stats socket /run/hasp.sock mode 660 level admin expose-fd listeners
        stats timeout 30s
        hard-stop-after 10s
        mworker-max-reloads 5
        master-worker no-exit-on-failure
        user haproxy
        group haproxy
        chroot /var/lib/haproxy
        tune.bufsize 32768
        tune.maxrewrite 2048
        thread-groups 1

    defaults
        mode http
        timeout connect 5s
        timeout client 50s
        timeout server 50000
        timeout http-request 10s
        timeout http-keep-alive 2s
        timeout queue 3s
        timeout tunnel 1h
        timeout client-fin 1s
        timeout server-fin 1s
        timeout check 2s
        retries 2
        option redispatch
        option httplog
        option dontlognull
        option forwardfor
        http-reuse always

    frontend www
        bind :8080,127.0.0.1:8443-8444 name web maxconn 100 backlog 512
        bind unix@/tmp/hasp-test.sock mode 600
        maxconn 500
        use_backend api
        default_backend app

    backend app
        balance leastconn
        hash-type consistent
        hash-balance-factor 150
        default-server inter 3s rise 3 fall 2 maxconn 10
        server a1 127.0.0.1:9001 weight 10 check
        server a2 127.0.0.1:9002 weight 20 maxqueue 5 backup disabled
        server a3 127.0.0.1:9003 pool-max-conn 4 pool-purge-delay 2s pool-low-conn 1 max-reuse 100

    backend api
        balance hdr(X-User)
        option http-server-close
        no option redispatch
        server b1 [::1]:9010

    listen admin
        bind 127.0.0.1:9999
        mode http
        option httpclose
        http-request return status 200 content-type text/plain string "alive"
    """

    @Test func parsesEveryKeywordOfTheCore() throws {
        let r = parse(Self.full)
        #expect(alerts(r) == [])
        let c = r.configuration
        #expect(c.global.maxconn == 2000)
        #expect(c.global.nbthread == 2)
        #expect(c.global.pidfile == "/run/hasp.pid")
        #expect(c.global.daemon)
        #expect(c.global.logTargets == [LogTarget(address: "/dev/log", facility: "local0", level: "notice")])
        #expect(c.global.statsSockets.count == 1)
        #expect(c.global.statsSockets[0].level == "admin")
        #expect(c.global.statsSockets[0].mode == 0o660)
        #expect(c.global.statsSockets[0].exposeFdListeners)
        #expect(c.global.statsTimeoutMs == 30_000)
        #expect(c.global.hardStopAfterMs == 10_000)
        #expect(c.global.mworkerMaxReloads == 5)
        #expect(c.global.noExitOnFailure)
        #expect(c.global.user == "haproxy" && c.global.group == "haproxy" && c.global.chroot == "/var/lib/haproxy")
        #expect(c.global.bufferSize == 32768 && c.global.maxRewrite == 2048)

        let www = try #require(c.proxy(named: "www"))
        #expect(www.kind == .frontend && www.mode == .http)
        #expect(www.binds.count == 2)
        #expect(www.binds[0].addresses == [.ipv4(host: "0.0.0.0", port: 8080), .ipv4(host: "127.0.0.1", port: 8443), .ipv4(host: "127.0.0.1", port: 8444)])
        #expect(www.binds[0].name == "web" && www.binds[0].maxconn == 100 && www.binds[0].backlog == 512)
        #expect(www.binds[1].addresses == [.unix(path: "/tmp/hasp-test.sock")] && www.binds[1].unixMode == 0o600)
        #expect(www.maxconn == 500)
        #expect(www.defaultBackend == "app")
        #expect(www.rules.useBackends.map(\.fixedName) == ["api"])
        #expect(www.timeouts.client == 50_000 && www.timeouts.httpRequest == 10_000)
        #expect(www.options.forwardFor && www.options.httpLog && www.options.dontLogNull)

        let app = try #require(c.proxy(named: "app"))
        #expect(app.balance == .leastConnections && app.hashType == .consistent && app.hashBalanceFactor == 150)
        #expect(app.timeouts.server == 50_000 && app.timeouts.connect == 5_000 && app.timeouts.queue == 3_000)
        #expect(app.timeouts.tunnel == 3_600_000 && app.timeouts.clientFin == 1000 && app.timeouts.serverFin == 1000)
        #expect(app.retries == 2 && app.options.redispatch && app.httpReuse == .always)
        #expect(app.servers.map(\.name) == ["a1", "a2", "a3"])
        #expect(app.servers[0].weight == 10 && app.servers[0].check && app.servers[0].interMs == 3000)
        #expect(app.servers[0].rise == 3 && app.servers[0].fall == 2 && app.servers[0].maxconn == 10)
        #expect(app.servers[1].backup && app.servers[1].disabled && app.servers[1].maxqueue == 5)
        #expect(app.servers[2].poolMaxConn == 4 && app.servers[2].poolPurgeDelayMs == 2000)
        #expect(app.servers[2].poolLowConn == 1 && app.servers[2].maxReuse == 100)
        #expect(app.servers[2].address == .inet(host: "127.0.0.1", port: 9003))

        let api = try #require(c.proxy(named: "api"))
        #expect(api.balance == .header(name: "X-User", useDomainOnly: false))
        #expect(api.options.connectionMode == .serverClose && !api.options.redispatch)
        #expect(api.servers[0].address == .inet(host: "::1", port: 9010))

        let admin = try #require(c.proxy(named: "admin"))
        #expect(admin.kind == .listen && admin.options.connectionMode == .close)
        let rule = try #require(admin.rules.httpRequest.first)
        #expect(admin.rules.httpRequest.count == 1 && rule.location == SourceLocation(file: "t.cfg", line: 64))
        guard case .reply(let reply) = rule.action, case .bytes(let body) = reply.body else {
            Issue.record("not a return rule: \(rule.action)")
            return
        }
        #expect(reply.status == 200 && reply.contentType == "text/plain" && body == Array("alive".utf8))
    }

    @Test func namedDefaultsAndFrom() throws {
        let r = parse("""
        defaults web
            mode http
            timeout client 7s
        defaults tcpish
            mode tcp
        frontend f from web
            bind :81
            timeout connect 1s
            timeout server 1s
            default_backend b
        backend b from web
            timeout connect 1s
            timeout server 1s
            server s 127.0.0.1:1
        """)
        #expect(alerts(r) == [])
        #expect(r.configuration.proxy(named: "f")?.mode == .http)
        #expect(r.configuration.proxy(named: "f")?.timeouts.client == 7000)
        #expect(r.configuration.proxy(named: "b")?.mode == .http)
    }

    @Test func lastDefaultsSectionApplies() {
        let r = parse("""
        defaults
            mode http
        backend one
        defaults
            mode tcp
        backend two
        """)
        #expect(r.configuration.proxy(named: "one")?.mode == .http)
        #expect(r.configuration.proxy(named: "two")?.mode == .tcp)
    }

    @Test func balanceAlgorithms() {
        let cases: [(String, BalanceAlgorithm)] = [
            ("roundrobin", .roundRobin), ("static-rr", .staticRoundRobin), ("leastconn", .leastConnections),
            ("first", .first), ("source", .source), ("random", .random(draws: 2)), ("random(3)", .random(draws: 3)),
            ("uri", .uri(depth: nil, length: nil, wholeURI: false)), ("uri depth 2 len 10 whole", .uri(depth: 2, length: 10, wholeURI: true)),
            ("hdr(host)", .header(name: "host", useDomainOnly: false)), ("hdr(host) use_domain_only", .header(name: "host", useDomainOnly: true)),
        ]
        for (text, expected) in cases {
            let r = parse("backend b\n balance \(text)\n")
            #expect(alerts(r) == [], "\(text)")
            #expect(r.configuration.proxy(named: "b")?.balance == expected, "\(text)")
        }
    }

    @Test func conditionalBlocks() {
        let text = """
        .if defined(FLAG)
        backend yes
        .elif streq(a,a)
        backend elif
        .else
        backend no
        .endif
        .if version_atleast(2.0) && !feature(OPENSSL)
        backend modern
        .endif
        .notice "hello"
        """
        let withFlag = parse(text, env: ["FLAG": "1"])
        #expect(withFlag.configuration.proxies.map(\.name) == ["yes", "modern"])
        let without = parse(text)
        #expect(without.configuration.proxies.map(\.name) == ["elif", "modern"])
        #expect(without.diagnostics.contains(Diagnostic(.notice, "config : parsing [t.cfg:11]: 'hello'.")))
    }

    @Test func environmentInValues() {
        let r = parse("frontend f\n bind \"${ADDR-127.0.0.1}:${PORT}\"\n", env: ["PORT": "8088"])
        #expect(r.configuration.proxy(named: "f")?.binds.first?.addresses == [.ipv4(host: "127.0.0.1", port: 8088)])
    }

    @Test func missingTimeoutsWarn() {
        let r = parse("backend be\n server s1 127.0.0.1:80\n")
        #expect(warnings(r).first?.hasPrefix("config : missing timeouts for backend 'be'.") == true)
        #expect(alerts(r) == [])
    }
}

@Suite struct ParserErrorTests {
    /// Each bad input and the exact first alert HAProxy prints for it (checked against haproxy -c).
    static let cases: [(String, String)] = [
        ("global\n  bogus 1\n", "config : parsing [t.cfg:2] : unknown keyword 'bogus' in 'global' section"),
        ("frontend fe\n  bind :8080\n  defualt_backend be\n",
         "config : parsing [t.cfg:3] : unknown keyword 'defualt_backend' in 'frontend' section; did you mean 'default_backend' maybe ?"),
        ("frontend fe\n  timeout client 5x\n", "config : parsing [t.cfg:2] : unexpected character 'x' in 'timeout client'"),
        ("backend be\n  server s1\n", "config : [t.cfg:2] : 'server' expects <name> and <addr>[:<port>] as arguments."),
        ("backend be\n  server s1 127.0.0.1:80 wieght 3\n", "config : [t.cfg:2] : 'server be/s1' : unknown keyword 'wieght'; did you mean 'weight' maybe ?"),
        ("  mode http\n", "config : parsing [t.cfg:1]: unknown keyword 'mode' out of section."),
        ("frontend fe\n  bind 1.2.3.4.5:80\n", "config : parsing [t.cfg:2] : 'bind' : invalid address: '1.2.3.4.5' in '1.2.3.4.5:80'"),
        ("frontend fe\n  bind :99999\n", "config : parsing [t.cfg:2] : 'bind' : invalid port '99999'"),
        ("listen l\n  option foo\n", "config : parsing [t.cfg:2] : unknown option 'foo'."),
        ("backend be\n  retries\n", "config : parsing [t.cfg:2] : 'retries' expects an integer argument (dispatch counts for one)."),
        ("frontend\n", "config : parsing [t.cfg:1] : 'frontend' expects an <id> argument"),
        ("frontend fe\n mode foo\n", "config : parsing [t.cfg:2] : unknown proxy mode 'foo'."),
        ("backend be\nbackend be\n", "config : Parsing [t.cfg:2]: backend 'be' has the same name as backend 'be' declared at t.cfg:1."),
        ("backend be\n timeout foo 5s\n",
         "config : parsing [t.cfg:2] : 'timeout' supports 'client', 'server', 'connect', 'check', 'queue', 'http-keep-alive', 'http-request', 'tunnel', 'tarpit', 'client-fin' and 'server-fin' (got 'foo')"),
        ("backend be\n timeout server\n", "config : parsing [t.cfg:2] : 'timeout server' expects an integer value (in milliseconds)"),
        ("frontend fe\n bind\n", "config : parsing [t.cfg:2] : 'bind' expects {<path>|[addr1]:port1[-end1]}{,[addr]:port[-end]}... as arguments."),
        ("backend be\n server s1 1.2.3.4.5:80\n", "config : [t.cfg:2] : 'server be/s1' : could not resolve address '1.2.3.4.5:80'."),
        ("frontend fe\n http-request return status 999\n",
         "config : parsing [t.cfg:2] : error detected in frontend 'fe' while parsing 'http-request return' rule : Unexpected status code '999'."),
        ("frontend fe\n http-request return status 200 string\n",
         "config : parsing [t.cfg:2] : error detected in frontend 'fe' while parsing 'http-request return' rule : 'string' expects <str> as argument."),
        ("global\n nbthread abc\n", "config : parsing [t.cfg:2] : 'nbthread' passed a missing or unparsable integer value in 'abc'"),
        ("global\n maxconn\n", "config : parsing [t.cfg:2] : 'maxconn' expects an integer argument."),
        ("backend be\n hash-type foo\n", "config : parsing [t.cfg:2] : 'hash-type' only supports 'consistent' and 'map-based'."),
        ("backend be\n hash-balance-factor\n", "config : parsing [t.cfg:2] : 'hash-balance-factor' expects an integer argument."),
        ("backend be\n hash-balance-factor 50\n", "config : parsing [t.cfg:2] : 'hash-balance-factor' must be 0 or greater than 100."),
        ("backend be\n http-reuse foo\n", "config : parsing [t.cfg:2] : 'http-reuse' only supports 'never', 'safe', 'aggressive', 'always'."),
        ("frontend fe\n default_backend\n", "config : parsing [t.cfg:2] : 'default_backend' expects a backend name."),
        (".if foo(\n.endif\n", "config : parsing [t.cfg:1]: unparsable conditional expression 'foo(' in '.if'."),
        (".if defined(X)\n.endif x\n", "config : parsing [t.cfg:2]: Unexpected argument 'x' for '.endif'."),
        (".else\n", "config : parsing [t.cfg:1]: lone '.else' with no matching '.if'."),
        (".if 1\n", "config : parsing [t.cfg:1]: non-terminated '.if' block."),
        ("global\n.alert \"boom\"\n", "config : parsing [t.cfg:2]: 'boom'."),
        ("frontend fe\n bind :80 foo\n", "config : parsing [t.cfg:2] : 'bind :80' in section 'frontend': unknown keyword 'foo'."),
        ("global\n master-worker x\n", "config : parsing [t.cfg:2] : 'master-worker' only supports 'no-exit-on-failure' option."),
        ("frontend fe\n bind :80\n default_backend nobe\n",
         "config : parsing [t.cfg:3] : Proxy 'fe': unable to find required default_backend: 'nobe'."),
        ("frontend fe\n bind :80\n use_backend nobe\n", "config : parsing [t.cfg:3] : Proxy 'fe': unable to find required use_backend: 'nobe'."),
        ("backend web\nbackend a b from web\n", "config : parsing [t.cfg:2] : 'backend' cannot handle unexpected argument 'b'."),
        ("defaults d\nbackend a from d x\n", "config : parsing [t.cfg:2] : 'backend' cannot handle unexpected argument 'x'."),
        ("frontend fe\n mode http xxx\n", "config : parsing [t.cfg:2] : 'mode' cannot handle unexpected argument 'xxx'."),
        ("frontend fe\n maxconn 10 x\n", "config : parsing [t.cfg:2] : 'maxconn' cannot handle unexpected argument 'x'."),
        ("frontend fe\n default_backend a b\n", "config : parsing [t.cfg:2] : 'default_backend' cannot handle unexpected argument 'b'."),
        ("backend be\n timeout connect 5 s\n", "config : parsing [t.cfg:2] : 'timeout connect' : unexpected extra argument 's' after value '5'."),
        ("backend be\n server \"\" 127.0.0.1:80\n", "config : [t.cfg:2] : 'server' : an empty server name is not permitted."),
        ("backend be\n server a/b 127.0.0.1:80\n", "config : [t.cfg:2] : character '/' is not permitted in server name 'a/b'."),
        ("userlist\n", "config : parsing [t.cfg:1] : 'userlist' expects <name> as arguments."),
        ("peers\n", "config : parsing [t.cfg:1] : missing name for peers section."),
        ("resolvers\n", "config : parsing [t.cfg:1] : missing name for resolvers section."),
        ("global\n tune.http.maxhdr 0\n", "config : parsing [t.cfg:2] : 'tune.http.maxhdr' expects a numeric value between 1 and 32767"),
        ("global\n tune.http.maxhdr\n", "config : parsing [t.cfg:2] : 'tune.http.maxhdr' expects an integer argument."),
        ("global\n ssl-server-verify x\n", "config : parsing [t.cfg:2] : 'ssl-server-verify' expects 'none' or 'required' as argument."),
        ("global\n max-spread-checks x\n", "config : parsing [t.cfg:2]: unsupported character 'x' in 'max-spread-checks' (wants an integer delay)."),
        ("global\n unix-bind x\n", "config : parsing [t.cfg:2] : 'unix-bind' only supports the 'prefix', 'mode', 'uid', 'gid', 'user' and 'group' options."),
        ("global\n profiling.tasks x\n", "config : parsing [t.cfg:2] : 'profiling.tasks' expects either 'on', 'auto', or 'off' but got 'x'."),
        ("global\n tune.idle-pool.shared\n", "config : parsing [t.cfg:2] : 'tune.idle-pool.shared' expects either 'on' or 'off' but got ''."),
        ("frontend fe\n bind \"unterminated\n", "config : parsing [t.cfg:2] : unmatched quote (\")."),
    ]

    @Test(arguments: 0..<cases.count)
    func reportsHAProxysMessage(_ index: Int) {
        let (text, expected) = Self.cases[index]
        let r = parse(text)
        #expect(r.hasErrors)
        #expect(alerts(r).first == expected)
        #expect(alerts(r).last == "config : Fatal errors found in configuration.")
    }

    @Test func keepsGoingAndNamesTheFile() {
        let r = parse("global\n bogus1\n bogus2\n")
        #expect(alerts(r) == [
            "config : parsing [t.cfg:2] : unknown keyword 'bogus1' in 'global' section",
            "config : parsing [t.cfg:3] : unknown keyword 'bogus2' in 'global' section",
            "config : Error(s) found in configuration file : t.cfg",
            "config : Fatal errors found in configuration.",
        ])
    }

    @Test func anHTTPFrontendCannotUseATCPBackend() {
        let r = parse("frontend fe\n mode http\n bind :80\n default_backend be\nbackend be\n mode tcp\n")
        #expect(alerts(r).first == "config : http frontend 'fe' (t.cfg:1) tries to use incompatible tcp backend 'be' (t.cfg:5) as its default backend (see 'mode').")
        let rule = parse("listen fe\n mode http\n bind :80\n use_backend be\nbackend be\n mode tcp\n")
        #expect(alerts(rule).first == "config : http proxy 'fe' (t.cfg:1) tries to use incompatible tcp backend 'be' (t.cfg:5) in a 'use_backend' rule (see 'mode').")
    }

    /// HAProxy 2.6 accepts it: the frontend's streams are upgraded to HTTP for the backend.
    @Test func aTCPFrontendMayUseAnHTTPBackend() {
        let r = parse("frontend fe\n mode tcp\n option httplog\n bind :80\n default_backend be\nbackend be\n mode http\n")
        #expect(!r.hasErrors)
        #expect(warnings(r).contains("config : parsing [t.cfg:3] : 'option httplog' not usable with frontend 'fe' (needs 'mode http'). Falling back to 'option tcplog'."))
        let fe = r.configuration.proxies.first { $0.name == "fe" }
        #expect(fe?.options.httpLog == false && fe?.options.tcpLog == true)
    }
}

@Suite struct ParserEdgeCaseTests {
    @Test func crlfLineEndingsAreLineEndings() {
        let text = "global\r\n    maxconn 77\r\ndefaults\r\n    mode http\r\nfrontend fe\r\n    bind :80\r\n    default_backend be\r\nbackend be\r\n    server s1 127.0.0.1:80\r\n"
        let r = ConfigParser.parse([ConfigParser.Source(name: "t.cfg", text: text, mustEndWithLineFeed: true)])
        #expect(alerts(r).isEmpty, "\(alerts(r))")
        #expect(r.configuration.global.maxconn == 77)
        #expect(r.configuration.proxies.map(\.name) == ["fe", "be"])
        #expect(r.configuration.proxies.first?.defaultBackend == "be")
        let cut = ConfigParser.parse([ConfigParser.Source(name: "t.cfg", text: "global\r\n    maxconn 77", mustEndWithLineFeed: true)])
        #expect(alerts(cut).first == "config : parsing [t.cfg:2]: Missing LF on last line, file might have been truncated at position 15.")
    }

    @Test func masterWorkerInTheFileAsksForMasterWorkerMode() {
        let plain = parse("global\n master-worker\n")
        #expect(!plain.hasErrors)
        #expect(plain.configuration.global.masterWorker)
        #expect(!plain.configuration.global.noExitOnFailure)
        let tolerant = parse("global\n master-worker no-exit-on-failure\n")
        #expect(tolerant.configuration.global.masterWorker && tolerant.configuration.global.noExitOnFailure)
    }

    @Test func globalKeywordsRealConfigurationsUse() {
        let r = parse("""
        global
            ssl-server-verify none
            max-spread-checks 500ms
            unix-bind prefix /run/hasp/ mode 660 user root group root
            profiling.tasks auto
            tune.idle-pool.shared on
            tune.http.maxhdr 64
            stats socket unix@admin.sock level admin
        frontend fe
            bind unix@fe.sock
            bind unix@own.sock mode 600
            bind 127.0.0.1:80
        """)
        #expect(alerts(r).isEmpty, "\(alerts(r))")
        let g = r.configuration.global
        #expect(g.maxHeaders == 64)
        #expect(!g.sslServerVerifyRequired)
        #expect(g.maxSpreadChecksMs == 500)
        #expect(g.statsSockets.first?.address == .unix(path: "/run/hasp/admin.sock"))
        let binds = r.configuration.proxies[0].binds
        #expect(binds[0].addresses == [.unix(path: "/run/hasp/fe.sock")])
        #expect(binds[0].unixMode == 0o660 && binds[0].unixUser == "root" && binds[0].unixGroup == "root")
        #expect(binds[1].unixMode == 0o600)
        #expect(binds[2].unixMode == nil)
    }
}
