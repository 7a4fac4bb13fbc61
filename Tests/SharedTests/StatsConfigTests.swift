import Testing
@testable import Shared

/// `stats ...` in proxy sections: HAProxy's keywords, defaults, inheritance and messages.
@Suite struct StatsConfigTests {
    static let head = """
    defaults
        mode http
        timeout client 1s
        timeout server 1s
        timeout connect 1s

    """

    func proxy(_ r: ConfigParser.Result, _ name: String) throws -> ProxySettings {
        try #require(r.configuration.proxies.first { $0.name == name })
    }

    @Test func everyKeywordIsRead() throws {
        let r = parse(Self.head + """
        global
            node edge-1
            description front tier
        listen s
            bind 127.0.0.1:8404
            stats uri /monitor
            stats realm Hasp\\ Stats
            stats auth admin:one
            stats auth ops:two
            stats refresh 5m
            stats hide-version
            stats show-legends
            stats show-modules
            stats show-node
            stats show-desc the edge
            stats scope .
            stats scope app
            stats admin if LOCALHOST

        """)
        #expect(alerts(r).isEmpty, "\(alerts(r))")
        let stats = try #require(try proxy(r, "s").stats)
        #expect(stats.uri == "/monitor")
        #expect(stats.realm == "Hasp Stats")
        #expect(stats.users.users.keys.sorted() == ["admin", "ops"] && stats.requiresAuthentication)
        #expect(stats.refreshSeconds == 300)
        #expect(stats.hideVersion && stats.showLegends && stats.showModules)
        #expect(stats.showNode == .some(nil) && stats.showDescription == .some("the edge"))
        #expect(stats.scopes == [".", "app"] && stats.adminConditions.count == 1)
        #expect(r.configuration.global.node == "edge-1" && r.configuration.global.processDescription == "front tier")
    }

    @Test func enableAloneGivesHAProxysDefaults() throws {
        let r = parse(Self.head + "listen s\n    bind 127.0.0.1:8404\n    stats enable\n")
        let stats = try #require(try proxy(r, "s").stats)
        #expect(stats.uri == "/haproxy?stats" && stats.effectiveRealm == "HAProxy Statistics" && !stats.requiresAuthentication)
        #expect(try proxy(r, "s").stats != nil)
        let none = parse(Self.head + "listen s\n    bind 127.0.0.1:8404\n")
        #expect(try proxy(none, "s").stats == nil)
    }

    @Test func proxiesInheritTheDefaultsPageUnlessTheyDeclareTheirOwn() throws {
        let r = parse("""
        defaults
            mode http
            stats uri /dstats
            stats auth a:b
        frontend inherits
            bind 127.0.0.1:8001
        frontend own
            bind 127.0.0.1:8002
            stats enable

        """)
        #expect(try proxy(r, "inherits").stats?.uri == "/dstats")
        #expect(try proxy(r, "inherits").stats?.requiresAuthentication == true)
        // A first `stats` line starts afresh: neither the URI nor the accounts of the defaults.
        #expect(try proxy(r, "own").stats?.uri == "/haproxy?stats")
        #expect(try proxy(r, "own").stats?.requiresAuthentication == false)
    }

    @Test func badLinesAreRefusedWithHAProxysMessages() {
        let cases: [(String, String)] = [
            ("stats", "missing keyword in 'stats', expects 'admin', 'uri', 'realm', 'auth', 'scope', 'enable', 'hide-version', 'show-node', 'show-desc' or 'show-legends'."),
            ("stats bogus", "unknown stats parameter 'bogus', expects 'admin'"),
            ("stats uri", "'uri' needs an URI prefix."),
            ("stats realm", "'realm' needs an realm name."),
            ("stats auth", "'auth' needs a user:password account."),
            ("stats scope", "'scope' needs a proxy name."),
            ("stats refresh abc", "unexpected character 'a' in argument to stats refresh interval."),
            ("stats admin", "'stats admin' requires either 'if' or 'unless' followed by a condition."),
            ("stats admin TRUE", "'stats admin' requires either 'if' or 'unless' followed by a condition."),
            ("stats http-request foo", "'http-request' expects 'allow'"),
            ("stats http-request auth realm", "missing realm value."),
        ]
        for (line, message) in cases {
            let r = parse(Self.head + "listen s\n    bind 127.0.0.1:8404\n    \(line)\n")
            #expect(alerts(r).contains { $0.contains("t.cfg:8") && $0.contains(message) }, "\(line): \(alerts(r))")
        }
    }

    @Test func sectionRulesAndConflicts() {
        let admin = parse("defaults\n    mode http\n    stats admin if TRUE\n")
        #expect(alerts(admin).contains { $0.contains("'stats admin' not allowed in 'defaults' section.") })
        let rules = parse("defaults\n    mode http\n    stats http-request deny\n")
        #expect(alerts(rules).contains { $0.contains("'stats' not allowed in 'defaults' section.") })
        let both = parse(Self.head + "listen s\n    bind 127.0.0.1:8404\n    stats auth a:b\n    stats http-request allow\n")
        #expect(alerts(both).contains { $0.contains("proxy 's': stats 'auth'/'realm' and 'http-request' can't be used at the same time.") })
        let tcp = parse("listen t\n    mode tcp\n    bind 127.0.0.1:8404\n    stats enable\n")
        #expect(warnings(tcp).contains { $0.contains("'stats' statement ignored for proxy 't' as it requires HTTP mode.") })
    }

    @Test func useServiceNamesThePrometheusExporterOnly() {
        let good = parse(Self.head + "frontend f\n    bind 127.0.0.1:8404\n    http-request use-service prometheus-exporter if { path /metrics }\n")
        #expect(alerts(good).isEmpty, "\(alerts(good))")
        let stats = parse(Self.head + "frontend f\n    bind 127.0.0.1:8404\n    http-request use-service stats\n")
        #expect(alerts(stats).contains { $0.contains("'stats' unknown service name..") })
        let tcp = parse(Self.head + "frontend f\n    bind 127.0.0.1:8404\n    tcp-request content use-service prometheus-exporter\n")
        #expect(alerts(tcp).contains { $0.contains("Prometheus exporter service only available on 'http-request' rulesets") })
    }
}

/// Log formats, unique IDs, captures and log targets in the configuration.
@Suite struct LogConfigTests {
    func frontend(_ body: String) -> ConfigParser.Result {
        parse(StatsConfigTests.head + "frontend f\n    bind 127.0.0.1:8404\n" + body)
    }

    @Test func theLastFormatWins() throws {
        let custom = frontend("    option httplog\n    log-format \"%ci %ST\"\n")
        #expect(custom.configuration.proxies.last?.logging.format?.source == "%ci %ST")
        #expect(custom.configuration.proxies.last?.logging.kind == .custom)
        let http = frontend("    log-format \"%ci\"\n    option httplog clf\n")
        #expect(http.configuration.proxies.last?.logging.kind == .httpCLF)
        #expect(http.configuration.proxies.last?.logging.format?.source.hasPrefix("%{+Q}o %{-Q}ci - - [%trg]") == true)
        let none = frontend("    option httplog\n    no option httplog\n")
        #expect(none.configuration.proxies.last?.logging.format == nil)
        // `option httplog` in a TCP proxy falls back to the TCP format.
        let tcp = parse("listen t\n    mode tcp\n    bind 127.0.0.1:8405\n    option httplog\n")
        #expect(tcp.configuration.proxies.last?.logging.kind == .tcp)
    }

    @Test func keywordsAndTheirErrors() {
        let good = frontend("""
                option httpslog
                log-format-sd "[exampleSDID@1234 x=\\"y\\"]"
                error-log-format "%ci"
                unique-id-format "%{+X}o%ci:%cp_%Ts_%rt:%pid"
                unique-id-header X-Unique-ID
                declare capture request len 10
                declare capture response len 20
                log-tag edge
                option dontlog-normal
                log stdout len 200 format raw local0

            """)
        #expect(alerts(good).isEmpty, "\(alerts(good))")
        let f = good.configuration.proxies.last!
        #expect(f.logging.uniqueIDHeader == "X-Unique-ID" && f.logging.tag == "edge" && f.options.dontLogNormal)
        #expect(f.rules.requestCaptures.count == 1 && f.rules.responseCaptures.count == 1)
        #expect(f.logTargets.first?.length == 200)
        let cases: [(String, String)] = [
            ("log-format", "log-format expects an argument."),
            ("log-format a b", "log-format expects only one argument, don't forget to escape spaces!"),
            ("log-format %zz", "failed to parse log-format : no such format variable 'zz'."),
            ("unique-id-format", "unique-id-format expects an argument."),
            ("unique-id-header", "unique-id-header expects an argument."),
            ("declare capture", "'declare capture' requires a direction ('request' or 'response')"),
            ("declare capture request", "'declare capture' requires a capture length ('len')"),
            ("declare capture request len x", "'declare capture': cannot parse the length 'len'."),
            ("option httplog foo", "keyword 'httplog' only supports option 'clf'."),
            ("option tcplog x", "'option tcplog' cannot handle unexpected argument 'x'."),
            ("log-tag", "'log-tag' expects a tag for use in syslog."),
            ("log stdout len 10 local0", "log : invalid log length '10', must be between 80 and 65535"),
        ]
        for (line, message) in cases {
            let r = frontend("    \(line)\n")
            #expect(alerts(r).contains { $0.contains(message) }, "\(line): \(alerts(r))")
        }
    }
}
